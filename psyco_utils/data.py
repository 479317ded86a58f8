"""Client statements: sources, cleaning, de-duplication, scrubbing, crisis flags and themes (chapter 01).

The pipeline in :func:`prepare_statements` follows the paper (length filter 100 to 1,000 characters, then
de-duplication) and adds what a careful re-implementation needs: unicode normalisation, personal-data scrubbing
before any third-party call, crisis-language flags, and theme labels.  Every step reports what it dropped or changed,
so nothing is lost silently.  Preference pairs and splits (chapter 02) are in :mod:`psyco_utils.pairs`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from . import crisis
from .config import DataConfig, SourceConfig
from .crisis import crisis_signals
from .layout import ANSWERS_FILE

CORPUS_DIR = Path(__file__).parent / "corpus"
THEMES = (
    "anxiety",
    "depression",
    "relationships",
    "family",
    "grief",
    "trauma",
    "self_esteem",
    "substance_use",
)
RESPONSE_STYLES = ("empathic", "generic", "directive", "dismissive", "rambling")
STATEMENT_COLUMNS = ["statement_id", "source", "source_id", "text"]


class SourceError(ValueError):
    """A statement source that cannot be read as asked: the message names the source, the row and the column."""


# ----------------------------------------------------------------------------------------------------------------
# The bundled corpus
# ----------------------------------------------------------------------------------------------------------------


def load_bundled_corpus(corpus_dir: str | Path = CORPUS_DIR) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The corpus written for this book: ``(statements, responses)``.

    ``statements`` has one row per statement (id, theme, subtheme, text, edge_case, duplicate_of); ``edge_case`` marks
    the rows written to exercise a filter (too short, too long, duplicates, personal data, crisis).  ``responses`` has
    one row per (statement, style) with the five deliberately varied response styles.
    """
    corpus_dir = Path(corpus_dir)
    files = sorted(corpus_dir.glob("*.jsonl"))
    if not files:
        raise SourceError(f"bundled corpus: no .jsonl files in {corpus_dir}")
    statements, responses = [], []
    required = ("id", "theme", "text")
    for path in files:
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SourceError(f"{path.name}, line {line_no}: invalid JSON ({exc.msg})") from None
            for key in required:
                if not isinstance(row.get(key), str) or not row[key]:
                    raise SourceError(f"{path.name}, line {line_no}: field {key!r} missing or not a string")
            statements.append(
                {
                    "id": row["id"],
                    "theme": row["theme"],
                    "subtheme": row.get("subtheme"),
                    "text": row["text"],
                    "edge_case": row.get("edge_case"),
                    "duplicate_of": row.get("duplicate_of"),
                }
            )
            for style, text in (row.get("responses") or {}).items():
                responses.append({"statement_id": row["id"], "style": style, "text": text})
    st = pd.DataFrame(statements)
    dup = st["id"][st["id"].duplicated()]
    if len(dup):
        raise SourceError(f"bundled corpus: duplicate statement ids {sorted(dup)[:5]}")
    return st, pd.DataFrame(responses, columns=["statement_id", "style", "text"])


# ----------------------------------------------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------------------------------------------


def _source_label(src: SourceConfig) -> str:
    return src.name or src.path or src.hub_id or src.kind


def _check_utf8(path: Path) -> None:
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SourceError(
            f"source {path}: invalid UTF-8 at line {line}, byte column {column} ({exc.reason}); re-save the file as UTF-8"
        ) from None


