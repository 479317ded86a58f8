"""``psyco-book``: execute the chapters with papermill and render them with Jupyter Book.

The ``.py`` percent files under ``notebooks/`` are the single source.  ``psyco-book run`` turns each into a
temporary notebook with jupytext, injects the parameters (profile name and overrides, never derived values) with
papermill, and writes the executed notebook to ``executed/`` (or ``--executed-dir``; never committed).  Papermill is
the only executor and the gate: the first failing cell stops the run with a non-zero exit naming the notebook and the
cell, records the failure in the run manifest, and keeps the partially executed notebook.  Before a paid run it
prints the estimated cost of every paid call; during a chapter it shows the judge's live progress in the terminal
(never in the notebooks); on SIGINT, SIGTERM, SIGHUP or the death of its parent it ends the kernel and the kernel's
processes (:mod:`psyco_book.lifeline`).  ``psyco-book build`` checks the executed chapters (an error output, or a
failed check under ``checks: enforce``, stops it, naming the chapter and the cell), then renders them with ``book/``
through Jupyter Book 1 (execution off, warnings are errors).  ``psyco-book sync`` writes the paired ``.ipynb`` files
and ``--check`` fails when a pair is out of sync or carries outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

#: Where this code lives; the kernels import ``psyco_book`` from here.
CODE_ROOT = Path(__file__).resolve().parent.parent
#: The repository whose chapters run (tests point it elsewhere).
REPO_ROOT = CODE_ROOT
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
EXECUTED_DIR = REPO_ROOT / "executed"
#: The judge's progress file (``psyco_utils.judge.progress``): set for the kernels, read by the progress line.
PROGRESS_FILE_ENV = "PSYCO_PROGRESS_FILE"

#: How long a kernel may take to start (papermill's default, 60 s, is too short on a loaded CI machine: a kernel
#: imports ipykernel and IPython before it answers).
KERNEL_START_TIMEOUT_S = 300

QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
    # torch's OpenMP threads otherwise spin while waiting, which on a busy 2-core machine makes steps up to 10x slower
    "OMP_WAIT_POLICY": "PASSIVE",
}


def chapter_sources(only: list[str] | None = None) -> list[Path]:
    """The chapters' ``.py`` sources in book order, optionally only those whose number or name is in ``only``."""
    sources = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
    if only:
        wanted = {o.strip() for o in only}
        sources = [p for p in sources if p.stem[:2] in wanted or p.stem in wanted]
        found = {p.stem[:2] for p in sources} | {p.stem for p in sources}
        missing = sorted(wanted - found)
        if missing:
            raise SystemExit(f"psyco-book: no chapter matches {', '.join(missing)} in {NOTEBOOK_DIR}")
    return sources


def _code_cells(nb):
    """(index among the source's code cells, cell) for each code cell; papermill's injected cell is not counted."""
    index = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        index += 1
        yield index, cell


def _cell_name(index: int, cell) -> str:
    first = next((line for line in cell.source.splitlines() if line.strip()), "")
    return f"code cell {index} ({first!r})"


def _failed_cell(nb_path: Path) -> str | None:
    """The cell that raised ("code cell N ('first line')"), from papermill's partial output; None if unknown."""
    import nbformat

    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception:  # the output may not exist if the kernel never started
        return None
    for index, cell in _code_cells(nb):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return _cell_name(index, cell)
    return None


def executed_problems(executed_dir: Path) -> tuple[list[str], list[str]]:
    """Read every executed chapter before rendering: ``(errors, reported_checks)``.

    ``errors`` fail the build: an error output, or a failed quality check recorded under ``checks: enforce``.
    ``reported_checks`` are failed checks recorded under ``checks: report``: shown on the page in a warning box and
    listed by the build, without failing it.  Each names the chapter and the cell.
    """
    import nbformat

    from psyco_utils.checks import OUTPUT_METADATA_KEY

    errors, reported = [], []
    for source in chapter_sources():
        nb = nbformat.read(executed_dir / f"{source.stem}.ipynb", as_version=4)
        for index, cell in _code_cells(nb):
            where = f"{source.stem}, {_cell_name(index, cell)}"
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    errors.append(f"{where}: error output {output.get('ename')}: {output.get('evalue')}")
                check = output.get("metadata", {}).get(OUTPUT_METADATA_KEY)
                if check and not check.get("passed"):
                    line = f"{where}: check {check.get('name')!r} failed: {check.get('message')}"
                    (errors if check.get("mode") == "enforce" else reported).append(line)
    return errors, reported


