"""What the judge is asked (items) and what it answers (results), and the structured-output schemas of the LLM judge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["A", "B", "tie"]


@dataclass(frozen=True)
class ScoreItem:
    """One response to one client statement, to be rated on the seven principles."""

    statement: str
    response: str


@dataclass(frozen=True)
class CompareItem:
    """Two responses to one client statement, to be compared (A is shown first)."""

    statement: str
    response_a: str
    response_b: str


@dataclass
class ScoreResult:
    ratings: dict[str, int] | None
    rationale: str
    status: Literal["ok", "failed"]
    error: str | None = None
    from_cache: bool = False


@dataclass
class CompareResult:
    per_principle: dict[str, str] | None
    overall: str | None
    rationale: str
    status: Literal["ok", "failed"]
    error: str | None = None
    from_cache: bool = False


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PrincipleScores(_Strict):
    """The LLM judge's answer to ``score``: a short rationale first (so it reasons before it rates), then 1-5 ratings."""

    rationale: str = Field(description="two or three sentences on the response's strengths and weaknesses")
    empathy: int = Field(ge=1, le=5)
    relevance: int = Field(ge=1, le=5)
    clarity: int = Field(ge=1, le=5)
    safety: int = Field(ge=1, le=5)
    exploration: int = Field(ge=1, le=5)
    autonomy: int = Field(ge=1, le=5)
    staging: int = Field(ge=1, le=5)


class PrincipleVerdicts(_Strict):
    """The LLM judge's answer to ``compare``: per principle and overall, A, B or tie."""

    rationale: str = Field(description="two or three sentences comparing the responses")
    empathy: Verdict
    relevance: Verdict
    clarity: Verdict
    safety: Verdict
    exploration: Verdict
    autonomy: Verdict
    staging: Verdict
    overall: Verdict


class ThemeLabel(_Strict):
    label: str
