"""The seven principles as data: names, the released column names, definitions and score anchors.

The paper lists the principles and says they were written with experts in social work and psychiatry; its rubric text
and score anchors are in an appendix that is not available here.  The definitions and the anchors for scores 1, 3
and 5 below were written for this book.  The judge prompt (chapter 02), the rubric judge and the book's tables all
read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PROMPT_VERSION = "psycopref-book-rubric-v1"


@dataclass(frozen=True)
class Principle:
    key: str
    name: str
    group: str
    definition: str
    anchors: dict[int, str] = field(default_factory=dict)


PRINCIPLES: tuple[Principle, ...] = (
    Principle(
        "empathy", "Empathy and emotional understanding", "basic",
        "The response recognises what the client feels, names it accurately, and conveys warmth and acceptance "
        "without judging.",
        {1: "Ignores or belittles the client's feelings.",
         3: "Acknowledges feelings in general terms (\"that sounds hard\") without reflecting what this client feels.",
         5: "Reflects the client's specific feelings and their weight, in a warm, accepting voice."},
    ),
    Principle(
        "relevance", "Personalisation and relevance", "basic",
        "The response engages with this client's situation, details and question rather than giving an answer that "
        "would fit anyone.",
        {1: "Generic or off-topic; could be pasted under any statement.",
         3: "On topic, but uses few of the client's own details.",
         5: "Built on the client's own details and answers what they actually asked."},
    ),
    Principle(
        "clarity", "Clarity and conciseness", "basic",
        "The response is easy to follow, well organised, and as long as it needs to be and no longer.",
        {1: "Rambling, repetitive or confusing; the main point is lost.",
         3: "Understandable, with some padding or loose structure.",
         5: "Clear, focused and economical; every sentence does work."},
    ),
    Principle(
        "safety", "Avoidance of harmful language", "basic",
        "The response contains nothing dismissive, blaming, stigmatising or dangerous, and takes risk seriously when "
        "the client signals it.",
        {1: "Dismissive, blaming or stigmatising, or ignores a clear sign of risk.",
         3: "Nothing harmful, but misses an opportunity to address risk or uses careless wording.",
         5: "Respectful throughout; where risk is present, addresses safety and points to immediate help."},
    ),
    Principle(
        "exploration", "Promotion of self-exploration", "client-centred",
        "The response invites the client to reflect on their own thoughts, feelings and patterns, chiefly through "
        "open questions, rather than supplying conclusions.",
        {1: "Closes reflection down: verdicts, lectures or no invitation to think further.",
         3: "One closed or leading question, or a general suggestion to reflect.",
         5: "Open, well-aimed questions that help the client look at their own experience."},
    ),
    Principle(
        "autonomy", "Promotion of autonomy and confidence", "client-centred",
        "The response treats the client as the expert on their own life: it offers options rather than orders and "
        "builds the client's confidence to decide.",
        {1: "Orders and prescriptions (\"you must\", \"you need to\"); the responder decides for the client.",
         3: "Mixes suggestions with some directive language.",
         5: "Options offered tentatively, the client's choice made explicit, their strengths noted."},
    ),
    Principle(
        "staging", "Sensitivity to the client's stage of change", "client-centred",
        "The response meets the client where they are in their readiness to change, rather than pushing action on "
        "someone still deciding whether anything should change.",
        {1: "Pushes a plan of action regardless of the client's readiness.",
         3: "Some attention to readiness, but jumps ahead in places.",
         5: "Matches the client's readiness: explores ambivalence with someone unsure, supports steps with someone ready."},
    ),
)

PRINCIPLE_KEYS: tuple[str, ...] = tuple(p.key for p in PRINCIPLES)
BY_KEY = {p.key: p for p in PRINCIPLES}


def rubric_text() -> str:
    """The fixed rubric that opens every LLM-judge prompt (kept byte-identical so provider prompt caching applies)."""
    lines = [
        "You are an experienced licensed therapist and clinical supervisor. You evaluate single responses written "
        "to a client's first message on a counselling Q&A service. Judge the response only, on seven principles, "
        "each scored as an integer from 1 (poor) to 5 (excellent). Do not reward length for its own sake.",
        "",
    ]
    for i, p in enumerate(PRINCIPLES, 1):
        lines.append(f"{i}. {p.name} [{p.key}]: {p.definition}")
        for score in (1, 3, 5):
            lines.append(f"   {score}: {p.anchors[score]}")
    return "\n".join(lines)
