"""The OpenAI-compatible judge against a real loopback server: parsing, faults, resume, cache, secrets, Batch API."""

import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fake_openai_server import FakeOpenAI
from psyco_utils.judge import CompareItem, JudgeConfig, ScoreItem, make_chat_client, make_judge
from psyco_utils.judge.rubric import rubric_score

SECRET = "sk-test-DO-NOT-LEAK-4f9c2b7e1a0d8c6b5a4f3e2d"
STATEMENT = "I have felt anxious every morning before work for months and I cannot sleep properly anymore."
GOOD = ("It sounds like you are feeling exhausted by this anxiety. What do you notice in the mornings? "
        "You might try one small change if it feels right.")
BAD = "Just get over it, you are overreacting."


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def _config(server, **kw):
    base = dict(backend="openai", model="gpt-4o-mini", base_url=server.base_url, concurrency=16, timeout_s=0.5,
                max_retries=4, max_invalid_retries=2, backoff_base_s=0.01, backoff_max_s=0.05, estimate_above=10_000)
    base.update(kw)
    return JudgeConfig(**base)


def _items(n):
    return [ScoreItem(f"{STATEMENT} (case {i})", GOOD if i % 2 else BAD) for i in range(n)]


def _rows(path):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT status, error FROM judgments").fetchall()


def test_structured_scores_and_verdicts_parse(tmp_path):
    server = FakeOpenAI()
    try:
        judge = make_judge(_config(server), tmp_path / "j.sqlite")
        results = judge.score_many(_items(6), progress=False)
        assert all(r.status == "ok" for r in results)
        assert results[1].ratings == rubric_score(f"{STATEMENT} (case 1)", GOOD)[0]
        verdicts = judge.compare_many([CompareItem(STATEMENT, GOOD, BAD), CompareItem(STATEMENT, BAD, GOOD)],
                                      progress=False)
        assert [v.overall for v in verdicts] == ["A", "B"]
        usage = judge.usage()
        assert usage["per_model"]["gpt-4o-mini"]["cached_tokens"] > 0 and usage["cost_usd_total"] > 0
        # the fixed rubric opens every prompt, identical across requests, so provider prompt caching applies
        systems = {b.split('"content":')[1][:200] for b in server.bodies_seen if "chat" in b or "messages" in b}
        assert len(systems) == 1
    finally:
        server.close()


def test_faults_at_20_percent_lose_no_judgment(tmp_path):
    server = FakeOpenAI(fault_rate=0.2, seed=1, hang_seconds=0.8)
    try:
        judge = make_judge(_config(server), tmp_path / "j.sqlite")
        items = _items(220)
        results = judge.score_many(items, progress=False)
        assert len(results) == 220
        assert all((r.status == "ok" and r.ratings) or (r.status == "failed" and r.error) for r in results)
        rows = _rows(tmp_path / "j.sqlite")
        assert len(rows) == 220  # one row per judgment, completed or failed with its reason
        assert sum(server.faults_injected.values()) >= 20 and set(server.faults_injected) >= {"429", "500", "malformed"}
        failed = [r for r in results if r.status == "failed"]
        assert all(any(word in r.error for word in ("retries exhausted", "invalid answer", "truncated", "refusal",
                                                     "timeout", "HTTP")) for r in failed)
        assert sum(r.status == "ok" for r in results) >= 200  # retries recover nearly all of them
    finally:
        server.close()


def test_warm_rerun_sends_zero_requests(tmp_path):
    server = FakeOpenAI()
    try:
        judge = make_judge(_config(server), tmp_path / "j.sqlite")
        first = judge.score_many(_items(30), progress=False)
        sent = server.chat_requests
        again = make_judge(_config(server), tmp_path / "j.sqlite").score_many(_items(30), progress=False)
        assert server.chat_requests == sent
        assert [r.ratings for r in again] == [r.ratings for r in first] and all(r.from_cache for r in again)
    finally:
        server.close()


