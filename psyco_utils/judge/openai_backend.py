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
import logging
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..principles import rubric_text
from .batch import run_batch
from .cache import JudgmentCache, cache_key
from .config import JudgeConfig
from .progress import Progress
from .schemas import COMPARE_FORMAT, SCORE_FORMAT, CompareItem, ScoreItem, label_format
from .transport import (CONNECTION_ERROR, HTTP_ERROR, INTERRUPTED, INVALID_ANSWER, RATE_LIMITED, SERVER_ERROR,
                        TIMEOUT, UNEXPECTED, EndpointDown, InvalidAnswer, Outage, Task, extract, needs_request, redact,
                        resolve, run_in_thread)

log = logging.getLogger(__name__)

SCORE_TASK = (
    "Task: rate the RESPONSE to the CLIENT STATEMENT on each of the seven principles above. First write a short "
    "rationale (two or three sentences), then give each principle an integer from 1 to 5. Answer only with the JSON "
    "object requested."
)
#: The compare task's instruction about length, said only when ``judge.length_instructions`` is true.
LENGTH_INSTRUCTION = " do not prefer a response for being longer."
COMPARE_TASK_TEMPLATE = (
    "Task: compare RESPONSE A and RESPONSE B to the CLIENT STATEMENT on each of the seven principles above and "
    "overall. For each, answer A, B or tie. The order in which the responses are shown is arbitrary and must not "
    "influence you{length} First write a short rationale (two or three sentences). Answer only with the JSON object "
    "requested."
)
COMPARE_TASK = COMPARE_TASK_TEMPLATE.format(length=";" + LENGTH_INSTRUCTION)


def compare_task(length_instructions: bool = True) -> str:
    """The compare task, with or without the instruction not to prefer a longer response."""
    return COMPARE_TASK if length_instructions else COMPARE_TASK_TEMPLATE.format(length=".")

#: Version of the chat client's cache keys (pool and reference responses do not depend on the judge's prompt).
CHAT_VERSION = "chat-v1"

_RETRY_STATUS = {408, 409, 429}  # and every 5xx, as the openai client's own retry policy does
_MAX_RETRY_AFTER_S = 300.0

@dataclass
class Tally:
    """One judgment's requests so far and the tokens their answers reported."""

    attempts: int = 0
    usage: dict = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0})

    def fields(self, status: str, backend: OpenAIBackend, **extra) -> dict:
        """The cache fields of the outcome: ``extra`` (result, or error and reason), attempts, tokens and cost."""
        return {"status": status, **extra, "attempts": self.attempts, "cost_usd": backend.cost(**self.usage),
                **self.usage}

    def interrupted(self, backend: OpenAIBackend) -> dict:
        return self.fields("failed", backend, reason=INTERRUPTED,
                           error=f"{INTERRUPTED}: the run stopped before this judgment was answered "
                                 f"({self.attempts} request{'s' if self.attempts != 1 else ''} sent)")


