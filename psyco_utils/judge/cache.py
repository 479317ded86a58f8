"""One persistent SQLite cache for every judgment and completion, written before the result is used.

A row per request, keyed by a SHA-256 of (backend, model, prompt version, kind, messages, parameters)
(:func:`cache_key`).  Each result is committed as soon as it completes (WAL journal; the offline rubric judge commits in
small batches), so a killed process loses no completed judgment and a re-run resumes; a warm re-run sends no requests.
Failed judgments are kept with their reason (a short category such as "rate limited" or "invalid answer") and the
error text, and a re-run retries them (unless the profile says ``judge.retry_failed: false``); every failure is also
appended to a ``failures`` table, so the history of what went wrong survives a later success.  A row that holds a
paid answer is never overwritten by a later failure.  Rows also hold the tokens, the cost and the number of attempts, summed
over re-tries, so the usage report (chapter 02 "Judging") counts what was really spent.  A second table remembers the
Batch API jobs submitted from this cache, so a run killed while a batch is pending collects that batch on its re-run
instead of paying for a second one.  The API key is never part of a key, a row, or an error stored here.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS judgments (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    result TEXT,
    error TEXT,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS judgments_status ON judgments(status);
CREATE TABLE IF NOT EXISTS failures (
    key TEXT NOT NULL,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS failures_key ON failures(key);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    keys TEXT NOT NULL,
    status TEXT NOT NULL,
    collected INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
"""

#: The cache file's layout version (SQLite ``user_version``): 2 added the ``failures`` history table.
SCHEMA_VERSION = 2

_COLUMNS = ("status", "result", "error", "reason", "attempts", "prompt_tokens", "completion_tokens", "cached_tokens",
            "cost_usd", "created", "updated")