def fold_injected_parameters(nb_path: Path) -> None:
    """Put the values papermill injected into the notebook's own parameters cell and drop papermill's extra cell.

    A reader who opens the executed notebook (on Colab, from the launch button) then finds one parameters cell that
    says which profile ran, and changing it takes effect, instead of being overwritten by the injected cell below it.
    Papermill's record of the input and output paths keeps the file names only.
    """
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    tags = [cell.get("metadata", {}).get("tags", []) for cell in nb.cells]
    injected = next((i for i, t in enumerate(tags) if "injected-parameters" in t), None)
    declared = next((i for i, t in enumerate(tags) if "parameters" in t), None)
    if injected is None or declared is None:
        return
    nb.cells[declared].source = "\n".join(line for line in nb.cells[injected].source.splitlines()
                                           if not line.startswith("# Parameters"))
    del nb.cells[injected]
    papermill = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):  # the published notebook names no folder of the machine that ran it
        if papermill.get(key):
            papermill[key] = Path(papermill[key]).name
    nbformat.write(nb, nb_path)


def format_progress(record: dict) -> str:
    """One progress line from the judge's progress record (``PSYCO_PROGRESS_FILE``)."""
    done, total = int(record.get("done", 0)), int(record.get("total", 0))
    rate = float(record.get("rate_per_s", 0.0))
    line = f"  {record.get('task', 'judging')}: {done:,}" + (f"/{total:,}" if total else "") + " done"
    line += f", {int(record.get('failed', 0)):,} failed, {rate:.1f}/s"
    if total and rate > 0 and done < total:
        line += f", about {(total - done) / rate:,.0f} s left"
    return line + f", ${float(record.get('cost_usd', 0.0)):,.2f} so far"


class ProgressLine:
    """Shows progress records in the terminal: one line rewritten in place on a TTY; elsewhere (CI logs) a plain
    line when the record changed, at most every ``min_interval_s``, and the last state when the chapter ends."""

    def __init__(self, stream=None, tty: bool | None = None, min_interval_s: float = 5.0, clock=time.monotonic):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.min_interval_s, self.clock = min_interval_s, clock
        self.shown = self.pending = None
        self.last_shown_at = None
        self.width = 0

    def update(self, record: dict) -> None:
        line = format_progress(record)
        if line == self.shown:
            return
        self.pending = line
        if self.tty or self.last_shown_at is None or self.clock() - self.last_shown_at >= self.min_interval_s:
            self._show(line)

    def _show(self, line: str) -> None:
        if self.tty:
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.shown, self.pending, self.last_shown_at = line, None, self.clock()

    def close(self) -> None:
        """End the line (TTY), or print the last state if it was held back (elsewhere)."""
        if self.pending and self.pending != self.shown:
            self._show(self.pending)
        if self.tty and self.shown:
            self.stream.write("\n")
            self.stream.flush()


class ChapterMonitor:
    """While a chapter runs, a background thread samples the kernel's resident memory (this process's children)
    and shows the judge's progress file, if the kernel writes one, as a :class:`ProgressLine`."""

    def __init__(self, progress_file: Path | None = None, interval: float = 0.2, line: ProgressLine | None = None):
        self.interval = interval
        self.progress_file = progress_file
        self.line = line or ProgressLine()
        self.peak_bytes = 0
        self._stop = None
        self._seen = None

    def _sample_memory(self, me) -> None:
        import psutil

        total = 0
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        self.peak_bytes = max(self.peak_bytes, total)

    def _read_progress(self) -> None:
        try:
            stat = self.progress_file.stat()
            if (stat.st_mtime_ns, stat.st_size) == self._seen:
                return
            self._seen = (stat.st_mtime_ns, stat.st_size)
            record = json.loads(self.progress_file.read_text())
        except (OSError, ValueError):  # not written yet, or being replaced
            return
        if isinstance(record, dict):
            self.line.update(record)

    def __enter__(self):
        import threading

        import psutil

        self._stop = threading.Event()
        me = psutil.Process()

        def sample():
            while not self._stop.is_set():
                self._sample_memory(me)
                if self.progress_file is not None:
                    self._read_progress()
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=sample, name="psyco-chapter-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if self.progress_file is not None:
            self._read_progress()
        self.line.close()


