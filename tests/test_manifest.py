"""The run manifest: each stage's status (running, ok, checks failed, failed), and the cost estimate beside the
actual cost; the estimate counts every paid call."""

import json

import pytest

from psyco_utils import checks, manifest
from psyco_utils.config import load_profile
from psyco_utils.runtime import Chapter, start_chapter


def _stage(run, stage):
    return json.loads((run / "manifest.json").read_text())["stages"][stage]


def test_a_rerun_starts_clean_and_ends_ok_or_with_the_failed_checks_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PSYCO_RUNS_DIR", str(tmp_path))
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    chapter = start_chapter("tiny", ["checks=report"], stage="04_dpo")
    assert _stage(chapter.run, "04_dpo") == {"status": "running", "started": _stage(chapter.run, "04_dpo")["started"],
                                             "checks": []}
    checks.require(chapter, "DPO raises the reward", False, "reward fell")
    checks.require(chapter, "samples differ", True, "they do")
    chapter.finish({"reward": 0.1})
    stage = _stage(chapter.run, "04_dpo")
    assert stage["status"] == "checks failed" and stage["failed_checks"] == ["DPO raises the reward"]
    assert "finished" in stage and stage["metrics"] == {"reward": 0.1}

    chapter = start_chapter("tiny", ["checks=report"], stage="04_dpo")  # the re-run forgets the old checks
    assert _stage(chapter.run, "04_dpo")["checks"] == [] and _stage(chapter.run, "04_dpo")["status"] == "running"
    checks.require(chapter, "DPO raises the reward", True, "reward rose")
    chapter.finish({"reward": 0.3})
    stage = _stage(chapter.run, "04_dpo")
    assert stage["status"] == "ok" and "failed_checks" not in stage


def test_a_failure_replaces_finished_results(tmp_path):
    chapter = Chapter(cfg=load_profile("tiny"), run=tmp_path, stage="02_judging")
    chapter.finish({"pairs": 10})
    manifest.record_failure(tmp_path, "02_judging", "KeyError: 'train'", "code cell 14 ('frames = ...')")
    stage = _stage(tmp_path, "02_judging")
    assert stage["status"] == "failed" and stage["cell"] == "code cell 14 ('frames = ...')"
    assert not {"finished", "metrics", "seconds"} & set(stage)


def _filter_counts(run, cleaned, kept):
    (run / "statements").mkdir(parents=True)
    (run / "statements" / "filter_counts.csv").write_text(
        f"step,statements,removed\nloaded,{cleaned + 500},0\nnear dedup,{cleaned},500\n"
        f"sampled to max_statements={kept},{kept},{cleaned - kept}\n")


def test_the_estimate_counts_every_paid_call(tmp_path):
    cfg = load_profile("colab")
    _filter_counts(tmp_path, cleaned=2000, kept=1500)
    calls = {name: row["calls"] for name, row in manifest.run_cost_estimate(cfg, tmp_path)["calls"].items()}
    assert calls["theme labels (01)"] == 2000  # every cleaned statement, before max_statements samples them
    # 4 responses per statement from 5 generators able to answer, one of them an API model
    assert calls["pool responses (01)"] == 1500 * 4 // 5
    assert calls["scores (02)"] == 1500 * 4
    assert calls["swap-check compares (02)"] == 2 * cfg.judging.swap_check_pairs
    assert calls["win-rate compares (06)"] == cfg.eval.n_statements * 3 * 2 * 2
    assert calls["reference answers (06)"] == 2 * cfg.eval.n_statements
    estimate = manifest.run_cost_estimate(cfg, tmp_path)
    assert estimate["total_usd"] == pytest.approx(sum(r["cost_usd"] for r in estimate["calls"].values()))
    assert all(r["cost_usd"] > 0 for r in estimate["calls"].values())
    keyword = manifest.run_cost_estimate(load_profile("colab", ["data.theme_labeller=keyword",
                                                                 "eval.reference=base_policy"]), tmp_path)
    assert keyword["calls"]["theme labels (01)"]["calls"] == 0 == keyword["calls"]["reference answers (06)"]["calls"]
    assert keyword["total_usd"] < estimate["total_usd"]


def test_the_offline_profile_costs_nothing_and_the_budget_table_keeps_its_keys():
    assert manifest.run_cost_estimate(load_profile("tiny"))["total_usd"] == 0
    row = manifest.judge_cost_estimate("paper")
    assert row["theme label calls"] == manifest.PAPER_STATEMENTS and row["Batch API"] is True
    assert row["estimated cost (USD)"] > 0 and {"score calls", "compare calls", "reference answers"} <= set(row)


