"""Every preset parses, TRL accepts its training sections, and bad keys or types are errors that name them."""

import pytest

from psyco_utils.config import ProfileError, list_presets, load_profile, trl_config


@pytest.mark.parametrize("name", ["tiny", "colab", "paper"])
def test_every_preset_parses_and_builds_trl_configs(name, tmp_path):
    cfg = load_profile(name)
    assert cfg.name == name
    assert cfg.pool.responses_per_statement <= len(cfg.pool.generators)
    for kind, section in (("reward", cfg.reward.training), ("dpo", cfg.dpo.training),
                          ("dpo", cfg.dpo_iter.training)):
        # a GPU preset is validated here on a CPU: use_cpu lets TRL accept its bf16 setting
        trl_cfg = trl_config(kind, section, tmp_path, **({"use_cpu": True} if name == "paper" else {}))
        assert trl_cfg.output_dir == str(tmp_path)
    assert cfg.dpo.training["beta"] == 0.1


def test_presets_listed():
    assert {"tiny", "colab", "paper"} <= set(list_presets())


def test_paper_profile_matches_paper_hyperparameters():
    cfg = load_profile("paper")
    rm = cfg.reward.training
    assert rm["learning_rate"] == 9e-6 and rm["max_length"] == 2048 and rm["num_train_epochs"] == 2
    assert rm["global_batch_size"] == 128  # the paper's batch, whatever the number of processes
    it = cfg.dpo_iter
    assert it.statements_per_round == 6400 and it.samples_per_statement == 8
    assert it.training["learning_rate"] == 5e-7
    batch = it.training["global_batch_size"]
    assert batch == 64 and cfg.dpo.training["global_batch_size"] == 64
    assert it.rounds * (it.statements_per_round // batch) * it.training["num_train_epochs"] == 1600


def test_unknown_key_is_named():
    with pytest.raises(ProfileError, match=r"data\.min_charz: unknown key"):
        load_profile("tiny", ["data.min_charz=5"])


def test_wrong_type_is_named():
    with pytest.raises(ProfileError, match=r"dpo_iter\.rounds: .*got 'three'"):
        load_profile("tiny", ["dpo_iter.rounds=three"])


def test_override_applies_and_parses_yaml():
    cfg = load_profile("tiny", ["dpo_iter.rounds=1", "judge.concurrency=4", "data.max_statements=20"])
    assert cfg.dpo_iter.rounds == 1 and cfg.judge.concurrency == 4 and cfg.data.max_statements == 20
    cfg = load_profile("tiny", {"seed": 99})
    assert cfg.seed == 99


def test_unknown_trl_key_is_named(tmp_path):
    with pytest.raises(ProfileError, match=r"dpo\.training: unknown DPOConfig key\(s\): betta"):
        trl_config("dpo", {"betta": 0.1}, tmp_path)


def test_unknown_profile_and_bad_override():
    with pytest.raises(ProfileError, match="unknown profile 'huge'"):
        load_profile("huge")
    with pytest.raises(ProfileError, match="not of the form"):
        load_profile("tiny", ["seed"])


def test_profile_from_yaml_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text((__import__("psyco_utils.config", fromlist=["x"]).PRESET_DIR / "tiny.yaml").read_text()
                    .replace("name: tiny", "name: mine"))
    assert load_profile(str(path)).name == "mine"


def test_override_scientific_notation_without_dot_is_a_number():
    assert load_profile("tiny", ["reward.training.learning_rate=2e-3"]).reward.training["learning_rate"] == 0.002
