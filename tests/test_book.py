"""The runner: the pairing check, failure reporting with the notebook and cell, parameters injected."""

import io
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import jupytext
import nbformat
import pytest

from psyco_book import book, kernel

ROOT = Path(__file__).resolve().parent.parent


def _scratch_repository(tmp_path, monkeypatch) -> Path:
    """``tmp_path`` as the repository psyco-book works in, with an empty ``notebooks/``, which is returned."""
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    monkeypatch.setattr(book, "NOTEBOOK_DIR", nbdir)
    monkeypatch.setattr(book, "REPO_ROOT", tmp_path)
    return nbdir


def test_committed_notebooks_are_in_sync_and_without_outputs():
    assert book.sync(check=True) == 0


def test_sync_check_catches_outputs_and_drift(tmp_path, monkeypatch):
    nbdir = _scratch_repository(tmp_path, monkeypatch)
    (nbdir / "01_demo.py").write_text("# %%\nprint('hi')\n")
    assert book.sync(check=True) == 1  # the .ipynb is missing
    assert book.sync(check=False) == 0
    assert book.sync(check=True) == 0
    nb = nbformat.read(nbdir / "01_demo.ipynb", as_version=4)
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="hi\n")]
    nbformat.write(nb, nbdir / "01_demo.ipynb")
    assert book.sync(check=True) == 1
    (nbdir / "01_demo.py").write_text("# %%\nprint('changed')\n")
    book.sync(check=False)
    assert book.sync(check=True) == 0


def test_sync_keeps_the_ids_of_unchanged_cells(tmp_path, monkeypatch):
    """A re-synced notebook differs from the committed one only in the cells that changed."""
    nbdir = _scratch_repository(tmp_path, monkeypatch)
    (nbdir / "01_demo.py").write_text("# %% [markdown]\n# Intro\n\n# %%\nx = 1\n\n# %%\nprint(x)\n")
    book.sync(check=False)
    before = [c["id"] for c in nbformat.read(nbdir / "01_demo.ipynb", as_version=4).cells]
    (nbdir / "01_demo.py").write_text("# %% [markdown]\n# Intro\n\n# %%\nx = 2\n\n# %%\nprint(x)\n")
    book.sync(check=False)
    after = [c["id"] for c in nbformat.read(nbdir / "01_demo.ipynb", as_version=4).cells]
    assert after[0] == before[0] and after[2] == before[2] and after[1] != before[1]
    assert len(set(after)) == 3


def test_run_stops_at_failing_cell_and_keeps_partial_notebook(tmp_path, monkeypatch, capsys):
    nbdir = _scratch_repository(tmp_path, monkeypatch)
    (nbdir / "01_ok.py").write_text(
        '# %% tags=["parameters"]\nprofile = "x"\noverrides = []\n\n# %%\nimport json, pathlib\n'
        'pathlib.Path("seen.json").write_text(json.dumps([profile, overrides]))\n')
    (nbdir / "02_boom.py").write_text(
        '# %% tags=["parameters"]\nprofile = "x"\noverrides = []\n\n# %%\nx = 1\n\n# %%\nraise ValueError("bad cell")\n')
    (nbdir / "03_never.py").write_text('# %%\nopen("never", "w")\n')
    monkeypatch.setenv("PSYCO_RUNS_DIR", str(tmp_path / "runs"))
    rc = book.run("tiny", None, ["seed=3"], tmp_path / "executed")
    err = capsys.readouterr().err
    assert rc == 1
    assert "FAILED notebooks/02_boom.py at code cell 3" in err and "ValueError: bad cell" in err
    assert (tmp_path / "executed" / "02_boom.ipynb").exists()
    assert not (tmp_path / "never").exists()
    assert json.loads((tmp_path / "seen.json").read_text()) == ["tiny", ["seed=3"]]
    # the executed notebook has one parameters cell holding the values that ran (papermill's extra cell folded in)
    ok = nbformat.read(tmp_path / "executed" / "01_ok.ipynb", as_version=4)
    tags = [c.get("metadata", {}).get("tags", []) for c in ok.cells]
    assert sum("parameters" in t for t in tags) == 1 and not any("injected-parameters" in t for t in tags)
    parameters = ok.cells[next(i for i, t in enumerate(tags) if "parameters" in t)].source
    assert 'profile = "tiny"' in parameters and "seed=3" in parameters


def test_run_rejects_bad_override_before_starting_a_kernel(tmp_path):
    with pytest.raises(Exception, match="unknown key"):
        book.run("tiny", None, ["nope=1"], tmp_path)


