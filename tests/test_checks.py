"""Quality checks: enforce stops with a named error; report records in the manifest, shows a warning box, goes on."""

import json

import pytest

from psyco_utils import checks
from psyco_utils.config import load_profile
from psyco_utils.runtime import Chapter


def _chapter(tmp_path, mode):
    return Chapter(cfg=load_profile("tiny", [f"checks={mode}"]), run=tmp_path, stage="04_dpo")


def _recorded(tmp_path):
    return json.loads((tmp_path / "manifest.json").read_text())["stages"]["04_dpo"]["checks"]


def test_enforce_raises_a_named_error_and_records_the_failure(tmp_path):
    with pytest.raises(checks.CheckFailed, match="'DPO raises the reward' failed: reward fell"):
        checks.require(_chapter(tmp_path, "enforce"), "DPO raises the reward", False, "reward fell",
                       model_quality=True)
    assert _recorded(tmp_path) == [{"name": "DPO raises the reward", "passed": False, "message": "reward fell",
                                    "mode": "enforce", "model_quality": True}]


def test_report_records_shows_a_warning_box_and_goes_on(tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, metadata=None: shown.append((obj, metadata)))
    result = checks.require(_chapter(tmp_path, "report"), "DPO raises the reward", False, "reward <fell>")
    assert not result.passed
    (box, metadata), = shown
    assert 'class="admonition warning"' in box.data and "reward &lt;fell&gt;" in box.data
    assert metadata[checks.OUTPUT_METADATA_KEY]["name"] == "DPO raises the reward"
    assert _recorded(tmp_path)[0]["passed"] is False
    assert _recorded(tmp_path)[0]["model_quality"] is False  # unmarked: a check of the code, which must hold


def test_a_passing_check_is_recorded_once_per_name(tmp_path):
    chapter = _chapter(tmp_path, "enforce")
    checks.require(chapter, "a", True, "first")
    checks.require(chapter, "a", True, "second")
    assert [c["message"] for c in _recorded(tmp_path)] == ["second"]


def test_checks_setting_is_validated():
    from psyco_utils.config import ProfileError

    with pytest.raises(ProfileError, match="checks"):
        load_profile("tiny", ["checks=sometimes"])
