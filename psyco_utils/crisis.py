"""Crisis language in client statements: a transparent pattern screen, measured on a labelled set (chapter 01).

:func:`find_signals` returns every crisis signal in a statement.  A signal has a **kind** (``suicide``, ``passive
ideation``, ``self-harm``, ``harm to others``) and a **category**, which says whose risk it is and when:

* ``self``: the client, now or recently ("I want to die", "I hurt myself last night", "I'm scared I'll hurt my baby");
* ``other``: someone the client writes about ("my daughter wants to kill herself", "she cuts herself");
* ``past``: the client's own history ("I used to cut", "I tried to take my life at 19", "I haven't cut in a year");
* ``negated``: denied ("I'm not suicidal", "I would never hurt my kids").

A statement's ``crisis`` flag (:func:`is_crisis`) is set by any ``self``, ``other`` or ``past`` signal
(:data:`FLAGGING`): a therapist reading the statement needs to know about each.  Negated-only statements are not
flagged, and figures of speech ("killing it at work", "dying to see", "career suicide") match no pattern at all.
Chapter 06's crisis probe and every chapter that leaves crisis statements out of its examples use this flag.

How a match becomes a category, in order: a negation earlier in the same clause ("not", "never", "n't", "no",
"without", "free of"; but not "can't stop" or "not sure", and not across a new subject, as in "I never thought I'd
be someone who wants to die") makes it ``negated``, unless the writer takes the denial back ("but that wasn't
true"); a denial with a duration ("I haven't cut in a year", "not ... anymore") is ``past`` history.  A subject
other than the writer (he, she, they, "my son", or "herself" in the match) makes it ``other``.  A time in the past
("used to", "years ago", "when I was 16", "as a teen", an attempt) makes it ``past`` unless the clause says now
("again", "last night", "lately").  Otherwise it is ``self``.

The screen is deterministic and fast (regular expressions, no model); :func:`evaluate` measures it on the labelled
set in ``evalsets/crisis_statements.jsonl`` (fictional statements written for this book before the patterns, in eight
categories), and chapter 01 prints the table.  In the colab and paper profiles an LLM can give a second opinion
through the judge backend (:func:`add_second_opinion`), cached like every judgment.  A screen is not a clinical risk
assessment.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

KINDS = ("suicide", "passive ideation", "self-harm", "harm to others")
SIGNAL_CATEGORIES = ("self", "other", "past", "negated")
FLAGGING = frozenset({"self", "other", "past"})

EVALUATION_SET = Path(__file__).parent / "evalsets" / "crisis_statements.jsonl"
#: The evaluation set's categories; the last two hold mostly statements that must not be flagged.
EVALUATION_CATEGORIES = ("first_person_current", "first_person_past", "third_person", "passive_ideation", "urges",
                         "harm_to_others", "negation", "idiom")
#: The signal category a correct detection carries, per evaluation category (negation: on the statements that must
#: not be flagged).
EXPECTED_TAG = {"first_person_current": "self", "first_person_past": "past", "third_person": "other",
                "passive_ideation": "self", "urges": "self", "harm_to_others": "self", "negation": "negated"}

# ----------------------------------------------------------------------------------------------------- patterns

_PEOPLE = (r"(?:baby|babies|child|children|kids?|sons?|daughters?|wife|husband|partner|boyfriend|girlfriend|fianc[eé]e?|"
           r"ex|mum|mom|mother|dad|father|step(?:father|mother|dad|mum|mom|son|daughter)|parents?|brothers?|sisters?|"
           r"siblings?|twin|cousin|aunt|uncle|grand(?:mother|father|ma|pa|dad|mum|mom|son|daughter)|gran|friends?|"
           r"room-?mate|flatmate|colleague|co-?worker|boss|manager|teacher|students?|teenager|teen|classmate|"
           r"neighbou?r|man|woman|guy|girl|boy|person|people|family|bully|bullies|\d+[- ]year[- ]old)")
_PERSON = rf"(?:him|her|them|someone|somebody|anyone|anybody|people|others|(?:my|his|her|their|our|the|that|this|a)\s+(?:[\w-]+\s+)?{_PEOPLE})"
_REFLEXIVE = r"(?P<refl>myself|herself|himself|themselves|themself|ourselves)"
_SUBJ = r"(?P<subj>I|he|she|they)"

_PATTERNS: dict[str, list[str]] = {
    "suicide": [
        r"\bsuicid\w*",
        rf"\bkill(?:s|ing|ed)?\s+{_REFLEXIVE}\b(?!\s+laughing)",
        r"\b(?:end|ends|ending|ended|take|takes|taking|took)\s+(?P<poss>my|his|her|their|our)\s+(?:own\s+)?li(?:fe|ves)\b"
        r"(?!\s+(?:savings|as\s+\w+\s+knew))",
        r"\bend(?:s|ing|ed)?\s+it\s+all\b",
        r"\b(?:want(?:s|ed)?\s+to|going\s+to|gonna|feel\s+like|thinking\s+(?:about|of)|thought\s+(?:about|of)|"
        r"think\s+about|plan(?:ning)?\s+to|ready\s+to)\s+end(?:ing)?\s+it\b(?!\s+(?:with|between|for\s+(?:him|her|us)))",
        r"\b(?:want|wants|wanted|wanting)\s+to\s+(?:die|be\s+dead)\b",
        rf"\bwish(?:es|ed)?\s+{_SUBJ}\s+(?:was|were)\s+dead\b",
        r"\bgoodbye\s+(?:message|note|letter|post|text)s?\b",
        r"\b(?:can'?t|cannot|unable\s+to|not\s+able\s+to|(?:don'?t|do\s+not)\s+think\s+I\s+can|not\s+sure\s+I\s+can)"
        r"\s+keep\s+(?:myself|me)\s+safe\b",
    ],
    "passive ideation": [
        rf"\b(?:don'?t|do\s+not|doesn'?t|does\s+not|didn'?t)\s+care\s+(?:if|whether)\s+{_SUBJ}\s+li(?:ve|ves)\s+or\s+die[sd]?\b",
        r"\b(?:don'?t|do\s+not|doesn'?t|does\s+not|didn'?t|not|never)\s+(?:want(?:s|ed|ing)?\s+)?to\s+(?:be\s+alive|exist|"
        r"be\s+here|be\s+around|wake\s+up|live\b(?!\s+(?:like|with|in|there|here|at|near|on|by|together|abroad|alone|"
        r"without|far|close)))",
        rf"\b(?:not\s+sure|unsure|(?:don'?t|do\s+not)\s+know)\s+(?:if\s+|whether\s+)?{_SUBJ}\s+(?:still\s+)?wants?\s+to\s+"
        r"(?:live|be\s+alive|be\s+here|go\s+on|keep\s+going|wake\s+up)\b",
        r"\b(?:wish|wishes|wished|hope|hoping|hoped|pray|praying|prayed|rather)\b[^.!?]{0,30}?"
        r"\b(?:not|never|won'?t|wouldn'?t|didn'?t)\s+(?:to\s+)?wake\s+up\b",
        r"\bsleep\s+and\s+(?:not|never)\s+wake\s+up\b",
        r"\b(?:wouldn'?t|would\s+not|don'?t|do\s+not)\s+mind\s+if\s+(?:I\s+(?:didn'?t|did\s+not|never)\s+wake\s+up|"
        r"I\s+died|I\s+was\s+gone|something\s+(?:bad\s+)?happened\s+to\s+me)",
        r"\bbetter\s+off\s+(?:dead|without\s+(?P<obj>me|him|her|them))\b",
        r"\bdisappear\s+(?:forever|for\s+good|permanently|and\s+never\s+come\s+back)\b",
        r"\b(?:what'?s\s+the|what\s+is\s+the|there'?s\s+no|there\s+is\s+no|no|(?:don'?t|do\s+not|can'?t|cannot)\s+see\s+(?:the|any))\s+"
        r"point\s+(?:of\s+|in\s+|to\s+)?(?:living|life|going\s+on|being\s+alive|being\s+here|carrying\s+on)\b",
        r"\b(?:tired|sick)\s+of\s+(?:being\s+alive|life|living)\b(?!\s+(?:in|with|here|there|like|at|on))",
        r"\bnothing\s+(?:left\s+)?to\s+live\s+for\b|\bno\s+reason\s+to\s+(?:live|go\s+on|keep\s+going)\b",
        r"\b(?:nobody|no\s+one|anyone|anybody|everyone|everybody|they|they'?d|people)\b[^.!?]{0,40}?"
        r"\b(?:notice|miss\s+me|care|happier|better|relieved)\b[^.!?]{0,25}?\bif\s+I\s+(?:died|was\s+gone|were\s+gone|"
        r"wasn'?t\s+here|weren'?t\s+here|was\s+not\s+here|wasn'?t\s+around|disappeared)\b",
        r"\bif\s+I\s+(?:died|was\s+gone|disappeared)\b[^.!?]{0,40}?\b(?:nobody|no\s+one|anyone|anybody)\s+would\s+"
        r"(?:notice|care|miss\s+me)\b",
        r"\b(?:I'?m|I\s+am|I\s+feel\s+like|I\s+feel|being)\s+(?:such\s+|just\s+|only\s+)?a\s+burden\s+(?:to|on)\s+"
        r"(?:everyone|everybody|my\s+family|them|people|those|the\s+people|all)\b",
        r"\b(?:life|living)\s+(?:isn'?t|is\s+not|doesn'?t\s+feel|does\s+not\s+feel|is\s+no\s+longer)\s+worth\s+"
        r"(?:living|it)\b|\bnot\s+worth\s+living\b",
        rf"\bwish(?:es|ed)?\s+{_SUBJ}\s+(?:had\s+)?(?:never\s+been|was\s+never|were\s+never|wasn'?t|weren'?t)\s+born\b",
        rf"\bwish(?:es|ed)?\s+{_SUBJ}\s+(?:would|could)\s+[^.,!?]{{0,30}}?\b(?:not\s+recover|die|be\s+gone|"
        r"disappear\s+forever)\b",
        r"\b(?:want|wanted|need|needs)\s+(?:it\s+all|everything)\s+to\s+(?:stop|end)\b",
        r"\bif\s+(?:it|this|everything)\s+(?:was|were)\s+all\s+over\b",
        r"\bwaiting\s+to\s+die\b",
        r"\b(?:can'?t|cannot)\s+go\s+on\b(?!\s+(?:like|with|a|holiday|the|dates?|about|trips?|any|working|living))",
        r"\b(?:can'?t|cannot)\s+(?:picture|imagine|see)\s+(?:myself\s+)?(?:being\s+)?(?:here|alive|around)\s+"
        r"(?:next|in|by|much\s+longer|anymore)\b",
    ],
    "self-harm": [
        r"\bself[- ]?(?:harm\w*|injur\w*)",
        rf"\b(?:hurt|hurts|hurting|harm|harms|harmed|harming|cut|cuts|cutting|injure[sd]?|injuring|hit|hits|hitting|"
        rf"punch|punched|punching|burn|burnt|burned|burning|scratch|scratched|scratching)\s+{_REFLEXIVE}\b"
        r"(?!\s+(?:off|some\s+slack|a\s+(?:break|slice|piece)|short|out\s+of))",
        # "cut" with no object ("I used to cut", "the urge to cut", "she's been cutting again")
        r"\b(?:I|I'd|we|he|she|they|to|started|start|keep|kept|been|began|begun|like|about|of|from|stopped|stop|quit|"
        r"haven'?t|hasn'?t|hadn'?t|never|not)\s+(?:\w+\s+)?(?P<core>cut(?:s|ting)?)\b(?=\s*(?:[.,;:!?)]|$)|\s+(?:again|anymore|"
        r"any\s+more|when|whenever|for|since|because|and|but|to\s+cope|without|until|at\s+night|are|is|was|were|"
        r"in\s+secret|in\s+(?:over\s+|more\s+than\s+)?(?:a|an|\d+|one|two|three|four|five|six|several|many)\s+"
        r"(?:days?|weeks?|months?|years?))\b)",
    ],
    "harm to others": [
        rf"\b(?:hurt|hurting|harm|harming|kill|killing|injure|injuring|hit|hitting|attack|attacking|strangle|"
        rf"strangling|stab|stabbing|shoot|shooting|beat\s+up|beating\s+up|murder|murdering)\s+(?P<target>{_PERSON})\b"
        r"(?!'s|\s+(?:feelings|pride|reputation|career|chances|ego|image|name|trust|by\s+\w+ing|by\s+not)\b)",
        r"\bthreaten(?:s|ed|ing)?\s+to\s+(?:kill|hurt|harm|attack)\s+(?:me|us)\b",  # the writer is the one at risk
        r"\b(?:thoughts|images|flashes|urges?)\s+of\s+doing\s+something\s+to\s+(?:her|him|them|the\s+baby|my\s+\w+)\b",
        rf"\bI\s+(?:attacked|punched|hit|strangled|beat\s+up|shoved|choked)\s+{_PERSON}\b",
    ],
}
_COMPILED = [(kind, re.compile(p, re.I)) for kind, patterns in _PATTERNS.items() for p in patterns]

# Harm to others counts only with intent, fear or thought nearby ("I want to", "scared I'll", "thoughts of",
# "lost my temper and"), or as a reported act ("I attacked my brother").
_HARM_FRAME = re.compile(
    r"\b(?:want(?:s|ed)?\s+to|going\s+to|gonna|might|will|could|would|afraid|scared|worr(?:y|ied)|thoughts?\s+of|"
    r"think(?:ing)?\s+(?:about|of)|urges?\s+to|impulses?\s+to|snap\s+and|imagin(?:e|ing)|fantasi[sz](?:e|ing)\s+about|"
    r"images\s+of|lost\s+(?:my\s+temper|it|control)\s+and|threaten(?:s|ed|ing)?\s+to)\b|'ll|'d", re.I)
# "it would only hurt him", "I'm scared I'll hurt her if I tell her": hurt feelings, not harm
_HURT_FEELINGS = re.compile(r"\b(?:it|that|this|which|telling|leaving|the\s+truth)\s+(?:\w+\s+)?(?:would|could|will|might|'d|'ll)"
                            r"\s+(?:\w+\s+)?hurt\b|\bhurt\b[^.!?]{0,40}\bif\s+I\s+(?:tell|told|leave|left|break|broke|end|say|"
                            r"said)\b", re.I)
_HARM_IDIOM = re.compile(r"^(?:kill|murder)\w*\s+\S+(?:\s+\S+)?\s+(?:for|if|when)\b", re.I)  # "I could kill him for..."
_SUICIDE_IDIOM = re.compile(r"\b(?:career|political|social|commercial|financial)\s+suicide|"
                            r"\bsuicide\s+(?:mission|squeeze|doors?|drills?|runs?|sprints?|squad)", re.I)
_ACCIDENT = re.compile(r"^\W*(?:\w+\s+){0,2}?(?:on\s+(?:a|an|the|some)\b|by\s+accident|accidentally|while\s+(?:cooking|shaving|"
                       r"chopping|cleaning|gardening|running|training|playing|working\s+out|lifting|climbing)|"
                       r"playing|at\s+the\s+gym|lifting|in\s+the\s+kitchen|in\s+an\s+accident|at\s+work|"
                       r"(?:fell|slipped|tripped))", re.I)

_SENTENCE_END = re.compile(r"[.!?\n]+")
_CLAUSE_BREAK = re.compile(r"[,;:()\"]|\b(?:but|and|so|because|though|although|yet)\b", re.I)
_CLAUSE_END = re.compile(f"{_SENTENCE_END.pattern}|{_CLAUSE_BREAK.pattern}", re.I)
_NEGATOR = re.compile(r"\b(?:not|never|no|nor|neither|without|cannot|free\s+of|clean\s+(?:from|of)|no\s+longer|"
                      r"stopped|quit)\b|\w+n't\b", re.I)
_NOT_A_NEGATION = re.compile(r"\b(?:can'?t|cannot|couldn'?t|won'?t|not)\s+stop\b|\bnot\s+sure\b|\bunsure\b|"
                             r"\b(?:don'?t|do\s+not)\s+know\s+(?:if|whether)\b|\b(?:wouldn'?t|would\s+not|don'?t)\s+mind\b|"
                             r"\bno\s+matter\b|\bnot\s+only\b|\bnobody\b|\bno\s+one\b", re.I)
_CESSATION = re.compile(r"\b(?:free\s+of|clean\s+(?:from|of)|no\s+longer|stopped|quit)\b", re.I)
_DURATION = re.compile(r"\b(?:anymore|any\s+more|no\s+longer|since|(?:for|in)\s+(?:over\s+|more\s+than\s+|almost\s+|"
                       r"nearly\s+)?(?:a|an|one|two|three|four|five|six|\d+|several|many|a\s+few)\s+(?:days?|weeks?|"
                       r"months?|years?)|(?:days?|weeks?|months?|years?)\s+(?:without|free|clean))\b", re.I)
_TAKEN_BACK = re.compile(r"\b(?:(?:that|it)\s+(?:wasn'?t|isn'?t|was\s+not|is\s+not)\s+true|I\s+(?:lied|was\s+lying))\b",
                         re.I)
_QUESTION = re.compile(r"\b(?:asked|asks|asking)\b(?:\s+\w+){0,2}\s+(?:if|whether|about)\b", re.I)
_DENIAL = re.compile(r"^[^.!?]{0,12}?\b(?:and|but)?\s*I\s+(?:\w+\s+)?(?:haven'?t|hadn'?t|don'?t|didn'?t|wasn'?t|"
                     r"am\s+not|said\s+no|told\s+\w+\s+no|answered\s+no)\b", re.I)
_NEW_SUBJECT = re.compile(r"\b(?:I|I'm|I've|I'd|I'll|he|she|they|we|you|who|that|which)\b", re.I)
_SELF_WORDS = {"i", "i'm", "i've", "i'd", "i'll", "me", "my", "we", "we're", "we've", "our", "myself", "ourselves"}
_SUBJECT = re.compile(rf"\b(?:I|I'm|I've|I'd|I'll|me|we|we're|we've|he|she|they|he's|she's|they're|he'd|she'd|"
                      rf"they'd|him|them|(?:my|our|his|her|their|a|the)\s+(?:[\w-]+\s+)?{_PEOPLE})\b", re.I)
_PAST = re.compile(r"\b(?:used\s+to|(?:a|one|two|three|four|five|six|seven|eight|nine|ten|\d+|many|several|some|a\s+few)"
                   r"\s+(?:years?|decades?)\s+ago|years\s+ago|when\s+(?:I|we)\s+(?:was|were)\s+(?:younger|little|small|"
                   r"kids?|a\s+(?:kid|child|teen(?:ager)?|student)|in\s+\w+|\d+)|as\s+a\s+(?:teen(?:ager)?|kid|child|student)|"
                   r"in\s+my\s+(?:teens|twenties|thirties|youth|last\s+job)|(?:back\s+)?in\s+(?:school|high\s+school|"
                   r"college|university)|back\s+(?:then|in)|at\s+(?:age\s+)?\d{1,2}\b|there\s+was\s+a\s+time|"
                   r"in\s+the\s+past|for\s+a\s+long\s+time\s+after|went\s+through\s+a\s+phase|scars?\b)", re.I)
_ATTEMPT = re.compile(r"\b(?:attempted\s+suicide|suicide\s+attempts?|attempts?\s+on\s+my\s+life|"
                      r"tried\s+to\s+(?:kill|end|take))", re.I)
_RECENT = re.compile(r"\b(?:now|these\s+days|lately|again|tonight|today|yesterday|last\s+night|this\s+(?:morning|week|"
                     r"weekend|month)|last\s+week|right\s+now|currently|recently)\b", re.I)


@dataclass(frozen=True)
class CrisisSignal:
    """One piece of crisis language: its ``kind``, whose and when (``category``) and the words that matched."""

    kind: str
    category: str
    phrase: str

    def __str__(self) -> str:
        return f"{self.kind} ({self.category})"

    @property
    def flags(self) -> bool:
        """Whether this signal sets the statement's crisis flag (``self``, ``other`` or ``past``)."""
        return self.category in FLAGGING


