"""One persistent SQLite cache for every judgment and completion, written before the result is used.

A row per request, keyed by a SHA-256 of (backend, model, prompt version, kind, messages, parameters).  Each result
is committed as soon as it completes (WAL journal), so a killed process loses no completed judgment and a re-run
resumes; a warm re-run sends no requests.  Failures are kept with their reason.  The API key is never part of a key,
a row, or an error message stored here.
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
    status TEXT NOT NULL,
    result TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS judgments_status ON judgments(status);
"""


def cache_key(backend: str, model: str, prompt_version: str, kind: str, messages, params: dict) -> str:
    """A stable key: any change in backend, model, prompt version, kind, messages or parameters changes it."""
    payload = json.dumps({"backend": backend, "model": model, "prompt_version": prompt_version, "kind": kind,
                          "messages": messages, "params": params}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class JudgmentCache:
    """Thread-safe access to the SQLite file; every ``put`` is committed at once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._db.commit()

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self._db.execute(
                "SELECT status, result, error, attempts, prompt_tokens, completion_tokens, cached_tokens, cost_usd "
                "FROM judgments WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        status, result, error, attempts, pt, ct, cached, cost = row
        return {"status": status, "result": json.loads(result) if result else None, "error": error,
                "attempts": attempts, "prompt_tokens": pt, "completion_tokens": ct, "cached_tokens": cached,
                "cost_usd": cost}

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        found = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            with self._lock:
                rows = self._db.execute(
                    f"SELECT key, status, result, error FROM judgments WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk).fetchall()
            for key, status, result, error in rows:
                found[key] = {"status": status, "result": json.loads(result) if result else None, "error": error}
        return found

    def put(self, key: str, *, backend: str, model: str, kind: str, status: str, result=None, error: str | None = None,
            attempts: int = 1, prompt_tokens: int = 0, completion_tokens: int = 0, cached_tokens: int = 0,
            cost_usd: float = 0.0) -> None:
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO judgments (key, backend, model, kind, status, result, error, attempts, prompt_tokens, "
                "completion_tokens, cached_tokens, cost_usd, created, updated) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET status=excluded.status, "
                "result=excluded.result, error=excluded.error, attempts=judgments.attempts + excluded.attempts, "
                "prompt_tokens=judgments.prompt_tokens + excluded.prompt_tokens, "
                "completion_tokens=judgments.completion_tokens + excluded.completion_tokens, "
                "cached_tokens=judgments.cached_tokens + excluded.cached_tokens, "
                "cost_usd=judgments.cost_usd + excluded.cost_usd, updated=excluded.updated",
                (key, backend, model, kind, status, json.dumps(result) if result is not None else None, error,
                 attempts, prompt_tokens, completion_tokens, cached_tokens, cost_usd, now, now))
            self._db.commit()

    def summary(self) -> dict:
        """Rows, failures by reason, tokens and cost per model: the usage report of chapter 02."""
        with self._lock:
            by_status = dict(self._db.execute("SELECT status, COUNT(*) FROM judgments GROUP BY status").fetchall())
            reasons = dict(self._db.execute(
                "SELECT error, COUNT(*) FROM judgments WHERE status = 'failed' GROUP BY error").fetchall())
            per_model = {m: {"requests": n, "prompt_tokens": pt, "completion_tokens": ct, "cached_tokens": c,
                             "cost_usd": round(cost, 4)}
                         for m, n, pt, ct, c, cost in self._db.execute(
                             "SELECT model, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), "
                             "SUM(cost_usd) FROM judgments GROUP BY model").fetchall()}
        return {"rows": sum(by_status.values()), "ok": by_status.get("ok", 0), "failed": by_status.get("failed", 0),
                "failures_by_reason": reasons, "per_model": per_model}

    def close(self) -> None:
        with self._lock:
            self._db.close()
