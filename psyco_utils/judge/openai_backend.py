"""The OpenAI-compatible backend: GPT-4o, gpt-4o-mini, or any base URL (vLLM, Ollama) through the ``openai`` client.

* Structured outputs: each operation asks for a strict JSON schema built from its pydantic answer model
  (:mod:`psyco_utils.judge.schemas`), and the same model validates the answer.
* Bounded async concurrency (one semaphore), a timeout per request, and retries with exponential backoff and jitter
  on HTTP 429 (honouring Retry-After), 408, 409, 5xx, timeouts and dropped connections; the client's own retries are
  switched off so that every attempt is counted here.
* An answer that arrives but cannot be used (malformed JSON, a missing field, a score out of range, a truncated answer
  with finish_reason "length", a refusal, an empty answer) is asked again at most ``max_invalid_retries`` times, then
  recorded as failed with its reason.  Any other error is recorded as failed too: no judgment is silently dropped.
* The fixed rubric opens every system prompt, so provider prompt caching applies; prompt, completion and cached
  tokens and the cost of every attempt are written to the cache with the result, as soon as it completes.
* The API key is read from the environment variable named in the config and handed only to the client: it is never
  logged, cached, or left in an error message (:func:`redact`).

The async machinery runs on a worker thread (:func:`run_in_thread`), so the sync API works the same in a script and
in a Jupyter kernel, whose own event loop is already running.  Chapter 02 "Judging" scores and compares through it,
chapter 01 labels themes and generates pool responses, chapter 06 compares policies and fetches reference responses.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path

from pydantic import ValidationError
from tqdm.auto import tqdm

from ..principles import rubric_text
from .cache import JudgmentCache, cache_key
from .config import JudgeConfig
from .schemas import (COMPARE_FORMAT, SCORE_FORMAT, CompareItem, PrincipleScores, PrincipleVerdicts, ScoreItem,
                      label_format)

log = logging.getLogger(__name__)

SCORE_TASK = (
    "Task: rate the RESPONSE to the CLIENT STATEMENT on each of the seven principles above. First write a short "
    "rationale (two or three sentences), then give each principle an integer from 1 to 5. Answer only with the JSON "
    "object requested."
)
COMPARE_TASK = (
    "Task: compare RESPONSE A and RESPONSE B to the CLIENT STATEMENT on each of the seven principles above and "
    "overall. For each, answer A, B or tie. The order in which the responses are shown is arbitrary and must not "
    "influence you; do not prefer a response for being longer. First write a short rationale (two or three "
    "sentences). Answer only with the JSON object requested."
)

#: Version of the chat client's cache keys (pool and reference responses do not depend on the judge's prompt).
CHAT_VERSION = "chat-v1"

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
UNEXPECTED = "unexpected error"

_RETRY_STATUS = {408, 409, 429}  # and every 5xx, as the openai client's own retry policy does
_MAX_RETRY_AFTER_S = 300.0


class InvalidAnswer(Exception):
    """An answer that arrived but cannot be used; ``reason`` is one of the reasons above."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


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
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        raise InvalidAnswer(INVALID_ANSWER, f"{where}: {first['msg']}") from None