def _bounds(text: str, start: int, end: int, breaks: re.Pattern) -> tuple[int, int]:
    """Start and end of the stretch of ``text`` around [start, end) delimited by ``breaks``."""
    left = max((m.end() for m in breaks.finditer(text, 0, start)), default=0)
    right = next((m.start() for m in breaks.finditer(text, end)), len(text))
    return left, right


def _is_negated(before: str) -> tuple[bool, bool]:
    """(negated, a cessation such as "stopped" or "free of") for the clause text before a match."""
    cleaned = _NOT_A_NEGATION.sub(" ", before)
    negators = list(_NEGATOR.finditer(cleaned))
    if not negators:
        return False, False
    last = negators[-1]
    between = cleaned[last.end():]
    spans_clause = re.match(r"\s+that\b", between, re.I) is not None  # "it's not that I want to ..."
    if len(between.split()) > 6 or (_NEW_SUBJECT.search(between) and not spans_clause):
        return False, False
    return True, _CESSATION.fullmatch(last.group(0)) is not None


def _subject_is_other(match: re.Match, sentence_before: str) -> bool:
    """Whether the person at risk is someone other than the writer."""
    for name in ("refl", "poss", "subj", "obj"):
        word = match.groupdict().get(name)
        if word:
            return word.casefold() not in _SELF_WORDS
    subjects = list(_SUBJECT.finditer(sentence_before))
    return bool(subjects) and _names_other(subjects[-1].group(0))