def test_the_manifest_puts_the_actual_cost_beside_the_estimate(tmp_path):
    from psyco_utils.judge.cache import JudgmentCache

    estimate = manifest.run_cost_estimate(load_profile("colab"))
    assert manifest.record_cost(tmp_path, estimate)["actual_usd"] == 0.0
    cache = JudgmentCache(tmp_path / "judgments.sqlite")
    cache.put("k1", backend="openai", model="gpt-4o-mini", kind="score", status="ok", result={"x": 1},
              prompt_tokens=1000, completion_tokens=100, cost_usd=0.25)
    cache.put("k2", backend="openai", model="gpt-4o", kind="chat", status="failed", error="timeout", attempts=3,
              cost_usd=0.5)
    cache.close()
    cost = manifest.record_cost(tmp_path)
    assert cost["estimated_usd"] == estimate["total_usd"]  # kept from the start of the run
    assert cost["actual_usd"] == pytest.approx(0.75) and cost["actual_by_model"] == {"gpt-4o": 0.5, "gpt-4o-mini": 0.25}
    assert cost["requests"] == 4 and cost["failed"] == 1


def _manifest_with_stages(run):
    from psyco_utils.layout import RunLayout

    RunLayout(run).save_manifest({"seed": 1234, "git_commit": "abc1234", "packages": {"torch": "2.13.0"}, "stages": {
        "01_dataset_construction": {"status": "ok", "seconds": 12.5, "finished": "now", "metrics": {"statements": 120}},
        "03_reward_model": {"status": "checks failed", "seconds": 30.0, "finished": "now",
                            "failed_checks": ["beats chance"], "metrics": {"accuracy": 0.61}},
        "04_dpo": {"status": "failed", "cell": "code cell 5", "error": "KeyError: 'chosen'",
                   "metrics": {"by reason": {}, "seconds": 1234}},
        "07_reproducibility": {"status": "running"}}})


def test_the_reproducibility_report_reads_the_manifest_without_its_own_stage(tmp_path):
    from psyco_utils.reproducibility import reproducibility_report

    chapter = Chapter(cfg=load_profile("tiny"), run=tmp_path, stage="07_reproducibility")
    with pytest.raises(FileNotFoundError, match="run chapters 01 to 06 first"):
        reproducibility_report(chapter)
    _manifest_with_stages(tmp_path)
    report = reproducibility_report(chapter)
    assert list(report.stages.index) == ["01_dataset_construction", "03_reward_model", "04_dpo"]
    assert report.stages_ok == 1 and report.total_seconds == 42.5
    assert report.stages.loc["04_dpo", "error"] == "code cell 5 KeyError: 'chosen'"
    assert report.headline_metrics.loc[("03_reward_model", "accuracy"), "value"] == 0.61
    assert report.run["git_commit"] == "abc1234" and report.packages["torch"] == "2.13.0"
    assert report.spent("tiny").iloc[0].to_dict() == {"estimated (USD)": 0.0, "actual (USD)": 0.0,
                                                      "requests sent": 0, "failed judgments": 0}
    assert report.headline() == {"chapters_recorded": 3, "estimated_cost_usd": 0.0, "actual_cost_usd": 0.0}
    assert list(report.larger_profiles.index) == ["colab", "paper"]
    assert report.larger_profiles["estimated cost (USD)"].dtype.kind == "f"


def test_the_reproducibility_page_formats_counts_and_names_what_is_not_ok(tmp_path):
    from psyco_utils import show
    from psyco_utils.reproducibility import reproducibility_report

    _manifest_with_stages(tmp_path)
    report = reproducibility_report(Chapter(cfg=load_profile("tiny"), run=tmp_path, stage="07_reproducibility"))
    larger = show.larger_profiles_table(report).to_html()
    assert f"{manifest.PAPER_STATEMENTS:,}" in larger and "psyco-table" in larger
    assert "yes" in larger  # the paper profile's Batch API, not True
    metrics = show.headline_metrics_table(report).data["value"]
    assert metrics.loc[("01_dataset_construction", "statements")] == "120"
    assert metrics.loc[("03_reward_model", "accuracy")] == "0.610"
    assert metrics.loc[("04_dpo", "by reason")] == "none" and metrics.loc[("04_dpo", "seconds")] == "1,234"
    stages = show.stages_table(report).to_html()
    assert "failed checks" in stages and "beats chance" in stages
    text = show.reproducibility_findings(report).data
    assert "1 of 3 chapters are ok; not ok: 03_reward_model (checks failed), 04_dpo (failed)" in text
    assert "in 42 seconds of chapter time" in text and "$" not in text
