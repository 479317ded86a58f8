"""The OpenAI-compatible backend: GPT-4o, gpt-4o-mini, or any base URL (vLLM, Ollama) through the ``openai`` client.

Structured outputs (a strict JSON schema per operation, parsed and validated with pydantic); bounded async
concurrency; a timeout per request; retries with exponential backoff and jitter on 429 (honouring Retry-After), 5xx,
timeouts and connection errors; an invalid, truncated or refused answer retried a bounded number of times and then
recorded as failed with its reason; the fixed rubric first in every prompt so provider prompt caching applies; tokens
and cost per request recorded in the cache; a Batch API mode for paper-scale runs that fills the same cache.

The API key is read from the environment variable named in the config and only handed to the client: it is never
logged, cached, or left in an error message (:func:`redact`).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import random
import threading
from pathlib import Path

from pydantic import ValidationError
from tqdm.auto import tqdm

from ..principles import PRINCIPLE_KEYS, PROMPT_VERSION, rubric_text
from .cache import JudgmentCache, cache_key
from .config import JudgeConfig
from .schemas import CompareItem, PrincipleScores, PrincipleVerdicts, ScoreItem, ThemeLabel

log = logging.getLogger(__name__)

SCORE_TASK = (
    "Task: rate the RESPONSE to the CLIENT STATEMENT on each of the seven principles above. First write a short "
    "rationale, then give each principle an integer from 1 to 5. Answer only with the JSON object requested."
)
COMPARE_TASK = (
    "Task: compare RESPONSE A and RESPONSE B to the CLIENT STATEMENT on each of the seven principles above and "
    "overall. For each, answer A, B or tie. The order in which the responses are shown is arbitrary and must not "
    "influence you; do not prefer a response for being longer. First write a short rationale. Answer only with the "
    "JSON object requested."
)


def _json_schema(name: str, properties: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": {
        "type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}}}


SCORE_FORMAT = _json_schema("principle_scores", {"rationale": {"type": "string"},
                                                 **{k: {"type": "integer", "enum": [1, 2, 3, 4, 5]} for k in PRINCIPLE_KEYS}})
COMPARE_FORMAT = _json_schema("principle_verdicts", {"rationale": {"type": "string"},
                                                     **{k: {"type": "string", "enum": ["A", "B", "tie"]}
                                                        for k in (*PRINCIPLE_KEYS, "overall")}})


def classify_format(labels: list[str]) -> dict:
    return _json_schema("label", {"label": {"type": "string", "enum": list(labels)}})


class InvalidAnswer(Exception):
    """An answer that arrived but cannot be used: malformed, incomplete, out of range, truncated or refused."""


def redact(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "[REDACTED]")
    return text


class OpenAIBackend:
    """Requests to an OpenAI-compatible chat-completions endpoint; results go straight into the cache."""

    def __init__(self, config: JudgeConfig):
        self.config = config
        self._api_key = os.environ.get(config.api_key_env)
        if not self._api_key:
            raise RuntimeError(
                f"judge backend 'openai' needs an API key in the environment variable {config.api_key_env} "
                "(for a local vLLM or Ollama server any non-empty value works, with OPENAI_BASE_URL or judge.base_url "
                "pointing at it)")

    # ------------------------------------------------------------------ prompts

    def score_messages(self, item: ScoreItem) -> list[dict]:
        return [{"role": "system", "content": rubric_text() + "\n\n" + SCORE_TASK},
                {"role": "user", "content": f"CLIENT STATEMENT:\n{item.statement}\n\nRESPONSE:\n{item.response}"}]

    def compare_messages(self, item: CompareItem) -> list[dict]:
        return [{"role": "system", "content": rubric_text() + "\n\n" + COMPARE_TASK},
                {"role": "user", "content": f"CLIENT STATEMENT:\n{item.statement}\n\nRESPONSE A:\n{item.response_a}"
                                            f"\n\nRESPONSE B:\n{item.response_b}"}]

    def classify_messages(self, text: str, labels: list[str], instructions: str) -> list[dict]:
        return [{"role": "system", "content": instructions + "\nAnswer with one label from: " + ", ".join(labels)},
                {"role": "user", "content": text}]

    def params(self, kind: str, labels: list[str] | None = None) -> dict:
        params = {"temperature": self.config.temperature, "max_tokens": self.config.max_output_tokens}
        if labels is not None:
            params["labels"] = list(labels)
        return params

    def response_format(self, kind: str, labels: list[str] | None = None) -> dict:
        return {"score": SCORE_FORMAT, "compare": COMPARE_FORMAT}.get(kind) or classify_format(labels or [])

    # ------------------------------------------------------------------ parsing

    @staticmethod
    def parse(kind: str, content: str | None, finish_reason: str | None, refusal: str | None,
              labels: list[str] | None = None) -> dict:
        if refusal:
            raise InvalidAnswer(f"refusal: {refusal[:80]}")
        if finish_reason == "length":
            raise InvalidAnswer("truncated answer (finish_reason=length)")
        if not content:
            raise InvalidAnswer("empty answer")
        model = {"score": PrincipleScores, "compare": PrincipleVerdicts, "classify": ThemeLabel}[kind]
        try:
            parsed = model.model_validate_json(content)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "answer"
            raise InvalidAnswer(f"invalid answer: {where}: {first['msg']}") from None
        result = parsed.model_dump()
        if kind == "classify" and labels and result["label"] not in labels:
            raise InvalidAnswer(f"invalid answer: label {result['label']!r} not among the labels")
        return result

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> float:
        c = self.config
        return ((prompt_tokens - cached_tokens) * c.price_input_per_mtok + cached_tokens * c.price_cached_input_per_mtok
                + completion_tokens * c.price_output_per_mtok) / 1e6

    # ------------------------------------------------------------------ running

    def client(self, base_url: str | None = None):
        from openai import AsyncOpenAI

        return AsyncOpenAI(api_key=self._api_key, base_url=base_url or self.config.base_url,
                           timeout=self.config.timeout_s, max_retries=0)

    def run(self, kind: str, requests: list[tuple[str, list[dict]]], cache: JudgmentCache, progress: bool = True,
            labels: list[str] | None = None) -> None:
        """Send ``requests`` (cache key, messages); every outcome is written to ``cache`` as it completes."""
        if self.config.use_batch_api and kind in ("score", "compare"):
            from .batch import run_batch

            run_batch(self, kind, requests, cache, labels)
            return
        run_in_thread(self._run_async(kind, requests, cache, progress, labels))

    async def _run_async(self, kind, requests, cache, progress, labels):
        client = self.client()
        semaphore = asyncio.Semaphore(self.config.concurrency)
        bar = tqdm(total=len(requests), desc=f"{self.config.model} {kind}", disable=not progress)

        async def one(key, messages):
            async with semaphore:
                outcome = await self.request_with_retries(client, kind, messages, labels)
            cache.put(key, backend="openai", model=self.config.model, kind=kind, **outcome)
            bar.update(1)

        try:
            await asyncio.gather(*(one(k, m) for k, m in requests))
        finally:
            bar.close()
            await client.close()

    async def request_with_retries(self, client, kind: str, messages: list[dict], labels=None,
                                   extra: dict | None = None) -> dict:
        """One judgment with retries; returns the cache fields (status, result or error, attempts, usage, cost)."""
        import openai

        c = self.config
        transient_attempts = invalid_attempts = 0
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0}
        while True:
            try:
                kwargs = {"model": c.model, "messages": messages, "temperature": c.temperature,
                          "max_tokens": c.max_output_tokens}
                if kind != "chat":
                    kwargs["response_format"] = self.response_format(kind, labels)
                kwargs.update(extra or {})
                response = await client.chat.completions.create(**kwargs)
                if response.usage is not None:
                    usage["prompt_tokens"] += response.usage.prompt_tokens or 0
                    usage["completion_tokens"] += response.usage.completion_tokens or 0
                    details = getattr(response.usage, "prompt_tokens_details", None)
                    usage["cached_tokens"] += (getattr(details, "cached_tokens", 0) or 0) if details else 0
                choice = response.choices[0]
                if kind == "chat":
                    texts = [ch.message.content for ch in response.choices]
                    if choice.finish_reason == "length" and not (extra or {}).get("allow_truncation", True):
                        raise InvalidAnswer("truncated answer (finish_reason=length)")
                    if not any(texts):
                        raise InvalidAnswer("empty answer")
                    result = {"texts": texts}
                else:
                    result = self.parse(kind, choice.message.content, choice.finish_reason,
                                        getattr(choice.message, "refusal", None), labels)
                return {"status": "ok", "result": result, "attempts": transient_attempts + invalid_attempts + 1,
                        "cost_usd": self.cost(**usage), **usage}
            except InvalidAnswer as exc:
                invalid_attempts += 1
                if invalid_attempts > c.max_invalid_retries:
                    return self._failed(str(exc), transient_attempts + invalid_attempts, usage)
            except openai.RateLimitError as exc:
                transient_attempts += 1
                if transient_attempts > c.max_retries:
                    return self._failed("rate limited (HTTP 429), retries exhausted", transient_attempts, usage)
                await asyncio.sleep(self._retry_after(exc) or self._backoff(transient_attempts))
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                transient_attempts += 1
                if transient_attempts > c.max_retries:
                    reason = "timeout" if isinstance(exc, openai.APITimeoutError) else "connection error"
                    return self._failed(f"{reason}, retries exhausted", transient_attempts, usage)
                await asyncio.sleep(self._backoff(transient_attempts))
            except openai.APIStatusError as exc:
                transient_attempts += 1
                if exc.status_code >= 500 and transient_attempts <= c.max_retries:
                    await asyncio.sleep(self._retry_after(exc) or self._backoff(transient_attempts))
                    continue
                message = redact(str(getattr(exc, "message", "") or exc), self._api_key)[:160]
                suffix = ", retries exhausted" if exc.status_code >= 500 else ""
                return self._failed(f"HTTP {exc.status_code}{suffix}: {message}", transient_attempts, usage)

    def _failed(self, reason: str, attempts: int, usage: dict) -> dict:
        return {"status": "failed", "error": redact(reason, self._api_key), "attempts": attempts,
                "cost_usd": self.cost(**usage), **usage}

    def _backoff(self, attempt: int) -> float:
        c = self.config
        return min(c.backoff_max_s, c.backoff_base_s * 2 ** (attempt - 1)) * (0.5 + random.random())

    def _retry_after(self, exc) -> float | None:
        response = getattr(exc, "response", None)
        value = response.headers.get("retry-after") if response is not None else None
        try:
            return min(300.0, float(value)) if value is not None else None  # the server's word, within reason
        except ValueError:
            return None


def run_in_thread(coro):
    """Run a coroutine to completion in its own event loop on a worker thread (Jupyter already runs a loop)."""
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


class CachedChatClient:
    """Plain chat completions (pool responses, reference answers) through the same cache and retry logic."""

    def __init__(self, config: JudgeConfig, cache_path: str | Path):
        self.config = config
        self.backend = OpenAIBackend(config)
        self.cache = JudgmentCache(cache_path)

    def complete_many(self, messages_list: list[list[dict]], model: str | None = None, max_tokens: int = 512,
                      temperature: float = 0.7, n: int = 1, seed: int | None = None, base_url: str | None = None,
                      progress: bool = True) -> list[str | None]:
        """The first completion for each message list (all ``n`` are cached); None where the request failed."""
        model = model or self.config.model
        params = {"max_tokens": max_tokens, "temperature": temperature, "n": n, "seed": seed}
        keys = [cache_key("openai", model, PROMPT_VERSION, "chat", m, {**params, "base_url": base_url or ""})
                for m in messages_list]
        cached = self.cache.get_many(list(dict.fromkeys(keys)))
        todo = [k for k in dict.fromkeys(keys) if k not in cached]
        index = {k: i for i, k in enumerate(keys)}
        if todo:
            backend = OpenAIBackend(self.config.model_copy(update={"model": model, "temperature": temperature,
                                                                   "max_output_tokens": max_tokens}))

            async def go():
                client = backend.client(base_url)
                semaphore = asyncio.Semaphore(self.config.concurrency)
                bar = tqdm(total=len(todo), desc=f"{model} chat", disable=not progress)

                async def one(key):
                    extra = {"n": n} if n > 1 else {}
                    if seed is not None:
                        extra["seed"] = seed
                    async with semaphore:
                        outcome = await backend.request_with_retries(client, "chat", messages_list[index[key]],
                                                                     extra=extra)
                    self.cache.put(key, backend="openai", model=model, kind="chat", **outcome)
                    bar.update(1)

                try:
                    await asyncio.gather(*(one(k) for k in todo))
                finally:
                    bar.close()
                    await client.close()

            run_in_thread(go())
            cached = self.cache.get_many(list(dict.fromkeys(keys)))
        return [cached[k]["result"]["texts"][0] if cached[k]["status"] == "ok" else None for k in keys]


def batch_request_line(key: str, model: str, messages: list[dict], params: dict, response_format: dict) -> str:
    """One line of a Batch API input file."""
    body = {"model": model, "messages": messages, "temperature": params["temperature"],
            "max_tokens": params["max_tokens"], "response_format": response_format}
    return json.dumps({"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": body})


def _bytes_file(name: str, lines: list[str]):
    buffer = io.BytesIO(("\n".join(lines) + "\n").encode("utf-8"))
    buffer.name = name
    return buffer