def _read_table(src: SourceConfig) -> pd.DataFrame:
    label = _source_label(src)
    if src.kind == "hub":
        if not src.hub_id:
            raise SourceError(f"source {label}: kind 'hub' needs hub_id")
        import datasets

        try:
            ds = datasets.load_dataset(src.hub_id, split=src.hub_split)
        except Exception as exc:
            raise SourceError(
                f"source {label}: could not load hub dataset {src.hub_id!r} split {src.hub_split!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        return ds.to_pandas()
    if not src.path:
        raise SourceError(f"source {label}: kind {src.kind!r} needs path")
    path = Path(src.path)
    if not path.exists():
        raise SourceError(f"source {label}: file {path} does not exist")
    if path.stat().st_size == 0:
        raise SourceError(f"source {label}: file {path} is empty")
    if src.kind in ("csv", "json", "jsonl"):
        _check_utf8(path)
    try:
        if src.kind == "csv":
            df = pd.read_csv(path, dtype=object, keep_default_na=False, na_values=[])
        elif src.kind == "jsonl":
            rows = []
            for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SourceError(f"source {label}: {path}, line {line_no}: invalid JSON ({exc.msg})") from None
                if not isinstance(value, dict):
                    raise SourceError(f"source {label}: {path}, line {line_no}: expected a JSON object")
                rows.append(value)
            df = pd.DataFrame(rows)
        elif src.kind == "json":
            value = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(value, dict):  # {"data": [...]} or column-oriented
                lists = [v for v in value.values() if isinstance(v, list)]
                value = lists[0] if len(lists) == 1 and isinstance(lists[0][0] if lists[0] else None, dict) else value
            df = pd.DataFrame(value)
        elif src.kind == "parquet":
            df = pd.read_parquet(path)
        else:  # pragma: no cover - the config's Literal forbids it
            raise SourceError(f"source {label}: unknown kind {src.kind!r}")
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(f"source {label}: could not read {path} as {src.kind}: {type(exc).__name__}: {exc}") from None
    if df.empty:
        raise SourceError(f"source {label}: {path} has no rows")
    return df


class LoadedSource(NamedTuple):
    """One source read by :func:`load_source`: its statements, the rows it could not use, and the answers it holds."""

    statements: pd.DataFrame  # source, source_id, text
    dropped: pd.DataFrame  # source, source_id, row, reason, text
    answers: pd.DataFrame  # source, source_id, row, answer, upvotes
    rows: int


_DROPPED_COLUMNS = ["source", "source_id", "row", "reason", "text"]
_RAW_ANSWER_COLUMNS = ["source", "source_id", "row", "answer", "upvotes"]
_CLOSING_PUNCTUATION = tuple(".!?:;…")


def join_title(title, body: str) -> str:
    """``Title. Body``: the title as the first sentence, with a full stop added when it has no closing punctuation.

    A missing title, or a body that already starts with its title, leaves the body as it is.
    """
    if not isinstance(title, str) or not title.strip():
        return body
    title = title.strip()
    if body.strip().casefold().startswith(title.casefold()):
        return body
    stop = "" if title.rstrip("\"')]}»”’ ").endswith(_CLOSING_PUNCTUATION) else "."
    return f"{title}{stop} {body.lstrip()}"


def _cell_problem(value, column: str) -> str | None:
    """Why a cell cannot be used as text (missing, empty or not text), or None when it can."""
    if isinstance(value, str):
        return None if value.strip() else f"empty cell in column {column!r}"
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return "missing text"
    return f"non-text cell ({type(value).__name__}) in column {column!r}"


def _upvotes(df: pd.DataFrame, src: SourceConfig, label: str) -> pd.Series:
    if not src.upvotes_column:
        return pd.Series(np.nan, index=df.index)
    raw = df[src.upvotes_column]
    raw = raw.where(~raw.map(lambda v: isinstance(v, str) and not v.strip()))
    votes = pd.to_numeric(raw, errors="coerce")
    bad = votes.isna() & raw.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise SourceError(f"source {label}: row {row}, column {src.upvotes_column!r}: {raw[bad].iloc[0]!r} is not a "
                          f"number; fix the cell or remove upvotes_column from the source entry")
    return votes


def _one_statement_per_question(rows: pd.DataFrame, src: SourceConfig, label: str) -> pd.Series:
    """For each usable row, the id of the statement it belongs to: its own id, or the first row with its text.

    With ``id_column`` mapped, all rows of one id must carry one text; two different texts under one id are an error
    naming both rows and the fix.
    """
    keys = rows["text"].map(exact_key)
    if not src.id_column:
        first_row = rows.groupby(keys, sort=False)["row"].transform("first")
        return first_row.astype(str)
    distinct = rows.assign(key=keys).drop_duplicates(["source_id", "key"])
    clash = distinct[distinct["source_id"].duplicated(keep=False)]
    if len(clash):
        a, b = clash[clash["source_id"] == clash["source_id"].iloc[0]].head(2).itertuples()
        raise SourceError(
            f"source {label}: {src.id_column} {a.source_id!r} carries two different texts: row {a.row} "
            f"({preview(a.text, 60)!r}) and row {b.row} ({preview(b.text, 60)!r}); rows count from 0 after the header. "
            f"Fix the file so that each {src.id_column} has one text, or remove id_column from the source entry to "
            f"make each distinct text its own statement.")
    return rows["source_id"]


def load_source(src: SourceConfig) -> LoadedSource:
    """Read one source: its statements, the rows it could not use (with a reason each) and its answers.

    ``statements`` has the columns ``source``, ``source_id`` (the source's own id, or a row number) and ``text``
    (the title, if mapped, joined as the first sentence by :func:`join_title`).  A row whose text is missing, empty or
    not a string is not kept but returned in ``dropped`` with its reason.  Sources published with one row per answer
    (``answer_column`` mapped) give one statement per question, grouped by id, or by text where no id is mapped;
    ``answers`` holds every answer cell with its statement's ``source_id`` and its upvotes.  A source with an id
    column is grouped the same way.  A missing column is an error that names the source and lists its columns.
    """
    label = _source_label(src)
    if src.kind == "bundled":
        st, _ = load_bundled_corpus(src.path or CORPUS_DIR)
        out = pd.DataFrame({"source": label, "source_id": st["id"], "text": st["text"]})
        return LoadedSource(out, pd.DataFrame(columns=_DROPPED_COLUMNS), pd.DataFrame(columns=_RAW_ANSWER_COLUMNS),
                            len(st))
    df = _read_table(src)
    if src.max_rows:
        df = df.iloc[: src.max_rows]
    roles = ("text_column", "id_column", "title_column", "answer_column", "upvotes_column")
    for role in roles:
        column = getattr(src, role)
        if column is not None and column not in df.columns:
            raise SourceError(
                f"source {label}: {role} {column!r} not found; the source has columns {list(map(str, df.columns))}"
            )
    df = df.reset_index(drop=True)
    ids = df[src.id_column] if src.id_column else pd.Series(range(len(df)), index=df.index)
    usable, dropped = [], []
    for row, value in df[src.text_column].items():
        problem = _cell_problem(value, src.text_column)
        if problem is None and src.id_column and _cell_problem(ids[row], src.id_column) in (
                "missing text", f"empty cell in column {src.id_column!r}"):
            problem = f"missing id in column {src.id_column!r}"
        source_id = str(ids[row])
        if problem:
            dropped.append({"source": label, "source_id": source_id, "row": row, "reason": problem,
                            "text": repr(value)[:200]})
            continue
        title = df.at[row, src.title_column] if src.title_column else None
        usable.append({"source": label, "source_id": source_id, "row": row, "text": join_title(title, value)})
    rows = pd.DataFrame(usable, columns=["source", "source_id", "row", "text"])
    if src.id_column or src.answer_column:
        rows["source_id"] = _one_statement_per_question(rows, src, label)
    statements = rows.drop_duplicates("source_id")[["source", "source_id", "text"]].reset_index(drop=True)
    answers = pd.DataFrame(columns=_RAW_ANSWER_COLUMNS)
    if src.answer_column:
        statement_of_row = dict(zip(rows["row"], rows["source_id"]))
        if src.id_column:  # a row whose text cell is empty still answers its id's question
            statement_of_row = {row: str(ids[row]) for row in df.index} | statement_of_row
        answers = pd.DataFrame({"source": label, "source_id": df.index.map(statement_of_row.get), "row": df.index,
                                "answer": df[src.answer_column], "upvotes": _upvotes(df, src, label)})
    return LoadedSource(statements, pd.DataFrame(dropped, columns=_DROPPED_COLUMNS), answers, len(df))


# ----------------------------------------------------------------------------------------------------------------
# Normalisation and filters
# ----------------------------------------------------------------------------------------------------------------

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u201c": '"', "\u201d": '"',
                         "\u201e": '"', "\u2032": "'", "\u00b4": "'", "\u2013": "-", "\u2014": " - ", "\u2026": "..."})
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")


