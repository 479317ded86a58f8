"""The OpenAI-compatible judge against a real loopback HTTP server (standin/openai_server.py): structured outputs,
faults and retries, a killed run resumed, a warm re-run, the API key kept secret, and the Batch API."""

import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from standin.openai_server import FakeOpenAI
from psyco_utils.judge import CompareItem, JudgeConfig, ScoreItem, make_chat_client, make_judge
from psyco_utils.judge.batch import BatchAPIError, split_batches
from psyco_utils.judge.openai_backend import OpenAIBackend
from psyco_utils.judge.rubric import rubric_compare, rubric_score
from psyco_utils.principles import PRINCIPLE_KEYS, rubric_text

SECRET = "sk-test-DO-NOT-LEAK-4f9c2b7e1a0d8c6b5a4f3e2d"
ROOT = Path(__file__).resolve().parents[1]
STATEMENT = "I have felt anxious every morning before work for months and I cannot sleep properly anymore."
GOOD = ("It sounds like you are feeling exhausted by this anxiety. What do you notice in the mornings? "
        "You might try one small change if it feels right.")
BAD = "Just get over it, you are overreacting."
REASONS = {"rate limited", "server error", "timeout", "connection error", "HTTP error", "invalid answer",
           "truncated answer", "refusal", "empty answer", "batch error"}


def eventually(condition, within_s=30.0):
    """Wait for ``condition`` (a state another thread reaches), polling; fails only if it never holds."""
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "the expected state was never reached"
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


def _config(server, **kw):
    # a generous timeout: a loaded machine must not turn a slow answer into a retry (tests of timeouts set their own)
    base = dict(backend="openai", model="gpt-4o-mini", base_url=server.base_url, concurrency=16, timeout_s=60.0,
                max_retries=4, max_invalid_retries=2, backoff_base_s=0.01, backoff_max_s=0.05, estimate_above=10_000,
                batch_poll_s=0.02)
    base.update(kw)
    return JudgeConfig(**base)


def _items(n, tag="case"):
    return [ScoreItem(f"{STATEMENT} ({tag} {i})", GOOD if i % 2 else BAD) for i in range(n)]


def _rows(path):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT key, status, reason, error, attempts FROM judgments").fetchall()


def _chat_bodies(server):
    return [json.loads(b) for b in server.bodies_seen if b.startswith("{") and '"messages"' in b]


# ---------------------------------------------------------------------------------------- structured outputs

def test_structured_scores_and_verdicts_parse(tmp_path, server):
    judge = make_judge(_config(server), tmp_path / "j.sqlite")
    results = judge.score_many(_items(6), progress=False)
    assert all(r.status == "ok" and not r.from_cache for r in results)
    assert results[1].ratings == rubric_score(f"{STATEMENT} (case 1)", GOOD)[0]
    assert set(results[0].ratings) == set(PRINCIPLE_KEYS) and results[0].rationale
    verdicts = judge.compare_many([CompareItem(STATEMENT, GOOD, BAD), CompareItem(STATEMENT, BAD, GOOD)],
                                  progress=False)
    assert [v.overall for v in verdicts] == ["A", "B"]
    assert verdicts[0].per_principle == rubric_compare(STATEMENT, GOOD, BAD, 0.25)[0]


def test_requests_ask_for_a_strict_schema_with_the_rubric_first(tmp_path, server):
    judge = make_judge(_config(server), tmp_path / "j.sqlite")
    judge.score_many(_items(4), progress=False)
    judge.compare_many([CompareItem(STATEMENT, GOOD, BAD)], progress=False)
    bodies = _chat_bodies(server)
    assert len(bodies) == 5
    for body in bodies:
        schema = body["response_format"]["json_schema"]
        assert body["response_format"]["type"] == "json_schema" and schema["strict"] is True
        assert schema["schema"]["additionalProperties"] is False
        assert set(schema["schema"]["required"]) == set(schema["schema"]["properties"])
        assert body["messages"][0]["role"] == "system" and body["messages"][0]["content"].startswith(rubric_text())
        assert body["temperature"] == 0.0 and body["max_tokens"] == 600
    score_systems = {b["messages"][0]["content"] for b in bodies if b["response_format"]["json_schema"]["name"]
                     == "principle_scores"}
    assert len(score_systems) == 1  # byte-identical across requests, so provider prompt caching applies


