"""Chapter 02 against the loopback OpenAI-compatible server in Batch API mode: a batch that fails leaves the
chapter standing (under ``checks: report``) with the failures counted and the next step named; one re-run against
a healthy server completes the data set and sends only the failed judgments, with nothing deleted by hand."""

import json
import sqlite3
from pathlib import Path

import pytest

from standin.openai_server import FakeOpenAI
from psyco_book import book
from conftest import write_chapter_01_outputs

STATEMENTS = 24


def _write_inputs(run: Path) -> int:
    """A small statements table and response pool from the bundled corpus, as chapter 01 leaves them."""
    return len(write_chapter_01_outputs(run, STATEMENTS)[1])


def _outputs(path: Path) -> str:
    nb = json.loads(path.read_text())
    texts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data_ = out.get("data") or {}
            text = out.get("text") or data_.get("text/markdown") or data_.get("text/html") or data_.get("text/plain") or ""
            texts.append(text if isinstance(text, str) else "".join(text))
    return "\n".join(texts)


def _manifest_stage(runs: Path) -> dict:
    return json.loads((runs / "tiny" / "manifest.json").read_text())["stages"]["02_judging"]


def test_chapter_02_survives_a_failed_batch_and_one_rerun_completes_it(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    n_pool = _write_inputs(runs / "tiny")
    monkeypatch.setenv("PSYCO_RUNS_DIR", str(runs))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-chapter-02")
    with FakeOpenAI(batch_end_status="failed") as server:
        overrides = ["checks=report", "judge.backend=openai", "judge.model=gpt-4o-mini",
                     f"judge.base_url={server.base_url}", "judge.use_batch_api=true", "judge.batch_poll_s=0.01",
                     "judge.estimate_above=100000"]
        assert book.run("tiny", ["02"], overrides, tmp_path / "failed") == 0
        page = _outputs(tmp_path / "failed" / "02_judging.ipynb")
        assert f"{n_pool} of {n_pool} pool responses have no judgment" in page
        assert "token_limit_exceeded" in page and "--only 02" in page
        checks = {c["name"]: c["passed"] for c in _manifest_stage(runs)["checks"]}
        assert checks["pool responses judged"] is False
        first_batches = len(server.batches)
        assert first_batches == 3 and server.max_batches_in_flight == 3  # scores and both swap orders together

        server.batch_end_status = "completed"
        assert book.run("tiny", ["02"], overrides, tmp_path / "again") == 0
        page = _outputs(tmp_path / "again" / "02_judging.ipynb")
        assert f"all {n_pool} pool responses judged" in page
        new = list(server.batches)[first_batches:]
        lines = sum(len(server.files[server.batches[b]["input"]].decode().splitlines()) for b in new)
        first_lines = sum(len(server.files[server.batches[b]["input"]].decode().splitlines())
                          for b in list(server.batches)[:first_batches])
        assert lines == first_lines  # exactly the failed judgments went out again, in new batches
        stage = _manifest_stage(runs)
        assert stage["metrics"]["train_pairs"] > 0 and stage["metrics"]["failed_judgments"] == 0
        assert all(c["passed"] for c in stage["checks"])


def _ok_judgments(runs: Path) -> int:
    with sqlite3.connect(runs / "tiny" / "judgments.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM judgments WHERE status = 'ok'").fetchone()[0]


def test_chapter_02_stops_when_the_endpoint_goes_down_and_completes_when_it_is_back(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    n_pool = _write_inputs(runs / "tiny")
    monkeypatch.setenv("PSYCO_RUNS_DIR", str(runs))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-chapter-02")
    with FakeOpenAI(fail_after=40) as server:  # 40 answers, then HTTP 500 to everything
        overrides = ["judge.backend=openai", "judge.model=gpt-4o-mini", "judge.estimate_above=100000",
                     "judge.backoff_base_s=0.01", "judge.backoff_max_s=0.02", "judge.concurrency=4",
                     f"judge.base_url={server.base_url}"]
        assert book.run("tiny", ["02"], overrides, tmp_path / "down") != 0
        stage = _manifest_stage(runs)
        assert stage["status"] == "failed" and "looks down" in stage["error"]
        assert server.base_url in stage["error"] and "safe in the cache" in stage["error"]
        assert "sk-test-chapter-02" not in json.dumps(stage)
        kept = _ok_judgments(runs)
        assert kept == 40  # every answer before the outage is kept
        server.fail_after = None  # back
        sent = server.chat_requests
        assert book.run("tiny", ["02"], overrides, tmp_path / "back") == 0
        page = _outputs(tmp_path / "back" / "02_judging.ipynb")
        assert f"all {n_pool} pool responses judged" in page
        stage = _manifest_stage(runs)
        assert stage["status"] == "ok" and stage["metrics"]["train_pairs"] > 0
        assert server.chat_requests - sent == _ok_judgments(runs) - kept  # only what had no answer went out again