def normalize_text(text: str) -> str:
    """Unicode NFKC, straight quotes and dashes, no control or zero-width characters, tidy whitespace.

    Paragraph breaks (a blank line) survive as one blank line; every other run of whitespace becomes one space.
    """
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = _ZERO_WIDTH.sub("", text)
    text = "".join(ch if ch in "\n\t" or unicodedata.category(ch)[0] != "C" else " " for ch in text)
    paragraphs = re.split(r"\n\s*\n", text)
    paragraphs = [" ".join(p.split()) for p in paragraphs]
    return "\n\n".join(p for p in paragraphs if p)


def exact_key(text: str) -> str:
    """The key under which two statements count as exact duplicates: case and whitespace do not matter."""
    return " ".join(normalize_text(text).casefold().split())


def length_filter(texts: pd.Series, min_chars: int, max_chars: int) -> pd.Series:
    """A reason per row (``too short``, ``too long``) or None for rows of ``min_chars`` to ``max_chars`` characters."""
    lengths = texts.str.len()
    reasons = pd.Series([None] * len(texts), index=texts.index, dtype=object)
    reasons[lengths < min_chars] = f"too short (< {min_chars} chars)"
    reasons[lengths > max_chars] = f"too long (> {max_chars} chars)"
    return reasons


# ----------------------------------------------------------------------------------------------------------------
# De-duplication
# ----------------------------------------------------------------------------------------------------------------


def exact_duplicates(texts: pd.Series) -> pd.Series:
    """For each row, the index of the first earlier row with the same :func:`exact_key`, or None."""
    keys = texts.map(exact_key)
    first = {}
    result = []
    for idx, key in keys.items():
        result.append(first.get(key))
        first.setdefault(key, idx)
    return pd.Series(result, index=texts.index, dtype=object)


