"""The reward-model and DPO trainings under a launcher: two CPU processes (torchrun, gloo) on a small tiny world.

What is checked:
* the launch trains both stages and only the main process writes their artifacts (an audit hook in each process,
  tests/launch_probe.py, records every file it changes);
* chapters 03 and 04, run afterwards on one process with the same profile and overrides, find the launched models by
  their fingerprints and reuse them;
* the result agrees with one process training on the same global batch (8 pairs per optimizer step: 4 per process
  on 2 processes, or 4 x 2 accumulated on one).  Data-parallel training on the same global batch is the same
  optimisation, up to the order in which floating-point gradients are summed, so the tolerance is small: the models
  differ by at most 1% of how far training moved them (relative L2 norm over all weights), and every logged train and
  dev loss agrees to 1e-4.  Adam divides each update by the root of the gradient's running square, which magnifies
  rounding differences in near-zero gradients; that is why the weights are compared relative to the update, not the
  weights.  Observed here: the reward model identical to the last bit, DPO 0.3% of its update.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from psyco_utils import launch, policy, reward
from psyco_utils.config import load_profile, run_dir
from psyco_utils.layout import RunLayout

from conftest import handmade_pairs

REPO = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).with_name("launch_probe.py")
# Every train pair also gets a degenerate negative: 24 + 24 reward pairs, 6 full global batches of 8.  With a partial
# last batch the launched processes would pad it (accelerate's even batches) and the two runs differ in that step.
SIZES = ["reward.training.per_device_train_batch_size=4", "reward.training.num_train_epochs=1",
         "reward.training.logging_steps=1", "reward.degenerate_negatives=1.0",
         "dpo.training.per_device_train_batch_size=4", "dpo.training.global_batch_size=8",
         "dpo.training.num_train_epochs=1", "dpo.training.logging_steps=1", "dpo.training.max_length=256"]
ARTIFACT_FOLDERS = ("reward_model/", "dpo/")


def _write_pairs(run: Path) -> None:
    from psyco_utils.pairs import to_dataset_dict

    frame = handmade_pairs()
    splits = {"train": frame.iloc[:24], "dev": frame.iloc[24:32], "test": frame.iloc[32:]}
    to_dataset_dict({k: v.reset_index(drop=True) for k, v in splits.items()}).save_to_disk(
        str(RunLayout(run).preference_data))


@pytest.fixture(scope="module")
def runs(tiny_world, tmp_path_factory):
    """The same inputs in two runs folders; ``two`` trained by a 2-process launch, ``one`` in this process."""
    root = tmp_path_factory.mktemp("launch")
    overrides = [f"models.policy={tiny_world.policy_dir}", f"models.reward_backbone={tiny_world.policy_dir}", *SIZES]
    folders = {}
    with pytest.MonkeyPatch.context() as mp:
        for name in ("one", "two"):
            mp.setenv("PSYCO_RUNS_DIR", str(root / name))
            folders[name] = run_dir(load_profile("tiny", overrides))
            _write_pairs(folders[name])
        env = {**os.environ, "PSYCO_RUNS_DIR": str(root / "two"), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        sets = [arg for o in overrides for arg in ("--set", o)]
        start = time.perf_counter()
        launched = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(PROBE),
             str(folders["two"]), str(root / "probe"), "--", "reward", "dpo", "--profile", "tiny", *sets],
            env=env, capture_output=True, text=True, timeout=900, cwd=REPO)
        launch_seconds = time.perf_counter() - start
        mp.setenv("PSYCO_RUNS_DIR", str(root / "one"))
        start = time.perf_counter()
        single = {stage: launch.train_stage(stage, "tiny", overrides) for stage in ("reward", "dpo")}
        single_seconds = time.perf_counter() - start
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    probes = {r: json.loads((root / "probe" / f"rank{r}.json").read_text()) for r in (0, 1)}
    return {"folders": folders, "overrides": overrides, "launched": launched, "probes": probes, "single": single,
            "seconds": (launch_seconds, single_seconds), "root": root}


def test_the_launch_trains_both_stages_and_only_the_main_process_writes_them(runs):
    out = runs["launched"].stdout
    for stage in ("reward", "dpo"):
        assert out.count(f"{stage}: trained on 2 processes") == 1, out  # one report: from the main process
    main_writes = {path for _, path in runs["probes"][0]}
    for stage in ("reward_model", "dpo"):
        assert {f"{stage}/training_record.json", f"{stage}/model/config.json"} <= main_writes
        folder = RunLayout(runs["folders"]["two"]).root / stage
        assert (folder / "model" / "model.safetensors").is_file() and not (folder / "checkpoints").exists()
        assert sorted(p.name for p in folder.glob("*.json")) == ["training_record.json"]
    others = [(event, path) for event, path in runs["probes"][1] if path.startswith(ARTIFACT_FOLDERS)]
    assert others == [], f"rank 1 changed artifact files: {others[:5]}"


def test_chapters_03_and_04_reuse_what_the_launch_trained(runs, monkeypatch):
    run = runs["folders"]["two"]
    monkeypatch.setenv("PSYCO_RUNS_DIR", str(runs["root"] / "two"))
    cfg = load_profile("tiny", runs["overrides"])
    from psyco_utils.models import resolve_model_path
    from psyco_utils.pairs import load_preference_data

    prefs = load_preference_data(cfg, run)
    args = reward.reward_config(cfg, reward.stage_dir(run), has_dev=prefs["dev"].num_rows > 0)  # chapter 03's cells
    plan = reward.plan_training(cfg, reward.training_pairs(cfg, prefs), prefs["dev"], reward.stage_dir(run),
                                run_root=run, args=args)
    reused = plan.earlier_result()
    assert reused is not None and reused.reused
    assert reused.config["gradient_accumulation_steps"] == 1 and args.gradient_accumulation_steps == 2
    layout = RunLayout(run)  # chapter 04's cells
    dpo_inputs = policy.training_inputs(cfg.dpo.training, resolve_model_path(cfg.models.policy, cfg),
                                        prefs["train"], prefs["dev"], layout.dpo.root, seed=cfg.seed,
                                        lora=cfg.models.lora)
    earlier = policy.previous_run(dpo_inputs, cfg.reuse_trained_models)
    assert earlier is not None and earlier.reused and earlier.steps == runs["single"]["dpo"].steps


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def _relative_difference(one: Path, two: Path, start: Path) -> float:
    """|two - one| / |one - start| over all weights (L2): how far apart the runs are, relative to the update."""
    import torch

    a, b, s = _weights(one), _weights(two), _weights(start)
    apart = torch.sqrt(sum(((a[k].double() - b[k].double()) ** 2).sum() for k in a))
    moved = torch.sqrt(sum(((a[k].double() - s[k].double()) ** 2).sum() for k in a if k in s))
    return float(apart / moved)


def test_two_processes_agree_with_one_on_the_same_global_batch(runs, tiny_world):
    one, two = RunLayout(runs["folders"]["one"]), RunLayout(runs["folders"]["two"])
    for stage, folder_one, folder_two in (("reward", one.reward_model, two.reward_model), ("dpo", one.dpo, two.dpo)):
        single = runs["single"][stage]
        launched = json.loads(folder_two.training_record.read_text())
        for key in ("loss", "eval_loss"):
            logged_one = [h[key] for h in single.log_history if key in h]
            logged_two = [h[key] for h in launched["log_history"] if key in h]
            assert len(logged_one) == len(logged_two) > 0, (stage, key)
            assert max(abs(x - y) for x, y in zip(logged_one, logged_two)) < 1e-4, (stage, key, logged_one,
                                                                                      logged_two)
        start = tiny_world.policy_dir
        difference = _relative_difference(folder_one.model, folder_two.model, start)
        assert difference < 1e-2, f"{stage}: 2 processes differ from 1 by {difference:.2%} of the update"


# --------------------------------------------------------------------------- launch configs and the page's command
@pytest.mark.parametrize("name", launch.LAUNCH_CONFIGS)
def test_the_shipped_launch_configs_load_with_accelerates_own_config_classes(name):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import launch_command_parser
    from accelerate.utils import DistributedType

    path = launch.launch_config_path(name)
    config = load_config_from_file(str(path))  # unknown top-level keys are errors here
    assert isinstance(config, ClusterConfig) and config.num_machines == 1 and not config.use_cpu
    known = {action.dest for action in launch_command_parser()._actions}
    for section, prefix in (("deepspeed_config", ""), ("fsdp_config", "fsdp_")):
        nested = getattr(config, section) or {}
        unknown = [k for k in nested if (k if k.startswith(prefix) else prefix + k) not in known]
        assert not unknown, f"{name}: keys accelerate launch does not know: {unknown}"
    expected = {"deepspeed_zero2": (DistributedType.DEEPSPEED, "bf16", 2),
                "deepspeed_zero3": (DistributedType.DEEPSPEED, "bf16", 3),
                "fsdp": (DistributedType.FSDP, "bf16", None), "ddp": (DistributedType.MULTI_GPU, "no", None)}[name]
    assert (config.distributed_type, config.mixed_precision) == expected[:2]
    if expected[2] is not None:
        assert config.deepspeed_config["zero_stage"] == expected[2]
        assert "gradient_accumulation_steps" not in config.deepspeed_config  # derived from the global batch
    if expected[2] == 3:
        assert config.deepspeed_config["zero3_save_16bit_model"] is True  # the main process saves a whole model


def test_the_page_gives_the_launch_command_for_the_hardware():
    from psyco_utils import show

    paper = launch.launch_plan("dpo", "paper", gpus=8)
    assert paper.config == "deepspeed_zero3" and paper.accumulation == 4 and paper.per_device is None
    assert paper.command == ('accelerate launch --config_file "$(python -m psyco_utils.launch --config-path '
                             'deepspeed_zero3)" --num_processes 8 -m psyco_utils.launch dpo --profile paper')
    colab = launch.launch_plan("reward", "colab", ["reward.training.learning_rate=1e-4"], gpus=8)
    assert colab.config == "ddp" and colab.per_device == 4 and colab.accumulation == 1
    assert colab.command.endswith("--set reward.training.learning_rate=1e-4 "
                                  "--set reward.training.per_device_train_batch_size=4")
    tiny = launch.launch_plan("reward", "tiny", gpus=0)
    assert tiny.command.startswith("torchrun --standalone --nproc_per_node 2 -m psyco_utils.launch reward")
    page = show.launch_command("dpo-iter", "paper", gpus=0).data
    assert "--num_processes 8 -m psyco_utils.launch dpo-iter --profile paper" in page
    assert "05_dpo_iter" in page and "/work" not in page and "/tmp" not in page


def test_a_stage_without_its_inputs_names_them_and_the_chapters_to_run(tmp_path, monkeypatch):
    from psyco_utils.inputs import MissingInputs

    monkeypatch.setenv("PSYCO_RUNS_DIR", str(tmp_path))
    with pytest.raises(MissingInputs, match=r"training stage dpo-iter .* the preference pairs .*reward model"
                                            r".*--only 02 03"):
        launch.train_stage("dpo-iter", "tiny")
