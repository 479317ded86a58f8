"""The judge's SQLite cache: stable keys, durable writes, failures kept with their reason, usage totals."""

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from psyco_utils.judge.cache import JudgmentCache, cache_key

BASE = ("openai", "gpt-4o", "psycopref-judge-v2", "score", [{"role": "user", "content": "I feel low."}],
        {"temperature": 0.0, "max_tokens": 600})
OK = {"backend": "openai", "model": "gpt-4o", "kind": "score", "status": "ok"}


def test_key_is_stable_across_processes_and_versions():
    # a fixed value: if the key scheme changes, every existing cache is silently invalidated, so make it a decision
    assert cache_key(*BASE) == "2a333117bce7b90ae7d1e500d74885b67618b2868528fcea8d22593ac6cc11e4"
    assert cache_key(*BASE) == cache_key(*BASE)
    reordered = dict(reversed(list(BASE[5].items())))
    assert cache_key(*BASE[:5], reordered) == cache_key(*BASE)


@pytest.mark.parametrize("index, changed", [
    (0, "rubric"), (1, "gpt-4o-mini"), (2, "psycopref-judge-v3"), (3, "compare"),
    (4, [{"role": "user", "content": "I feel low!"}]),
    (4, [{"role": "system", "content": "I feel low."}]),
    (5, {"temperature": 0.7, "max_tokens": 600}), (5, {"temperature": 0.0, "max_tokens": 600, "seed": 1}),
])
def test_key_changes_with_every_component(index, changed):
    variant = list(BASE)
    variant[index] = changed
    assert cache_key(*variant) != cache_key(*BASE)