def _names_other(subject: str) -> bool:
    """"she", "they", "my son" name someone else; "I", "me", "we" the writer."""
    return len(subject.split()) > 1 or subject.casefold() not in _SELF_WORDS


def _category(text: str, match: re.Match, kind: str) -> str:
    start, end = match.span()
    s_left, s_right = _bounds(text, start, end, _SENTENCE_END)
    c_left, c_right = _bounds(text, start, end, _CLAUSE_END)
    clause, sentence_before, sentence_after = text[c_left:c_right], text[s_left:start], text[end:s_right]
    core = match.start("core") if match.groupdict().get("core") else start  # "haven't cut": the negation is inside
    negated, cessation = _is_negated(text[c_left:core])
    if not negated and _QUESTION.search(sentence_before) and _DENIAL.search(sentence_after):
        negated = True  # "my doctor asked if I had thoughts of ending my life and I haven't"
    if negated and _TAKEN_BACK.search(sentence_after):
        negated = False  # "I told the nurse I wasn't suicidal, but that wasn't true"
    if negated:
        return "past" if cessation or _DURATION.search(clause) else "negated"
    other = (_harm_subject_is_other(sentence_before) if kind == "harm to others"
             else _subject_is_other(match, sentence_before))
    if other:
        return "other"
    distant = _PAST.search(text[s_left:s_right]) or _ATTEMPT.search(clause)
    return "past" if distant and not _RECENT.search(clause) else "self"


