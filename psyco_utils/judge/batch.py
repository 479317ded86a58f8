"""Batch API mode for paper-scale judging: build the JSONL of uncached requests, submit, poll, collect.

Results fill the same SQLite cache as the online path, so a notebook re-run after a batch sends nothing.  Lines the
batch could not answer, and answers that fail validation, are recorded as failed with their reason.
"""

from __future__ import annotations

import json


from .cache import JudgmentCache
from .openai_backend import InvalidAnswer, _bytes_file, batch_request_line, redact, run_in_thread

TERMINAL = {"completed", "failed", "expired", "cancelled"}


def run_batch(backend, kind: str, requests: list[tuple[str, list[dict]]], cache: JudgmentCache, labels=None,
              log=print) -> dict:
    """Submit ``requests`` as one batch, wait for it, and write every outcome to ``cache``; returns the batch record."""
    config = backend.config
    params = backend.params(kind, labels)
    lines = [batch_request_line(key, config.model, messages, params, backend.response_format(kind, labels))
             for key, messages in requests]

    async def submit_and_collect():
        client = backend.client()
        try:
            upload = await client.files.create(file=_bytes_file(f"psycopref-{kind}.jsonl", lines), purpose="batch")
            batch = await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                                completion_window="24h",
                                                metadata={"project": "psycopref-book", "kind": kind})
            log(f"judge: batch {batch.id} submitted with {len(lines):,} {kind} requests")
            while batch.status not in TERMINAL:
                await _sleep(config.batch_poll_s)
                batch = await client.batches.retrieve(batch.id)
                counts = getattr(batch, "request_counts", None)
                if counts is not None:
                    log(f"judge: batch {batch.id} {batch.status}: {counts.completed}/{counts.total} done, "
                        f"{counts.failed} failed")
            outputs = []
            for file_id in (batch.output_file_id, batch.error_file_id):
                if file_id:
                    content = await client.files.content(file_id)
                    outputs.append(content.text if hasattr(content, "text") else content.read().decode())
            return batch, outputs
        finally:
            await client.close()

    batch, outputs = run_in_thread(submit_and_collect())
    answered = set()
    for text in outputs:
        for line in text.splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            key = record["custom_id"]
            answered.add(key)
            response = record.get("response") or {}
            body = response.get("body") or {}
            usage = body.get("usage") or {}
            tokens = {"prompt_tokens": usage.get("prompt_tokens", 0) or 0,
                      "completion_tokens": usage.get("completion_tokens", 0) or 0,
                      "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0) or 0}
            # Batch API requests cost half the online price.
            cost = backend.cost(**tokens) / 2
            if record.get("error") or response.get("status_code", 200) != 200:
                error = record.get("error") or body.get("error") or {}
                reason = f"batch: HTTP {response.get('status_code', '?')}: {error.get('message', error) if isinstance(error, dict) else error}"
                cache.put(key, backend="openai", model=config.model, kind=kind, status="failed",
                          error=redact(str(reason)[:200], backend._api_key), cost_usd=cost, **tokens)
                continue
            choice = body["choices"][0]
            try:
                result = backend.parse(kind, choice["message"].get("content"), choice.get("finish_reason"),
                                       choice["message"].get("refusal"), labels)
                cache.put(key, backend="openai", model=config.model, kind=kind, status="ok", result=result,
                          cost_usd=cost, **tokens)
            except InvalidAnswer as exc:
                cache.put(key, backend="openai", model=config.model, kind=kind, status="failed",
                          error=f"batch: {exc}", cost_usd=cost, **tokens)
    for key, _ in requests:
        if key not in answered:
            cache.put(key, backend="openai", model=config.model, kind=kind, status="failed",
                      error=f"batch {batch.id} ended {batch.status} without an answer for this request")
    return {"id": batch.id, "status": batch.status, "requests": len(requests), "answered": len(answered)}


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


__all__ = ["run_batch"]
