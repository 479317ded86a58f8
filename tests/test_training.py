"""Both training stages return the same shape: a TrainingOutcome with TRL's logs read the same way."""

from pathlib import Path

import pytest

from psyco_utils import policy, reward
from psyco_utils.training import TrainingOutcome

LOG = [{"epoch": 0.5, "step": 1, "loss": 0.69}, {"epoch": 1.0, "step": 2, "loss": 0.41},
       {"epoch": 1.0, "step": 2, "eval_loss": 0.5}, {"train_runtime": 3.0, "step": 2}]


def _both(log):
    dpo = policy.TrainingRun(model_dir=Path("dpo/model"), reference="base", pairs=8, steps=2, seconds=3.0,
                             log_history=log)
    rm = reward.RewardTrainingResult(model_dir=Path("reward_model/model"), model=None, tokenizer=None, log_history=log,
                                     pairs_given=8, train_pairs=8, epochs=1, seconds=3.0, selected_by="loss",
                                     best_checkpoint=None, best_metric=None, peak_memory_mb=1.0)
    return dpo, rm


def test_the_reward_model_and_dpo_trainings_share_one_outcome():
    dpo, rm = _both(LOG)
    for outcome in (dpo, rm):
        assert isinstance(outcome, TrainingOutcome) and not outcome.reused
        assert outcome.train_log["loss"].tolist() == [0.69, 0.41] and outcome.final_train_loss == 0.41
        assert outcome.eval_log["eval_loss"].tolist() == [0.5]


def test_a_training_without_logs_has_empty_tables():
    for outcome in _both([]):
        assert outcome.train_log.empty and outcome.eval_log.empty and outcome.final_train_loss is None


# --------------------------------------------------------------------------- the paper's global batch
# (profile, stage) -> (global batch, per-device batch) as the presets state them; accumulation is derived per run.
_SECTIONS = {"reward": "reward", "dpo": "dpo", "dpo-iter": "dpo_iter"}
_EXPECTED_ACCUMULATION = {  # processes 1, 2, 8; None where the global batch does not divide
    ("paper", "reward"): (32, 16, 4), ("paper", "dpo"): (32, 16, 4), ("paper", "dpo-iter"): (32, 16, 4),
    ("colab", "reward"): (4, 2, None), ("colab", "dpo"): (8, 4, 1), ("colab", "dpo-iter"): (8, 4, 1),
    ("tiny", "reward"): (1, None, None), ("tiny", "dpo"): (1, None, None), ("tiny", "dpo-iter"): (1, None, None),
}


def _stage_args(cfg, stage: str, processes: int, tmp_path):
    """The TRL config a stage builds for ``processes`` processes (no process group: the count is passed in)."""
    if stage == "reward":
        return reward.reward_config(cfg, tmp_path, processes=processes, use_cpu=True)
    section = _SECTIONS[stage]
    return policy.dpo_config(getattr(cfg, section).training, tmp_path, seed=cfg.seed, select_on_dev=stage == "dpo",
                             section=f"{section}.training", processes=processes, use_cpu=True)


@pytest.mark.parametrize("profile", ["tiny", "colab", "paper"])
def test_the_global_batch_is_the_presets_on_1_2_and_8_processes(profile, tmp_path, monkeypatch):
    from psyco_utils import models
    from psyco_utils.config import ProfileError, global_batch, load_profile

    monkeypatch.setattr(models, "check_precision", lambda training, section: None)  # bf16/fp16 need a GPU
    cfg = load_profile(profile)
    for stage, section in _SECTIONS.items():
        training = getattr(cfg, section).training
        for processes, accumulation in zip((1, 2, 8), _EXPECTED_ACCUMULATION[profile, stage]):
            if accumulation is None:
                with pytest.raises(ProfileError, match=rf"{section}\.training\.global_batch_size = "
                                                        rf"{training['global_batch_size']} is not a multiple"):
                    _stage_args(cfg, stage, processes, tmp_path)
                continue
            args = _stage_args(cfg, stage, processes, tmp_path)
            assert args.gradient_accumulation_steps == accumulation, (profile, stage, processes)
            assert global_batch(args, processes) == training["global_batch_size"], (profile, stage, processes)
    assert cfg.reward.training["global_batch_size"] == {"paper": 128, "colab": 32, "tiny": 8}[profile]


def test_the_world_size_comes_from_the_launchers_environment(tmp_path, monkeypatch):
    from psyco_utils.config import trl_config

    training = {"global_batch_size": 64, "per_device_train_batch_size": 2, "bf16": False}
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert trl_config("dpo", training, tmp_path).gradient_accumulation_steps == 8
    monkeypatch.delenv("WORLD_SIZE")
    assert trl_config("dpo", training, tmp_path).gradient_accumulation_steps == 32


def test_a_global_batch_with_an_accumulation_or_a_bad_value_is_an_error_naming_the_setting(tmp_path):
    from psyco_utils.config import ProfileError, trl_config

    with pytest.raises(ProfileError, match=r"dpo_iter\.training: set global_batch_size or gradient_accumulation"):
        trl_config("dpo", {"global_batch_size": 64, "gradient_accumulation_steps": 4}, tmp_path,
                   section="dpo_iter.training")
    with pytest.raises(ProfileError, match=r"reward\.training\.global_batch_size must be a positive whole number"):
        trl_config("reward", {"global_batch_size": 0}, tmp_path)
    with pytest.raises(ProfileError, match=r"per_device_train_batch_size \(4\) x 3 processes = 12"):
        trl_config("reward", {"global_batch_size": 128, "per_device_train_batch_size": 4}, tmp_path, processes=3)


def test_the_settings_tables_show_the_global_batch_and_the_derived_accumulation(tmp_path, monkeypatch):
    from psyco_utils.config import load_profile

    monkeypatch.setattr("psyco_utils.models.check_precision", lambda training, section: None)
    cfg = load_profile("paper")
    args = policy.dpo_config(cfg.dpo.training, tmp_path, seed=1, select_on_dev=True, processes=8, use_cpu=True)
    table = policy.config_table(args, cfg.dpo.training, processes=8).set_index("DPOConfig field")
    assert table.loc["global_batch_size", "value"] == "64" and table.loc["global_batch_size", "set by"] == "profile"
    assert table.loc["gradient_accumulation_steps", "value"] == "4"
    assert table.loc["gradient_accumulation_steps", "set by"] == "derived for 8 processes"
    assert table.loc["pairs per optimizer step", "value"] == "64"
    shown = reward.shown_config(reward.reward_config(cfg, tmp_path, processes=2, use_cpu=True), processes=2)
    assert shown.loc["gradient_accumulation_steps", "value"] == "16" and shown.loc["processes", "value"] == "2"
    assert shown.loc["global batch (pairs per optimizer step)", "value"] == "128"