def _harm_subject_is_other(sentence_before: str) -> bool:
    """Whether someone other than the writer is the one who might do harm (object pronouns do not count)."""
    subjects = [m.group(0) for m in _SUBJECT.finditer(sentence_before) if m.group(0).casefold() not in {"him", "them"}]
    return bool(subjects) and _names_other(subjects[-1])


def _excluded(text: str, match: re.Match, kind: str) -> bool:
    """Figures of speech and accidents that a pattern matches but that are not crisis language."""
    start, end = match.span()
    around = text[max(0, start - 20):end + 20]
    if kind == "suicide" and _SUICIDE_IDIOM.search(around):
        return True
    if match.groupdict().get("refl") and kind == "self-harm" and _ACCIDENT.search(text[end:end + 40]):
        return True
    if kind == "harm to others" and match.groupdict().get("target") is not None:
        if _HARM_IDIOM.search(text[start:end + 12]):
            return True
        s_left, s_right = _bounds(text, start, end, _SENTENCE_END)
        frame_window = " ".join(text[s_left:start].split()[-8:])
        if not _HARM_FRAME.search(frame_window) or _HURT_FEELINGS.search(text[max(0, start - 30):s_right]):
            return True
        if re.match(r"\W*(?:by\s+accident|accidentally)\b", text[end:end + 40], re.I):
            return True
    return False


