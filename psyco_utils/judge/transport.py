"""What the judge's two ways of sending requests share: failure reasons, tasks, answers, outages, and the cache.

The online path (:mod:`psyco_utils.judge.openai_backend`) and the Batch API path (:mod:`psyco_utils.judge.batch`)
both import from here, and neither imports the other's internals, so the package has no import cycle.
:func:`resolve` is the one cache-then-request loop: the judge (scores, comparisons, labels) and the cached chat
client (pool and reference responses) both look up the cache, send only what is missing or failed, and read the
cache again, through it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from .cache import JudgmentCache
from .schemas import PrincipleScores, PrincipleVerdicts

__all__ = [
    "RATE_LIMITED", "SERVER_ERROR", "TIMEOUT", "CONNECTION_ERROR", "HTTP_ERROR", "INVALID_ANSWER", "TRUNCATED",
    "REFUSAL", "EMPTY_ANSWER", "BATCH_ERROR", "INTERRUPTED", "UNEXPECTED", "needs_request", "InvalidAnswer",
    "EndpointDown", "Task", "Outage", "redact", "extract", "run_in_thread", "resolve",
]

# The reasons a judgment can fail, as recorded in the cache's ``reason`` column and counted by ``usage()``.
RATE_LIMITED = "rate limited"
SERVER_ERROR = "server error"
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection error"
HTTP_ERROR = "HTTP error"
INVALID_ANSWER = "invalid answer"
TRUNCATED = "truncated answer"
REFUSAL = "refusal"
EMPTY_ANSWER = "empty answer"
BATCH_ERROR = "batch error"
INTERRUPTED = "interrupted"
UNEXPECTED = "unexpected error"



def needs_request(row: dict | None, retry_failed: bool) -> bool:
    """Whether a judgment must be (re)sent: not in the cache, failed (unless the profile keeps failures), or
    interrupted by a stop (always: the stop was ours, not the endpoint's)."""
    if row is None:
        return True
    return row["status"] == "failed" and (retry_failed or row["reason"] == INTERRUPTED)


class InvalidAnswer(Exception):
    """An answer that arrived but cannot be used; ``reason`` is one of the reasons above."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


class EndpointDown(RuntimeError):
    """The endpoint gave too many connection errors, timeouts or server errors in a row, and the run stopped.

    ``endpoint`` is the base URL (never the key), ``last_error`` the last error seen; the judge adds how many of the
    judgments asked for are already safe in the cache."""

    def __init__(self, endpoint: str, in_a_row: int, last_error: str, safe: str = ""):
        self.endpoint, self.in_a_row, self.last_error = endpoint, in_a_row, last_error
        super().__init__(
            f"judge endpoint {endpoint} looks down: {in_a_row} connection errors, timeouts or server errors in a "
            f"row, so the run stopped (judge.stop_after_consecutive_errors). Last error: {last_error}."
            + (f" {safe}" if safe else "")
            + " Re-run when the endpoint answers again: only judgments not yet answered are sent.")

    def with_safe_count(self, safe: str) -> EndpointDown:
        return EndpointDown(self.endpoint, self.in_a_row, self.last_error, safe)


@dataclass
class Task:
    """Requests of one kind sent together under one name: the progress line's task, and one batch per task in
    Batch API mode."""

    name: str
    kind: str
    requests: list[tuple[str, dict]]
    labels: list[str] | None = None


class Outage:
    """Connection errors, timeouts and 5xx answers in a row, across all requests in flight; any other answer
    resets the count.  Raises :class:`EndpointDown` at ``limit``."""

    def __init__(self, limit: int, endpoint: str):
        self.limit, self.endpoint = limit, endpoint
        self.in_a_row = 0

    def answered(self) -> None:
        self.in_a_row = 0

    def failed(self, error: str) -> None:
        self.in_a_row += 1
        if self.in_a_row >= self.limit:
            raise EndpointDown(self.endpoint, self.in_a_row, error)




def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` (the API key) replaced by ``[REDACTED]``."""
    if secret:
        text = text.replace(secret, "[REDACTED]")
    return text


def extract(kind: str, choices: list[tuple[str | None, str | None, str | None]], labels: list[str] | None = None
            ) -> dict:
    """The usable result of one answer, from its choices as (content, finish_reason, refusal) triples.

    ``score`` -> the seven ratings and a rationale; ``compare`` -> seven verdicts, ``overall`` and a rationale;
    ``classify`` -> ``{"label": ...}``; ``chat`` -> ``{"texts": [...]}`` (one text per choice; a chat answer cut at
    ``max_tokens`` is kept, as a local model's would be).  Raises :class:`InvalidAnswer` with the reason otherwise.
    """
    if not choices:
        raise InvalidAnswer(EMPTY_ANSWER, "no choices in the answer")
    content, finish_reason, refusal = choices[0]
    if refusal:
        raise InvalidAnswer(REFUSAL, str(refusal)[:120])
    if kind == "chat":
        texts = [c or "" for c, _, _ in choices]
        if not any(t.strip() for t in texts):
            raise InvalidAnswer(EMPTY_ANSWER)
        return {"texts": texts}
    if finish_reason == "length":
        raise InvalidAnswer(TRUNCATED, "finish_reason=length")
    if finish_reason == "content_filter":
        raise InvalidAnswer(REFUSAL, "finish_reason=content_filter")
    if not content or not content.strip():
        raise InvalidAnswer(EMPTY_ANSWER)
    if kind == "classify":
        try:
            label = json.loads(content)["label"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidAnswer(INVALID_ANSWER, f"not a label object ({type(exc).__name__})") from None
        if labels is not None and label not in labels:
            raise InvalidAnswer(INVALID_ANSWER, f"label {str(label)[:40]!r} is not one of the labels")
        return {"label": label}
    model = {"score": PrincipleScores, "compare": PrincipleVerdicts}[kind]
    try:
        return model.model_validate_json(content).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidAnswer(INVALID_ANSWER, f"{where}: {first['msg']}" if where else first["msg"]) from None


def run_in_thread(coro):
    """Run a coroutine to completion in its own event loop on a worker thread and return its value.

    Jupyter already runs an event loop in the main thread, so ``asyncio.run`` cannot be called there.  An interrupt
    (Ctrl-C, the notebook's stop button, or SIGTERM from a runner that stops) cancels the coroutine's tasks, which
    record the requests they had in flight; what completed is already in the cache.  After a SIGTERM, once that is
    written, the signal is delivered again to whatever handled it before (by default: the process ends).
    """
    outcome: dict = {}
    ready, finished = threading.Event(), threading.Event()
    holder: dict = {}

    async def main():
        holder["task"] = asyncio.current_task()
        holder["loop"] = asyncio.get_running_loop()
        ready.set()
        return await coro

    def target():
        try:
            outcome["value"] = asyncio.run(main())
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc
        finally:
            ready.set()
            finished.set()

    # Waiting on an event, not Thread.join: a KeyboardInterrupt inside join() can leave the thread marked as
    # stopped while it still runs (CPython 3.11), and the worker must really have finished its writes here.
    thread = threading.Thread(target=target, name="psyco-judge", daemon=True)
    with _sigterm_as_interrupt() as terminated:
        thread.start()
        try:
            while not finished.wait(0.1):
                pass
        except KeyboardInterrupt:
            ready.wait()
            if "loop" in holder:
                holder["loop"].call_soon_threadsafe(holder["task"].cancel)
            finished.wait()
            thread.join()
            if not terminated:
                raise
        thread.join()
    if terminated:
        signal.raise_signal(signal.SIGTERM)  # the previous handler is back: it ends the process, or handles it
        raise KeyboardInterrupt  # only reached when that handler returned
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


class _sigterm_as_interrupt:
    """In the main thread: SIGTERM raises KeyboardInterrupt while the judge runs (the list it yields gets an entry),
    so requests in flight are recorded; the previous handler is restored on exit."""

    def __enter__(self) -> list:
        self.terminated: list = []
        self.installed = False
        if threading.current_thread() is threading.main_thread():
            def on_sigterm(signum, frame):
                self.terminated.append(signum)
                raise KeyboardInterrupt

            try:
                self.previous = signal.signal(signal.SIGTERM, on_sigterm)
                self.installed = True
            except (ValueError, OSError):  # not allowed here (an embedded interpreter): SIGTERM keeps its meaning
                pass
        return self.terminated

    def __exit__(self, *exc) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, self.previous if self.previous is not None else signal.SIG_DFL)


def resolve(cache: JudgmentCache, tasks: list[Task], retry_failed: bool, counts: Counter,
            send: Callable[[list[Task]], None], what: str = "judgments") -> tuple[dict[str, dict], set[str]]:
    """The cache row of every request of every task, sending only what the cache lacks (or what failed, unless
    ``retry_failed`` is false) through ``send``; returns the rows by key and the keys sent now.

    A key asked for twice, in one task or in two, is sent once, with the first payload given for it.  ``counts``
    gets ``requested`` and ``cache_hits``.  When the endpoint stops answering, :class:`EndpointDown` says how many of
    the ``what`` asked for are already safe in the cache.
    """
    keys = [key for task in tasks for key, _ in task.requests]
    rows = cache.get_many(keys)
    claimed: set[str] = set()
    todo_tasks = []
    for task in tasks:
        payloads: dict[str, object] = {}
        for key, payload in task.requests:
            payloads.setdefault(key, payload)
        todo = [k for k in payloads if k not in claimed and needs_request(rows.get(k), retry_failed)]
        claimed.update(todo)
        todo_tasks.append(Task(task.name, task.kind, [(k, payloads[k]) for k in todo], task.labels))
    counts["requested"] += len(keys)
    counts["cache_hits"] += sum(1 for k in keys if k not in claimed)
    if claimed:
        try:
            send(todo_tasks)
        except EndpointDown as exc:
            safe = sum(row["status"] == "ok" for row in cache.get_many(keys).values())
            raise exc.with_safe_count(f"{safe:,} of the {len(set(keys)):,} {what} asked for are safe in the cache "
                                      f"({cache.path.name}).") from None
        rows = cache.get_many(keys)
    lost = [k for k in keys if k not in rows]
    if lost:  # cannot happen unless the cache file was changed underneath: say so rather than drop items
        raise RuntimeError(f"{len(lost)} {what} are missing from the cache {cache.path}")
    return rows, claimed