class RunStopped(KeyboardInterrupt):
    """``psyco-book`` received SIGTERM or SIGHUP (its parent's death arrives as SIGTERM).

    A KeyboardInterrupt, so that it travels as Ctrl-C does: papermill runs the kernel's messages in an asyncio event
    loop, which passes KeyboardInterrupt on but logs and swallows any other exception raised in one of its callbacks.
    A stop that landed while the loop ran a callback was lost, and the run went on."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum, frame):
    raise RunStopped(signum)


@contextlib.contextmanager
def _signal_handlers(handlers: dict):
    """Install ``handlers`` (signal -> handler) for the block, then restore the previous ones.  Outside the main
    thread, where Python cannot set handlers, the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_on_signals():
    """SIGTERM and SIGHUP raise :class:`RunStopped` in the main thread (SIGINT raises KeyboardInterrupt already);
    a SIGHUP ignored under ``nohup`` stays ignored."""
    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN else [])
    return _signal_handlers({sig: _raise_stopped for sig in wanted})


def _signals_ignored():
    """While a stop is being carried out, a second Ctrl-C or SIGTERM does not interrupt it."""
    return _signal_handlers({sig: signal.SIG_IGN for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)})


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """Set environment variables for the kernels this run starts, and restore the old values afterwards."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def kernel_connection_config():
    """How ``psyco-book`` talks to its kernels: over TCP encrypted with CurveZMQ keys the kernel manager provisions
    where pyzmq supports them, else over local IPC sockets (no TCP port is opened).  TCP comes first: under heavy CPU
    load a stop occasionally left the kernel's clean-up hanging over IPC.
    Either way the kernel has no reason to warn that it runs over TCP without encryption."""
    import zmq
    from traitlets.config import Config

    if zmq.has("curve"):
        return Config({"KernelManager": {"transport_encryption": "auto"}})
    if os.name == "posix":
        return Config({"KernelManager": {"transport": "ipc"}})
    return Config()


def kernel_environment() -> dict[str, str]:
    """Environment variables for the kernels: quiet libraries, and this ``psyco_book`` importable first (the kernel's
    start-up line imports it, whatever folder the kernel starts in)."""
    path = [str(CODE_ROOT), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    return {**QUIET_ENV, "PYTHONPATH": os.pathsep.join(dict.fromkeys(path))}


def end_kernels(started_after: set[int]) -> None:
    """End the kernels this process started since ``started_after`` (PIDs of its children then) and everything
    they started: SIGTERM (the kernel interrupts its cell and ends its own children), then SIGKILL what is left."""
    import psutil

    from .lifeline import KERNEL_GRACE_S, descendants, end_processes

    kernels = [p for p in psutil.Process().children() if p.pid not in started_after]
    family = [*kernels, *(d for k in kernels for d in descendants(k.pid))]
    end_processes(kernels, grace_s=2 * KERNEL_GRACE_S)
    end_processes([p for p in family if p.is_running()], grace_s=KERNEL_GRACE_S)


def _execute_chapter(source: Path, out_path: Path, profile: str, overrides: list[str], progress_file: Path
                     ) -> ChapterMonitor:
    import jupytext
    import papermill

    from .kernel import KERNEL_EXEC_LINE

    nb = jupytext.read(source)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    nb.metadata.setdefault("language_info", {"name": "python"})
    progress_file.unlink(missing_ok=True)
    monitor = ChapterMonitor(progress_file)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_nb = Path(tmp) / f"{source.stem}.ipynb"
        jupytext.write(nb, tmp_nb)
        with monitor:
            papermill.execute_notebook(
                str(tmp_nb),
                str(out_path),
                parameters={"profile": profile, "overrides": list(overrides)},
                cwd=str(REPO_ROOT),
                kernel_name="python3",
                progress_bar=False,
                start_timeout=KERNEL_START_TIMEOUT_S,
                request_save_on_cell_execute=True,
                extra_arguments=[f"--IPKernelApp.exec_lines={KERNEL_EXEC_LINE}"],
                config=kernel_connection_config(),
            )
    return monitor


def _run_chapter(source: Path, executed_dir: Path, profile: str, overrides: list[str], progress_file: Path,
                 run_root: Path) -> tuple[int, dict | None]:
    """Execute one chapter: ``(0, its time and peak memory)``, or ``(exit status, None)`` once the failure or the
    stop is reported and recorded in the manifest (a stop first ends the chapter's kernel and its processes)."""
    from papermill.exceptions import PapermillExecutionError

    from psyco_utils.manifest import record_cost, record_failure

    out_path = executed_dir / f"{source.stem}.ipynb"
    name = source.relative_to(REPO_ROOT)
    children_before = {p.pid for p in _children()}
    start = time.perf_counter()
    try:
        monitor = _execute_chapter(source, out_path, profile, overrides, progress_file)
    except PapermillExecutionError as exc:
        where = _failed_cell(out_path) or f"cell {exc.cell_index}"
        record_failure(run_root, source.stem, f"{exc.ename}: {exc.evalue}", where)
        print(f"psyco-book: FAILED {name} at {where}: {exc.ename}: {exc.evalue}\n"
              f"psyco-book: partially executed notebook kept at {out_path}", file=sys.stderr)
        return 1, None
    except KeyboardInterrupt as exc:  # Ctrl-C, or a RunStopped (SIGTERM, SIGHUP)
        signum = exc.signum if isinstance(exc, RunStopped) else signal.SIGINT
        stopped = f"stopped by {signal.Signals(signum).name}"
        with _signals_ignored():
            end_kernels(children_before)
            record_failure(run_root, source.stem, stopped, _failed_cell(out_path))
        print(f"\npsyco-book: {stopped} during {name}; its kernel and the kernel's processes were ended"
              f"\npsyco-book: partially executed notebook kept at {out_path}", file=sys.stderr)
        return 128 + signum, None
    except Exception as exc:  # kernel died, papermill could not start, ...
        record_failure(run_root, source.stem, f"{type(exc).__name__}: {exc}")
        print(f"psyco-book: FAILED {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1, None
    finally:
        record_cost(run_root)
    fold_injected_parameters(out_path)
    seconds = time.perf_counter() - start
    return 0, {"seconds": round(seconds, 1), "peak_memory_gib": round(monitor.peak_bytes / 2**30, 2)}


def run(profile: str, only: list[str] | None, overrides: list[str], executed_dir: Path) -> int:
    """Execute the chapters in order; the first failure stops the run, names the chapter and the cell, and is
    recorded in the run manifest.  Returns the exit status (128 + the signal's number when stopped by a signal)."""
    from psyco_utils.config import load_profile, run_dir
    from .lifeline import RUNNER_PID_ENV
    from psyco_utils.manifest import format_cost_estimate, record_cost, run_cost_estimate
    from psyco_utils.config import profile_summary

    cfg = load_profile(profile, overrides)  # fail before any kernel starts on a bad profile or override
    executed_dir.mkdir(parents=True, exist_ok=True)
    runs_root = Path(os.environ.get("PSYCO_RUNS_DIR", REPO_ROOT / "runs")).resolve()
    env = {**kernel_environment(), "PSYCO_RUNS_DIR": str(runs_root)}
    if cfg.hub_offline:
        env.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    sources = chapter_sources(only)
    if not sources:
        print("psyco-book: no chapters found", file=sys.stderr)
        return 1
    run_root = run_dir(cfg, runs_root)
    print(f"psyco-book: profile {cfg.name!r} ({profile_summary(cfg)}); artifacts in {run_root}")
    estimate = run_cost_estimate(cfg, run_root)
    if cfg.judge.backend == "openai":
        print(format_cost_estimate(estimate), flush=True)
    record_cost(run_root, estimate)
    timings: dict[str, dict] = {}
    total_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="psyco-progress-") as progress_dir, _stop_on_signals():
        progress_file = Path(progress_dir) / "progress.json"
        env.update({PROGRESS_FILE_ENV: str(progress_file), RUNNER_PID_ENV: str(os.getpid())})
        with _environment(env):
            for i, source in enumerate(sources, 1):
                print(f"[{i}/{len(sources)}] {source.relative_to(REPO_ROOT)} ...", flush=True)
                rc, timing = _run_chapter(source, executed_dir, profile, overrides, progress_file, run_root)
                if rc:
                    return rc
                timings[source.stem] = timing
                print(f"[{i}/{len(sources)}] {source.stem} done in {timing['seconds']:.1f} s, kernel peak memory "
                      f"{timing['peak_memory_gib']:.2f} GiB", flush=True)
    total = time.perf_counter() - total_start
    timing_file = executed_dir / f"timings_{cfg.name}.json"
    previous = json.loads(timing_file.read_text()) if timing_file.exists() else {}
    timing_file.write_text(json.dumps({**previous, **timings}, indent=2))
    cost = record_cost(run_root)
    paid = f"; judge cost ${cost['actual_usd']:,.2f} (estimated ${estimate['total_usd']:,.2f})" \
        if cfg.judge.backend == "openai" else ""
    print(f"psyco-book: {len(sources)} chapter(s) executed in {total:.1f} s{paid}")
    return 0


def _children() -> list:
    import psutil

    return psutil.Process().children()


def _staged_book(executed_dir: Path) -> Path:
    """The book's sources with ``executed/`` taken from ``executed_dir``, in ``_build/source`` (the table of
    contents stays as it is; file times are kept, so an unchanged page is not rebuilt)."""
    stage = REPO_ROOT / "_build" / "source"
    if stage.exists():
        shutil.rmtree(stage)
    shutil.copytree(REPO_ROOT / "book", stage / "book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(REPO_ROOT / name, stage / name)
    (stage / "executed").mkdir()
    for source in chapter_sources():
        shutil.copy2(executed_dir / f"{source.stem}.ipynb", stage / "executed" / f"{source.stem}.ipynb")
    return stage


def build(executed_dir: Path) -> int:
    """Render the executed chapters in ``executed_dir`` with the book's pages; an error output or a failed check
    under ``enforce`` stops the build before Jupyter Book runs, naming the chapter and the cell."""
    executed_dir = Path(executed_dir).resolve()
    missing = [p.stem for p in chapter_sources() if not (executed_dir / f"{p.stem}.ipynb").exists()]
    if missing:
        print(f"psyco-book: not executed yet in {executed_dir}: {', '.join(missing)}; run `psyco-book run` first",
              file=sys.stderr)
        return 1
    errors, reported = executed_problems(executed_dir)
    for line in reported:
        print(f"psyco-book: warning: {line} (recorded under checks: report; shown on the page)")
    if errors:
        for line in errors:
            print(f"psyco-book: {line}", file=sys.stderr)
        print(f"psyco-book: book build FAILED: {len(errors)} problem(s) in the executed chapters of {executed_dir}",
              file=sys.stderr)
        return 1
    source = _staged_book(executed_dir)
    cmd = [sys.executable, "-m", "jupyter_book", "build", str(source), "--path-output", str(REPO_ROOT),
           "--warningiserror", "--nitpick", "--keep-going"]
    jb = Path(sys.executable).with_name("jupyter-book")
    if jb.exists():
        cmd = [str(jb), *cmd[3:]]
    print("psyco-book:", " ".join(cmd), flush=True)
    start = time.perf_counter()
    rc = subprocess.call(cmd, cwd=REPO_ROOT)
    print(f"psyco-book: book build {'succeeded' if rc == 0 else 'FAILED'} in {time.perf_counter() - start:.1f} s")
    return rc


def _cell_signature(cell) -> tuple[str, str, tuple]:
    return cell.cell_type, cell.source.strip(), tuple(cell.get("metadata", {}).get("tags", []))


def _cells_signature(nb) -> list[tuple[str, str, tuple]]:
    return [_cell_signature(c) for c in nb.cells]


def _keep_cell_ids(nb, previous) -> None:
    """Give each cell of ``nb`` the id of an unchanged cell of ``previous`` (same type, source and tags), in order, so
    that a re-synced ``.ipynb`` differs from the committed one only in the cells that changed."""
    unused: dict[tuple, list[str]] = {}
    for cell in previous.cells:
        if cell.get("id"):
            unused.setdefault(_cell_signature(cell), []).append(cell["id"])
    for cell in nb.cells:
        ids = unused.get(_cell_signature(cell))
        if ids:
            cell["id"] = ids.pop(0)


def sync(check: bool) -> int:
    """Write each chapter's paired ``.ipynb`` from its ``.py`` source, or with ``check`` report any difference."""
    import jupytext
    import nbformat

    problems: list[str] = []
    for source in chapter_sources():
        paired = source.with_suffix(".ipynb")
        nb = jupytext.read(source)
        if check:
            if not paired.exists():
                problems.append(f"{paired.relative_to(REPO_ROOT)} is missing (run `psyco-book sync`)")
                continue
            committed = nbformat.read(paired, as_version=4)
            with_outputs = [
                i for i, c in enumerate(committed.cells, 1)
                if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))
            ]
            if with_outputs:
                problems.append(f"{paired.relative_to(REPO_ROOT)} carries outputs in cell(s) {with_outputs}")
            if _cells_signature(committed) != _cells_signature(nb):
                problems.append(f"{paired.relative_to(REPO_ROOT)} is out of sync with {source.name}")
        else:
            previous = nbformat.read(paired, as_version=4) if paired.exists() else None
            if previous is not None and _cells_signature(previous) == _cells_signature(nb):
                continue  # already in sync: leave the file (and its cell ids) alone
            if previous is not None:
                _keep_cell_ids(nb, previous)
            jupytext.write(nb, paired)
            print(f"psyco-book: wrote {paired.relative_to(REPO_ROOT)}")
    for problem in problems:
        print(f"psyco-book: {problem}", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="psyco-book", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute chapters with papermill")
    p_run.add_argument("--profile", default="tiny", help="tiny, colab, paper, or a YAML file")
    p_run.add_argument("--only", nargs="+", help="chapter numbers or names, e.g. 01 03")
    p_run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a profile value, e.g. --set dpo_iter.rounds=1 (repeatable)")
    p_run.add_argument("--executed-dir", type=Path, default=EXECUTED_DIR)
    p_build = sub.add_parser("build", help="render the executed chapters with Jupyter Book")
    p_build.add_argument("--executed-dir", type=Path, default=EXECUTED_DIR)
    p_sync = sub.add_parser("sync", help="write the paired .ipynb files from the .py sources")
    p_sync.add_argument("--check", action="store_true", help="fail if a pair is out of sync or has outputs")
    p_train = sub.add_parser("train", help="train a stage (reward, dpo, dpo-iter) outside its chapter, e.g. under "
                                          "accelerate launch or torchrun; the chapter then reuses the model")
    p_train.add_argument("stages", nargs="+", metavar="STAGE", help="reward, dpo and/or dpo-iter, run in order")
    p_train.add_argument("--profile", default="tiny", help="tiny, colab, paper, or a YAML file")
    p_train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="override a profile value, as the chapter's `overrides` (repeatable)")
    args = parser.parse_args(argv)
    if args.command == "train":
        from psyco_utils.launch import main as train

        return train([*args.stages, "--profile", args.profile, *(a for o in args.overrides for a in ("--set", o))])
    if args.command == "run":
        from .lifeline import follow_parent

        follow_parent()  # the death of the shell or job that started psyco-book stops the run
        try:
            return run(args.profile, args.only, args.overrides, args.executed_dir)
        except KeyboardInterrupt as exc:  # Ctrl-C or a RunStopped, between chapters: no kernel is running
            signum = exc.signum if isinstance(exc, RunStopped) else signal.SIGINT
            print(f"\npsyco-book: stopped by {signal.Signals(signum).name}", file=sys.stderr)
            return 128 + signum
    if args.command == "build":
        return build(args.executed_dir)
    return sync(args.check)


__all__ = ["CODE_ROOT", "EXECUTED_DIR", "KERNEL_START_TIMEOUT_S", "NOTEBOOK_DIR", "PROGRESS_FILE_ENV", "QUIET_ENV",
           "REPO_ROOT", "ChapterMonitor", "ProgressLine", "RunStopped", "build", "chapter_sources", "end_kernels",
           "executed_problems", "fold_injected_parameters", "format_progress", "kernel_connection_config",
           "kernel_environment", "main", "run", "sync"]

if __name__ == "__main__":
    sys.exit(main())