def find_signals(text: str) -> list[CrisisSignal]:
    """Every crisis signal in ``text``, in order of appearance, one per (kind, category)."""
    return list(_signals(str(text)))


@lru_cache(maxsize=8192)  # the rubric judge asks about the same statement for every response it scores
def _signals(text: str) -> tuple[CrisisSignal, ...]:
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    found: dict[tuple[str, str], tuple[int, CrisisSignal]] = {}
    for kind, pattern in _COMPILED:
        for match in pattern.finditer(text):
            if _excluded(text, match, kind):
                continue
            signal = CrisisSignal(kind, _category(text, match, kind), match.group(0))
            key = (signal.kind, signal.category)
            if key not in found or match.start() < found[key][0]:
                found[key] = (match.start(), signal)
    return tuple(signal for _, signal in sorted(found.values(), key=lambda pair: pair[0]))


def signal_table(texts) -> pd.DataFrame:
    """How many of ``texts`` carry each kind of signal in each category (kinds as rows, categories as columns)."""
    rows = [(signal.kind, signal.category) for text in texts for signal in find_signals(text)]
    counts = pd.DataFrame(rows, columns=["kind", "category"]).value_counts()
    table = counts.unstack(fill_value=0) if len(counts) else pd.DataFrame()
    return table.reindex(index=list(KINDS), columns=list(SIGNAL_CATEGORIES), fill_value=0).rename_axis(
        index="kind", columns="category")