def test_usage_records_tokens_cached_tokens_and_cost(tmp_path, server):
    judge = make_judge(_config(server), tmp_path / "j.sqlite")
    judge.score_many(_items(5), progress=False)
    usage = judge.usage()
    model = usage["per_model"]["gpt-4o-mini"]
    assert usage["requests_sent"] == 5 and usage["api_attempts"] == 5 and usage["cache_hits"] == 0
    assert model["prompt_tokens"] > 5 * 1000 and model["completion_tokens"] > 0
    assert model["cached_tokens"] >= 4 * 1024  # the rubric prefix, cached after the first request
    cfg = judge.config
    expected = ((model["prompt_tokens"] - model["cached_tokens"]) * cfg.price_input_per_mtok
                + model["cached_tokens"] * cfg.price_cached_input_per_mtok
                + model["completion_tokens"] * cfg.price_output_per_mtok) / 1e6
    assert usage["cost_usd"] == pytest.approx(expected, abs=1e-4) and usage["cost_usd"] > 0


def test_concurrency_is_bounded(tmp_path):
    # the server answers only when three requests are in flight together: a limit of 3 fills every group
    with FakeOpenAI(answer_in_groups_of=3) as server:
        judge = make_judge(_config(server, concurrency=3), tmp_path / "j.sqlite")
        assert all(r.status == "ok" for r in judge.score_many(_items(24), progress=False))
        assert server.max_in_flight == 3


# ---------------------------------------------------------------------------------------- faults and retries

def test_faults_at_20_percent_lose_no_judgment(tmp_path):
    with FakeOpenAI(fault_rate=0.2, seed=1, hang_seconds=30.0) as server:
        cfg = _config(server, timeout_s=4.0, max_retries=1, max_invalid_retries=1)
        judge = make_judge(cfg, tmp_path / "j.sqlite")
        scores = judge.score_many(_items(200), progress=False)
        compares = judge.compare_many([CompareItem(f"{STATEMENT} ({i})", GOOD, BAD) for i in range(40)],
                                      progress=False)
        results = scores + compares
        assert len(results) == 240
        for r in results:
            assert (r.status == "ok" and r.error is None) or (r.status == "failed" and r.error)
        rows = _rows(tmp_path / "j.sqlite")
        assert len(rows) == 240  # one row per judgment: completed, or failed with its reason
        failed_rows = [row for row in rows if row[1] == "failed"]
        assert all(row[2] in REASONS and row[3].startswith(row[2]) for row in failed_rows)
        assert sum(r.status == "failed" for r in results) == len(failed_rows) > 0
        assert set(server.faults_injected) >= {"429", "500", "timeout", "malformed", "refusal", "truncated"}
        assert sum(server.faults_injected.values()) >= 40
        assert sum(r.status == "ok" for r in results) >= 200  # retries recover most of them
        usage = judge.usage()
        assert sum(usage["failures_by_reason"].values()) == len(failed_rows) == usage["failed_now"]
        assert usage["api_attempts"] == sum(row[4] for row in rows)
        # Every request the server saw was counted by the client. A request can time out on the client (4 s)
        # before a busy loopback server has read it, so the server may see a few fewer, never more.
        assert 0.95 * usage["api_attempts"] <= server.chat_requests <= usage["api_attempts"]


@pytest.mark.parametrize("fault, reason", [
    ("malformed", "invalid answer"), ("missing_field", "invalid answer"), ("out_of_range", "invalid answer"),
    ("truncated", "truncated answer"), ("refusal", "refusal"),
])
def test_an_unusable_answer_is_asked_again_then_recorded_with_its_reason(tmp_path, fault, reason):
    with FakeOpenAI(fault_rate=1.0, faults=(fault,)) as server:
        judge = make_judge(_config(server, max_invalid_retries=2), tmp_path / "j.sqlite")
        result = judge.score_many(_items(1), progress=False)[0]
        assert result.status == "failed" and result.error.startswith(reason) and result.ratings is None
        assert result.error.count(reason) == 1 and ": answer:" not in result.error  # the prefix once, no filler
        assert server.chat_requests == 3  # the first answer and two more
        assert _rows(tmp_path / "j.sqlite")[0][2:] == (reason, result.error, 3)