class OpenAIBackend:
    """Requests to an OpenAI-compatible chat-completions endpoint; every outcome goes straight into the cache."""

    def __init__(self, config: JudgeConfig):
        self.config = config
        self._api_key = os.environ.get(config.api_key_env)
        if not self._api_key:
            raise RuntimeError(
                f"judge backend 'openai' needs an API key in the environment variable {config.api_key_env} "
                "(for a local vLLM or Ollama server any non-empty value works, with OPENAI_BASE_URL or judge.base_url "
                "pointing at the server)")

    def __repr__(self) -> str:  # never the key
        return f"OpenAIBackend(model={self.config.model!r}, base_url={self.config.base_url!r})"

    # ------------------------------------------------------------------ prompts and request bodies

    @staticmethod
    def score_messages(item: ScoreItem) -> list[dict]:
        return [{"role": "system", "content": rubric_text() + "\n\n" + SCORE_TASK},
                {"role": "user", "content": f"CLIENT STATEMENT:\n{item.statement}\n\nRESPONSE:\n{item.response}"}]

    @staticmethod
    def compare_messages(item: CompareItem) -> list[dict]:
        return [{"role": "system", "content": rubric_text() + "\n\n" + COMPARE_TASK},
                {"role": "user", "content": f"CLIENT STATEMENT:\n{item.statement}\n\nRESPONSE A:\n{item.response_a}"
                                            f"\n\nRESPONSE B:\n{item.response_b}"}]

    @staticmethod
    def classify_messages(text: str, labels: list[str], instructions: str) -> list[dict]:
        return [{"role": "system", "content": instructions.strip() + "\n\nAnswer with exactly one label from: "
                                               + ", ".join(labels) + "."},
                {"role": "user", "content": text}]

    def response_format(self, kind: str, labels: list[str] | None = None) -> dict | None:
        if kind == "score":
            return SCORE_FORMAT
        if kind == "compare":
            return COMPARE_FORMAT
        if kind == "classify":
            return label_format(labels or [])
        return None

    def params(self, kind: str, labels: list[str] | None = None) -> dict:
        """The request parameters that enter the cache key (the schema too, so a changed schema is a new key)."""
        params = {"temperature": self.config.temperature, "max_tokens": self.config.max_output_tokens}
        fmt = self.response_format(kind, labels)
        if fmt is not None:
            params["response_format"] = fmt
        return params

    def body(self, kind: str, messages: list[dict], labels: list[str] | None = None, model: str | None = None,
             params: dict | None = None) -> dict:
        """The chat-completions request body, as sent online and as written into a Batch API input line."""
        return {"model": model or self.config.model, "messages": messages,
                **(params if params is not None else self.params(kind, labels))}

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int, batch: bool = False) -> float:
        """US dollars for one attempt at the configured prices (the Batch API costs half)."""
        c = self.config
        dollars = ((prompt_tokens - cached_tokens) * c.price_input_per_mtok
                   + cached_tokens * c.price_cached_input_per_mtok + completion_tokens * c.price_output_per_mtok) / 1e6
        return dollars / 2 if batch else dollars

    # ------------------------------------------------------------------ running

    def client(self, base_url: str | None = None):
        """An ``AsyncOpenAI`` client; with no base URL here or in the config, the client reads OPENAI_BASE_URL."""
        from openai import AsyncOpenAI

        return AsyncOpenAI(api_key=self._api_key, base_url=base_url or self.config.base_url,
                           timeout=self.config.timeout_s, max_retries=0)

    def run(self, kind: str, requests: list[tuple[str, dict]], cache: JudgmentCache, progress: bool = True,
            labels: list[str] | None = None, base_url: str | None = None) -> Counter:
        """Send ``requests`` (cache key, request body); every outcome is written to ``cache`` as it completes.

        Returns counts of this run: ``sent`` (judgments), ``attempts`` (HTTP requests), ``ok`` and ``failed``.
        Score and compare requests go through the Batch API when the config asks for it.
        """
        if self.config.use_batch_api and kind in ("score", "compare"):
            from .batch import run_batch

            return run_batch(self, kind, requests, cache, labels=labels)
        return run_in_thread(self._run_async(kind, requests, cache, progress, labels, base_url))

    async def _run_async(self, kind, requests, cache, progress, labels, base_url) -> Counter:
        counts: Counter = Counter()
        if not requests:
            return counts
        client = self.client(base_url)
        semaphore = asyncio.Semaphore(self.config.concurrency)
        model = requests[0][1]["model"]
        bar = tqdm(total=len(requests), desc=f"{model} {kind}", disable=not progress, mininterval=1.0)

        async def one(key: str, body: dict) -> None:
            async with semaphore:
                outcome = await self.request_with_retries(client, kind, body, labels)
            cache.put(key, backend="openai", model=body["model"], kind=kind, **outcome)
            counts["sent"] += 1
            counts["attempts"] += outcome["attempts"]
            counts[outcome["status"]] += 1
            bar.update(1)

        try:
            await asyncio.gather(*(one(key, body) for key, body in requests))
        finally:
            bar.close()
            await client.close()
        if counts["failed"]:
            log.warning("%s %s: %d of %d requests failed (reasons in the cache and in usage())", model, kind,
                        counts["failed"], counts["sent"])
        return counts

    async def request_with_retries(self, client, kind: str, body: dict, labels: list[str] | None = None) -> dict:
        """One judgment, retried as configured; returns the cache fields (status, result or error and reason,
        attempts, tokens, cost summed over the attempts)."""
        import openai

        c = self.config
        transient = invalid = 0
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0}

        def failed(reason: str, detail: str) -> dict:
            return {"status": "failed", "reason": reason, "attempts": transient + invalid + 1,
                    "error": redact(f"{reason}: {detail}", self._api_key)[:300], "cost_usd": self.cost(**usage),
                    **usage}

        while True:
            try:
                response = await client.chat.completions.create(**body)
                _add_usage(usage, getattr(response, "usage", None))
                try:
                    choices = [(ch.message.content, ch.finish_reason, getattr(ch.message, "refusal", None))
                               for ch in response.choices or []]
                except AttributeError as exc:
                    raise InvalidAnswer(INVALID_ANSWER, f"unexpected answer shape ({exc})") from None
                result = extract(kind, choices, labels)
                return {"status": "ok", "result": result, "attempts": transient + invalid + 1,
                        "cost_usd": self.cost(**usage), **usage}
            except InvalidAnswer as exc:
                if invalid >= c.max_invalid_retries:
                    return failed(exc.reason, f"{exc} (after {invalid + 1} answers)")
                invalid += 1
                log.debug("invalid answer, asking again: %s", exc)
            except openai.APITimeoutError:
                if transient >= c.max_retries:
                    return failed(TIMEOUT, f"no answer within {c.timeout_s:g} s, retries exhausted")
                transient += 1
                await asyncio.sleep(self._backoff(transient))
            except openai.APIConnectionError as exc:
                if transient >= c.max_retries:
                    return failed(CONNECTION_ERROR, f"{redact(str(exc), self._api_key)[:120]}, retries exhausted")
                transient += 1
                await asyncio.sleep(self._backoff(transient))
            except openai.APIStatusError as exc:
                status = exc.status_code
                retryable = status in _RETRY_STATUS or status >= 500
                if not retryable or transient >= c.max_retries:
                    reason = RATE_LIMITED if status == 429 else SERVER_ERROR if status >= 500 else HTTP_ERROR
                    message = redact(str(getattr(exc, "message", "") or exc), self._api_key)[:160]
                    suffix = ", retries exhausted" if retryable else ""
                    return failed(reason, f"HTTP {status}{suffix}: {message}")
                transient += 1
                wait = self._retry_after(exc)
                log.debug("HTTP %d, waiting %.2f s before attempt %d", status, wait or 0, transient + invalid + 1)
                await asyncio.sleep(wait if wait is not None else self._backoff(transient))
            except openai.OpenAIError as exc:
                return failed(UNEXPECTED, f"{type(exc).__name__}: {redact(str(exc), self._api_key)[:160]}")

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter around the nominal delay (0.5x to 1.5x)."""
        c = self.config
        return min(c.backoff_max_s, c.backoff_base_s * 2 ** (attempt - 1)) * (0.5 + random.random())

    @staticmethod
    def _retry_after(exc) -> float | None:
        """The server's Retry-After (seconds, or an HTTP date) or retry-after-ms, within reason; None if absent."""
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None) or {}
        try:
            if headers.get("retry-after-ms") is not None:
                return min(_MAX_RETRY_AFTER_S, max(0.0, float(headers["retry-after-ms"]) / 1000))
            value = headers.get("retry-after")
            if value is None:
                return None
            try:
                seconds = float(value)
            except ValueError:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            return min(_MAX_RETRY_AFTER_S, max(0.0, seconds))
        except (TypeError, ValueError, OverflowError):
            return None