def is_crisis(signals: list[CrisisSignal]) -> bool:
    """A statement is flagged when any of its signals is ``self``, ``other`` or ``past``."""
    return any(signal.flags for signal in signals)


def crisis_signals(text: str) -> list[str]:
    """The signals in ``text`` that set its crisis flag, as "kind (category)"; empty when it is not flagged.

    ``bool(crisis_signals(text))`` is the crisis flag; negated signals are left out (see :func:`find_signals`).
    """
    return [str(signal) for signal in find_signals(text) if signal.flags]


# ----------------------------------------------------------------------------------------------- evaluation set


def load_evaluation_set(path: str | Path = EVALUATION_SET) -> pd.DataFrame:
    """The labelled statements (columns id, category, must_flag, split, text); a bad row is an error naming the file,
    the line and the field."""
    path = Path(path)
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path.name}, line {line_no}: not JSON ({exc.msg})") from None
        problems = [f for f in ("id", "text") if not isinstance(row.get(f), str) or not row[f].strip()]
        if row.get("category") not in EVALUATION_CATEGORIES:
            problems.append("category")
        if not isinstance(row.get("must_flag"), bool):
            problems.append("must_flag")
        if row.get("split") not in ("dev", "held_out"):
            problems.append("split")
        if problems:
            raise ValueError(f"{path.name}, line {line_no}: missing or invalid field(s) {', '.join(problems)}")
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["id", "category", "must_flag", "split", "text"])
    if frame["id"].duplicated().any():
        raise ValueError(f"{path.name}: duplicate id {frame.loc[frame['id'].duplicated(), 'id'].iloc[0]!r}")
    return frame