class OpenAIBackend:
    """Requests to an OpenAI-compatible chat-completions endpoint; every outcome goes straight into the cache."""

    def __init__(self, config: JudgeConfig):
        self.config = config
        self._api_key = os.environ.get(config.api_key_env)  # checked only when a request is to be sent

    def __repr__(self) -> str:  # never the key
        return f"OpenAIBackend(model={self.config.model!r}, base_url={self.config.base_url!r})"

    # ------------------------------------------------------------------ prompts and request bodies

    def score_messages(self, item: ScoreItem) -> list[dict]:
        """The score request; the rubric's length guidance only when ``judge.length_instructions`` is true (the
        messages enter the cache key, so the two settings are different judgments)."""
        return [{"role": "system", "content": rubric_text(self.config.length_instructions) + "\n\n" + SCORE_TASK},
                {"role": "user", "content": f"CLIENT STATEMENT:\n{item.statement}\n\nRESPONSE:\n{item.response}"}]

    def compare_messages(self, item: CompareItem) -> list[dict]:
        """The compare request, with the length guidance and instruction only when ``judge.length_instructions``."""
        length = self.config.length_instructions
        return [{"role": "system", "content": rubric_text(length) + "\n\n" + compare_task(length)},
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

    def require_key(self) -> str:
        """The API key, read from the environment only when a request is about to be sent (a fully cached re-run
        needs none)."""
        key = os.environ.get(self.config.api_key_env)
        if not key:
            raise RuntimeError(
                f"judge backend 'openai' needs an API key in the environment variable {self.config.api_key_env} "
                "(for a local vLLM or Ollama server any non-empty value works, with OPENAI_BASE_URL or judge.base_url "
                "pointing at the server)")
        self._api_key = key
        return key

    def client(self, base_url: str | None = None):
        """An ``AsyncOpenAI`` client; with no base URL here or in the config, the client reads OPENAI_BASE_URL."""
        from openai import AsyncOpenAI

        return AsyncOpenAI(api_key=self.require_key(), base_url=base_url or self.config.base_url,
                           timeout=self.config.timeout_s, max_retries=0)

    def run(self, tasks: list[Task], cache: JudgmentCache, progress: bool = True, base_url: str | None = None,
            counts: Counter | None = None) -> Counter:
        """Send every task's requests (cache key, request body) together; each outcome is written to ``cache`` as
        it completes.

        ``counts`` (updated in place, so a stopped run still accounts for what it sent): ``sent`` (judgments),
        ``attempts`` (HTTP requests, those in flight at a stop included), ``ok`` and ``failed``.  Score and compare
        tasks go through the Batch API when the config asks for it, each task its own batch, all in flight at once.
        Raises :class:`EndpointDown` after ``stop_after_consecutive_errors`` connection or server errors in a row.
        """
        counts = Counter() if counts is None else counts
        tasks = [t for t in tasks if t.requests]
        if not tasks:
            return counts
        self.require_key()
        if self.config.use_batch_api and all(t.kind in ("score", "compare") for t in tasks):
            return run_batch(self, tasks, cache, counts)
        run_in_thread(self._run_async(tasks, cache, progress, base_url, counts))
        return counts

    async def _run_async(self, tasks: list[Task], cache: JudgmentCache, progress: bool, base_url: str | None,
                         counts: Counter) -> None:
        client = self.client(base_url)
        semaphore = asyncio.Semaphore(self.config.concurrency)
        outage = Outage(self.config.stop_after_consecutive_errors, redact(str(client.base_url), self._api_key))
        total = sum(len(t.requests) for t in tasks)
        bar = tqdm(total=total, desc=f"{self.config.model} {', '.join(t.name for t in tasks)}",
                   disable=not progress, mininterval=1.0)
        trackers = {t.name: Progress(t.name, len(t.requests)) for t in tasks}
        failed_before, sent_before = counts["failed"], counts["sent"]

        async def one(task: Task, key: str, body: dict) -> None:
            tally = Tally()
            try:
                async with semaphore:
                    outcome = await self.request_with_retries(client, task.kind, body, task.labels, tally, counts,
                                                              outage)
            except (asyncio.CancelledError, EndpointDown):
                if tally.attempts:  # sent, and stopped before its answer was recorded: counted, and retried later
                    cache.put(key, backend="openai", model=body["model"], kind=task.kind, **tally.interrupted(self))
                    counts["failed"] += 1
                    trackers[task.name].add("failed", self.cost(**tally.usage))
                raise
            cache.put(key, backend="openai", model=body["model"], kind=task.kind, **outcome)
            counts[outcome["status"]] += 1
            trackers[task.name].add(outcome["status"], outcome["cost_usd"])
            bar.update(1)

        jobs = [asyncio.ensure_future(one(t, key, body)) for t in tasks for key, body in t.requests]
        try:
            done, pending = await asyncio.wait(jobs, return_when=asyncio.FIRST_EXCEPTION)
            for job in pending:
                job.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for job in done:
                if job.exception() is not None:
                    raise job.exception()
        finally:
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
            for tracker in trackers.values():
                tracker.finish()
            bar.close()
            await client.close()
        if counts["failed"] > failed_before:
            log.warning("%s: %d of %d requests failed (reasons in the cache and in usage())", self.config.model,
                        counts["failed"] - failed_before, counts["sent"] - sent_before)

    async def request_with_retries(self, client, kind: str, body: dict, labels: list[str] | None = None,
                                   tally: Tally | None = None, counts: Counter | None = None,
                                   outage: Outage | None = None) -> dict:
        """One judgment, retried as configured; returns the cache fields (status, result or error and reason,
        attempts, tokens, cost summed over the attempts).  ``tally`` holds the attempts and tokens so far (for a
        stop in flight); ``counts`` is told of every request as it is sent; ``outage`` of every connection or server
        error, and raises :class:`EndpointDown` when there have been too many in a row."""
        import openai

        c = self.config
        tally = Tally() if tally is None else tally
        counts = Counter() if counts is None else counts
        outage = Outage(c.stop_after_consecutive_errors, str(client.base_url)) if outage is None else outage
        transient = invalid = 0

        def failed(reason: str, detail: str) -> dict:
            return tally.fields("failed", self, reason=reason,
                                error=redact(f"{reason}: {detail}", self._api_key)[:300])

        while True:
            try:
                tally.attempts += 1
                counts["attempts"] += 1
                counts["sent"] += tally.attempts == 1
                response = await client.chat.completions.create(**body)
                _add_usage(tally.usage, getattr(response, "usage", None))
                outage.answered()
                return tally.fields("ok", self, result=extract(kind, _choices(response), labels))
            except InvalidAnswer as exc:
                if invalid >= c.max_invalid_retries:
                    return failed(exc.reason, f"{exc.detail or 'unusable answer'} (after {invalid + 1} answers)")
                invalid += 1
                log.debug("invalid answer, asking again: %s", exc)
            except openai.APIConnectionError as exc:  # timeouts included (APITimeoutError is a subclass)
                timed_out = isinstance(exc, openai.APITimeoutError)
                detail = (f"no answer within {c.timeout_s:g} s" if timed_out
                          else redact(str(exc), self._api_key)[:120])
                outage.failed(f"{TIMEOUT if timed_out else CONNECTION_ERROR}: {detail}")
                if transient >= c.max_retries:
                    return failed(TIMEOUT if timed_out else CONNECTION_ERROR, f"{detail}, retries exhausted")
                transient += 1
                await asyncio.sleep(self._backoff(transient))
            except openai.APIStatusError as exc:
                status = exc.status_code
                retryable = status in _RETRY_STATUS or status >= 500
                message = redact(str(getattr(exc, "message", "") or exc), self._api_key)[:160]
                if status >= 500:
                    outage.failed(f"{SERVER_ERROR}: HTTP {status}: {message}")
                else:
                    outage.answered()
                if not retryable or transient >= c.max_retries:
                    reason = RATE_LIMITED if status == 429 else SERVER_ERROR if status >= 500 else HTTP_ERROR
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


def _choices(response) -> list[tuple]:
    """(content, finish_reason, refusal) of each choice of a chat answer."""
    try:
        return [(ch.message.content, ch.finish_reason, getattr(ch.message, "refusal", None))
                for ch in response.choices or []]
    except AttributeError as exc:
        raise InvalidAnswer(INVALID_ANSWER, f"unexpected answer shape ({exc})") from None


def _add_usage(usage: dict, reported) -> None:
    if reported is None:
        return
    usage["prompt_tokens"] += getattr(reported, "prompt_tokens", 0) or 0
    usage["completion_tokens"] += getattr(reported, "completion_tokens", 0) or 0
    details = getattr(reported, "prompt_tokens_details", None)
    usage["cached_tokens"] += (getattr(details, "cached_tokens", 0) or 0) if details is not None else 0


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
                      progress: bool = True, retry_failed: bool | None = None) -> list:
        """One completion per message list, cached; None where the request failed (the reason is in the cache).

        With ``n > 1`` each entry is the list of the ``n`` completions (or None).  ``model`` and ``base_url``
        default to the config's (another model behind another server, for pool generators); identical requests
        are sent once.  A request that failed before is sent again unless ``retry_failed`` (default: the config's
        ``retry_failed``) is false.
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
        requests = [(cache_key("openai", model, CHAT_VERSION, "chat", m, key_params),
                     {"model": model, "messages": m, **params}) for m in messages_list]
        keys = [key for key, _ in requests]
        retry_failed = self.config.retry_failed if retry_failed is None else retry_failed
        rows, _ = resolve(self.cache, [Task(f"chat completions ({model})", "chat", requests)], retry_failed,
                          self.counts, lambda todo: self.backend.run(todo, self.cache, progress, base_url=base_url,
                                                                     counts=self.counts), what="completions")
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


__all__ = ["CachedChatClient", "OpenAIBackend", "SCORE_TASK", "COMPARE_TASK", "LENGTH_INSTRUCTION", "compare_task",
           "CHAT_VERSION",
           # re-exported from .transport, where they live:
           "EndpointDown", "InvalidAnswer", "Task", "extract", "needs_request", "redact", "run_in_thread"]