def test_timeouts_and_server_errors_are_retried_then_recorded(tmp_path):
    with FakeOpenAI(fault_rate=1.0, faults=("timeout",), hang_seconds=30) as server:
        judge = make_judge(_config(server, timeout_s=1.0, max_retries=1), tmp_path / "t.sqlite")
        result = judge.score_many(_items(1), progress=False)[0]
        assert result.status == "failed" and result.error.startswith("timeout: no answer within 1 s")
        assert judge.usage()["api_attempts"] == 2  # the first request and one retry
        # the server may read the retry only after the client gave up on it, and on a stalled machine not at all
        eventually(lambda: server.chat_requests >= 1)
        assert server.chat_requests <= 2
    with FakeOpenAI(fault_rate=1.0, faults=("500",)) as server:
        judge = make_judge(_config(server, max_retries=2), tmp_path / "s.sqlite")
        result = judge.score_many(_items(1), progress=False)[0]
        assert result.status == "failed" and result.error.startswith("server error: HTTP 500, retries exhausted")
        assert server.chat_requests == 3


def test_retry_after_is_honoured(tmp_path):
    with FakeOpenAI(fault_rate=1.0, faults=("429",), retry_after=0.3) as server:
        judge = make_judge(_config(server, max_retries=2, backoff_base_s=0.0), tmp_path / "j.sqlite")
        start = time.perf_counter()
        result = judge.score_many(_items(1), progress=False)[0]
        elapsed = time.perf_counter() - start
        assert result.status == "failed" and result.error.startswith("rate limited: HTTP 429")
        assert server.chat_requests == 3 and elapsed >= 0.55  # two waits of Retry-After, not the zero backoff


def test_retry_after_header_forms():
    class Exc:
        def __init__(self, headers):
            self.response = type("R", (), {"headers": headers})()

    assert OpenAIBackend._retry_after(Exc({"retry-after": "2"})) == 2.0
    assert OpenAIBackend._retry_after(Exc({"retry-after-ms": "250"})) == 0.25
    assert OpenAIBackend._retry_after(Exc({"retry-after": "100000"})) == 300.0  # within reason
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= OpenAIBackend._retry_after(Exc({"retry-after": date})) <= 31
    assert OpenAIBackend._retry_after(Exc({})) is None and OpenAIBackend._retry_after(Exc({"retry-after": "x"})) is None


def test_a_rerun_retries_failed_judgments_by_default_and_keeps_their_history(tmp_path):
    with FakeOpenAI(fault_rate=1.0, faults=("500",)) as server:
        judge = make_judge(_config(server, max_retries=0), tmp_path / "j.sqlite")
        assert [r.status for r in judge.score_many(_items(2), progress=False)] == ["failed", "failed"]
        server.fault_rate = 0.0
        sent = server.chat_requests
        again = judge.score_many(_items(2), progress=False)
        assert all(r.status == "ok" and not r.from_cache for r in again)
        assert server.chat_requests - sent == 2  # exactly the failed ones
        assert [row[4] for row in _rows(tmp_path / "j.sqlite")] == [2, 2]  # attempts add up across runs
        key = _rows(tmp_path / "j.sqlite")[0][0]
        history = judge.cache.failure_history(key)
        assert [h["reason"] for h in history] == ["server error"] and "HTTP 500" in history[0]["error"]
        assert judge.usage()["failures_recorded"] == 2 and judge.usage()["cache_failed"] == 0
        final = judge.score_many(_items(2), progress=False)
        assert all(r.from_cache for r in final) and server.chat_requests - sent == 2


