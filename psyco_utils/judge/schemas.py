"""What the judge is asked (items), what it answers (results), and the LLM judge's structured-output schemas.

The pydantic answer models are the single source of truth for the LLM judge: :func:`response_format` turns one into
the ``response_format`` of a chat-completions request (a strict JSON schema), and the same model validates the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..principles import PRINCIPLE_KEYS

Verdict = Literal["A", "B", "tie"]
Rating = Literal[1, 2, 3, 4, 5]


@dataclass(frozen=True)
class ScoreItem:
    """One response to one client statement, to be rated on the seven principles (chapter 02 "Judging")."""

    statement: str
    response: str


@dataclass(frozen=True)
class CompareItem:
    """Two responses to one client statement, to be compared; A is shown first (chapters 02 and 06)."""

    statement: str
    response_a: str
    response_b: str


@dataclass
class ScoreResult:
    """The judge's ratings (1..5 for each of the seven principle keys) or, when ``status`` is "failed", the reason."""

    ratings: dict[str, int] | None
    rationale: str
    status: Literal["ok", "failed"]
    error: str | None = None
    from_cache: bool = False

    @property
    def overall(self) -> float | None:
        """The equal-weight mean of the seven ratings (None for a failed judgment)."""
        return None if self.ratings is None else sum(self.ratings.values()) / len(self.ratings)


@dataclass
class CompareResult:
    """The judge's verdicts ("A", "B" or "tie") per principle and overall or, when ``status`` is "failed",
    the reason."""

    per_principle: dict[str, str] | None
    overall: str | None
    rationale: str
    status: Literal["ok", "failed"]
    error: str | None = None
    from_cache: bool = False


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PrincipleScores(_Answer):
    """The LLM judge's answer to ``score``: a short rationale first (so it reasons before it rates), then 1-5
    ratings."""

    rationale: str = Field(description="two or three sentences on the response's strengths and weaknesses")
    empathy: Rating
    relevance: Rating
    clarity: Rating
    safety: Rating
    exploration: Rating
    autonomy: Rating
    staging: Rating


class PrincipleVerdicts(_Answer):
    """The LLM judge's answer to ``compare``: a short rationale first, then A, B or tie per principle and overall."""

    rationale: str = Field(description="two or three sentences comparing the two responses")
    empathy: Verdict
    relevance: Verdict
    clarity: Verdict
    safety: Verdict
    exploration: Verdict
    autonomy: Verdict
    staging: Verdict
    overall: Verdict


def _check_fields() -> None:
    for model, extra in ((PrincipleScores, ()), (PrincipleVerdicts, ("overall",))):
        expected = ("rationale", *PRINCIPLE_KEYS, *extra)
        if tuple(model.model_fields) != expected:
            raise RuntimeError(f"{model.__name__} fields {tuple(model.model_fields)} do not match {expected}")


_check_fields()


def response_format(model: type[BaseModel], name: str) -> dict:
    """A chat-completions ``response_format`` asking for a strict JSON schema built from a pydantic answer model.

    Every property is required and no other property is allowed, as OpenAI's strict structured outputs require;
    servers such as vLLM and Ollama accept the same shape.
    """
    schema = model.model_json_schema()
    schema.pop("description", None)  # the class docstring is for readers of this module, not for the judge
    schema["required"] = list(schema["properties"])
    schema["additionalProperties"] = False
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


def label_format(labels: list[str]) -> dict:
    """The ``response_format`` for classification: one label from a fixed list (chapter 01's LLM theme labels)."""
    schema = {"type": "object", "properties": {"label": {"type": "string", "enum": list(labels)}},
              "required": ["label"], "additionalProperties": False}
    return {"type": "json_schema", "json_schema": {"name": "label", "strict": True, "schema": schema}}


SCORE_FORMAT = response_format(PrincipleScores, "principle_scores")
COMPARE_FORMAT = response_format(PrincipleVerdicts, "principle_verdicts")

__all__ = ["COMPARE_FORMAT", "CompareItem", "CompareResult", "PrincipleScores", "PrincipleVerdicts", "SCORE_FORMAT",
           "ScoreItem", "ScoreResult", "label_format", "response_format"]