def test_killed_run_resumes_without_redoing_finished_work(tmp_path):
    server = FakeOpenAI(latency=0.05)
    try:
        script = tmp_path / "run.py"
        script.write_text(textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            from test_judge_openai import _items
            from psyco_utils.judge import JudgeConfig, make_judge
            cfg = JudgeConfig(backend="openai", model="gpt-4o-mini", base_url={server.base_url!r}, concurrency=2,
                              backoff_base_s=0.01, estimate_above=10_000)
            make_judge(cfg, {str(tmp_path / 'j.sqlite')!r}).score_many(_items(120), progress=False)
        """))
        proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": str(Path.cwd())})
        deadline = time.time() + 60
        while time.time() < deadline:
            time.sleep(0.2)
            if (tmp_path / "j.sqlite").exists() and len(_rows(tmp_path / "j.sqlite")) >= 20:
                break
        proc.kill()
        proc.wait()
        done = len(_rows(tmp_path / "j.sqlite"))
        assert 20 <= done < 120
        before = server.chat_requests
        judge = make_judge(_config(server), tmp_path / "j.sqlite")
        results = judge.score_many(_items(120), progress=False)
        assert all(r.status == "ok" for r in results)
        resent = server.chat_requests - before
        assert resent <= 120 - done + 2  # only the unfinished ones (a request in flight at the kill may repeat)
        assert sum(r.from_cache for r in results) >= done
    finally:
        server.close()


def test_api_key_never_leaks(tmp_path, caplog, capsys):
    server = FakeOpenAI(fault_rate=1.0, faults=("auth_echo",))
    try:
        caplog.set_level(logging.DEBUG)
        judge = make_judge(_config(server), tmp_path / "j.sqlite")
        results = judge.score_many(_items(3), progress=False)
        assert all(r.status == "failed" and r.error.startswith("HTTP 401") for r in results)
        assert "[REDACTED]" in results[0].error and SECRET not in results[0].error
        out = capsys.readouterr()
        assert SECRET not in out.out + out.err + caplog.text
        for path in tmp_path.iterdir():
            assert SECRET.encode() not in path.read_bytes()
        sent = [{k.lower(): v for k, v in h.items()}.get("authorization") for h in server.headers_seen]
        assert f"Bearer {SECRET}" in sent  # it was sent to the server, and only there
    finally:
        server.close()


def test_retry_after_is_honoured(tmp_path):
    server = FakeOpenAI(fault_rate=1.0, faults=("429",), retry_after=0.3)
    try:
        judge = make_judge(_config(server, max_retries=2, backoff_base_s=0.0), tmp_path / "j.sqlite")
        start = time.perf_counter()
        result = judge.score_many(_items(1), progress=False)[0]
        assert result.status == "failed" and "429" in result.error
        assert time.perf_counter() - start >= 0.55  # two waits of Retry-After
        assert server.chat_requests == 3
    finally:
        server.close()


def test_failed_judgments_retried_only_when_asked(tmp_path):
    server = FakeOpenAI(fault_rate=1.0, faults=("500",))
    try:
        judge = make_judge(_config(server, max_retries=0), tmp_path / "j.sqlite")
        assert judge.score_many(_items(2), progress=False)[0].status == "failed"
        server.fault_rate = 0.0
        assert judge.score_many(_items(2), progress=False)[0].status == "failed"  # kept, not silently retried
        assert all(r.status == "ok" for r in judge.score_many(_items(2), progress=False, retry_failed=True))
    finally:
        server.close()


def test_batch_api_fills_the_cache(tmp_path):
    server = FakeOpenAI(batch_polls_before_done=2)
    try:
        cfg = _config(server, use_batch_api=True, batch_poll_s=0.05)
        judge = make_judge(cfg, tmp_path / "j.sqlite")
        results = judge.score_many(_items(12), progress=False)
        assert all(r.status == "ok" for r in results) and server.chat_requests == 0
        online = make_judge(_config(server), tmp_path / "j.sqlite").score_many(_items(12), progress=False)
        assert server.chat_requests == 0 and all(r.from_cache for r in online)
    finally:
        server.close()


def test_chat_client_and_classify(tmp_path):
    server = FakeOpenAI()
    try:
        chat = make_chat_client(_config(server), tmp_path / "j.sqlite")
        out = chat.complete_many([[{"role": "user", "content": "hello"}]] * 2, max_tokens=20)
        assert out[0].startswith("A reply to: hello") and server.chat_requests == 1  # identical requests sent once
        judge = make_judge(_config(server), tmp_path / "j.sqlite")
        labels = judge.classify_many(["I drink too much", "my sister ignores me"], ["a", "b", "c"], "Pick a theme.")
        assert all(label in ("a", "b", "c") for label in labels)
    finally:
        server.close()


def test_missing_key_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(RuntimeError, match="OPENAI_API_KEY"):
        make_judge(JudgeConfig(backend="openai"), tmp_path / "j.sqlite")


def test_cost_estimate_is_printed_before_a_large_run(tmp_path, capsys):
    server = FakeOpenAI()
    try:
        judge = make_judge(_config(server, estimate_above=5), tmp_path / "j.sqlite")
        judge.score_many(_items(8), progress=False)
        assert "estimated cost $" in capsys.readouterr().out
    finally:
        server.close()