def test_put_get_round_trip_and_persistence(tmp_path):
    path = tmp_path / "sub" / "j.sqlite"
    with JudgmentCache(path) as cache:
        cache.put("k1", **OK, result={"empathy": 4, "rationale": "warm"}, prompt_tokens=100, completion_tokens=20,
                  cached_tokens=64, cost_usd=0.001)
        cache.put("k2", **{**OK, "status": "failed"}, error="timeout: no answer within 60 s", reason="timeout")
    with JudgmentCache(path) as cache:  # a new connection, as after a restart
        row = cache.get("k1")
        assert row["status"] == "ok" and row["result"] == {"empathy": 4, "rationale": "warm"}
        assert (row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"]) == (100, 20, 64)
        assert row["created"] <= row["updated"] <= time.time()
        failed = cache.get("k2")
        assert failed["status"] == "failed" and failed["reason"] == "timeout" and failed["result"] is None
        assert cache.get("missing") is None and len(cache) == 2
        assert cache._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failure_needs_its_reason_and_status_is_checked(tmp_path):
    with JudgmentCache(tmp_path / "j.sqlite") as cache:
        with pytest.raises(ValueError, match="reason"):
            cache.put("k", **{**OK, "status": "failed"})
        with pytest.raises(ValueError, match="status"):
            cache.put("k", **{**OK, "status": "maybe"})
        assert len(cache) == 0


def test_rewriting_a_key_replaces_the_outcome_and_adds_the_spending(tmp_path):
    with JudgmentCache(tmp_path / "j.sqlite") as cache:
        cache.put("k", **{**OK, "status": "failed"}, error="rate limited: HTTP 429", reason="rate limited",
                  attempts=7, prompt_tokens=0, cost_usd=0.0)
        cache.put("k", **OK, result={"a": 1}, attempts=2, prompt_tokens=500, cost_usd=0.002)
        row = cache.get("k")
        assert row["status"] == "ok" and row["error"] is None and row["reason"] is None
        assert row["attempts"] == 9 and row["prompt_tokens"] == 500 and row["cost_usd"] == pytest.approx(0.002)


def test_get_many_across_chunks_and_put_many(tmp_path):
    with JudgmentCache(tmp_path / "j.sqlite") as cache:
        cache.put_many([(f"k{i}", {**OK, "result": {"i": i}}) for i in range(1203)])
        found = cache.get_many([f"k{i}" for i in range(0, 1300)] + ["k5"])
        assert len(found) == 1203 and found["k1202"]["result"] == {"i": 1202}


def test_summary_counts_failures_by_reason_and_spending_per_model(tmp_path):
    with JudgmentCache(tmp_path / "j.sqlite") as cache:
        cache.put("a", **OK, prompt_tokens=10, completion_tokens=5, cached_tokens=2, cost_usd=0.5)
        cache.put("b", **{**OK, "model": "gpt-4o-mini"}, prompt_tokens=1, cost_usd=0.25)
        for i, reason in enumerate(["timeout", "timeout", "refusal"]):
            cache.put(f"f{i}", **{**OK, "status": "failed"}, error=f"{reason}: detail {i}", reason=reason)
        summary = cache.summary()
    assert (summary["rows"], summary["ok"], summary["failed"]) == (5, 2, 3)
    assert summary["failures_by_reason"] == {"timeout": 2, "refusal": 1}
    assert summary["per_model"]["gpt-4o"]["prompt_tokens"] == 10
    assert summary["per_model"]["gpt-4o"]["cost_usd"] == pytest.approx(0.5)
    assert summary["per_model"]["gpt-4o"]["failed"] == 3
    assert summary["per_model"]["gpt-4o-mini"]["judgments"] == 1


def test_concurrent_writers_lose_nothing(tmp_path):
    cache = JudgmentCache(tmp_path / "j.sqlite")
    other = JudgmentCache(tmp_path / "j.sqlite")  # a second connection, as the chat client beside the judge

    def write(c, prefix):
        for i in range(150):
            c.put(f"{prefix}{i}", **OK, result={"i": i})

    threads = [threading.Thread(target=write, args=(c, p)) for c, p in ((cache, "a"), (cache, "b"), (other, "c"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 450 and len(other) == 450
    cache.close()
    other.close()


def test_a_killed_writer_keeps_every_committed_row(tmp_path):
    path = tmp_path / "j.sqlite"
    script = (
        "import os, signal\n"
        "from psyco_utils.judge.cache import JudgmentCache\n"
        f"cache = JudgmentCache({str(path)!r})\n"
        "for i in range(40):\n"
        "    cache.put(f'k{i}', backend='openai', model='m', kind='score', status='ok', result={'i': i})\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", script], env=env, timeout=60)
    assert proc.returncode != 0  # killed, no clean close
    with JudgmentCache(path) as cache:
        assert len(cache) == 40 and cache.get("k39")["result"] == {"i": 39}


def test_an_older_cache_without_the_reason_column_is_upgraded(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE judgments (key TEXT PRIMARY KEY, backend TEXT NOT NULL, model TEXT NOT NULL, "
                   "kind TEXT NOT NULL, status TEXT NOT NULL, result TEXT, error TEXT, attempts INTEGER NOT NULL "
                   "DEFAULT 1, prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0, "
                   "cached_tokens INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0, created REAL NOT NULL, "
                   "updated REAL NOT NULL)")
        db.execute("INSERT INTO judgments (key, backend, model, kind, status, error, created, updated) VALUES "
                   "('old', 'openai', 'gpt-4o', 'score', 'failed', 'HTTP 500', 0, 0)")
    with JudgmentCache(path) as cache:
        assert cache.get("old")["error"] == "HTTP 500" and cache.get("old")["reason"] is None
        cache.put("new", **OK, result={})
        assert cache.summary()["failures_by_reason"] == {"HTTP 500": 1}


def test_batches_are_remembered_until_collected(tmp_path):
    with JudgmentCache(tmp_path / "j.sqlite") as cache:
        cache.add_batch("batch_1", "gpt-4o", "score", ["k1", "k2"], "validating")
        cache.add_batch("batch_2", "gpt-4o", "compare", ["k3"], "validating")
        pending = cache.pending_batches("gpt-4o", "score")
        assert [(b["id"], b["keys"]) for b in pending] == [("batch_1", ["k1", "k2"])]
        cache.finish_batch("batch_1", "completed")
        assert cache.pending_batches("gpt-4o", "score") == []
        assert len(cache.pending_batches("gpt-4o", "compare")) == 1


# ------------------------------------------------------------------ the one cache-then-request loop


def test_resolve_sends_only_what_is_missing_or_failed_once_each(tmp_path):
    from collections import Counter

    from psyco_utils.judge.transport import Task, resolve

    cache = JudgmentCache(tmp_path / "j.sqlite")
    cache.put("done", **OK, result={"x": 1})
    cache.put("broken", **{**OK, "status": "failed"}, error="timeout: slow", reason="timeout")
    sent = []

    def send(tasks):
        for task in tasks:
            sent.extend(key for key, _ in task.requests)
            cache.put_many([(key, {**OK, "result": {"x": payload}}) for key, payload in task.requests])

    counts = Counter()
    tasks = [Task("a", "score", [("done", 0), ("new", 1), ("new", 2)]), Task("b", "score", [("new", 3), ("broken", 4)])]
    rows, fresh = resolve(cache, tasks, retry_failed=True, counts=counts, send=send)
    assert sorted(sent) == ["broken", "new"] and fresh == {"broken", "new"}
    assert rows["new"]["result"] == {"x": 1}  # the first payload given for a key is the one sent
    assert counts["requested"] == 5 and counts["cache_hits"] == 1
    sent.clear()
    resolve(cache, tasks, retry_failed=True, counts=counts, send=send)
    assert sent == []  # a re-run sends nothing


def test_resolve_keeps_failures_when_told_and_says_what_is_safe_when_the_endpoint_is_down(tmp_path):
    from collections import Counter

    from psyco_utils.judge.transport import EndpointDown, Task, resolve

    cache = JudgmentCache(tmp_path / "j.sqlite")
    cache.put("kept", **OK, result={})
    cache.put("broken", **{**OK, "status": "failed"}, error="timeout: slow", reason="timeout")
    calls = []
    resolve(cache, [Task("t", "score", [("broken", 0), ("kept", 1)])], retry_failed=False, counts=Counter(),
            send=calls.append)
    assert calls == []

    def down(tasks):
        raise EndpointDown("http://127.0.0.1:1/v1", 3, "connection error")

    with pytest.raises(EndpointDown, match=r"1 of the 3 labels asked for are safe in the cache \(j.sqlite\)"):
        resolve(cache, [Task("t", "classify", [("kept", 0), ("x", 1), ("y", 2)])], True, Counter(), down, "labels")


def test_the_judge_package_has_no_import_cycle():
    import ast

    root = Path(__file__).resolve().parent.parent / "psyco_utils" / "judge"
    graph = {}
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        graph[path.stem] = {node.module for node in ast.walk(tree)
                            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}
    graph.pop("__init__")

    def reaches(start, target, seen=()):
        return any(n == target or (n not in seen and reaches(n, target, (*seen, n))) for n in graph.get(start, ()))

    assert not [m for m in graph if reaches(m, m)]
    assert "openai_backend" not in graph["batch"]


def test_the_judge_imports_nothing_that_imports_the_profile_config():
    """config imports judge.config, which runs the judge package: the package must not reach back to config (it did,
    through rubric -> data -> config)."""
    import ast

    root = Path(__file__).resolve().parent.parent / "psyco_utils"
    for path in (root / "judge").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                assert node.module in ("principles", "crisis"), f"{path.name} imports psyco_utils.{node.module}"