def _add_usage(usage: dict, reported) -> None:
    if reported is None:
        return
    usage["prompt_tokens"] += getattr(reported, "prompt_tokens", 0) or 0
    usage["completion_tokens"] += getattr(reported, "completion_tokens", 0) or 0
    details = getattr(reported, "prompt_tokens_details", None)
    usage["cached_tokens"] += (getattr(details, "cached_tokens", 0) or 0) if details is not None else 0


def run_in_thread(coro):
    """Run a coroutine to completion in its own event loop on a worker thread and return its value.

    Jupyter already runs an event loop in the main thread, so ``asyncio.run`` cannot be called there.  An interrupt
    (Ctrl-C, or the notebook's stop button) cancels the coroutine's tasks; what completed is already in the cache.
    """
    outcome: dict = {}
    ready = threading.Event()
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

    thread = threading.Thread(target=target, name="psyco-judge", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
    except KeyboardInterrupt:
        ready.wait()
        if "loop" in holder:
            holder["loop"].call_soon_threadsafe(holder["task"].cancel)
        thread.join()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


class CachedChatClient:
    """Plain chat completions (pool responses, reference responses) through the same cache and retry logic.

    Made by :func:`psyco_utils.judge.make_chat_client` (chapters 01 and 06).
    """

    def __init__(self, config: JudgeConfig, cache_path: str | Path):
        self.config = config
        self.backend = OpenAIBackend(config)
        self.cache = JudgmentCache(cache_path)
        self.counts: Counter = Counter()

    def complete_many(self, messages_list: list[list[dict]], max_tokens: int = 512, temperature: float = 0.7,
                      n: int = 1, seed: int | None = None, model: str | None = None, base_url: str | None = None,
                      progress: bool = True, retry_failed: bool = False) -> list:
        """One completion per message list, cached; None where the request failed (the reason is in the cache).

        With ``n > 1`` each entry is the list of the ``n`` completions (or None).  ``model`` and ``base_url``
        default to the config's (another model behind another server, for pool generators); identical requests
        are sent once.  A failed request is retried on a later call only with ``retry_failed=True``.
        Chapter 01 draws pool responses from API models with it, chapter 06 the reference responses; their cost is
        recorded at the config's prices.
        """
        model = model or self.config.model
        params = {"max_tokens": max_tokens, "temperature": temperature}
        if n != 1:
            params["n"] = n
        if seed is not None:
            params["seed"] = seed
        key_params = {**params, **({"base_url": base_url} if base_url else {})}
        keys = [cache_key("openai", model, CHAT_VERSION, "chat", m, key_params) for m in messages_list]
        rows = self.cache.get_many(keys)
        todo = [k for k in dict.fromkeys(keys)
                if k not in rows or (retry_failed and rows[k]["status"] == "failed")]
        self.counts["requested"] += len(keys)
        self.counts["cache_hits"] += sum(1 for k in keys if k not in set(todo))
        if todo:
            first = {k: i for i, k in reversed(list(enumerate(keys)))}
            requests = [(k, {"model": model, "messages": messages_list[first[k]], **params}) for k in todo]
            self.counts.update(self.backend.run("chat", requests, self.cache, progress=progress, base_url=base_url))
            rows = self.cache.get_many(keys)
        out = []
        for k in keys:
            row = rows[k]
            if row["status"] != "ok":
                out.append(None)
            else:
                texts = row["result"]["texts"]
                out.append(texts if n != 1 else texts[0])
        return out

    def close(self) -> None:
        """Close the cache's database connection (everything is already committed)."""
        self.cache.close()

    def usage(self) -> dict:
        """This client's requests and cache hits, and the cache's token and cost totals per model."""
        summary = self.cache.summary()
        return {"requested": self.counts["requested"], "cache_hits": self.counts["cache_hits"],
                "requests_sent": self.counts["sent"], "failed_now": self.counts["failed"],
                "per_model": summary["per_model"]}


__all__ = ["CachedChatClient", "InvalidAnswer", "OpenAIBackend", "extract", "redact", "run_in_thread"]
