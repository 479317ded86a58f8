"""The judge's settings: the ``judge:`` section of a profile (chapters 01, 02 and 06 use it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class JudgeConfig(BaseModel):
    """Which judge scores and compares responses, and how it is called.

    ``backend``: ``rubric`` (offline, deterministic; the tiny profile) or ``openai`` (any OpenAI-compatible chat
    endpoint: GPT-4o, gpt-4o-mini, vLLM, Ollama).  ``base_url`` None lets the ``openai`` client read
    ``OPENAI_BASE_URL`` itself; the API key is read only from the environment variable named by ``api_key_env`` and
    is never stored.  Transient failures (HTTP 429, 5xx, timeouts, dropped connections) are retried up to
    ``max_retries`` times with exponential backoff from ``backoff_base_s`` (capped at ``backoff_max_s``, with
    jitter; a Retry-After header is honoured); an unusable answer (malformed, incomplete, out of range, truncated or
    refused) is asked again at most ``max_invalid_retries`` times, then recorded as failed with its reason.
    A re-run retries the judgments that failed before (``retry_failed``; false keeps them as failed).  After
    ``stop_after_consecutive_errors`` connection errors, timeouts or 5xx answers in a row the run stops with an
    error that names the endpoint: a dead endpoint is not hammered for the length of a chapter.  A chapter whose
    judged set falls short of what it asked for by more than ``max_failed_share`` fails its quality check.
    Prices are US dollars per million tokens, for the cost estimate and the usage report (the Batch API costs half).
    ``tie_margin`` is the rubric judge's overall compare threshold on the difference of mean scores.
    ``length_instructions``: whether the judge is told not to reward length (the compare prompt's instruction, and
    the rubric judge's excess-length penalty).  The paper's judge had no such instruction, so the paper profile turns
    it off; chapter 06 shows how it moves the length-constrained result.
    Unknown keys are errors that name the key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["rubric", "openai"] = "rubric"
    model: str = "gpt-4o"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(16, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(6, ge=0)
    max_invalid_retries: int = Field(2, ge=0)
    backoff_base_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    temperature: float = Field(0.0, ge=0)
    max_output_tokens: int = Field(600, ge=16)
    retry_failed: bool = True
    stop_after_consecutive_errors: int = Field(20, ge=1)
    max_failed_share: float = Field(0.02, ge=0, le=1)
    use_batch_api: bool = False
    batch_poll_s: float = Field(30.0, gt=0)
    estimate_above: int = Field(200, ge=0)
    price_input_per_mtok: float = Field(2.50, ge=0)
    price_output_per_mtok: float = Field(10.00, ge=0)
    price_cached_input_per_mtok: float = Field(1.25, ge=0)
    tie_margin: float = Field(0.25, ge=0)
    length_instructions: bool = True


__all__ = ["JudgeConfig"]