def shingles(text: str, k: int) -> set[str]:
    """Character ``k``-grams of the casefolded text with punctuation removed and whitespace collapsed."""
    clean = " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())
    if len(clean) <= k:
        return {clean}
    return {clean[i : i + k] for i in range(len(clean) - k + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


_MERSENNE = (1 << 61) - 1


def minhash_signatures(shingle_sets: list[set[str]], num_perm: int, seed: int = 0) -> np.ndarray:
    """MinHash signatures (one row per set) from ``num_perm`` universal hash functions over 64-bit shingle hashes."""
    import hashlib

    rng = np.random.default_rng(seed)
    a = rng.integers(1, _MERSENNE, size=num_perm, dtype=np.uint64)
    b = rng.integers(0, _MERSENNE, size=num_perm, dtype=np.uint64)
    signatures = np.empty((len(shingle_sets), num_perm), dtype=np.uint64)
    for row, sset in enumerate(shingle_sets):
        hashes = np.fromiter(
            (int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little") >> 3 for s in sset),
            dtype=np.uint64,
            count=len(sset),
        )
        # (a*x + b) mod p computed in Python ints would be slow; uint64 arithmetic wraps, which keeps the hash family
        # universal enough for candidate generation; candidates are verified with the exact Jaccard below.
        values = (hashes[:, None] * a[None, :] + b[None, :]) % np.uint64(_MERSENNE)
        signatures[row] = values.min(axis=0)
    return signatures


def near_duplicates(texts: pd.Series, threshold: float, shingle_chars: int = 5, num_perm: int = 128,
                    bands: int = 32, seed: int = 0) -> pd.DataFrame:
    """Near-duplicate pairs by MinHash locality-sensitive hashing, verified with the exact Jaccard similarity.

    Method: character ``shingle_chars``-grams; ``num_perm`` MinHash values split into ``bands`` bands, rows sharing a
    band are candidates; a candidate pair is a near duplicate when the exact Jaccard similarity of the two shingle
    sets is at least ``threshold``.  Returns one row per near-duplicate pair: ``index`` (the later row, to drop),
    ``duplicate_of`` (the earlier row, kept) and ``jaccard``.  Rows are compared in order, so the first occurrence
    is the one kept.
    """
    if num_perm % bands:
        raise ValueError(f"num_perm ({num_perm}) must be a multiple of bands ({bands})")
    index = list(texts.index)
    sets = [shingles(t, shingle_chars) for t in texts]
    if len(sets) < 2:
        return pd.DataFrame(columns=["index", "duplicate_of", "jaccard"])
    sig = minhash_signatures(sets, num_perm, seed)
    rows = num_perm // bands
    candidates: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[bytes, list[int]] = {}
        for i in range(len(sets)):
            buckets.setdefault(sig[i, band * rows : (band + 1) * rows].tobytes(), []).append(i)
        for members in buckets.values():
            if len(members) > 1:
                for x in range(len(members)):
                    for y in range(x + 1, len(members)):
                        candidates.add((members[x], members[y]))
    found = []
    dropped: set[int] = set()
    for i, j in sorted(candidates, key=lambda p: (p[1], p[0])):
        if j in dropped or i in dropped:
            continue
        sim = jaccard(sets[i], sets[j])
        if sim >= threshold:
            dropped.add(j)
            found.append({"index": index[j], "duplicate_of": index[i], "jaccard": round(sim, 3)})
    return pd.DataFrame(found, columns=["index", "duplicate_of", "jaccard"])


# ----------------------------------------------------------------------------------------------------------------
# Personal data
# ----------------------------------------------------------------------------------------------------------------

_FIRST_NAMES_FILE = CORPUS_DIR / "first_names.txt"

_PII_PATTERNS: list[tuple[str, re.Pattern]] = [
    ("EMAIL", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("URL", re.compile(r"\b(?:https?://|www\.)[^\s<>\"')\]]*[^\s<>\"')\].,;:!?]|\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|io|co\.uk|me|info)(?:/[^\s<>\"')\]]*)?\b", re.I)),
    ("IP_ADDRESS", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")),
    ("ID_NUMBER", re.compile(r"\b\d{3}-\d{2}-\d{4}\b|\b(?:\d{4}[ -]){3}\d{4}\b")),
    ("PHONE", re.compile(
        r"(?<![\w/])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}(?![\w/])"
        r"|(?<![\w/])\+\d{1,3}[ .-]?\d{2,4}(?:[ .-]?\d{2,4}){2,3}(?![\w/])"
    )),
    ("HANDLE", re.compile(r"(?<![\w@])@[A-Za-z_][A-Za-z0-9_.]{1,30}\b")),
    ("ADDRESS", re.compile(
        r"\b\d{1,5}\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Court|Ct|Boulevard|Blvd"
        r"|Way|Place|Pl|Close|Crescent|Terrace|Square|Sq)\b\.?"
    )),
    ("POSTCODE", re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s+\d[A-Z]{2}\b")),
]
_NAME_CUES = re.compile(r"\b(?:[Mm]y name is|I am|I'm|named|called|[Mm]r\.?|[Mm]rs\.?|[Mm]s\.?|[Dd]r\.?)\s+([A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)")


def _first_names() -> set[str]:
    if _FIRST_NAMES_FILE.exists():
        return {n.strip() for n in _FIRST_NAMES_FILE.read_text(encoding="utf-8").split() if n.strip()}
    return set()


_NAMES = None


def scrub_personal_data(text: str) -> tuple[str, dict[str, int]]:
    """Replace personal data with typed placeholders: ``[EMAIL]``, ``[URL]``, ``[PHONE]``, ``[HANDLE]``,
    ``[ADDRESS]``, ``[POSTCODE]``, ``[ID_NUMBER]``, ``[IP_ADDRESS]`` and ``[NAME]`` (a full name: a known first name
    followed by a capitalised surname, or a capitalised name after "my name is", "named", "Mr", ...).

    Returns the scrubbed text and the number of replacements of each kind.  Runs before any third-party call and
    before anything is published (chapter 01).
    """
    global _NAMES
    if _NAMES is None:
        _NAMES = _first_names()
    counts: dict[str, int] = {}
    for kind, pattern in _PII_PATTERNS:
        text, n = pattern.subn(f"[{kind}]", text)
        if n:
            counts[kind] = counts.get(kind, 0) + n

    def _cue(match: re.Match) -> str:
        name = match.group(1)
        first = name.split()[0]
        if first in _NAMES or len(name.split()) == 2:
            counts["NAME"] = counts.get("NAME", 0) + 1
            return match.group(0).replace(name, "[NAME]")
        return match.group(0)

    text = _NAME_CUES.sub(_cue, text)
    if _NAMES:
        def _full(match: re.Match) -> str:
            if match.group(1) in _NAMES:
                counts["NAME"] = counts.get("NAME", 0) + 1
                return "[NAME]"
            return match.group(0)

        text = re.sub(r"\b([A-Z][a-z]+)\s+(?:[A-Z]\.\s+)?(?!I\b)[A-Z][a-z]+(?:-[A-Z][a-z]+)?\b", _full, text)
    return text, counts


# ----------------------------------------------------------------------------------------------------------------
# Crisis language
# ----------------------------------------------------------------------------------------------------------------

# The screen lives in psyco_utils.crisis (patterns with subject, time and negation handling, measured on a labelled
# set in chapter 01); ``data.crisis_signals(text)`` is the flag's signals, as the chapters' examples use it.


# ----------------------------------------------------------------------------------------------------------------
# Themes
# ----------------------------------------------------------------------------------------------------------------

THEME_DESCRIPTIONS = {
    "anxiety": "worry, panic, social anxiety, health anxiety, stress at work or school",
    "depression": "low mood, loss of motivation or interest, hopelessness, sleep and fatigue, loneliness",
    "relationships": "romantic partners: conflict, communication, trust and infidelity, breakups, dating, intimacy",
    "family": "parents, parenting, siblings, in-laws and blended families, caring for a relative",
    "grief": "bereavement, pet loss, anticipatory grief, loss of a relationship or a job",
    "trauma": "childhood abuse, domestic violence, assault, accidents and disasters, flashbacks and nightmares",
    "self_esteem": "self-worth, body image, perfectionism, identity and sexuality, comparison with others",
    "substance_use": "alcohol, drugs, gambling, gaming and screen time, anger and impulse control",
}

THEME_KEYWORDS = {
    # strong cues count 3, weak cues (people and common words that several themes share) count 1
    "anxiety": {
        "strong": ["anxious", "anxiety", "panic", "panic attack", "worry", "worries", "worried", "worrying", "nervous",
                   "dread", "catastrophis", "what-ifs", "what if", "racing", "blush", "presentation", "deadline",
                   "deadlines", "symptom", "symptoms", "heart racing", "heart pounding", "can't breathe",
                   "catch my breath", "on edge", "terrified of", "fear of flying", "flying", "rehears"],
        "weak": ["stress", "stressed", "scared", "fear", "afraid", "tight", "sweat", "exam", "boss", "work",
                 "job", "health", "doctor"],
    },
    "depression": {
        "strong": ["depressed", "depression", "antidepressant", "hopeless", "numb", "flat", "grey", "empty",
                   "emptiness", "no energy", "exhausted", "motivation", "pointless", "no point", "lost interest",
                   "going through the motions", "lonely", "loneliness", "alone", "sleep", "cannot get out of bed",
                   "can't get out of bed", "winter", "useless", "cry almost every day", "crying"],
        "weak": ["sad", "tired", "low", "sofa", "friends", "evenings", "weekends", "nobody"],
    },
    "relationships": {
        "strong": ["boyfriend", "girlfriend", "partner", "husband", "wife", "marriage", "married", "dating", "date",
                   "dates", "breakup", "broke up", "cheated", "cheating", "affair", "relationship", "engaged",
                   "engagement", "fiance", "intimacy", "sex", "asexual", "his ex", "her ex", "my ex", "move in together",
                   "match", "matches", "apps"],
        "weak": ["love", "loves", "argue", "argument", "together", "trust", "jealous", "phone"],
    },
    "family": {
        "strong": ["mother", "father", "mum", "mom", "dad", "parents", "sister", "brother", "sibling", "siblings",
                   "twin", "son", "daughter", "kids", "children", "child", "teenager", "toddler", "baby",
                   "in-law", "mother-in-law", "stepchildren", "stepfather", "stepmother", "carer", "caring for",
                   "dementia", "stroke", "family", "grandmother", "grandfather", "uncle", "aunt", "cousin"],
        "weak": ["home", "house", "dinner", "visits", "gatherings"],
    },
    "grief": {
        "strong": ["died", "death", "dead", "passed away", "funeral", "grief", "grieving", "grieve", "loss", "lost my",
                   "bereave", "widow", "hospice", "months to live", "put our dog to sleep", "put to sleep",
                   "redundant", "made redundant", "miss her", "miss him", "goodbye", "alzheimer", "terminal",
                   "dying", "gave up", "give up my career"],
        "weak": ["miss", "missing", "memory", "memories", "lost", "anniversary", "grave"],
    },
    "trauma": {
        "strong": ["trauma", "traumatic", "abuse", "abused", "abusive", "assault", "assaulted", "flashback",
                   "flashbacks", "nightmare", "nightmares", "ptsd", "crash", "accident", "violence", "violent", "hit me",
                   "hit my mum", "punches walls", "throws things", "stabbing", "flood", "fire", "army", "served",
                   "bullied", "bullying", "police", "witnessed", "restraining order", "estranged", "paramedic",
                   "unsafe", "locks"],
        "weak": ["freeze", "jump", "smell", "scene", "safe", "childhood"],
    },
    "self_esteem": {
        "strong": ["confidence", "self-esteem", "self esteem", "ugly", "body", "mirror", "weight", "not good enough",
                   "failure", "fraud", "perfect", "perfectionist", "compare", "comparing", "comparison", "insecure",
                   "hate myself", "worthless", "worth", "gay", "non-binary", "coming out", "come out", "identity",
                   "instagram", "compliment", "say no", "saying yes", "short", "height", "dyslexia", "rewrote",
                   "rewriting", "bitter", "humiliated"],
        "weak": ["photo", "photos", "looks", "stupid", "invisible", "grades"],
    },
    "substance_use": {
        "strong": ["drink", "drinks", "drinking", "alcohol", "drunk", "wine", "beer", "champagne", "sober", "sobriety",
                   "sponsor", "drugs", "cocaine", "cannabis", "weed", "pills", "painkillers", "addicted", "addiction",
                   "relapse", "gambling", "gamble", "betting", "bet", "scratch cards", "gaming", "video games",
                   "games", "console", "tablet", "scrolling", "scroll", "screen time", "temper", "anger", "rage",
                   "punched", "road rage", "impulsive", "impulsively", "debt"],
        "weak": ["habit", "quit", "stop", "money", "spend"],
    },
}


def theme_instructions() -> str:
    """The instruction the LLM theme labeller reads (chapter 01 in the colab and paper profiles): the themes with
    their definitions.  The run manifest's cost estimate counts its length, so both use this one text."""
    return "Label the client statement with the single best-fitting theme: " + "; ".join(
        f"{theme}: {definition}" for theme, definition in THEME_DESCRIPTIONS.items())


def llm_theme_labeller(judge):
    """texts -> theme labels through ``judge.classify_many`` with :func:`theme_instructions` (None where a judgment
    failed; its reason is in the judge's cache); None when there is no judge (the keyword labeller is used)."""
    if judge is None:
        return None
    return lambda texts: judge.classify_many(list(texts), list(THEMES), theme_instructions(), progress=False)


def keyword_theme(text: str) -> tuple[str, dict[str, int]]:
    """The theme with the highest keyword score (strong cues 3 points, weak cues 1), or ``other`` with no cue.

    Ties are broken by the order of :data:`THEMES`.  The tiny profile's labeller (chapter 01, which reports its
    agreement with the bundled corpus's own themes); colab and paper label with an LLM through the judge client.
    """
    lowered = text.casefold()

    def hits(words):
        return sum(1 for k in words if re.search(r"(?<![a-z])" + re.escape(k) + r"(?![a-z])", lowered))

    scores = {theme: 3 * hits(cues["strong"]) + hits(cues["weak"]) for theme, cues in THEME_KEYWORDS.items()}
    best = max(THEMES, key=lambda t: (scores[t], -THEMES.index(t)))
    return (best if scores[best] > 0 else "other"), scores


# ----------------------------------------------------------------------------------------------------------------
# The whole pipeline
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class StatementReport:
    """What :func:`prepare_statements` did at each step: counts, and the rows each step dropped or changed."""

    counts: list[tuple[str, int]] = field(default_factory=list)
    dropped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["statement_id", "source", "step", "reason", "text"]))
    near_duplicate_pairs: pd.DataFrame = field(default_factory=pd.DataFrame)
    scrub_counts: dict[str, int] = field(default_factory=dict)
    answers: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ANSWER_COLUMNS))
    answer_counts: list[tuple[str, int]] = field(default_factory=list)
    per_source: pd.DataFrame = field(default_factory=pd.DataFrame)

    def counts_table(self) -> pd.DataFrame:
        return _funnel(self.counts, "statements")

    def answer_counts_table(self) -> pd.DataFrame:
        return _funnel(self.answer_counts, "answers")


def _funnel(counts: list[tuple[str, int]], unit: str) -> pd.DataFrame:
    table = pd.DataFrame(counts, columns=["step", unit])
    table["removed"] = (-table[unit].diff()).fillna(0).astype(int)
    return table


ANSWER_COLUMNS = ["statement_id", "source", "source_id", "row", "rank", "upvotes", "answer", "chars", "pii_replaced"]


def clean_answers(raw: pd.DataFrame, statement_ids, same_as: dict[str, str] | None = None
                  ) -> tuple[pd.DataFrame, list[tuple[str, int]]]:
    """The answers of the kept statements, normalised, de-duplicated per statement and scrubbed of personal data.

    ``same_as`` maps a statement dropped as an exact duplicate to the statement kept in its place, which takes its
    answers (``source`` and ``source_id`` still name the row's own question).  ``rank`` 1 is a statement's most
    upvoted answer (ties and missing votes in row order).  Also returns how many answers each step kept, so that none
    is lost silently.
    """
    counts = [("answer cells", len(raw))]
    answers = raw[raw["answer"].map(lambda v: _cell_problem(v, "answer") is None).astype(bool)].copy()
    answers["answer"] = answers["answer"].map(normalize_text)
    answers = answers[answers["answer"].str.len() > 0]
    counts.append(("with text", len(answers)))
    answers["statement_id"] = answers["source"].astype(str) + ":" + answers["source_id"].astype(str)
    answers["statement_id"] = answers["statement_id"].replace(same_as or {})
    answers = answers[answers["statement_id"].isin(set(statement_ids))]
    counts.append(("of kept statements", len(answers)))
    answers = answers[~answers.assign(key=answers["answer"].map(exact_key)).duplicated(["statement_id", "key"])]
    counts.append(("distinct per statement", len(answers)))
    scrubbed = answers["answer"].map(scrub_personal_data)
    answers["answer"] = scrubbed.map(lambda x: x[0])
    answers["pii_replaced"] = scrubbed.map(lambda x: sum(x[1].values()))
    answers["chars"] = answers["answer"].str.len()
    answers["upvotes"] = answers["upvotes"].astype(float)
    answers = answers.sort_values(["statement_id", "upvotes", "row"], ascending=[True, False, True], na_position="last")
    answers["rank"] = answers.groupby("statement_id").cumcount() + 1
    return answers[ANSWER_COLUMNS].reset_index(drop=True), counts


def save_answers(answers: pd.DataFrame, statements_dir: str | Path) -> Path:
    """Write the kept statements' answers to ``statements/answers.parquet`` (chapter 01; chapter 06 reads them)."""
    path = Path(statements_dir) / ANSWERS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    answers.to_parquet(path, index=False)
    return path


def _drop(report: StatementReport, frame: pd.DataFrame, mask: pd.Series, step: str, reasons) -> pd.DataFrame:
    removed = frame[mask]
    if len(removed):
        entry = pd.DataFrame(
            {
                "statement_id": removed["statement_id"].values,
                "source": removed["source"].values,
                "step": step,
                "reason": reasons[mask].values if isinstance(reasons, pd.Series) else reasons,
                "text": removed["text"].values,
            }
        )
        report.dropped = entry if report.dropped.empty else pd.concat([report.dropped, entry], ignore_index=True)
    return frame[~mask]


def _load_sources(cfg: DataConfig, report: StatementReport) -> tuple[pd.DataFrame, list, dict, list[str]]:
    """Every source's statements (one row per statement), their raw answers, rows read per source, source labels."""
    labels = [_source_label(src) for src in cfg.sources]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise SourceError(f"two source entries share the name {repeated[0]!r}: give each entry its own name")
    frames, raw_answers, rows = [], [], {}
    for src, label in zip(cfg.sources, labels):
        kept, bad, answers, rows[label] = load_source(src)
        frames.append(kept)
        raw_answers.append(answers)
        if len(bad):
            entry = pd.DataFrame({"statement_id": bad["source"] + ":" + bad["source_id"].astype(str),
                                  "source": bad["source"], "step": "load",
                                  "reason": bad["reason"] + " (row " + bad["row"].astype(str) + ")", "text": bad["text"]})
            report.dropped = entry if report.dropped.empty else pd.concat([report.dropped, entry], ignore_index=True)
    df = pd.concat(frames, ignore_index=True)
    df["statement_id"] = df["source"].astype(str) + ":" + df["source_id"].astype(str)
    report.counts.append(("rows loaded", sum(rows.values())))
    report.counts.append(("rows with text", sum(rows.values()) - int((report.dropped["step"] == "load").sum())))
    report.counts.append(("one per statement (rows grouped)", len(df)))
    return df, raw_answers, rows, labels


def _filter_and_deduplicate(df: pd.DataFrame, cfg: DataConfig, report: StatementReport
                            ) -> tuple[pd.DataFrame, dict[str, str]]:
    """Oversized inputs, normalisation, the length filter, exact and near de-duplication; also which statement
    each exact duplicate repeats (its answers go to that one)."""
    oversized = df["text"].str.len() > cfg.max_input_chars
    df = _drop(report, df, oversized, "oversized input", f"over {cfg.max_input_chars:,} chars before normalisation")
    df["text"] = df["text"].map(normalize_text)
    empty = df["text"].str.len() == 0
    df = _drop(report, df, empty, "normalise", "empty after normalisation")
    report.counts.append(("normalised", len(df)))

    reasons = length_filter(df["text"], cfg.min_chars, cfg.max_chars)
    df = _drop(report, df, reasons.notna(), "length filter", reasons)
    report.counts.append((f"length {cfg.min_chars}-{cfg.max_chars} chars", len(df)))

    first = exact_duplicates(df["text"])
    ids = df["statement_id"]
    exact_reason = first.map(lambda i: None if i is None else f"exact duplicate of {ids.loc[i]}")
    same_as = dict(zip(ids[first.notna()], first.dropna().map(ids)))
    df = _drop(report, df, first.notna(), "exact dedup", exact_reason)
    report.counts.append(("exact dedup", len(df)))

    pairs = near_duplicates(df["text"], cfg.near_duplicate_threshold, cfg.shingle_chars, cfg.minhash_permutations,
                            cfg.minhash_bands)
    if len(pairs):
        pairs["statement_id"] = pairs["index"].map(df["statement_id"])
        pairs["duplicate_of_id"] = pairs["duplicate_of"].map(df["statement_id"])
        near_mask = df.index.isin(pairs["index"])
        near_reason = pd.Series(
            [f"near duplicate of {d} (Jaccard {j:.2f})" for d, j in zip(pairs["duplicate_of_id"], pairs["jaccard"])],
            index=pairs["index"],
        ).reindex(df.index)
        df = _drop(report, df, pd.Series(near_mask, index=df.index), "near dedup", near_reason)
    report.near_duplicate_pairs = pairs
    report.counts.append(("near dedup", len(df)))
    return df, same_as


def _scrub_flag_and_label(df: pd.DataFrame, cfg: DataConfig, report: StatementReport, llm_labeller) -> pd.DataFrame:
    """Personal data replaced, crisis signals and flag, theme labels."""
    scrubbed = df["text"].map(scrub_personal_data)
    df["text_before_scrub_chars"] = df["text"].str.len()
    df["text"] = scrubbed.map(lambda x: x[0])
    df["pii_replaced"] = scrubbed.map(lambda x: sum(x[1].values()))
    for _, c in scrubbed:
        for kind, n in c.items():
            report.scrub_counts[kind] = report.scrub_counts.get(kind, 0) + n
    signals = df["text"].map(crisis.find_signals)  # every signal, negated ones too; the flag ignores those
    df["crisis_signals"] = signals.map(lambda found: [str(signal) for signal in found])
    df["crisis"] = signals.map(crisis.is_crisis)
    if cfg.theme_labeller == "llm":
        if llm_labeller is None:
            raise ValueError("data.theme_labeller is 'llm' but no LLM labeller was given (make one from the judge client)")
        df["theme"] = llm_labeller(list(df["text"]))
    else:
        df["theme"] = df["text"].map(lambda t: keyword_theme(t)[0])
    return df


def prepare_statements(cfg: DataConfig, llm_labeller=None, progress: bool = False) -> tuple[pd.DataFrame, StatementReport]:
    """Load every source and run the cleaning pipeline (chapter 01).

    Steps, in order: load (non-text rows dropped and counted; rows of one statement grouped, their answers kept in
    ``report.answers``), oversized inputs (``max_input_chars``) dropped, unicode
    and whitespace normalisation, the paper's length filter, exact de-duplication, near de-duplication (MinHash LSH,
    exact Jaccard check), personal-data scrubbing, crisis flags, theme labels.  The length filter runs on the
    normalised text before scrubbing, so placeholders never change which statements survive.

    ``llm_labeller`` (texts -> labels), when the profile asks for LLM theme labels, comes from the judge client.
    """
    report = StatementReport()
    df, raw_answers, rows, labels = _load_sources(cfg, report)
    loaded = df["source"].value_counts()
    df, same_as = _filter_and_deduplicate(df, cfg, report)
    df = _scrub_flag_and_label(df, cfg, report, llm_labeller)
    if cfg.max_statements and len(df) > cfg.max_statements:
        df = df.sample(n=cfg.max_statements, random_state=0).sort_index()
        report.counts.append((f"sampled to max_statements={cfg.max_statements}", len(df)))
    df["chars"] = df["text"].str.len()
    df = df.reset_index(drop=True)
    report.answers, report.answer_counts = clean_answers(pd.concat(raw_answers, ignore_index=True), df["statement_id"],
                                                              same_as)
    report.per_source = pd.DataFrame({"rows": pd.Series(rows), "statements": loaded, "kept": df["source"].value_counts(),
                                      "answers kept": report.answers["source"].value_counts()}, index=labels)
    report.per_source = report.per_source.fillna(0).astype(int).rename_axis("source")
    return df[["statement_id", "source", "source_id", "text", "chars", "theme", "crisis", "crisis_signals",
               "pii_replaced"]], report


def preview(text: str, max_chars: int = 160) -> str:
    """A scrubbed, shortened copy of ``text`` for display: what the book shows of a statement it did not keep.  A
    long text is cut at the last word boundary before ``max_chars`` and ends in an ellipsis."""
    clean, _ = scrub_personal_data(normalize_text(str(text)))
    if len(clean) <= max_chars:
        return clean
    cut = clean[: max_chars - 1]
    return (cut.rsplit(None, 1)[0] if " " in cut else cut).rstrip(" ,;:") + "…"


def edge_case_recall(statements: pd.DataFrame, report: StatementReport, corpus: pd.DataFrame) -> pd.DataFrame:
    """For the bundled corpus: how many of the rows written as each edge case the pipeline caught, and where.

    ``corpus`` is the bundled statements table (with ``edge_case``); ``statements`` and ``report`` are the pipeline's
    output.  Statements that ``max_statements`` sampled out are neither kept nor dropped, and are not counted.
    Used by chapter 01 to show that each filter does what it is for.
    """
    dropped_step = dict(zip(report.dropped["statement_id"], report.dropped["step"]))
    kept = statements.set_index("statement_id")
    bundled = corpus.assign(statement_id="bundled:" + corpus["id"])
    # a profile's max_statements sample leaves some statements out of both: they were never screened for the case
    bundled = bundled[bundled["statement_id"].isin(kept.index) | bundled["statement_id"].isin(dropped_step)]
    expected_step = {"too_short": "length filter", "too_long": "length filter", "exact_duplicate": "exact dedup",
                     "near_duplicate": "near dedup"}
    rows = []
    for case, group in bundled.dropna(subset=["edge_case"]).groupby("edge_case"):
        if case in expected_step:
            caught = sum(dropped_step.get(s) == expected_step[case] for s in group["statement_id"])
            how = f"dropped by {expected_step[case]}"
        elif case == "personal_data":
            caught = sum(s in kept.index and kept.at[s, "pii_replaced"] > 0 for s in group["statement_id"])
            how = "kept, personal data replaced"
        elif case == "crisis":
            caught = sum(s in kept.index and bool(kept.at[s, "crisis"]) for s in group["statement_id"])
            how = "kept, flagged as crisis"
        else:
            continue
        rows.append({"edge case": case, "written": len(group), "caught": int(caught), "as expected": how})
    ordinary = bundled[bundled["edge_case"].isna()]
    false_drops = sum(s in dropped_step for s in ordinary["statement_id"])
    false_flags = sum(s in kept.index and bool(kept.at[s, "crisis"]) for s in ordinary["statement_id"])
    rows.append({"edge case": "ordinary (dropped by mistake)", "written": len(ordinary), "caught": int(false_drops),
                 "as expected": "should be 0"})
    rows.append({"edge case": "ordinary (crisis flag)", "written": len(ordinary), "caught": int(false_flags),
                 "as expected": "few: the screen flags generously (chapter 01 measures it)"})
    return pd.DataFrame(rows)


__all__ = [
    "CORPUS_DIR", "THEMES", "THEME_DESCRIPTIONS", "THEME_KEYWORDS", "RESPONSE_STYLES", "STATEMENT_COLUMNS",
    "ANSWER_COLUMNS", "SourceError", "LoadedSource", "StatementReport", "load_bundled_corpus", "join_title",
    "load_source", "normalize_text", "exact_key", "length_filter", "exact_duplicates", "shingles", "jaccard",
    "minhash_signatures", "near_duplicates", "scrub_personal_data", "keyword_theme", "theme_instructions",
    "llm_theme_labeller", "clean_answers", "save_answers", "prepare_statements", "preview", "edge_case_recall",
]