def test_a_profile_can_keep_failed_judgments_as_they_are(tmp_path):
    with FakeOpenAI(fault_rate=1.0, faults=("500",)) as server:
        judge = make_judge(_config(server, max_retries=0, retry_failed=False), tmp_path / "j.sqlite")
        assert [r.status for r in judge.score_many(_items(2), progress=False)] == ["failed", "failed"]
        server.fault_rate = 0.0
        sent = server.chat_requests
        again = judge.score_many(_items(2), progress=False)
        assert [r.status for r in again] == ["failed", "failed"] and all(r.from_cache for r in again)
        assert server.chat_requests == sent  # kept, as the profile asked
        retried = judge.score_many(_items(2), progress=False, retry_failed=True)
        assert all(r.status == "ok" and not r.from_cache for r in retried)
        judge.cache.put("stopped", backend="openai", model="gpt-4o-mini", kind="score", status="failed",
                        reason="interrupted", error="interrupted: the run stopped before this judgment was answered")
        from psyco_utils.judge.openai_backend import needs_request

        assert needs_request(judge.cache.get("stopped"), retry_failed=False)  # our stop is not the endpoint's failure


# ---------------------------------------------------------------------------------------- cache, resume, cost

def test_warm_rerun_sends_zero_requests(tmp_path, server):
    first = make_judge(_config(server), tmp_path / "j.sqlite").score_many(_items(30), progress=False)
    sent = server.requests
    judge = make_judge(_config(server), tmp_path / "j.sqlite")
    again = judge.score_many(_items(30), progress=False)
    assert server.requests == sent
    assert [r.ratings for r in again] == [r.ratings for r in first] and all(r.from_cache for r in again)
    assert judge.usage()["cache_hits"] == 30 and judge.usage()["requests_sent"] == 0


def test_killed_run_resumes_without_redoing_finished_work(tmp_path):
    with FakeOpenAI(hold_after=20) as server:  # 20 answers, then the server holds every request: kill then
        script = tmp_path / "run.py"
        script.write_text(textwrap.dedent(f"""
            from psyco_utils.judge import JudgeConfig, ScoreItem, make_judge
            cfg = JudgeConfig(backend="openai", model="gpt-4o-mini", base_url={server.base_url!r}, concurrency=2,
                              backoff_base_s=0.01, estimate_above=10_000)
            items = [ScoreItem({STATEMENT!r} + f" (case {{i}})", {GOOD!r} if i % 2 else {BAD!r}) for i in range(120)]
            make_judge(cfg, {str(tmp_path / 'j.sqlite')!r}).score_many(items, progress=False)
        """))
        proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            assert server.held.wait(120) and proc.poll() is None
            eventually(lambda: len(_rows(tmp_path / "j.sqlite")) >= 20)  # the 20 answers are written
        finally:
            proc.kill()
            proc.wait()
        done = {row[0] for row in _rows(tmp_path / "j.sqlite")}
        assert len(done) == 20
        server.release()
        before = server.chat_requests
        judge = make_judge(_config(server), tmp_path / "j.sqlite")
        results = judge.score_many(_items(120), progress=False)
        assert all(r.status == "ok" for r in results) and len(_rows(tmp_path / "j.sqlite")) == 120
        resent = server.chat_requests - before
        assert resent == 120 - len(done)  # only the unfinished ones
        assert sum(r.from_cache for r in results) == len(done)


def test_cost_estimate_is_printed_before_a_large_run_only(tmp_path, server, capsys):
    judge = make_judge(_config(server, estimate_above=5), tmp_path / "j.sqlite")
    judge.score_many(_items(3), progress=False)
    assert "estimated cost" not in capsys.readouterr().out
    judge.score_many(_items(8, tag="more"), progress=False)
    out = capsys.readouterr().out
    assert "8 uncached score requests to gpt-4o-mini" in out and "estimated cost $" in out
    estimate = judge.estimate_cost(n_score=1000, n_compare=100, avg_statement_chars=500, avg_response_chars=900)
    assert estimate["requests"] == 1100 and estimate["prompt_tokens"] > 1100 * 1500
    assert 0 < estimate["cost_usd_batch"] < estimate["cost_usd_no_prompt_cache"]
    assert 0 < estimate["cost_usd"] < estimate["cost_usd_no_prompt_cache"]