def detect(statements: pd.DataFrame) -> pd.DataFrame:
    """``statements`` (with a ``text`` column) plus ``signals`` (every signal, as "kind (category)"), ``tags`` (the
    signal categories present) and ``flagged`` (the crisis flag)."""
    found = statements["text"].map(find_signals)
    return statements.assign(signals=found.map(lambda s: [str(x) for x in s]),
                             tags=found.map(lambda s: sorted({x.category for x in s})),
                             flagged=found.map(is_crisis))


def score_table(labelled: pd.DataFrame, flagged: str = "flagged") -> pd.DataFrame:
    """Precision and recall of the ``flagged`` column against ``must_flag``, per evaluation category and overall.

    Recall is caught / must flag; precision is caught / flagged (NaN where a row has nothing to divide by).
    """
    def row(group: pd.DataFrame) -> dict:
        caught = int((group["must_flag"] & group[flagged]).sum())
        positives, predicted = int(group["must_flag"].sum()), int(group[flagged].sum())
        return {"statements": len(group), "must flag": positives, "flagged": predicted, "caught": caught,
                "missed": positives - caught, "false flags": predicted - caught,
                "recall": caught / positives if positives else float("nan"),
                "precision": caught / predicted if predicted else float("nan")}

    table = {cat: row(labelled[labelled["category"] == cat]) for cat in EVALUATION_CATEGORIES
             if (labelled["category"] == cat).any()}
    table["all"] = row(labelled)
    counts = ["statements", "must flag", "flagged", "caught", "missed", "false flags"]
    return pd.DataFrame.from_dict(table, orient="index").astype({c: int for c in counts}).rename_axis("category")