def cache_key(backend: str, model: str, prompt_version: str, kind: str, messages, params: dict) -> str:
    """A stable key (64 hex characters): any change in backend, model, prompt version, kind (score, compare,
    classify, chat), messages or parameters changes it; the order of keys inside ``params`` does not."""
    payload = json.dumps({"backend": backend, "model": model, "prompt_version": prompt_version, "kind": kind,
                          "messages": messages, "params": params}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class JudgmentCache:
    """Thread-safe access to the SQLite file; every :meth:`put` is committed at once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def _migrate(self) -> None:
        """Bring a cache file written by an older version up to :data:`SCHEMA_VERSION`, keeping every row."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        had_failures_table = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'failures'").fetchone() is not None
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(judgments)")}
        if "reason" not in columns:  # a cache written before failure reasons had their own column
            self._db.execute("ALTER TABLE judgments ADD COLUMN reason TEXT")
        if version < SCHEMA_VERSION and not had_failures_table:  # the failures so far become the first history
            self._db.execute("INSERT INTO failures (key, model, kind, reason, error, attempts, created) SELECT key, "
                             "model, kind, reason, error, attempts, updated FROM judgments WHERE status = 'failed'")
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._db.commit()

    # ------------------------------------------------------------------ reading

    @staticmethod
    def _row(values) -> dict:
        row = dict(zip(_COLUMNS, values))
        row["result"] = json.loads(row["result"]) if row["result"] else None
        return row

    def get(self, key: str) -> dict | None:
        """The row for ``key`` (status, result, error, reason, attempts, tokens, cost, timestamps), or None."""
        with self._lock:
            values = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM judgments WHERE key = ?", (key,)).fetchone()
        return None if values is None else self._row(values)

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        """The rows found for ``keys``, by key (keys not in the cache are absent)."""
        found = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start: start + 500]
            with self._lock:
                rows = self._db.execute(
                    f"SELECT key, {', '.join(_COLUMNS)} FROM judgments WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk).fetchall()
            for key, *values in rows:
                found[key] = self._row(values)
        return found

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]

    # ------------------------------------------------------------------ writing

    _UPSERT = (
        "INSERT INTO judgments (key, backend, model, kind, status, result, error, reason, attempts, prompt_tokens, "
        "completion_tokens, cached_tokens, cost_usd, created, updated) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
        "status=CASE WHEN judgments.status = 'ok' THEN 'ok' ELSE excluded.status END, "
        "result=CASE WHEN judgments.status = 'ok' THEN judgments.result ELSE excluded.result END, "
        "error=CASE WHEN judgments.status = 'ok' THEN judgments.error ELSE excluded.error END, "
        "reason=CASE WHEN judgments.status = 'ok' THEN judgments.reason ELSE excluded.reason END, "
        "attempts=judgments.attempts + excluded.attempts, "
        "prompt_tokens=judgments.prompt_tokens + excluded.prompt_tokens, "
        "completion_tokens=judgments.completion_tokens + excluded.completion_tokens, "
        "cached_tokens=judgments.cached_tokens + excluded.cached_tokens, "
        "cost_usd=judgments.cost_usd + excluded.cost_usd, updated=excluded.updated")

    @staticmethod
    def _values(key: str, backend: str, model: str, kind: str, status: str, result=None, error: str | None = None,
                reason: str | None = None, attempts: int = 1, prompt_tokens: int = 0, completion_tokens: int = 0,
                cached_tokens: int = 0, cost_usd: float = 0.0) -> tuple:
        if status not in ("ok", "failed"):
            raise ValueError(f"status must be 'ok' or 'failed', not {status!r}")
        if status == "failed" and not error:
            raise ValueError("a failed judgment needs its reason")
        now = time.time()
        return (key, backend, model, kind, status, json.dumps(result) if result is not None else None, error,
                reason, attempts, prompt_tokens, completion_tokens, cached_tokens, cost_usd, now, now)

    _HISTORY = "INSERT INTO failures (key, model, kind, reason, error, attempts, created) VALUES (?, ?, ?, ?, ?, ?, ?)"

    @staticmethod
    def _history(values: tuple) -> tuple:
        key, _, model, kind, _, _, error, reason, attempts, *_, created, _ = values
        return key, model, kind, reason, error, attempts, created

    def put(self, key: str, **fields) -> None:
        """Write one outcome and commit.  Re-writing a key (a retried failure) replaces its status, result and
        error, unless the row already holds an answer (a paid answer is never overwritten by a failure), and adds
        its attempts, tokens and cost to what the row already holds.  A failure is also added to the history."""
        self.put_many([(key, fields)])

    def put_many(self, rows: list[tuple[str, dict]]) -> None:
        """Write several outcomes, ``(key, fields)`` each, in one transaction (the offline judge's small batches)."""
        values = [self._values(key, **fields) for key, fields in rows]
        history = [self._history(v) for v in values if v[4] == "failed"]
        with self._lock:
            self._db.executemany(self._UPSERT, values)
            if history:
                self._db.executemany(self._HISTORY, history)
            self._db.commit()

    def failure_history(self, key: str) -> list[dict]:
        """Every failure recorded for ``key``, oldest first: reason, error text, attempts and time."""
        with self._lock:
            rows = self._db.execute("SELECT reason, error, attempts, created FROM failures WHERE key = ? "
                                    "ORDER BY created, rowid", (key,)).fetchall()
        return [{"reason": r, "error": e, "attempts": a, "created": c} for r, e, a, c in rows]

    # ------------------------------------------------------------------ Batch API jobs

    def add_batch(self, batch_id: str, model: str, kind: str, keys: list[str], status: str) -> None:
        """Remember a submitted batch and the cache keys it answers, before waiting for it."""
        now = time.time()
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO batches (id, model, kind, keys, status, collected, created, "
                             "updated) VALUES (?, ?, ?, ?, ?, 0, ?, ?)", (batch_id, model, kind, json.dumps(keys),
                                                                          status, now, now))
            self._db.commit()

    def pending_batches(self, model: str, kind: str) -> list[dict]:
        """Batches submitted for ``model`` and ``kind`` whose results have not been collected yet."""
        with self._lock:
            rows = self._db.execute("SELECT id, keys, status, created FROM batches WHERE model = ? AND kind = ? AND "
                                    "collected = 0 ORDER BY created", (model, kind)).fetchall()
        return [{"id": i, "keys": json.loads(k), "status": s, "created": c} for i, k, s, c in rows]

    def pending_batch_keys(self, model: str, kind: str) -> set[str]:
        """The keys answered by batches still pending for ``model`` and ``kind`` (already paid for)."""
        return {key for batch in self.pending_batches(model, kind) for key in batch["keys"]}

    def finish_batch(self, batch_id: str, status: str) -> None:
        """Mark a batch as collected (its outcomes are in the judgments table)."""
        with self._lock:
            self._db.execute("UPDATE batches SET status = ?, collected = 1, updated = ? WHERE id = ?",
                             (status, time.time(), batch_id))
            self._db.commit()

    # ------------------------------------------------------------------ reporting

    def summary(self) -> dict:
        """Rows, failures by reason, and attempts, tokens and cost per model: the cache side of the usage report."""
        with self._lock:
            by_status = dict(self._db.execute("SELECT status, COUNT(*) FROM judgments GROUP BY status").fetchall())
            reasons = dict(self._db.execute(
                "SELECT COALESCE(reason, error), COUNT(*) FROM judgments WHERE status = 'failed' "
                "GROUP BY COALESCE(reason, error) ORDER BY COUNT(*) DESC").fetchall())
            per_model = {
                model: {"judgments": n, "failed": failed, "attempts": attempts, "prompt_tokens": pt,
                        "completion_tokens": ct, "cached_tokens": cached, "cost_usd": round(cost, 6)}
                for model, n, failed, attempts, pt, ct, cached, cost in self._db.execute(
                    "SELECT model, COUNT(*), SUM(status = 'failed'), SUM(attempts), SUM(prompt_tokens), "
                    "SUM(completion_tokens), SUM(cached_tokens), SUM(cost_usd) FROM judgments GROUP BY model "
                    "ORDER BY model").fetchall()}
            history = self._db.execute("SELECT COUNT(*) FROM failures").fetchone()[0]
        return {"rows": sum(by_status.values()), "ok": by_status.get("ok", 0), "failed": by_status.get("failed", 0),
                "failures_by_reason": reasons, "failures_recorded": history, "per_model": per_model}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> JudgmentCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["JudgmentCache", "cache_key"]
