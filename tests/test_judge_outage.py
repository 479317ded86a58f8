"""The judge through outages, failed batches and stops, against the loopback server (standin/openai_server.py):
a dead endpoint stops the run with a named error, a re-run sends only what is not answered yet, a failed, expired
or partly failed batch is recovered by one re-run, and every request sent is counted, those in flight at a stop
included.  Every test waits on events (the server's counters and holds), never on the clock."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from standin.openai_server import FakeOpenAI
from psyco_utils.judge import CompareItem, JudgeConfig, ScoreItem, make_judge
from psyco_utils.judge.cache import SCHEMA_VERSION, JudgmentCache
from psyco_utils.judge.openai_backend import EndpointDown

SECRET = "sk-test-outage-DO-NOT-LEAK-8e1f"
ROOT = Path(__file__).resolve().parents[1]
STATEMENT = "Since the move I barely talk to anyone and the evenings feel endless and heavy."
GOOD = "It sounds lonely. What are the evenings like for you? You could choose one small step if it feels right."
BAD = "Just go out more."


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def _config(base_url, **kw):
    # a generous timeout: a loaded machine must not turn a slow answer into a retry
    base = dict(backend="openai", model="gpt-4o-mini", base_url=base_url, concurrency=8, timeout_s=60.0,
                max_retries=2, backoff_base_s=0.01, backoff_max_s=0.02, estimate_above=10_000, batch_poll_s=0.01)
    base.update(kw)
    return JudgeConfig(**base)


def _items(n, tag="case"):
    return [ScoreItem(f"{STATEMENT} ({tag} {i})", GOOD if i % 2 else BAD) for i in range(n)]


def _compares(n, tag="pair"):
    return [CompareItem(f"{STATEMENT} ({tag} {i})", GOOD, BAD) for i in range(n)]


def _status(path):
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT status, COUNT(*) FROM judgments GROUP BY status").fetchall())


def _dead_endpoint() -> str:
    with socket.socket() as probe:  # a port that was free a moment ago, with nothing listening now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _batch_lines(server, batch_id) -> int:
    return len(server.files[server.batches[batch_id]["input"]].decode().splitlines())


# ---------------------------------------------------------------------------------------- stop early

def test_a_dead_endpoint_stops_the_run_with_the_defaults_and_names_it(tmp_path):
    url = _dead_endpoint()
    judge = make_judge(JudgeConfig(backend="openai", model="gpt-4o-mini", base_url=url, estimate_above=10_000),
                       tmp_path / "j.sqlite")
    with pytest.raises(EndpointDown) as info:
        judge.score_many(_items(200), progress=False)
    message = str(info.value)
    assert url in message and "Last error: connection error" in message and SECRET not in message
    assert "0 of the 200 judgments asked for are safe in the cache" in message
    usage = judge.usage()
    limit, concurrency = judge.config.stop_after_consecutive_errors, judge.config.concurrency
    # it stopped at the limit instead of retrying 200 judgments 7 times each: at most the limit plus the requests
    # that were already on their way
    assert limit <= usage["api_attempts"] <= limit + concurrency
    assert usage["api_attempts"] == sum(row["attempts"] for row in judge.cache.get_many(
        [judge._request("score", item)[0] for item in _items(200)]).values())


def test_after_an_outage_the_rerun_sends_only_what_is_not_answered(tmp_path):
    with FakeOpenAI(hold_after=30) as server:
        judge = make_judge(_config(server.base_url, stop_after_consecutive_errors=10), tmp_path / "j.sqlite")
        items = _items(120)
        first = judge.score_many(items[:30], progress=False)  # answered before the outage
        assert all(r.status == "ok" for r in first)
        server.release()
        server.fault_rate, server.faults = 1.0, ("500",)  # the endpoint now answers only 500
        with pytest.raises(EndpointDown) as info:
            judge.score_many(items, progress=False)
        assert "server error: HTTP 500" in str(info.value) and "30 of the 120 judgments" in str(info.value)
        not_answered = 120 - _status(tmp_path / "j.sqlite").get("ok", 0)
        server.fault_rate = 0.0  # back
        sent = server.chat_requests
        again = make_judge(_config(server.base_url), tmp_path / "j.sqlite").score_many(items, progress=False)
        assert all(r.status == "ok" for r in again)
        assert server.chat_requests - sent == not_answered == 90  # none of the 30 paid answers again
        assert sum(r.from_cache for r in again) == 30


def test_rate_limits_and_bad_answers_do_not_count_as_an_outage(tmp_path):
    with FakeOpenAI(fault_rate=1.0, faults=("429", "refusal")) as server:
        judge = make_judge(_config(server.base_url, stop_after_consecutive_errors=2, max_retries=1,
                                   max_invalid_retries=1), tmp_path / "j.sqlite")
        results = judge.score_many(_items(20), progress=False)  # no EndpointDown: the endpoint does answer
        assert all(r.status == "failed" for r in results)


# ---------------------------------------------------------------------------------------- a stop counts what it sent

def test_sigterm_records_the_requests_in_flight(tmp_path):
    with FakeOpenAI(hold_after=6) as server:
        script = tmp_path / "run.py"
        script.write_text(textwrap.dedent(f"""
            from psyco_utils.judge import JudgeConfig, ScoreItem, make_judge
            cfg = JudgeConfig(backend="openai", model="gpt-4o-mini", base_url={server.base_url!r}, concurrency=3,
                              estimate_above=10_000)
            items = [ScoreItem({STATEMENT!r} + f" (case {{i}})", {GOOD!r}) for i in range(40)]
            make_judge(cfg, {str(tmp_path / 'j.sqlite')!r}).score_many(items, progress=False)
        """))
        proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            assert server.wait_until_holding(3)  # all three slots wait for answers: every earlier one is written
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == -signal.SIGTERM  # it still ends as SIGTERM asks
        finally:
            proc.kill()
        with sqlite3.connect(tmp_path / "j.sqlite") as db:
            rows = db.execute("SELECT status, reason, attempts FROM judgments").fetchall()
        assert sum(1 for s, _, _ in rows if s == "ok") == 6
        assert sorted(r for s, r, _ in rows if s == "failed") == ["interrupted"] * 3
        assert sum(a for _, _, a in rows) == server.chat_requests == 9  # every request sent is in the usage


# ---------------------------------------------------------------------------------------- the progress file

def test_the_progress_file_follows_the_contract(tmp_path, monkeypatch):
    target = tmp_path / "progress.json"
    monkeypatch.setenv("PSYCO_PROGRESS_FILE", str(target))
    with FakeOpenAI(fault_rate=1.0, faults=("refusal",), seed=0) as server:
        judge = make_judge(_config(server.base_url, max_invalid_retries=0), tmp_path / "j.sqlite")
        judge.score_many(_items(5), progress=False, task="scoring pool responses")
    record = json.loads(target.read_text())
    assert set(record) == {"task", "done", "failed", "total", "rate_per_s", "cost_usd"}
    assert (record["task"], record["done"], record["failed"], record["total"]) == ("scoring pool responses", 5, 5, 5)
    assert record["rate_per_s"] > 0 and record["cost_usd"] > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".progress")] == []  # no temp file left
    rubric = make_judge(JudgeConfig(backend="rubric"), tmp_path / "r.sqlite")
    rubric.compare_many(_compares(4), progress=False, task="swap check")
    assert json.loads(target.read_text())["done"] == 4


# ---------------------------------------------------------------------------------------- Batch API

def _batch_judge(server, path, **kw):
    return make_judge(_config(server.base_url, use_batch_api=True, **kw), path)


def test_a_failed_batch_shows_its_errors_and_one_rerun_recovers_it(tmp_path, capsys):
    errors = [(None, "token_limit_exceeded", "Enqueued token limit reached for gpt-4o-mini."),
              (3, "invalid_request", "this line has an unknown parameter")]
    with FakeOpenAI(batch_end_status="failed", batch_errors=errors) as server:
        judge = _batch_judge(server, tmp_path / "j.sqlite")
        results = judge.score_many(_items(8), progress=False)
        assert all(r.status == "failed" for r in results)
        out = capsys.readouterr().out
        assert "token_limit_exceeded: Enqueued token limit reached" in out
        assert "line 3: invalid_request: this line has an unknown parameter" in out
        assert "line 3: invalid_request" in results[2].error and "token_limit_exceeded" in results[0].error
        server.batch_end_status = "completed"
        again = _batch_judge(server, tmp_path / "j.sqlite").score_many(_items(8), progress=False)
        assert all(r.status == "ok" for r in again)
        second = list(server.batches)[1]
        assert len(server.batches) == 2 and _batch_lines(server, second) == 8


def test_an_expired_batch_and_failed_lines_are_recovered_by_one_rerun(tmp_path):
    with FakeOpenAI(batch_end_status="expired") as server:
        judge = _batch_judge(server, tmp_path / "e.sqlite")
        assert sum(r.status == "ok" for r in judge.score_many(_items(20), progress=False)) == 10
        server.batch_end_status = "completed"
        again = _batch_judge(server, tmp_path / "e.sqlite").score_many(_items(20), progress=False)
        assert all(r.status == "ok" for r in again) and _batch_lines(server, list(server.batches)[1]) == 10
    with FakeOpenAI(batch_fault_rate=0.1, seed=5) as server:
        judge = _batch_judge(server, tmp_path / "f.sqlite")
        failed = sum(r.status == "failed" for r in judge.score_many(_items(100), progress=False))
        assert failed == sum(server.faults_injected.values()) > 0
        server.batch_fault_rate = 0.0
        again = _batch_judge(server, tmp_path / "f.sqlite").score_many(_items(100), progress=False)
        assert all(r.status == "ok" for r in again) and _batch_lines(server, list(server.batches)[1]) == failed


def test_error_object_lines_name_their_code_not_http_none(tmp_path):
    with FakeOpenAI(batch_fault_rate=1.0, batch_faults=("error_object",)) as server:
        results = _batch_judge(server, tmp_path / "j.sqlite").score_many(_items(3), progress=False)
    assert all(r.status == "failed" and "batch_expired" in r.error and "HTTP None" not in r.error for r in results)


def test_independent_batches_are_in_flight_together(tmp_path):
    with FakeOpenAI(batch_polls_before_done=2) as server:
        judge = _batch_judge(server, tmp_path / "j.sqlite")
        out = judge.judge_together({"scoring pool responses": _items(6),
                                    "swap check, chosen first": _compares(4),
                                    "swap check, chosen second": [CompareItem(c.statement, c.response_b, c.response_a)
                                                                  for c in _compares(4)]}, progress=False)
        assert [len(v) for v in out.values()] == [6, 4, 4]
        assert all(r.status == "ok" for v in out.values() for r in v)
        assert len(server.batches) == 3 and server.max_batches_in_flight == 3
        assert [v.overall for v in out["swap check, chosen first"]] == ["A"] * 4
        assert [v.overall for v in out["swap check, chosen second"]] == ["B"] * 4


def test_a_resumed_batch_is_not_estimated_again(tmp_path, capsys):
    with FakeOpenAI(batch_polls_before_done=10**6) as server:
        script = tmp_path / "run.py"
        script.write_text(textwrap.dedent(f"""
            from psyco_utils.judge import JudgeConfig, ScoreItem, make_judge
            cfg = JudgeConfig(backend="openai", model="gpt-4o-mini", base_url={server.base_url!r},
                              use_batch_api=True, batch_poll_s=0.05, estimate_above=10_000)
            items = [ScoreItem({STATEMENT!r} + f" (case {{i}})", {GOOD!r} if i % 2 else {BAD!r}) for i in range(6)]
            make_judge(cfg, {str(tmp_path / 'j.sqlite')!r}).score_many(items, progress=False)
        """))
        proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while not any(b["polls"] >= 2 for b in server.batches.values()):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.02)
        finally:
            proc.kill()
            proc.wait()
        server.batch_polls_before_done = 1
        judge = _batch_judge(server, tmp_path / "j.sqlite", estimate_above=3)
        assert all(r.status == "ok" for r in judge.score_many(_items(6), progress=False))
        out = capsys.readouterr().out
        assert "resuming batch" in out and "estimated cost" not in out  # paid already: nothing to estimate
        judge.score_many(_items(6, tag="new"), progress=False)
        assert "6 uncached score requests" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------- the cache keeps the history

def test_an_older_cache_gets_its_failure_history_and_no_answer_is_overwritten(tmp_path):
    path = tmp_path / "old.sqlite"
    with JudgmentCache(path) as cache:
        cache.put("paid", backend="openai", model="m", kind="score", status="ok", result={"x": 1}, cost_usd=0.01)
        cache.put("lost", backend="openai", model="m", kind="score", status="failed", error="timeout: 60 s",
                  reason="timeout")
    with sqlite3.connect(path) as db:  # as a cache written before the history table existed
        db.execute("DROP TABLE failures")
        db.execute("PRAGMA user_version = 0")
    with JudgmentCache(path) as cache:
        assert cache._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert [h["reason"] for h in cache.failure_history("lost")] == ["timeout"]
        cache.put("paid", backend="openai", model="m", kind="score", status="failed", error="server error: 500",
                  reason="server error", cost_usd=0.0)
        row = cache.get("paid")
        assert row["status"] == "ok" and row["result"] == {"x": 1} and row["attempts"] == 2
        assert [h["reason"] for h in cache.failure_history("paid")] == ["server error"]
    with JudgmentCache(path) as cache:  # opening again does not copy the history twice
        assert len(cache.failure_history("lost")) == 1


# ---------------------------------------------------------------------------------------- the judged set, reported

def test_the_judged_set_report_counts_reasons_and_names_the_next_step():
    from psyco_utils.judge import ScoreResult, judged_set_report

    ok = ScoreResult({"empathy": 3}, "", "ok", None, False)
    results = [ok] * 97 + [ScoreResult(None, "", "failed", "server error: HTTP 500, retries exhausted", False)] * 2 \
        + [ScoreResult(None, "", "failed", "refusal: I can't help with that. (after 3 answers)", False)]
    report = judged_set_report(results, "pool responses", JudgeConfig(backend="openai"), "run chapter 02 again")
    assert (report["asked"], report["answered"], report["failed"]) == (100, 97, 3)
    assert report["by_reason"] == {"server error": 2, "refusal": 1} and report["complete"] is False  # 3% > 2%
    assert report["message"].startswith("3 of 100 pool responses have no judgment (3.0%; at most 2% may fail")
    assert "run chapter 02 again once the endpoint answers again" in report["message"]
    lenient = judged_set_report(results, "pool responses", JudgeConfig(max_failed_share=0.05), "x")
    assert lenient["complete"] is True
    kept = judged_set_report(results, "pool responses", JudgeConfig(retry_failed=False), "run chapter 02 again")
    assert "judge.retry_failed: false" in kept["message"]
    assert judged_set_report([ok] * 4, "pool responses", JudgeConfig(), "x")["message"] == "all 4 pool responses judged"
