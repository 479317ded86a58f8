"""Every number the chapters' prose attributes to the paper is one of the paper's numbers in psyco_utils.paper.

A sentence of a Markdown cell that speaks of the paper ("the paper", "paper's", or the citation) is checked: each
number in it must be in psyco_utils.paper, so a correction made there cannot leave an old figure in the prose.  Model
sizes (3B, 8B, 70B), years and the seven principles are not the paper's results and are passed over; sentences about
this book's "paper profile" are settings of the book, not claims about the paper."""

import re
from pathlib import Path

import numpy as np
import pandas as pd

from psyco_utils import paper

ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"(?<![\w.-])(?<!chapter )(?<!chapters )(\d[\d,]*(?:\.\d+)?(?:e-\d+)?)(%|B\b)?")
ABOUT_THE_PAPER = re.compile(r"(?<!colab and )\bpaper(?!\s+profile)\b|zhang2025psycopref", re.I)
NOT_RESULTS = {7.0}  # the seven principles


def _paper_values() -> set[float]:
    values: set[float] = set()

    def add(value):
        if isinstance(value, (tuple, list)):
            for v in value:
                add(v)
        elif isinstance(value, bool) or isinstance(value, str):
            return
        elif isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value):
            values.update({round(float(value), 6), round(100 * float(value), 6)})

    for table in (paper.DATASET, paper.HUMAN_VALIDATION, paper.REWARD_TRAINING, paper.DPO, paper.DPO_ITER):
        for value in table.values():
            add(value)
    for frame in (paper.REWARD_TABLE, paper.HELPSTEER2_ABLATION):
        for value in frame.to_numpy().ravel():
            add(value)
    for value in paper.WIN_RATE_VS_GPT4O:
        add(value)
    return values


def _sentences_about_the_paper(path: Path):
    markdown, in_markdown = [], False
    for line in path.read_text().splitlines():
        if line.startswith("# %%"):
            in_markdown = "[markdown]" in line
            markdown.append("")
        elif in_markdown and line.startswith("#"):
            text = re.sub(r"^\d+\.\s", "", line.lstrip("# ").rstrip())  # a list item's number is no claim
            markdown.append(text + "." if line.startswith("# #") else text)  # a heading ends its own sentence
    text = re.sub(r"\s+", " ", " ".join(markdown))
    text = re.sub(r"\$[^$]*\$|`[^`]*`|\{cite:p\}", " ", text)  # math, code and roles hold no claims
    for sentence in re.split(r"(?<=[.;:])\s+(?=[A-Z*(])", text):
        if ABOUT_THE_PAPER.search(sentence):
            yield sentence


def _claimed_numbers(sentence: str) -> list[tuple[str, float]]:
    found = []
    for digits, unit in NUMBER.findall(sentence):
        if unit == "B":
            continue
        value = float(digits.replace(",", ""))
        if 1900 <= value <= 2100 and "," not in digits or value in NOT_RESULTS:
            continue
        found.append((digits + (unit or ""), value))
    return found


def test_the_number_extractor_reads_what_the_prose_writes():
    claims = _claimed_numbers("The paper reached 98.1% (3B) with 34,329 pairs, lr 9e-6, in 2025 over the 7 principles "
                              "of Llama-3.2 (chapter 6).")
    assert claims == [("98.1%", 98.1), ("34,329", 34329.0), ("9e-6", 9e-6)]


def test_every_number_the_chapters_attribute_to_the_paper_is_in_the_paper_module():
    known = _paper_values()
    unknown = []
    for path in sorted((ROOT / "notebooks").glob("0*.py")):
        for sentence in _sentences_about_the_paper(path):
            unknown += [f"{path.name}: {shown!r} in {sentence[:140]!r}" for shown, value in _claimed_numbers(sentence)
                        if round(value, 6) not in known]
    assert not unknown, "numbers attributed to the paper that psyco_utils.paper does not hold:\n" + "\n".join(unknown)


def test_a_wrong_figure_in_the_prose_would_be_caught():
    known = _paper_values()
    assert 98.1 in known and 34329.0 in known and 9e-06 in known
    assert all(round(v, 6) not in known for _, v in _claimed_numbers("The paper reached 98.7% on 34,392 pairs."))
