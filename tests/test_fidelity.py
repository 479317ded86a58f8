"""The paper-fidelity table: every paper number has a route, every quoted chapter call and named setting exists, and a
setting that drifts from the paper's value shows as a difference."""

from __future__ import annotations

from html import escape
from pathlib import Path

import pytest

from psyco_utils import fidelity, paper
from psyco_utils.config import load_profile

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.fixture(scope="module")
def paper_profile():
    return load_profile("paper")


@pytest.fixture(scope="module")
def table(paper_profile):
    return fidelity.fidelity_table(paper_profile)


def test_every_public_number_of_the_paper_module_is_enumerated():
    enumerated = set(fidelity.SECTIONS)
    assert set(paper.__all__) - fidelity.NOT_NUMBERS == enumerated


def test_the_table_has_one_row_per_paper_number(table):
    numbers = fidelity.paper_numbers()
    assert len(table) == len(numbers)
    assert numbers["value"].notna().all()
    assert ("Win rate against GPT-4o", "no constraint: 8B DPO-Iter") in set(zip(table["section"], table["number"]))


def test_a_new_paper_number_without_a_route_fails(monkeypatch):
    monkeypatch.setitem(paper.DATASET, "a number nobody routed", 7)
    with pytest.raises(KeyError, match="a number nobody routed"):
        fidelity.fidelity_table(load_profile("paper"))


def test_every_quoted_call_is_in_its_chapter():
    for (constant, quantity), entry in fidelity.ROUTES.items():
        if isinstance(entry, fidelity.Unavailable):
            assert entry.reason, (constant, quantity)
            continue
        source = (NOTEBOOKS / f"{entry.chapter}.py").read_text()
        assert entry.call in source, f"{constant}[{quantity!r}]: {entry.call!r} is not in {entry.chapter}.py"


def test_every_named_setting_exists_in_the_paper_profile(paper_profile):
    for (constant, quantity), entry in fidelity.ROUTES.items():
        if isinstance(entry, fidelity.Unavailable) or " x " in entry.setting:
            continue
        for path in entry.setting.split(", "):
            fidelity.setting_value(paper_profile, path)  # raises AttributeError/KeyError when it does not exist
    for name, derive, _ in fidelity.BOOK_CHOICES:
        if derive is None:
            fidelity.setting_value(paper_profile, name)


def test_settings_read_the_preset_and_a_drift_shows_as_a_difference(paper_profile, table):
    row = table.set_index(["section", "number"]).loc[("Reward-model training", "learning rate")]
    assert row["kind"] == "setting" and row["as the paper"] == "yes"
    assert row["paper profile"] == f"{paper.REWARD_TRAINING['learning rate']:g}"
    drifted = fidelity.fidelity_table(load_profile("paper", ["reward.training.learning_rate=1e-5"]))
    row = drifted.set_index(["section", "number"]).loc[("Reward-model training", "learning rate")]
    assert (row["paper profile"], row["as the paper"]) == ("1e-05", "no")


def test_dpo_iter_total_steps_are_derived_from_rounds_batch_and_epochs(paper_profile, table):
    row = table.set_index(["section", "number"]).loc[("DPO-Iter", "total steps")]
    assert row["paper profile"] == f"{paper.DPO_ITER['total steps']:,}"
    fewer = fidelity.fidelity_table(load_profile("paper", ["dpo_iter.rounds=4"]))
    assert fewer.set_index(["section", "number"]).loc[("DPO-Iter", "total steps"), "paper profile"] == "800"


def test_numbers_without_a_code_path_say_why(table):
    gaps = table[table["kind"] == "no code path"]
    assert (gaps["why"].str.len() > 20).all()
    counts = fidelity.fidelity_counts(table)
    assert counts.sum() == len(table) and list(counts.index) == ["result", "setting", "no code path"]


def test_book_choices_read_the_preset(paper_profile):
    choices = fidelity.book_choices_table(paper_profile).set_index("setting")
    assert choices.loc["dpo_iter.rounds", "paper profile"] == str(paper_profile.dpo_iter.rounds)
    assert choices.loc["judge.length_instructions", "paper profile"] == "no"
    sampling = choices.loc["pool.generators (local models)", "paper profile"]
    temperatures = {g.temperature for g in paper_profile.pool.generators if g.kind == "hf"}
    assert all(f"{t}" in sampling for t in temperatures) and "new tokens" in sampling


def test_the_show_functions_render_every_row(table):
    from psyco_utils import show

    html = show.fidelity_results(table).to_html() + show.fidelity_settings(table).to_html()
    html += show.fidelity_gaps(table).to_html()
    for number in table["number"]:
        assert escape(number) in html
    assert "<code>" in html
    assert str(len(table)) in show.fidelity_findings(table).data