def test_missing_key_is_a_clear_error_only_when_a_request_is_needed(tmp_path, server, monkeypatch):
    make_judge(_config(server), tmp_path / "j.sqlite").score_many(_items(3), progress=False)
    monkeypatch.delenv("OPENAI_API_KEY")
    judge = make_judge(_config(server), tmp_path / "j.sqlite")
    assert all(r.status == "ok" and r.from_cache for r in judge.score_many(_items(3), progress=False))
    with pytest.raises(RuntimeError, match="OPENAI_API_KEY"):
        judge.score_many(_items(4), progress=False)


def test_unknown_config_keys_are_errors_that_name_the_key():
    with pytest.raises(ValueError, match="concurency"):
        JudgeConfig(backend="openai", concurency=4)


# ---------------------------------------------------------------------------------------- the API key

def _assert_no_secret(tmp_path, texts):
    for text in texts:
        assert SECRET not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path.name


def test_api_key_never_leaks_into_logs_cache_or_errors(tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    with FakeOpenAI(fault_rate=1.0, faults=("auth_echo",)) as server:
        judge = make_judge(_config(server), tmp_path / "j.sqlite")
        results = judge.score_many(_items(3), progress=True)
        assert all(r.status == "failed" and r.error.startswith("HTTP error: HTTP 401") for r in results)
        assert "[REDACTED]" in results[0].error
        sent = [{k.lower(): v for k, v in h.items()}.get("authorization") for h in server.headers_seen]
        assert f"Bearer {SECRET}" in sent  # it was sent to the server, and only there
        assert SECRET not in repr(judge) + repr(judge._backend) + repr(judge.config)
    out = capsys.readouterr()
    _assert_no_secret(tmp_path, [out.out, out.err, caplog.text, json.dumps(judge.usage())])


def test_api_key_never_leaks_into_batch_exceptions(tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    with FakeOpenAI(reject_key=True) as server:
        judge = make_judge(_config(server, use_batch_api=True), tmp_path / "j.sqlite")
        with pytest.raises(BatchAPIError) as info:
            judge.score_many(_items(3), progress=False)
    import traceback

    text = "".join(traceback.format_exception(info.value))
    assert "401" in text and "[REDACTED]" in text
    out = capsys.readouterr()
    _assert_no_secret(tmp_path, [text, str(info.value), out.out, out.err, caplog.text])


# ---------------------------------------------------------------------------------------- Batch API

def test_batch_api_fills_the_cache(tmp_path):
    with FakeOpenAI(batch_polls_before_done=3) as server:
        judge = make_judge(_config(server, use_batch_api=True), tmp_path / "j.sqlite")
        results = judge.score_many(_items(12), progress=False)
        assert all(r.status == "ok" for r in results) and server.chat_requests == 0
        assert results[1].ratings == rubric_score(f"{STATEMENT} (case 1)", GOOD)[0]
        assert len(server.batches) == 1
        line = json.loads(next(iter(server.files.values())).decode().splitlines()[0])
        assert line["url"] == "/v1/chat/completions" and line["body"]["response_format"]["json_schema"]["strict"]
        assert judge.usage()["cost_usd"] > 0 and judge.usage()["requests_sent"] == 12
        online = make_judge(_config(server), tmp_path / "j.sqlite").score_many(_items(12), progress=False)
        assert server.chat_requests == 0 and all(r.from_cache for r in online)
        with sqlite3.connect(tmp_path / "j.sqlite") as db:
            assert db.execute("SELECT status, collected FROM batches").fetchall() == [("completed", 1)]


def test_batch_failures_are_recorded_with_their_reason(tmp_path):
    with FakeOpenAI(batch_fault_rate=0.3, seed=3) as server:
        judge = make_judge(_config(server, use_batch_api=True), tmp_path / "j.sqlite")
        results = judge.compare_many([CompareItem(f"{STATEMENT} ({i})", GOOD, BAD) for i in range(60)],
                                     progress=False)
        failed = [r for r in results if r.status == "failed"]
        assert 0 < len(failed) < 60 and len(_rows(tmp_path / "j.sqlite")) == 60
        reasons = Counter(row[2] for row in _rows(tmp_path / "j.sqlite") if row[1] == "failed")
        assert set(reasons) <= REASONS and "batch error" in reasons
        assert sum(reasons.values()) == len(failed) == sum(server.faults_injected.values())


def test_an_expired_batch_records_the_unanswered_requests(tmp_path):
    with FakeOpenAI(batch_end_status="expired") as server:
        judge = make_judge(_config(server, use_batch_api=True), tmp_path / "j.sqlite")
        results = judge.score_many(_items(10), progress=False)
        assert Counter(r.status for r in results) == {"ok": 5, "failed": 5}
        assert all("ended expired without an answer" in r.error for r in results if r.status == "failed")
        server.batch_end_status = "completed"
        again = judge.score_many(_items(10), progress=False)
        assert all(r.status == "ok" for r in again) and len(server.batches) == 2


def test_a_batch_pending_when_the_run_was_killed_is_collected_not_resubmitted(tmp_path):
    with FakeOpenAI(batch_polls_before_done=10**6) as server:
        script = tmp_path / "run.py"
        script.write_text(textwrap.dedent(f"""
            from psyco_utils.judge import JudgeConfig, ScoreItem, make_judge
            cfg = JudgeConfig(backend="openai", model="gpt-4o-mini", base_url={server.base_url!r},
                              use_batch_api=True, batch_poll_s=0.05, estimate_above=10_000)
            items = [ScoreItem({STATEMENT!r} + f" (case {{i}})", {GOOD!r} if i % 2 else {BAD!r}) for i in range(16)]
            make_judge(cfg, {str(tmp_path / 'j.sqlite')!r}).score_many(items, progress=False)
        """))
        proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL)
        try:
            deadline = time.time() + 60
            while time.time() < deadline and proc.poll() is None:
                time.sleep(0.1)
                if any(batch["polls"] >= 2 for batch in server.batches.values()):
                    break
        finally:
            proc.kill()
            proc.wait()
        assert len(server.batches) == 1
        server.batch_polls_before_done = 1
        judge = make_judge(_config(server, use_batch_api=True), tmp_path / "j.sqlite")
        results = judge.score_many(_items(16), progress=False)
        assert all(r.status == "ok" for r in results)
        assert len(server.batches) == 1 and server.chat_requests == 0  # the same batch, collected
        assert judge.usage()["requests_sent"] == 0


def test_batches_respect_the_line_and_size_limits():
    lines = [(f"k{i}", "x" * 99) for i in range(25)]
    assert [len(c) for c in split_batches(lines, max_lines=10)] == [10, 10, 5]
    assert [len(c) for c in split_batches(lines, max_bytes=1000)] == [10, 10, 5]
    assert sum(len(c) for c in split_batches(lines)) == 25


# ---------------------------------------------------------------------------------------- chat and classify

def test_chat_client_caches_completions_and_passes_parameters(tmp_path, server):
    chat = make_chat_client(_config(server), tmp_path / "j.sqlite")
    out = chat.complete_many([[{"role": "user", "content": "hello"}]] * 2, max_tokens=20, temperature=0.5, seed=7,
                             progress=False)
    assert out == ["A reply to: hello"] * 2 and server.chat_requests == 1  # identical requests sent once
    body = _chat_bodies(server)[0]
    assert (body["max_tokens"], body["temperature"], body["seed"]) == (20, 0.5, 7) and "response_format" not in body
    several = chat.complete_many([[{"role": "user", "content": "hi"}]], max_tokens=20, n=3, progress=False)
    assert len(several[0]) == 3 and _chat_bodies(server)[-1]["n"] == 3
    chat.complete_many([[{"role": "user", "content": "hello"}]] * 2, max_tokens=20, temperature=0.5, seed=7,
                       progress=False)
    assert server.chat_requests == 2 and chat.usage()["cache_hits"] == 2
    other = chat.complete_many([[{"role": "user", "content": "hello"}]], max_tokens=20, model="llama-3-8b",
                               progress=False)
    assert other == ["A reply to: hello"] and _chat_bodies(server)[-1]["model"] == "llama-3-8b"


def test_chat_failures_come_back_as_none_and_are_recorded(tmp_path):
    with FakeOpenAI(fault_rate=1.0, faults=("500",)) as server:
        chat = make_chat_client(_config(server, max_retries=1), tmp_path / "j.sqlite")
        assert chat.complete_many([[{"role": "user", "content": "hello"}]], progress=False) == [None]
        assert _rows(tmp_path / "j.sqlite")[0][1:3] == ("failed", "server error")


def test_classify_returns_one_of_the_labels(tmp_path, server):
    judge = make_judge(_config(server), tmp_path / "j.sqlite")
    texts = ["I drink too much", "my sister ignores me", "I drink too much"]
    labels = judge.classify_many(texts, ["substance use", "family", "grief"], "Pick the theme.", progress=False)
    assert all(label in ("substance use", "family", "grief") for label in labels) and labels[0] == labels[2]
    assert server.chat_requests == 2
    body = _chat_bodies(server)[0]
    assert body["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"] == [
        "substance use", "family", "grief"]


@pytest.fixture
def sigint_interrupts():
    """SIGINT raises KeyboardInterrupt, as in an interactive session or a kernel.  A suite started in the background
    by a shell inherits SIGINT ignored, and then ``_thread.interrupt_main()`` does nothing at all."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_an_interrupted_run_keeps_what_completed_and_resumes(tmp_path, sigint_interrupts):
    import _thread
    import threading

    with FakeOpenAI(hold_after=10) as server:  # ten answers, then the server holds requests: interrupt then
        judge = make_judge(_config(server, concurrency=2), tmp_path / "j.sqlite")

        def interrupt_when_held():
            server.wait_until_holding(2)  # both slots wait for an answer: Ctrl-C, or a notebook's stop button
            _thread.interrupt_main()

        threading.Thread(target=interrupt_when_held, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            judge.score_many(_items(60), progress=False)
        assert not any(t.name == "psyco-judge" for t in threading.enumerate())  # nothing runs on in the background
        rows = _rows(tmp_path / "j.sqlite")
        ok = [row for row in rows if row[1] == "ok"]
        interrupted = [row for row in rows if row[1] == "failed"]
        assert len(ok) == 10 and [r[2] for r in interrupted] == ["interrupted"] * 2
        # every request sent is counted, those in flight at the stop included
        assert judge.usage()["api_attempts"] == sum(row[4] for row in rows) == server.chat_requests == 12
        server.release()
        sent = server.chat_requests
        results = make_judge(_config(server), tmp_path / "j.sqlite").score_many(_items(60), progress=False)
        assert all(r.status == "ok" for r in results) and sum(r.from_cache for r in results) == 10
        assert server.chat_requests - sent == 50


def test_base_url_and_key_come_from_the_environment_when_not_configured(tmp_path, server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("MY_JUDGE_KEY", SECRET + "-other")
    cfg = JudgeConfig(backend="openai", model="gpt-4o-mini", api_key_env="MY_JUDGE_KEY", estimate_above=10_000)
    assert cfg.base_url is None
    assert make_judge(cfg, tmp_path / "j.sqlite").score_many(_items(2), progress=False)[0].status == "ok"
    auth = {k.lower(): v for k, v in server.headers_seen[-1].items()}["authorization"]
    assert auth == f"Bearer {SECRET}-other"


def test_the_length_instruction_is_in_the_prompts_only_when_asked_for_and_keys_differ(tmp_path, server):
    item = CompareItem(STATEMENT, GOOD, BAD)
    told = make_judge(_config(server), tmp_path / "j.sqlite")
    not_told = make_judge(_config(server, length_instructions=False), tmp_path / "j.sqlite")
    for judge, present in ((told, True), (not_told, False)):
        for kind, example in (("compare", item), ("score", _items(1)[0])):
            system = judge._request(kind, example)[1]["messages"][0]["content"]
            assert ("Do not reward length for its own sake" in system) is present
            assert system.startswith(rubric_text(present))
        compare_system = judge._request("compare", item)[1]["messages"][0]["content"]
        assert ("do not prefer a response for being longer" in compare_system) is present
    assert told._request("compare", item)[0] != not_told._request("compare", item)[0]
    told.compare_many([item], progress=False)
    not_told.compare_many([item], progress=False)
    assert len(_chat_bodies(server)) == 2  # the second setting is not answered from the first one's cache
