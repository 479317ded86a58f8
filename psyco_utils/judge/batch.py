"""Batch API mode for paper-scale judging (chapter 02 "Judging", paper profile): build the JSONL of the uncached
requests, upload it through the files API, create a batch, poll it, download the output and error files, and write
every outcome into the same SQLite cache as the online path, so a notebook re-run after a batch sends nothing.

* Requests are split into batches of at most 50,000 lines and about 190 MB, the provider's limits.
* Each submitted batch is recorded in the cache with the keys it answers before any waiting starts: a run that is
  killed or interrupted while a batch is pending picks the same batch up on its re-run instead of paying twice.
* Lines the batch answered with an error, answers that fail validation (malformed, truncated, refused) and requests
  the batch never answered (failed, expired or cancelled batches) are recorded as failed with their reason.  They
  are not retried inside the batch; ``retry_failed=True`` on a later call submits them again.
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
from .openai_backend import BATCH_ERROR, InvalidAnswer, extract, redact, run_in_thread

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
    file."""
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
        message = error.get("message", "") if isinstance(error, dict) else str(error)
        detail = redact(f"HTTP {status_code}: {message}", backend._api_key)[:200]
        return {"status": "failed", "reason": BATCH_ERROR, "error": f"{BATCH_ERROR}: {detail}", "cost_usd": cost,
                **tokens}
    try:
        choices = [((c.get("message") or {}).get("content"), c.get("finish_reason"),
                    (c.get("message") or {}).get("refusal")) for c in body.get("choices") or []]
        result = extract(kind, choices, labels)
    except InvalidAnswer as exc:
        return {"status": "failed", "reason": exc.reason, "error": f"{exc} (batch)", "cost_usd": cost, **tokens}
    return {"status": "ok", "result": result, "cost_usd": cost, **tokens}


def run_batch(backend, kind: str, requests: list[tuple[str, dict]], cache: JudgmentCache,
              labels: list[str] | None = None, say=print) -> Counter:
    """Judge ``requests`` (cache key, request body) through the Batch API and write every outcome to ``cache``.

    Pending batches from an earlier, interrupted run that cover some of these keys are collected rather than
    submitted again.  ``say`` prints the submission and progress lines (the notebook shows them).  Returns counts:
    ``sent`` (requests submitted now), ``attempts``, ``ok``, ``failed`` and ``batches``.
    """
    config = backend.config
    model = config.model
    wanted = {key for key, _ in requests}
    resumed = [b for b in cache.pending_batches(model, kind) if wanted.intersection(b["keys"])]
    covered = set().union(*(set(b["keys"]) for b in resumed)) if resumed else set()
    fresh = [(key, batch_line(key, body)) for key, body in requests if key not in covered]
    chunks = split_batches(fresh)
    counts: Counter = Counter()
    for b in resumed:
        say(f"judge: resuming batch {b['id']} ({len(b['keys']):,} {kind} requests, submitted earlier)")

    async def submit_and_collect():
        client = backend.client()
        try:
            ids = {b["id"]: b["keys"] for b in resumed}
            for i, chunk in enumerate(chunks):
                data = ("\n".join(line for _, line in chunk) + "\n").encode("utf-8")
                upload = await client.files.create(file=(f"psycopref-{kind}-{i}.jsonl", data, "application/jsonl"),
                                                   purpose="batch")
                batch = await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                                    completion_window="24h",
                                                    metadata={"project": "psycopref-book", "kind": kind})
                keys = [key for key, _ in chunk]
                cache.add_batch(batch.id, model, kind, keys, batch.status)
                ids[batch.id] = keys
                counts["sent"] += len(chunk)
                counts["attempts"] += len(chunk)
                say(f"judge: submitted batch {batch.id} with {len(chunk):,} {kind} requests to {model}")
            counts["batches"] = len(ids)
            remaining, last_seen = set(ids), {}
            while remaining:
                for batch_id in sorted(remaining):
                    batch = await client.batches.retrieve(batch_id)
                    counts_now = getattr(batch, "request_counts", None)
                    seen = (batch.status, getattr(counts_now, "completed", None), getattr(counts_now, "failed", None))
                    if seen != last_seen.get(batch_id):
                        last_seen[batch_id] = seen
                        done = f": {seen[1]:,}/{counts_now.total:,} done, {seen[2]:,} failed" if counts_now else ""
                        say(f"judge: batch {batch_id} {batch.status}{done}")
                    if batch.status in TERMINAL:
                        await collect(client, batch, ids[batch_id])
                        remaining.discard(batch_id)
                if remaining:
                    await asyncio.sleep(config.batch_poll_s)
        finally:
            await client.close()

    async def collect(client, batch, keys: list[str]) -> None:
        answered: set[str] = set()
        expected = set(keys)
        rows: list[tuple[str, dict]] = []
        for file_id in (getattr(batch, "output_file_id", None), getattr(batch, "error_file_id", None)):
            if not file_id:
                continue
            content = await client.files.content(file_id)
            for line in content.text.splitlines():
                if not line.strip():
                    continue
                record = json.loads(line)
                key = record.get("custom_id")
                if key not in expected or key in answered:
                    continue
                answered.add(key)
                fields = parse_output_line(backend, kind, record, labels)
                rows.append((key, {"backend": "openai", "model": model, "kind": kind, **fields}))
                counts[fields["status"]] += 1
                if len(rows) >= 500:
                    cache.put_many(rows)
                    rows = []
        missing = [key for key in keys if key not in answered]
        for key in missing:
            rows.append((key, {"backend": "openai", "model": model, "kind": kind, "status": "failed",
                               "reason": BATCH_ERROR, "attempts": 1,
                               "error": f"{BATCH_ERROR}: batch {batch.id} ended {batch.status} without an answer"}))
        counts["failed"] += len(missing)
        cache.put_many(rows)
        cache.finish_batch(batch.id, batch.status)
        log.info("batch %s (%s): %d answered, %d without an answer", batch.id, batch.status, len(answered),
                 len(missing))

    start = time.perf_counter()
    failure = None
    try:
        run_in_thread(submit_and_collect())
    except openai.APIError as exc:  # the files or batches API refused: stop, with the key kept out of the message
        failure = BatchAPIError(redact(f"Batch API request failed ({type(exc).__name__}): {exc}", backend._api_key))
    if failure is not None:
        raise failure  # raised outside the handler, so the original exception (and its text) is not chained
    if counts["batches"]:
        say(f"judge: {counts['batches']} batch(es) collected in {time.perf_counter() - start:,.0f} s: "
            f"{counts['ok']:,} ok, {counts['failed']:,} failed")
    return counts


__all__ = ["BatchAPIError", "batch_line", "parse_output_line", "run_batch", "split_batches"]