def test_cli_help():
    out = subprocess.run([sys.executable, "-m", "psyco_book", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "run" in out.stdout and "build" in out.stdout


def test_readme_judge_costs_match_the_estimate():
    """The README's profiles table quotes judge costs by hand; they must stay within 25% of the computed estimate."""
    import re

    from psyco_utils.manifest import judge_cost_estimate

    readme = (ROOT / "README.md").read_text()
    for name in ("colab", "paper"):
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}` |"))
        quoted = float(re.search(r"about \$([\d,.]+)", row).group(1).replace(",", ""))
        estimate = judge_cost_estimate(name)["estimated cost (USD)"]
        assert abs(quoted - estimate) <= 0.25 * estimate, f"README says ${quoted:g} for {name}; estimate ${estimate:.2f}"


def test_every_chapter_records_its_stage_under_its_own_name():
    """psyco-book records a failed chapter under the notebook's name: each chapter's stage must be that name."""
    import re

    for source in book.chapter_sources():
        stages = re.findall(r'start_chapter\([^)]*stage="([^"]+)"', source.read_text())
        assert stages == [source.stem], f"{source.name} starts stage(s) {stages}"


def test_a_failed_chapter_is_recorded_with_its_cell_and_never_finished(tmp_path, monkeypatch, capsys):
    nbdir = _scratch_repository(tmp_path, monkeypatch)
    (nbdir / "01_boom.py").write_text(
        '# %% tags=["parameters"]\nprofile = "x"\noverrides = []\n\n# %%\nfrom psyco_utils import runtime\n'
        'chapter = runtime.start_chapter(profile, overrides, stage="01_boom")\n\n# %%\nraise ValueError("bad cell")\n')
    monkeypatch.setenv("PSYCO_RUNS_DIR", str(tmp_path / "runs"))
    manifest_path = tmp_path / "runs" / "tiny" / "manifest.json"
    manifest_path.parent.mkdir(parents=True)
    old = {"status": "ok", "finished": "earlier", "seconds": 1.0, "metrics": {"x": 1},
           "checks": [{"name": "old check", "passed": False, "message": "", "mode": "report"}]}
    manifest_path.write_text(json.dumps({"stages": {"01_boom": old}}))
    assert book.run("tiny", None, [], tmp_path / "executed") == 1
    stage = json.loads(manifest_path.read_text())["stages"]["01_boom"]
    assert stage["status"] == "failed" and stage["error"] == "ValueError: bad cell"
    assert stage["cell"].startswith("code cell 3 ")
    assert "finished" not in stage and "metrics" not in stage and stage["checks"] == []  # a clean start, then failed


def _executed_book(tmp_path, monkeypatch, outputs_by_chapter: dict) -> Path:
    """A scratch repository with chapters 01 and 02 executed into ``elsewhere/`` with the given outputs."""
    nbdir = _scratch_repository(tmp_path, monkeypatch)
    executed = tmp_path / "elsewhere"
    executed.mkdir()
    for stem in ("01_one", "02_two"):
        (nbdir / f"{stem}.py").write_text("# %%\nx = 1\n")
        nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                 "language": "python"},
                                                  "language_info": {"name": "python"}})
        nb.cells = [nbformat.v4.new_markdown_cell(f"# Chapter {stem}"), nbformat.v4.new_code_cell("x = 1"),
                    nbformat.v4.new_code_cell("result = measure()\nshow(result)")]
        nb.cells[2].outputs = outputs_by_chapter.get(stem, [])
        nbformat.write(nb, executed / f"{stem}.ipynb")
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Intro\n\nThe scratch book.\n")
    (tmp_path / "_config.yml").write_text(
        'title: scratch\nonly_build_toc_files: true\nexecute:\n  execute_notebooks: "off"\n')
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                       "  - file: executed/01_one\n  - file: executed/02_two\n")
    return executed


def _check_output(mode: str) -> dict:
    from psyco_utils.checks import OUTPUT_METADATA_KEY

    record = {"name": "DPO raises the reward", "passed": False, "message": "reward fell", "mode": mode}
    return nbformat.v4.new_output("display_data", data={"text/html": "<div>box</div>"},
                                  metadata={OUTPUT_METADATA_KEY: record})


@pytest.mark.parametrize("output", [
    nbformat.v4.new_output("error", ename="KeyError", evalue="'train'", traceback=[]),
    _check_output("enforce"),
], ids=["error output", "failed check under enforce"])
def test_build_fails_before_jupyter_book_naming_chapter_and_cell(tmp_path, monkeypatch, capsys, output):
    executed = _executed_book(tmp_path, monkeypatch, {"02_two": [output]})
    calls = []
    monkeypatch.setattr(book.subprocess, "call", lambda *a, **k: calls.append(a) or 0)
    assert book.build(executed) == 1
    err = capsys.readouterr().err
    assert "02_two, code cell 2 ('result = measure()')" in err
    assert ("KeyError: 'train'" in err) if output.output_type == "error" else ("'DPO raises the reward' failed" in err)
    assert calls == []  # Jupyter Book never ran


def test_build_shows_reported_checks_and_renders_the_folder_it_is_given(tmp_path, monkeypatch, capsys):
    executed = _executed_book(tmp_path, monkeypatch, {"01_one": [_check_output("report")]})
    assert book.build(executed) == 0
    out = capsys.readouterr().out
    assert "warning: 01_one, code cell 2 ('result = measure()'): check 'DPO raises the reward' failed" in out
    page = (tmp_path / "_build" / "html" / "executed" / "02_two.html").read_text()
    assert "Chapter 02_two" in page
    assert not (tmp_path / "executed").exists()  # the default folder was neither used nor created


def test_the_chapter_banner_names_the_judge_that_ran():
    from psyco_utils.config import load_profile
    from psyco_utils.runtime import profile_banner

    assert "offline rubric judge" in profile_banner(load_profile("tiny"))
    banner = profile_banner(load_profile("tiny", ["judge.backend=openai", "judge.model=gpt-4o-mini"]))
    assert "rubric" not in banner and "gpt-4o-mini judge" in banner
    local = profile_banner(load_profile("colab", ["models.policy=/home/someone/models/qwen"]))
    assert "/home/someone" not in local and "policy qwen (local copy)" in local


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _record(done, failed=0, cost=0.0):
    return {"task": "scoring pool responses", "done": done, "failed": failed, "total": 100, "rate_per_s": 4.0,
            "cost_usd": cost}


def test_progress_line_in_a_log_prints_changes_at_most_every_few_seconds_and_the_last_state():
    import io

    stream, clock = io.StringIO(), _Clock()
    line = book.ProgressLine(stream, tty=False, min_interval_s=5.0, clock=clock)
    line.update(_record(10))
    line.update(_record(10))  # unchanged: nothing
    clock.now = 1.0
    line.update(_record(20))  # changed, but too soon: held back
    clock.now = 6.0
    line.update(_record(30, failed=2, cost=0.5))
    line.update(_record(40))
    line.close()  # the last state, held back, is printed
    lines = stream.getvalue().splitlines()
    assert lines == [book.format_progress(_record(10)), book.format_progress(_record(30, failed=2, cost=0.5)),
                     book.format_progress(_record(40))]
    assert lines[1] == "  scoring pool responses: 30/100 done, 2 failed, 4.0/s, about 18 s left, $0.50 so far"


def test_progress_line_on_a_terminal_rewrites_one_line():
    import io

    stream = io.StringIO()
    line = book.ProgressLine(stream, tty=True, clock=_Clock())
    line.update(_record(10))
    line.update(_record(20))
    line.close()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1


def test_judge_progress_reaches_the_terminal_and_not_the_notebook(tmp_path):
    """The chapter writes progress as the judge does (psyco_utils.judge.progress) and waits until the test has seen
    the line psyco-book printed; the executed notebook holds none of it, nor the tqdm bar of the chapter's loop, and
    the kernel does not warn about an unencrypted TCP connection."""
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    (nbdir / "01_judging.py").write_text(
        '# %% tags=["parameters"]\nprofile = "x"\noverrides = []\n\n# %%\nimport pathlib, time\n'
        'from psyco_utils.judge.progress import write_progress\n'
        'write_progress("scoring pool responses", 7, 1, 12, 3.5, 0.25)\n'
        'from tqdm.auto import tqdm\n'
        'total = sum(tqdm(range(3), desc="looping over three", disable=False))\n'
        'deadline = time.monotonic() + 300\n'
        'while not pathlib.Path("seen").exists() and time.monotonic() < deadline:\n    time.sleep(0.05)\n'
        'print("chapter done")\n')
    launch = ("import sys\nfrom pathlib import Path\nfrom psyco_book import book\nroot = Path(sys.argv[1])\n"
              "book.NOTEBOOK_DIR, book.REPO_ROOT = root / 'notebooks', root\n"
              "sys.exit(book.main(['run', '--profile', 'tiny', '--executed-dir', str(root / 'executed')]))\n")
    env = {**__import__("os").environ, "PSYCO_RUNS_DIR": str(tmp_path / "runs")}
    proc = subprocess.Popen([sys.executable, "-c", launch, str(tmp_path)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    expected = "  scoring pool responses: 7/12 done, 1 failed, 3.5/s, about 1 s left, $0.25 so far"
    seen = []
    try:
        for out_line in proc.stdout:
            seen.append(out_line.rstrip("\n"))
            if seen[-1] == expected:
                (tmp_path / "seen").write_text("yes")
                break
        rest = proc.communicate(timeout=300)[0]
    finally:
        proc.kill()
    assert expected in seen, "\n".join(seen)
    assert proc.returncode == 0, rest
    executed = (tmp_path / "executed" / "01_judging.ipynb").read_text()
    assert "chapter done" in executed and "so far" not in executed and "psyco-progress" not in executed
    outputs = json.dumps([c.get("outputs", []) for c in json.loads(executed)["cells"]])
    assert "chapter done" in outputs and "looping over three" not in outputs  # no tqdm bar on the page
    terminal = seen + rest.splitlines()
    assert not [line for line in terminal if "looping over three" in line or "without encryption" in line]


def test_a_paid_run_prints_its_estimate_first_and_records_it_beside_the_actual(tmp_path, monkeypatch, capsys):
    nbdir = _scratch_repository(tmp_path, monkeypatch)
    (nbdir / "01_nothing.py").write_text('# %%\nprint("nothing paid here")\n')
    monkeypatch.setenv("PSYCO_RUNS_DIR", str(tmp_path / "runs"))
    assert book.run("colab", None, ["data.max_statements=100"], tmp_path / "executed") == 0
    out = capsys.readouterr().out
    assert out.index("paid calls this run makes") < out.index("[1/1] notebooks/01_nothing.py")
    assert "theme labels (01)" in out and "reference answers (06)" in out
    assert "judge cost $0.00 (estimated $" in out
    cost = json.loads((tmp_path / "runs" / "colab" / "qwen2.5-0.5b-instruct" / "manifest.json").read_text())["cost"]
    assert cost["estimated_usd"] > 0 and cost["actual_usd"] == 0.0


def test_an_executed_notebook_names_no_machine_folder(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(metadata={"papermill": {"input_path": "/tmp/tmpabc/01_x.ipynb",
                                                          "output_path": str(tmp_path / "01_x.ipynb")}})
    nb.cells = [nbformat.v4.new_code_cell('profile = "tiny"', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell('# Parameters\nprofile = "colab"', metadata={"tags": ["injected-parameters"]})]
    path = tmp_path / "01_x.ipynb"
    nbformat.write(nb, path)
    book.fold_injected_parameters(path)
    folded = nbformat.read(path, as_version=4)
    assert folded.metadata.papermill == {"input_path": "01_x.ipynb", "output_path": "01_x.ipynb"}
    assert [c.source for c in folded.cells] == ['profile = "colab"']


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_kernel_progress_bar_draws_on_the_terminal_whatever_file_it_asks_for():
    terminal, page = _Terminal(), io.StringIO()
    bar = kernel.terminal_tqdm(terminal)
    assert sum(bar(range(3), "counting", None, True, page, mininterval=0)) == 3  # file given by position, too
    assert sum(bar(range(3), desc="counting again", file=page, mininterval=0)) == 3
    assert "counting" in terminal.getvalue() and "counting again" in terminal.getvalue() and page.getvalue() == ""


def test_without_a_terminal_kernel_progress_bars_are_off():
    page = io.StringIO()
    bar = kernel.terminal_tqdm(None)
    assert list(bar(range(3), desc="counting", file=page, disable=False)) == [0, 1, 2]
    assert page.getvalue() == ""


def test_progress_bars_to_terminal_replaces_tqdm_where_libraries_import_it(monkeypatch):
    home = types.ModuleType("a_tqdm_home")
    home.tqdm = home.trange = None
    monkeypatch.setitem(sys.modules, "a_tqdm_home", home)
    terminal = _Terminal()
    bar = kernel.progress_bars_to_terminal(terminal, modules=("a_tqdm_home", "no_such_module_here"))
    assert home.tqdm is bar
    assert list(home.trange(2, desc="ranged", mininterval=0)) == [0, 1]
    assert "ranged" in terminal.getvalue()


def test_the_terminal_is_the_kernels_standard_error_before_capture_and_only_a_terminal(monkeypatch):
    """ipykernel keeps a copy of the kernel's original standard error (``_original_stdstream_copy``)."""
    import pty

    captured = types.SimpleNamespace()
    monkeypatch.setattr(sys, "stderr", captured)
    read_end, write_end = os.pipe()
    controller, terminal_end = pty.openpty()
    try:
        captured._original_stdstream_copy = write_end  # a pipe, as under CI: no terminal, bars off
        assert kernel.terminal_stream() is None
        captured._original_stdstream_copy = terminal_end
        stream = kernel.terminal_stream()
        stream.write("drawn\n")
        stream.close()
        assert b"drawn" in os.read(controller, 100)
    finally:
        for fd in (read_end, write_end, controller, terminal_end):
            os.close(fd)


def test_kernels_talk_over_ipc_or_encrypted_tcp():
    config = book.kernel_connection_config()
    manager = config.get("KernelManager", {})
    assert manager.get("transport") == "ipc" or manager.get("transport_encryption") in ("auto", "required")


def test_kernels_import_this_psyco_book_first(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["/somewhere/else", str(book.CODE_ROOT)]))
    path = book.kernel_environment()["PYTHONPATH"].split(os.pathsep)
    assert path == [str(book.CODE_ROOT), "/somewhere/else"]
