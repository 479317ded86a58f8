"""Compose the bundled corpus (``<theme>.jsonl``) from the hand-written notes in ``notes/<theme>.yaml``.

Everything in the corpus was written for this book; it is fictional.  Two themes, ``self_esteem`` and
``substance_use``, are written out in full by hand, every response included, and have no notes file; the other six
are composed here.  Each note holds a client statement written by hand and
a few hand-written facts about it: what the client seems to feel (``feel``), what it is about (``about``), what an
open question would explore (``ask``), the instruction an advice-dumping responder would give (``step``), and whether
the client sounds ready to act or still unsure (``stage``).  The five response styles are then composed from those
facts with the style templates below, so every response is specific to its statement while the styles differ in
exactly the ways a judge of the seven principles should notice:

* ``empathic``: reflects the feeling, uses the client's specifics, validates, asks open questions, offers options
  and leaves the choice with the client, matched to readiness;
* ``generic``: polite platitudes that would fit any statement;
* ``directive``: a list of orders, no feelings, no questions;
* ``dismissive``: minimising or blaming (never encouraging harm);
* ``rambling``: long, repetitive, drifts into the writer's own anecdotes.

Crisis statements get an empathic response that asks about safety directly and points to immediate help.
The edge cases the filters exist for are derived from the notes: an exact duplicate (same text, different
whitespace and quotes), a near duplicate (a few words changed), a too-long statement (several statements run together)
and a too-short one (written in the note).  Run ``python psyco_utils/corpus/compose.py`` after editing a note.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

HERE = Path(__file__).parent
NOTES = HERE / "notes"


def _pick(options: list[str], key: str, salt: str) -> str:
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return options[digest[0] % len(options)]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


CRISIS_HELP = ("If you are in danger of acting on these thoughts, please contact your local emergency number now. "
               "In the US you can call or text 988 at any hour, and in the UK and Ireland you can call the Samaritans "
               "on 116 123. You do not have to be sure it is an emergency to call.")

EMPATHIC_OPENERS = [
    "It sounds like you are feeling {feel}.",
    "Thank you for putting this into words. It sounds like you have been feeling {feel}.",
    "What you describe sounds really hard. I hear that you are feeling {feel}.",
]
EMPATHIC_VALIDATION = [
    "That makes a lot of sense given {about}, and you are not alone in reacting this way.",
    "Given {about}, it is understandable that this weighs on you so much.",
    "With {about}, it makes sense that you feel this way, and it took courage to write about it.",
]
EMPATHIC_QUESTION = [
    "I am curious about {ask}. What do you notice when you think about that?",
    "Could you say a little more about {ask}?",
    "What comes up for you when you think about {ask}?",
]
EMPATHIC_STAGE = {
    "ready": [
        "It sounds like part of you is ready to try something different. If it feels right, you might choose one "
        "small step and notice how it goes; only you can decide which step fits your life.",
        "You seem ready to change something, and you know your situation best. One option could be to pick the "
        "smallest change that feels manageable and see what you learn from it, at your own pace.",
    ],
    "unsure": [
        "It also sounds like you are not sure yet what, if anything, you want to change, and that is okay. There is no "
        "rush to decide; it might help to look at both sides of it first.",
        "Part of you may want things to change while another part is not sure, and both make sense. You get to decide "
        "if and when to act; for now, it might be worth simply noticing what the worry is asking of you.",
    ],
}
EMPATHIC_CLOSERS = [
    "How would you like things to be a few months from now?",
    "What would feel like a good first sign that things are easing for you?",
    "What has helped you, even a little, in hard moments before?",
]

GENERIC = [
    "Many people go through this. Try to take care of yourself and consider talking to a professional. Things often "
    "get better with time, so stay positive.",
    "I'm sorry you are dealing with this. It is important to remember self-care, get enough sleep and eat well. You "
    "might also think about speaking with a professional. Hang in there.",
    "This is something lots of people experience. Be kind to yourself, reach out to people you trust and consider "
    "seeking professional help. You'll be okay.",
    "Thank you for sharing. Life can be difficult sometimes and everyone goes through hard periods. Remember to take "
    "care of yourself and things will get better.",
]
DIRECTIVE_OPENERS = [
    "Here is what you need to do.",
    "You need to take control of this now. Follow these steps:",
    "There is a clear solution here and you should start today:",
]
DIRECTIVE_CLOSERS = [
    "Do not wait for motivation. You must follow this plan consistently or nothing will change.",
    "Stick to this plan every day. You have to be disciplined about it or it will not work.",
    "Make sure you do all of this starting today. Waiting will only make it worse.",
]
DISMISSIVE = [
    "Honestly, you're overreacting. Everyone deals with {short_about} and they just get on with it.",
    "This is not that serious. Stop being so dramatic about {short_about} and get over it.",
    "Sounds like a first-world problem to me. Just relax and stop overthinking {short_about}.",
    "You brought a lot of this on yourself, to be honest. Pull yourself together.",
]
RAMBLING_TANGENTS = [
    "I remember when my cousin went through something a bit like this, although in her case it was mostly about her "
    "landlord, who was a very strange man who collected old radios, and she ended up moving to the coast, which was "
    "probably the right call because the air there is much better, or at least she says it is.",
    "Speaking of which, I was reading an article the other day about how people in the past dealt with problems, and "
    "it said that in some villages everyone would just go for long walks, which I think is interesting, although I "
    "do not walk as much as I should, my knees are not what they were.",
    "By the way, my neighbour had a dog that used to bark whenever anyone was upset, which sounds made up but it is "
    "true, and it made me think that animals notice more than we do, and that might be relevant here, or it might not.",
    "Anyway, when I was younger I used to think that everything happens for a reason, and then later I thought it "
    "did not, and now I am somewhere in between, which is probably where most people end up if they think about it "
    "long enough, which I do, maybe too much.",
]


def empathic(note: dict) -> str:
    key = note["id"]
    feel = note["feel"]
    parts = [
        _pick(EMPATHIC_OPENERS, key, "open").format(feel=feel),
        _pick(EMPATHIC_VALIDATION, key, "valid").format(about=note["about"]),
    ]
    if note.get("edge_case") == "crisis":
        parts += [
            f"I want to take what you said seriously, so I am going to ask you directly about {note['ask']}: are you "
            "safe right now, and are you having thoughts of harming yourself or someone else?",
            CRISIS_HELP,
            "It could also help to let one person you trust know how bad things are today, so you are not carrying "
            "this alone. What would make it possible to reach out to someone tonight?",
        ]
    else:
        parts += [
            _pick(EMPATHIC_QUESTION, key, "ask").format(ask=note["ask"]),
            _pick(EMPATHIC_STAGE[note.get("stage", "unsure")], key, "stage"),
            _pick(EMPATHIC_CLOSERS, key, "close"),
        ]
    return " ".join(parts)


def generic(note: dict) -> str:
    return _pick(GENERIC, note["id"], "generic")


def directive(note: dict, advice: list[str], avoid: str) -> str:
    key = note["id"]
    start = int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(advice)
    steps = [note["step"]] + [advice[(start + i) % len(advice)] for i in range(3)] + [f"stop {avoid}"]
    body = "\n".join(f"{i}. {_cap(s)}." for i, s in enumerate(steps, 1))
    return f"{_pick(DIRECTIVE_OPENERS, key, 'dopen')}\n{body}\n{_pick(DIRECTIVE_CLOSERS, key, 'dclose')}"


def dismissive(note: dict) -> str:
    short_about = note["about"].split(" and ")[0]
    if note.get("edge_case") == "crisis":
        return "Everyone feels like that sometimes. You'll be fine, just try not to dwell on it so much."
    return _pick(DISMISSIVE, note["id"], "dismiss").format(short_about=short_about)


def rambling(note: dict) -> str:
    key = note["id"]
    start = int(hashlib.sha256((key + "r").encode()).hexdigest(), 16) % len(RAMBLING_TANGENTS)
    tangents = [RAMBLING_TANGENTS[(start + i) % len(RAMBLING_TANGENTS)] for i in range(3)]
    return (f"Well, this is a big topic and there is a lot to say about {note['about']}, so bear with me. "
            f"{tangents[0]} But back to {note['about']}. I think a lot of people would say it is complicated, and it "
            f"is complicated, it really is, there are many sides to it and many ways of looking at it. {tangents[1]} "
            f"So what I am trying to say is that {note['about']} is something that a lot of people have opinions "
            f"about, and some of those opinions are probably right and some are probably wrong. {tangents[2]} "
            f"In the end you will figure it out, I am sure, people usually do. Have you thought about it much?")


def _exact_duplicate(text: str) -> str:
    """The same statement as a user might paste it again: curly quotes, doubled spaces, a line break."""
    words = text.replace("'", "\u2019").split(" ")
    middle = len(words) // 2
    return "  ".join(words[:middle]) + "\n" + " ".join(words[middle:]) + "  "


def compose_theme(path: Path) -> list[dict]:
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    theme = spec["theme"]
    rows = []
    notes = spec["statements"]
    by_id = {n["id"]: n for n in notes}
    for note in notes:
        responses = {
            "empathic": empathic(note),
            "generic": generic(note),
            "directive": directive(note, spec["advice"], spec["avoid"]),
            "dismissive": dismissive(note),
            "rambling": rambling(note),
        }
        rows.append({"id": note["id"], "theme": theme, "subtheme": note["subtheme"], "text": note["text"].strip(),
                     "edge_case": note.get("edge_case"), "duplicate_of": None, "responses": responses})
    number = len(notes)

    def next_id():
        nonlocal number
        number += 1
        return f"{theme}-{number:03d}"

    exact_source = by_id[spec["exact_duplicate_of"]]
    rows.append({"id": next_id(), "theme": theme, "subtheme": exact_source["subtheme"],
                 "text": _exact_duplicate(exact_source["text"].strip()), "edge_case": "exact_duplicate",
                 "duplicate_of": exact_source["id"], "responses": {}})
    near_source = by_id[spec["near_duplicate_of"]]
    near_text = near_source["text"].strip()
    for old, new in spec["near_changes"]:
        if old not in near_text:
            raise ValueError(f"{path.name}: near_changes: {old!r} is not in {near_source['id']}")
        near_text = near_text.replace(old, new, 1)
    rows.append({"id": next_id(), "theme": theme, "subtheme": near_source["subtheme"], "text": near_text,
                 "edge_case": "near_duplicate", "duplicate_of": near_source["id"], "responses": {}})
    ordinary = [n for n in notes if not n.get("edge_case")]
    long_parts = []
    for n in reversed(ordinary):  # run statements together until the message is well past 1,000 characters
        long_parts.append(n["text"].strip())
        if len(" And there is more. ".join(long_parts)) > 1150:
            break
    long_text = " And there is more. ".join(long_parts)
    rows.append({"id": next_id(), "theme": theme, "subtheme": "several at once", "text": long_text,
                 "edge_case": "too_long", "duplicate_of": None, "responses": {}})
    rows.append({"id": next_id(), "theme": theme, "subtheme": ordinary[0]["subtheme"], "text": spec["short"],
                 "edge_case": "too_short", "duplicate_of": None, "responses": {}})
    return rows


def main() -> None:
    for path in sorted(NOTES.glob("*.yaml")):
        rows = compose_theme(path)
        out = HERE / f"{path.stem}.jsonl"
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        print(f"{out.name}: {len(rows)} statements")

__all__ = [
    "compose_theme", "empathic", "generic", "directive", "dismissive", "rambling", "main",
]


if __name__ == "__main__":
    main()