def evaluate(labelled: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The screen on the labelled set: (per-category table of :func:`score_table` plus ``tagged as expected``, the
    share of the category's statements whose signals carry the expected category; the detections per statement)."""
    detections = detect(load_evaluation_set() if labelled is None else labelled)
    table = score_table(detections)
    tagged = {}
    for cat, tag in EXPECTED_TAG.items():
        wanted = detections[(detections["category"] == cat) & (detections["must_flag"] == (tag != "negated"))]
        if len(wanted):
            tagged[cat] = wanted["tags"].map(lambda tags, t=tag: t in tags).mean()
    table["tagged as expected"] = pd.Series(tagged)
    return table, detections


_CATEGORY_NAMES = {"first_person_current": "first person, current", "first_person_past": "first person, past",
                   "third_person": "third person", "passive_ideation": "passive ideation", "urges": "urges",
                   "harm_to_others": "harm to others", "negation": "negation", "idiom": "idiom", "all": "all"}


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """A score table for the page: category names in words, shares as percentages, "-" where undefined."""
    def percent(value):
        return "-" if pd.isna(value) else f"{value:.0%}"

    out = table.rename(index=_CATEGORY_NAMES).copy()
    for column in ("recall", "precision", "tagged as expected"):
        if column in out:
            out[column] = out[column].map(percent)
    return out


def headline_sentence(table: pd.DataFrame) -> str:
    """The measured recall as the responsible-use page states it (a test keeps the page equal to this sentence)."""
    def at(column, row="all"):
        return table.at[row, column]

    return (f"of {at('statements')}, {at('must flag')} must be flagged; the screen flags {at('caught')} of them "
            f"(recall {at('recall'):.1%}), {at('caught')} of its {at('flagged')} flags are right "
            f"(precision {at('precision'):.1%}), and its recall on first-person current risk is "
            f"{at('recall', 'first_person_current'):.1%}")


# ---------------------------------------------------------------------------------- LLM second opinion (colab, paper)

SECOND_OPINION_LABELS = ("self", "other", "past", "negated", "none")
SECOND_OPINION_INSTRUCTIONS = (
    "You screen messages that clients wrote to a counselling service, for the therapist who will read them. "
    "Label the message with one of these labels. "
    "self: the writer describes their own current or recent thoughts of suicide, of wanting to die or not wanting to "
    "be alive, self-harm or urges to self-harm, or thoughts or fear of physically harming someone else. "
    "other: the writer describes someone else who is thinking of suicide, self-harming, or threatening harm. "
    "past: the writer describes such thoughts or acts of their own only in the past. "
    "negated: the message mentions suicide, self-harm or harming others only to deny them. "
    "none: nothing of the kind, including figures of speech such as 'this job is killing me' or 'dying to see you'. "
    "If several labels apply, choose the first that applies in this order: self, other, past, negated, none."
)


def second_opinion(texts, judge, progress: bool = False) -> list[str | None]:
    """An LLM's label for each text (one of :data:`SECOND_OPINION_LABELS`), through the judge backend and its cache;
    None where the judgment failed (its reason is in the cache).  Needs ``judge.backend: openai``."""
    if judge.config.backend != "openai":
        raise ValueError("data.crisis_second_opinion needs an LLM: set judge.backend to openai, or turn the setting off")
    return judge.classify_many(list(texts), list(SECOND_OPINION_LABELS), SECOND_OPINION_INSTRUCTIONS,
                               progress=progress)


def add_second_opinion(statements: pd.DataFrame, judge, progress: bool = False) -> pd.DataFrame:
    """``statements`` with the LLM's label (``crisis_llm``, None where it failed), the screen's own flag
    (``crisis_patterns``), and ``crisis`` set where either flags the statement: a second opinion can add a flag,
    never remove one, because a missed crisis costs more than a false flag."""
    labels = second_opinion(statements["text"], judge, progress=progress)
    out = statements.assign(crisis_patterns=statements["crisis"].astype(bool), crisis_llm=labels)
    out["crisis"] = out["crisis_patterns"] | out["crisis_llm"].isin(FLAGGING)
    return out


def compare_with_second_opinion(detections: pd.DataFrame, labels: list[str | None]) -> pd.DataFrame:
    """Recall and precision on the labelled set of the patterns, the LLM, and either of the two (a flag from either),
    with the number of LLM judgments that failed (counted as not flagged)."""
    scored = detections.assign(llm=[label in FLAGGING for label in labels])
    scored["either"] = scored["flagged"] | scored["llm"]
    failed = sum(pd.isna(label) for label in labels)
    rows = {}
    for name, column in (("patterns", "flagged"), ("LLM", "llm"), ("either", "either")):
        overall = score_table(scored, column).loc["all"]
        rows[name] = {"caught": overall["caught"], "missed": overall["missed"], "false flags": overall["false flags"],
                      "recall": overall["recall"], "precision": overall["precision"],
                      "failed judgments": failed if name != "patterns" else 0}
    counts = ["caught", "missed", "false flags", "failed judgments"]
    return pd.DataFrame.from_dict(rows, orient="index").astype({c: int for c in counts}).rename_axis("screen")


__all__ = [
    "KINDS", "SIGNAL_CATEGORIES", "FLAGGING", "EVALUATION_SET", "EVALUATION_CATEGORIES", "EXPECTED_TAG",
    "SECOND_OPINION_LABELS", "SECOND_OPINION_INSTRUCTIONS", "CrisisSignal", "find_signals", "signal_table",
    "is_crisis", "crisis_signals", "load_evaluation_set", "detect", "score_table", "evaluate", "readable",
    "headline_sentence", "second_opinion", "add_second_opinion", "compare_with_second_opinion",
]
