"""``psyco-book``: execute the chapters with papermill and render them with Jupyter Book.

The ``.py`` percent files under ``notebooks/`` are the single source.  ``psyco-book run`` turns each into a
temporary notebook with jupytext, injects the parameters (profile name and overrides, never derived values) with
papermill, and writes the executed notebook to ``executed/`` (never committed).  Papermill is the only executor and
the gate: the first failing cell stops the run with a non-zero exit naming the notebook and the cell, and the
partially executed notebook is kept.  ``psyco-book build`` renders ``executed/`` and ``book/`` with Jupyter Book 1
(execution off, warnings are errors).  ``psyco-book sync`` writes the paired ``.ipynb`` files and ``--check`` fails
when a pair is out of sync or carries outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
EXECUTED_DIR = REPO_ROOT / "executed"

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


def _failed_cell(nb_path: Path) -> tuple[int | None, str]:
    """Index (among the source's code cells) and first line of the cell that raised, from papermill's partial output."""
    import nbformat

    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception:  # the output may not exist if the kernel never started
        return None, ""
    code_index = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        code_index += 1
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            first = next((line for line in cell.source.splitlines() if line.strip()), "")
            return code_index, first
    return None, ""


def fold_injected_parameters(nb_path: Path) -> None:
    """Put the values papermill injected into the notebook's own parameters cell and drop papermill's extra cell.

    A reader who opens the executed notebook (on Colab, from the launch button) then finds one parameters cell that
    says which profile ran, and changing it takes effect, instead of being overwritten by the injected cell below it.
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
    nbformat.write(nb, nb_path)


class PeakMemory:
    """Samples the resident memory of this process's children (the notebook kernel) in a background thread."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.peak_bytes = 0
        self._stop = None

    def __enter__(self):
        import threading

        import psutil

        self._stop = threading.Event()
        me = psutil.Process()

        def sample():
            while not self._stop.is_set():
                total = 0
                for child in me.children(recursive=True):
                    try:
                        total += child.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak_bytes = max(self.peak_bytes, total)
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run(profile: str, only: list[str] | None, overrides: list[str], executed_dir: Path) -> int:
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from .config import load_profile

    cfg = load_profile(profile, overrides)  # fail before any kernel starts on a bad profile or override
    executed_dir.mkdir(parents=True, exist_ok=True)
    runs_root = Path(os.environ.get("PSYCO_RUNS_DIR", REPO_ROOT / "runs")).resolve()
    env = {**QUIET_ENV, "PSYCO_RUNS_DIR": str(runs_root)}
    if cfg.hub_offline:
        env.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    os.environ.update(env)

    sources = chapter_sources(only)
    if not sources:
        print("psyco-book: no chapters found", file=sys.stderr)
        return 1
    print(f"psyco-book: profile {cfg.name!r} ({cfg.description}); artifacts in {runs_root / cfg.name}")
    timings: dict[str, float] = {}
    total_start = time.perf_counter()
    for i, source in enumerate(sources, 1):
        out_path = executed_dir / f"{source.stem}.ipynb"
        print(f"[{i}/{len(sources)}] {source.relative_to(REPO_ROOT)} ...", flush=True)
        nb = jupytext.read(source)
        nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
        nb.metadata.setdefault("language_info", {"name": "python"})
        with tempfile.TemporaryDirectory() as tmp:
            tmp_nb = Path(tmp) / f"{source.stem}.ipynb"
            jupytext.write(nb, tmp_nb)
            start = time.perf_counter()
            memory = PeakMemory()
            try:
                with memory:
                    papermill.execute_notebook(
                        str(tmp_nb),
                        str(out_path),
                        parameters={"profile": profile, "overrides": list(overrides)},
                        cwd=str(REPO_ROOT),
                        kernel_name="python3",
                        progress_bar=False,
                        request_save_on_cell_execute=True,
                    )
            except PapermillExecutionError as exc:
                index, first_line = _failed_cell(out_path)
                where = f"code cell {index} ({first_line!r})" if index else f"cell {exc.cell_index}"
                print(
                    f"psyco-book: FAILED {source.relative_to(REPO_ROOT)} at {where}: {exc.ename}: {exc.evalue}\n"
                    f"psyco-book: partially executed notebook kept at {out_path}",
                    file=sys.stderr,
                )
                return 1
            except Exception as exc:  # kernel died, papermill could not start, ...
                print(f"psyco-book: FAILED {source.relative_to(REPO_ROOT)}: {type(exc).__name__}: {exc}", file=sys.stderr)
                return 1
        elapsed = time.perf_counter() - start
        fold_injected_parameters(out_path)
        peak_gib = memory.peak_bytes / 2**30
        timings[source.stem] = {"seconds": round(elapsed, 1), "peak_memory_gib": round(peak_gib, 2)}
        print(f"[{i}/{len(sources)}] {source.stem} done in {elapsed:.1f} s, kernel peak memory {peak_gib:.2f} GiB",
              flush=True)
    total = time.perf_counter() - total_start
    timing_file = executed_dir / f"timings_{cfg.name}.json"
    previous = json.loads(timing_file.read_text()) if timing_file.exists() else {}
    timing_file.write_text(json.dumps({**previous, **timings}, indent=2))
    print(f"psyco-book: {len(sources)} chapter(s) executed in {total:.1f} s")
    return 0


def build(executed_dir: Path) -> int:
    missing = [p.stem for p in chapter_sources() if not (executed_dir / f"{p.stem}.ipynb").exists()]
    if missing:
        print(f"psyco-book: not executed yet: {', '.join(missing)}; run `psyco-book run` first", file=sys.stderr)
        return 1
    cmd = [sys.executable, "-m", "jupyter_book", "build", str(REPO_ROOT), "--warningiserror", "--nitpick", "--keep-going"]
    jb = Path(sys.executable).with_name("jupyter-book")
    if jb.exists():
        cmd = [str(jb), *cmd[3:]]
    print("psyco-book:", " ".join(cmd), flush=True)
    start = time.perf_counter()
    rc = subprocess.call(cmd, cwd=REPO_ROOT)
    print(f"psyco-book: book build {'succeeded' if rc == 0 else 'FAILED'} in {time.perf_counter() - start:.1f} s")
    return rc


def _cells_signature(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip(), tuple(c.get("metadata", {}).get("tags", []))) for c in nb.cells]


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
            if paired.exists() and _cells_signature(nbformat.read(paired, as_version=4)) == _cells_signature(nb):
                continue  # already in sync: leave the file (and its cell ids) alone
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
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.profile, args.only, args.overrides, args.executed_dir)
    if args.command == "build":
        return build(args.executed_dir)
    return sync(args.check)


if __name__ == "__main__":
    sys.exit(main())
