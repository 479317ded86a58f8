"""Batch API mode for paper-scale judging (chapter 02 "Judging", paper profile): build the JSONL of the uncached
requests, upload it through the files API, create a batch, poll it, download the output and error files, and write
every outcome into the same SQLite cache as the online path, so a notebook re-run after a batch sends nothing.

* Requests are split into batches of at most 50,000 lines and about 190 MB, the provider's limits.
* Each submitted batch is recorded in the cache with the keys it answers before any waiting starts: a run that is
  killed or interrupted while a batch is pending picks the same batch up on its re-run instead of paying twice.
* Independent tasks (chapter 02: the pool's scores and both orders of the position-swap check) are one batch each,
  submitted together and awaited together: one wait for the provider's turnaround, not one per task.
* Lines the batch answered with an error, answers that fail validation (malformed, truncated, refused) and requests
  the batch never answered (failed, expired or cancelled batches) are recorded as failed with their reason; a failed
  batch's own errors are shown with their line numbers and kept in the failures' text.  They are not retried inside
  the batch: the next run submits them again in a new batch (``judge.retry_failed``, on by default).
* Polling survives short network trouble; after ``judge.stop_after_consecutive_errors`` connection or server errors
  in a row it stops with :class:`~psyco_utils.judge.transport.EndpointDown`, and the batches stay remembered.
* Costs are recorded at half the online price, the Batch API's discount.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter

import openai

from .cache import JudgmentCache
from .transport import BATCH_ERROR, InvalidAnswer, Outage, extract, redact, run_in_thread
from .progress import Progress

log = logging.getLogger(__name__)

MAX_LINES = 50_000
MAX_BYTES = 190 * 2**20
TERMINAL = {"completed", "failed", "expired", "cancelled"}


class BatchAPIError(RuntimeError):
    """The files or batches API refused a request (for example a wrong key); batches already submitted are
    remembered in the cache and collected by the next run."""


def batch_line(key: str, body: dict) -> str:
    """One line of a Batch API input file: the cache key as ``custom_id`` and the same body as an online request."""
    return json.dumps({"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": body},
                      ensure_ascii=False)


def split_batches(lines: list[tuple[str, str]], max_lines: int = MAX_LINES, max_bytes: int = MAX_BYTES
                  ) -> list[list[tuple[str, str]]]:
    """``(key, line)`` pairs cut into chunks that respect the provider's per-batch line and size limits."""
    chunks, current, size = [], [], 0
    for key, line in lines:
        n = len(line.encode("utf-8")) + 1
        if current and (len(current) >= max_lines or size + n > max_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append((key, line))
        size += n
    if current:
        chunks.append(current)
    return chunks


def parse_output_line(backend, kind: str, record: dict, labels: list[str] | None = None) -> dict:
    """Cache fields (status, result or error and reason, tokens, cost) for one line of a batch's output or error
    file.  A line may carry an HTTP response, or only an error object (``{"code", "message"}``) and no response."""
    response = record.get("response") or {}
    body = response.get("body") or {}
    usage = body.get("usage") or {}
    tokens = {"prompt_tokens": usage.get("prompt_tokens", 0) or 0,
              "completion_tokens": usage.get("completion_tokens", 0) or 0,
              "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0) or 0}
    cost = backend.cost(**tokens, batch=True)
    status_code = response.get("status_code")
    if record.get("error") or status_code != 200:
        error = record.get("error") or body.get("error") or {}
        if isinstance(error, dict):
            code, message = error.get("code") or error.get("type"), error.get("message") or ""
        else:
            code, message = None, str(error)
        where = f"HTTP {status_code}" if status_code is not None else (code or "no response")
        detail = redact(f"{where}: {message}" if message else where, backend._api_key)[:200]
        return {"status": "failed", "reason": BATCH_ERROR, "error": f"{BATCH_ERROR}: {detail}", "cost_usd": cost,
                **tokens}
    try:
        choices = [((c.get("message") or {}).get("content"), c.get("finish_reason"),
                    (c.get("message") or {}).get("refusal")) for c in body.get("choices") or []]
        result = extract(kind, choices, labels)
    except InvalidAnswer as exc:
        return {"status": "failed", "reason": exc.reason, "error": f"{exc.reason}: {exc.detail or 'unusable answer'}"
                f" (batch)", "cost_usd": cost, **tokens}
    return {"status": "ok", "result": result, "cost_usd": cost, **tokens}


def batch_errors(batch) -> list[tuple[int | None, str]]:
    """The batch's own errors (a batch that failed validation, for example over the enqueued-token limit), as
    ``(line number in the input file or None, "code: message")``."""
    errors = getattr(batch, "errors", None)
    data = getattr(errors, "data", None) if errors is not None else None
    out = []
    for error in data or []:
        code, message = getattr(error, "code", None), getattr(error, "message", None) or ""
        out.append((getattr(error, "line", None), f"{code}: {message}" if code else message or "no message"))
    return out


class _BatchRun:
    """One call of :func:`run_batch`: the batches resumed and to submit, their progress lines, and the counts."""

    def __init__(self, backend, tasks: list, cache: JudgmentCache, counts: Counter, say):
        self.backend, self.cache, self.counts, self.say = backend, cache, counts, say
        self.config, self.model = backend.config, backend.config.model
        wanted = {key for task in tasks for key, _ in task.requests}
        kinds = {task.kind for task in tasks}
        self.resumed = [dict(b, kind=kind, name=f"{kind} (submitted earlier)") for kind in sorted(kinds)
                        for b in cache.pending_batches(self.model, kind) if wanted.intersection(b["keys"])]
        covered = {key for b in self.resumed for key in b["keys"]}
        self.submissions = [(task, chunk) for task in tasks
                            for chunk in split_batches([(key, batch_line(key, body)) for key, body in task.requests
                                                        if key not in covered])]
        for b in self.resumed:
            say(f"judge: resuming batch {b['id']} ({len(b['keys']):,} {b['kind']} requests, submitted earlier)")
        self.trackers = {b["id"]: Progress(b["name"], len(b["keys"])) for b in self.resumed}
        self.labels_of = {task.kind: task.labels for task in tasks}

    async def run(self) -> None:
        client = self.backend.client()
        outage = Outage(self.config.stop_after_consecutive_errors,
                        redact(str(client.base_url), self.backend._api_key))
        try:
            jobs = {b["id"]: (b["kind"], b["keys"]) for b in self.resumed}
            for i, (task, chunk) in enumerate(self.submissions):
                jobs.update(await self.submit(client, i, task, chunk))
            self.counts["batches"] += len(jobs)
            await self.await_all(client, jobs, outage)
        finally:
            for tracker in self.trackers.values():
                tracker.finish()
            await client.close()

    async def submit(self, client, i: int, task, chunk: list[tuple[str, str]]) -> dict:
        data = ("\n".join(line for _, line in chunk) + "\n").encode("utf-8")
        upload = await client.files.create(file=(f"psycopref-{task.kind}-{i}.jsonl", data, "application/jsonl"),
                                           purpose="batch")
        batch = await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                            completion_window="24h",
                                            metadata={"project": "psycopref-book", "task": task.name[:64]})
        keys = [key for key, _ in chunk]
        self.cache.add_batch(batch.id, self.model, task.kind, keys, batch.status)
        self.trackers[batch.id] = Progress(task.name, len(keys))
        self.counts["sent"] += len(chunk)
        self.counts["attempts"] += len(chunk)
        self.say(f"judge: submitted batch {batch.id} with {len(chunk):,} {task.kind} requests ({task.name}) "
                 f"to {self.model}")
        return {batch.id: (task.kind, keys)}

    async def await_all(self, client, jobs: dict, outage: Outage) -> None:
        """Poll every batch until it ends, saying when its state changes, and collect each as it ends."""
        remaining, last_seen = set(jobs), {}
        while remaining:
            for batch_id in sorted(remaining):
                try:
                    batch = await client.batches.retrieve(batch_id)
                    outage.answered()
                except (openai.APIConnectionError, openai.InternalServerError) as exc:
                    outage.failed(redact(f"{type(exc).__name__}: {exc}", self.backend._api_key)[:160])
                    continue
                request_counts = getattr(batch, "request_counts", None)
                seen = (batch.status, getattr(request_counts, "completed", None),
                        getattr(request_counts, "failed", None))
                if seen != last_seen.get(batch_id):
                    last_seen[batch_id] = seen
                    done = f": {seen[1]:,}/{request_counts.total:,} done, {seen[2]:,} failed" if request_counts else ""
                    self.say(f"judge: batch {batch_id} {batch.status}{done}")
                    if request_counts:
                        self.trackers[batch_id].set((seen[1] or 0) + (seen[2] or 0), seen[2] or 0)
                if batch.status in TERMINAL:
                    kind, keys = jobs[batch_id]
                    await self.collect(client, batch, kind, keys)
                    remaining.discard(batch_id)
            if remaining:
                await asyncio.sleep(self.config.batch_poll_s)

    async def collect(self, client, batch, kind: str, keys: list[str]) -> None:
        """Every answer of an ended batch into the cache; a key without an answer is recorded as failed, with the
        batch's error for its line."""
        tracker = self.trackers[batch.id]
        tracker.done = tracker.failed = 0
        answered, rows = await self._answers(client, batch, kind, set(keys), tracker)
        missing = [key for key in keys if key not in answered]
        rows += self._unanswered(batch, kind, keys, missing, tracker)
        self.counts["failed"] += len(missing)
        self.cache.put_many(rows)
        self.cache.finish_batch(batch.id, batch.status)
        log.info("batch %s (%s): %d answered, %d without an answer", batch.id, batch.status, len(answered),
                 len(missing))

    async def _answers(self, client, batch, kind: str, expected: set, tracker) -> tuple[set, list]:
        answered: set[str] = set()
        rows: list[tuple[str, dict]] = []
        for file_id in (getattr(batch, "output_file_id", None), getattr(batch, "error_file_id", None)):
            if not file_id:
                continue
            content = await client.files.content(file_id)
            for line in content.text.splitlines():
                record = json.loads(line) if line.strip() else {}
                key = record.get("custom_id")
                if key not in expected or key in answered:
                    continue
                answered.add(key)
                fields = parse_output_line(self.backend, kind, record, self.labels_of.get(kind))
                rows.append((key, {"backend": "openai", "model": self.model, "kind": kind, **fields}))
                self.counts[fields["status"]] += 1
                tracker.add(fields["status"], fields["cost_usd"])
                if len(rows) >= 500:
                    self.cache.put_many(rows)
                    rows = []
        return answered, rows

    def _unanswered(self, batch, kind: str, keys: list[str], missing: list[str], tracker) -> list:
        errors = batch_errors(batch)
        for number, message in errors[:10]:
            self.say(f"judge: batch {batch.id} {batch.status}: " + (f"line {number}: " if number is not None else "")
                     + message)
        if len(errors) > 10:
            self.say(f"judge: batch {batch.id}: {len(errors) - 10:,} more errors")
        by_line = {number: message for number, message in errors if number is not None}
        overall = next((message for number, message in errors if number is None), errors[0][1] if errors else None)
        line_of = {key: i + 1 for i, key in enumerate(keys)}  # the input file's lines, the first is line 1
        rows = []
        for key in missing:
            why = by_line.get(line_of[key])
            why = f"line {line_of[key]}: {why}" if why else overall
            error = f"{BATCH_ERROR}: batch {batch.id} ended {batch.status} without an answer" + (
                f" ({redact(why, self.backend._api_key)[:160]})" if why else "")
            rows.append((key, {"backend": "openai", "model": self.model, "kind": kind, "status": "failed",
                               "reason": BATCH_ERROR, "attempts": 1, "error": error}))
            tracker.add("failed")
        return rows


def run_batch(backend, tasks: list, cache: JudgmentCache, counts: Counter | None = None, say=print) -> Counter:
    """Judge every task (its name, kind and ``(cache key, request body)`` requests) through the Batch API, one
    batch per task (more when a task is over the limits), all submitted together and awaited together, and write
    every outcome to ``cache``.

    Pending batches from an earlier, interrupted run that cover some of these keys are collected rather than
    submitted again.  ``say`` prints the submission and progress lines (the notebook shows them).  ``counts``
    (updated in place): ``sent`` (requests submitted now), ``attempts``, ``ok``, ``failed`` and ``batches``.
    """
    counts = Counter() if counts is None else counts
    say = say or (lambda line: None)
    batches = _BatchRun(backend, tasks, cache, counts, say)
    start = time.perf_counter()
    failure = None
    try:
        run_in_thread(batches.run())
    except openai.APIError as exc:  # the files or batches API refused: stop, with the key kept out of the message
        failure = BatchAPIError(redact(f"Batch API request failed ({type(exc).__name__}): {exc}", backend._api_key))
    if failure is not None:
        raise failure  # raised outside the handler, so the original exception (and its text) is not chained
    if counts["batches"]:
        say(f"judge: {counts['batches']} batch(es) collected in {time.perf_counter() - start:,.0f} s: "
            f"{counts['ok']:,} ok, {counts['failed']:,} failed")
    return counts


__all__ = ["BatchAPIError", "batch_errors", "batch_line", "parse_output_line", "run_batch", "split_batches"]
