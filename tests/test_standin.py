"""The stand-in run's pieces: stand-in models, the overlaid profiles, errors that name the fix, and chapters opened on
their own.  The stand-in run itself (``python -m standin.run``) is a CI phase of its own, not a test."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import yaml

from psyco_utils import inputs, models
from psyco_utils.config import PRESET_DIR, ProfileConfig, load_profile
from standin import models as standin_models
from standin import run as standin_run

REPO = Path(__file__).resolve().parent.parent

EXPECTED = {  # hub id -> (model_type, marker the chat template must render)
    "Qwen/Qwen2.5-0.5B-Instruct": ("qwen2", "<|im_start|>assistant\n"),
    "HuggingFaceTB/SmolLM2-1.7B-Instruct": ("llama", "named SmolLM"),
    "meta-llama/Llama-3.2-3B-Instruct": ("llama", "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    "mistralai/Mistral-7B-Instruct-v0.3": ("mistral", "[INST] "),
    "google/gemma-2-9b-it": ("gemma2", "<start_of_turn>model\n"),
    "microsoft/Phi-3.5-mini-instruct": ("phi3", "<|assistant|>\n"),
    "Skywork/Skywork-Reward-Llama-3.1-8B-v0.2": ("llama", "<|eot_id|>"),
    "Skywork/Skywork-Reward-Gemma-2-27B": ("gemma2", "<end_of_turn>"),
}


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    return standin_models.build_standins(tmp_path_factory.mktemp("standins"), seed=7)


def test_every_hub_model_of_the_colab_and_paper_presets_has_a_standin():
    for profile in ("colab", "paper"):
        raw = yaml.safe_load((PRESET_DIR / f"{profile}.yaml").read_text())
        assert set(standin_run.hub_models(raw)) <= set(standin_models.STANDINS), profile


@pytest.mark.parametrize("hub_id", sorted(EXPECTED))
def test_standin_is_a_hub_snapshot_of_the_real_architecture_and_template(standins, hub_id):
    from transformers import AutoConfig, AutoTokenizer

    folder = standins[hub_id]
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (folder / name).is_file(), name
    config = AutoConfig.from_pretrained(folder)
    model_type, marker = EXPECTED[hub_id]
    assert config.model_type == model_type
    assert config.architectures == [standin_models.STANDINS[hub_id].architecture]
    tok = AutoTokenizer.from_pretrained(folder)
    chat = [{"role": "user", "content": "I cannot sleep before exams."}, {"role": "assistant", "content": "That sounds hard."}]
    rendered = tok.apply_chat_template(chat[:1], tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(chat, tokenize=False)
    assert "I cannot sleep before exams." in rendered and marker in (rendered + full)
    if "ForCausalLM" in config.architectures[0]:
        generation = json.loads((folder / "generation_config.json").read_text())
        assert generation["eos_token_id"] is not None


def test_family_quirks_are_kept(standins):
    """Llama-3 ships no pad token, Gemma-2 refuses a system turn, Phi-3.5 stops at <|end|> rather than its eos."""
    from transformers import AutoTokenizer

    llama = AutoTokenizer.from_pretrained(standins["meta-llama/Llama-3.2-3B-Instruct"])
    assert llama.pad_token is None and models.load_tokenizer(str(standins["meta-llama/Llama-3.2-3B-Instruct"])).pad_token
    gemma = AutoTokenizer.from_pretrained(standins["google/gemma-2-9b-it"])
    with pytest.raises(Exception, match="System role"):
        gemma.apply_chat_template([{"role": "system", "content": "x"}, {"role": "user", "content": "y"}], tokenize=False)
    phi = json.loads((standins["microsoft/Phi-3.5-mini-instruct"] / "generation_config.json").read_text())
    phi_tok = AutoTokenizer.from_pretrained(standins["microsoft/Phi-3.5-mini-instruct"])
    assert phi_tok.convert_tokens_to_ids("<|end|>") in phi["eos_token_id"] and phi_tok.eos_token == "<|endoftext|>"


def test_standins_are_reused_once_built(standins):
    before = {h: (p / "model.safetensors").stat().st_mtime_ns for h, p in standins.items()}
    again = standin_models.build_standins(next(iter(standins.values())).parents[1], seed=7)
    assert {h: (p / "model.safetensors").stat().st_mtime_ns for h, p in again.items()} == before


def _flatten(node, prefix=""):
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


@pytest.mark.parametrize("profile", ["colab", "paper"])
def test_overlaid_profile_differs_from_the_preset_only_where_the_overlay_says(tmp_path, profile):
    preset = yaml.safe_load((PRESET_DIR / f"{profile}.yaml").read_text())
    paths = {h: tmp_path / h for h in standin_run.hub_models(preset)}
    raw, left_out = standin_run.overlaid_profile(profile, paths)
    cfg = ProfileConfig.model_validate(raw)  # a valid profile
    assert cfg.name == profile and cfg.checks == "report" and cfg.models.generation_backend == "auto"
    assert cfg.models.lora == ProfileConfig.model_validate(preset).models.lora
    assert cfg.judge.use_batch_api == ProfileConfig.model_validate(preset).judge.use_batch_api
    overlay = yaml.safe_load(standin_run.OVERLAY.read_text())
    allowed = {k for k in overlay if not k.startswith("every_pool_generator.")}
    replaced = {"models.policy", "models.reward_backbone", "reward.off_the_shelf", "data.sources", "pool.generators",
                "description"}
    before, after = _flatten(preset), _flatten(raw)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert {k for k in changed if not any(k == r or k.startswith(r + ".") for r in replaced)} <= allowed
    # models: every hub id is replaced by its stand-in's folder, written relative to the repository (where the chapters
    # run) when the folder lies inside it, as it does when the temporary directory is there
    named = [cfg.models.policy, cfg.models.reward_backbone, *cfg.reward.off_the_shelf]
    named += [g.model for g in cfg.pool.generators if g.kind == "hf"]
    assert {str(standin_run.REPO_ROOT / name) for name in named} <= {str(p) for p in paths.values()}
    # pool generators: only the models and the overlay's per-generator keys change
    per_generator = {k.split(".", 1)[1] for k in overlay if k.startswith("every_pool_generator.")}
    for old, new in zip(preset["pool"]["generators"], raw["pool"]["generators"]):
        assert {k for k in set(old) | set(new) if old.get(k) != new.get(k)} <= per_generator | {"model"}
    # sources: a hub source keeps its own entry with only kind and path changed, or is reported as left out
    kept = {s.get("name"): s for s in raw["data"]["sources"]}
    for source in preset["data"]["sources"]:
        if source["kind"] != "hub":
            assert kept[source.get("name")] == source
        elif source["name"] in kept:
            new = kept[source["name"]]
            unchanged = ("kind", "path")
            assert {k: v for k, v in new.items() if k not in unchanged} == \
                {k: v for k, v in source.items() if k not in unchanged}
            assert (REPO / new["path"]).is_file()
        else:
            assert source["name"] in left_out and standin_run.fixture_for(source) is None


def test_standin_server_answers_plain_chats_with_counselling_replies_and_structured_ones_as_the_judge():
    from psyco_utils.data import load_bundled_corpus
    from standin.replies import StandInServer

    statements, responses = load_bundled_corpus()
    statement = statements["text"].iloc[0]
    own = set(responses.loc[responses["statement_id"] == statements["id"].iloc[0], "text"])
    with StandInServer() as server:
        chat = server.completion({"model": "m", "n": 2, "messages": [{"role": "user", "content": statement}]})
        scored = server.completion({"model": "m", "messages": [
            {"role": "user", "content": "CLIENT STATEMENT:\nI am sad.\n\nRESPONSE:\nIt sounds painful."}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "principle_scores"}}})
        assert server.served() == {"chat": 1, "principle_scores": 1, "batches": 0}
    replies = [c["message"]["content"] for c in chat["choices"]]
    assert len(replies) == 2 and set(replies) <= own
    assert chat["usage"]["completion_tokens"] == sum(len(r) // 4 for r in replies)
    assert set(json.loads(scored["choices"][0]["message"]["content"])) >= {"empathy", "staging", "rationale"}


# ------------------------------------------------------------------------------------------ errors that name the fix


def test_vllm_requested_but_not_installed_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm now raises ImportError
    cfg = load_profile("tiny", ["models.generation_backend=vllm"])
    with pytest.raises(models.DeviceError, match=r"\[vllm\]"):
        models.check_vllm(cfg.models)
    with pytest.raises(models.DeviceError, match=r"\[vllm\]"):
        models.load_generator("tiny", cfg.models)


def test_vllm_requested_without_a_gpu_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
    monkeypatch.setattr(models, "has_gpu", lambda: False)
    cfg = load_profile("tiny", ["models.generation_backend=vllm"])
    with pytest.raises(models.DeviceError, match="no CUDA GPU"):
        models.check_vllm(cfg.models)
    models.check_vllm(load_profile("tiny").models)  # hf: nothing to check


def test_fp16_without_a_gpu_names_the_setting_before_training(monkeypatch):
    from psyco_utils import policy, reward

    monkeypatch.setattr(models, "has_gpu", lambda: False)
    cfg = load_profile("tiny", ["reward.training.fp16=true"])
    with pytest.raises(models.DeviceError, match=r"reward\.training\.fp16"):
        reward.reward_config(cfg, "unused")
    with pytest.raises(models.DeviceError, match=r"dpo_iter\.training\.fp16"):
        policy.train_dpo({"fp16": True}, "unused", None, Path("unused"), seed=0, section="dpo_iter.training")
    with pytest.raises(models.DeviceError, match=r"reward\.training\.bf16=false"):
        reward.reward_config(load_profile("tiny", ["reward.training.bf16=true"]), "unused")
    on_cpu = reward.reward_config(load_profile("tiny", ["reward.training.bf16=true", "reward.training.use_cpu=true"]),
                                  "unused")  # bf16 autocast on the CPU needs no GPU
    assert on_cpu.bf16 and on_cpu.use_cpu
    with pytest.raises(models.DeviceError, match=r"reward\.training\.fp16"):  # fp16 has no CPU autocast
        reward.reward_config(load_profile("tiny", ["reward.training.fp16=true", "reward.training.use_cpu=true"]),
                             "unused")


def test_model_origin_reports_local_folders_as_local(tmp_path):
    assert models.model_origin(str(tmp_path)) == f"local folder {tmp_path}"
    assert models.model_origin("Qwen/Qwen2.5-0.5B-Instruct") == "hub id Qwen/Qwen2.5-0.5B-Instruct"
    assert models.model_origin("runs/standin/models/Qwen/Qwen2.5-0.5B-Instruct").startswith("local folder")
    assert models.model_origin("tiny").startswith("the tiny world")


# --------------------------------------------------------------------------------------- a chapter opened on its own

FIRST = {"02_judging": "01_dataset_construction", "03_reward_model": "01_dataset_construction",
         "04_dpo": "01_dataset_construction", "05_dpo_iter": "01_dataset_construction",
         "06_win_rate": "01_dataset_construction"}


def _run_until_inputs_are_read(chapter: str, profile: str, overrides: list[str]) -> None:
    """Execute the chapter's code cells, as papermill would with these parameters, up to its input check."""
    import jupytext

    nb = jupytext.read(REPO / "notebooks" / f"{chapter}.py")
    namespace: dict = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        exec(compile(cell.source, f"{chapter}.py", "exec"), namespace)
        if "parameters" in cell.metadata.get("tags", []):
            namespace.update(profile=profile, overrides=overrides)
        if "require_inputs" in cell.source:
            return
    raise AssertionError(f"{chapter} never checks its inputs with inputs.require_inputs")


@pytest.mark.parametrize("profile", ["tiny", "colab", "paper"])
@pytest.mark.parametrize("chapter", sorted(FIRST))
def test_chapter_opened_on_its_own_says_what_to_run_first(tmp_path, monkeypatch, chapter, profile):
    monkeypatch.setenv("PSYCO_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    with pytest.raises(inputs.MissingInputs) as caught:
        _run_until_inputs_are_read(chapter, profile, [])
    message = str(caught.value)
    assert f"chapter {chapter}" in message and f"Run {FIRST[chapter]}" in message and profile in message
    if chapter != "02_judging":
        assert "splits.source=released" in message
    assert str(tmp_path) not in message  # no machine paths on a page


def test_released_pairs_replace_chapters_01_and_02(tmp_path):
    cfg = load_profile("colab", ["splits.source=released"])
    assert inputs.missing_inputs("03_reward_model", cfg, tmp_path) == []
    assert inputs.chapters_to_run_first("05_dpo_iter", cfg, tmp_path) == ["03_reward_model", "04_dpo"]
    (tmp_path / "reward_model" / "model").mkdir(parents=True)
    (tmp_path / "reward_model" / "model" / "config.json").write_text("{}")
    assert inputs.chapters_to_run_first("05_dpo_iter", cfg, tmp_path) == ["04_dpo"]


@pytest.mark.parametrize("hub_id", [h for h, s in standin_models.STANDINS.items() if "CausalLM" in s.architecture
                                    and h in EXPECTED])
def test_every_standin_family_generates_through_the_one_generation_interface(standins, hub_id):
    """Left-padded batched sampling with the family's template, with the length-constraint system prompt where the
    template has a system turn (Gemma-2 has none: chapter 06 then leaves it out)."""
    from psyco_utils import evaluate

    cfg = load_profile("tiny")
    model, tok = models.load_policy(str(standins[hub_id]), cfg.models, device="cpu")
    system = "Answer in at most 60 words." if evaluate._supports_system(tok) else None
    assert (system is None) == (hub_id == "google/gemma-2-9b-it")
    out = models.generate_responses(model, tok, ["I feel alone at work.", "My sister and I argue."], n=2,
                                    max_new_tokens=6, batch_size=2, system_prompt=system)
    assert [len(group) for group in out] == [2, 2] and all(isinstance(t, str) for group in out for t in group)


def test_a_failed_reference_answer_stops_chapter_06_instead_of_handing_the_policy_a_free_win(tmp_path):
    from psyco_utils import evaluate

    class OneFails:
        def complete_many(self, messages, **kwargs):
            return [None if i == 1 else "A reply." for i in range(len(messages))]

    cfg = load_profile("colab")
    with pytest.raises(RuntimeError, match="1 of 2 reference answers"):
        evaluate.reference_responses(cfg, tmp_path, ["first statement", "second statement"], False, OneFails())


def test_the_run_names_every_paid_path_the_loopback_server_never_saw():
    colab, paper = load_profile("colab"), load_profile("paper")
    assert len(standin_run.unserved_paths(colab, {})) == 4  # scores, verdicts, labeller, plain chats
    assert any("Batch API" in p for p in standin_run.unserved_paths(paper, {"batches": 0}))
    served = {"principle_scores": 3, "principle_verdicts": 2, "label": 5, "chat": 4, "batches": 1}
    assert standin_run.unserved_paths(paper, served) == []


def test_a_failed_check_is_a_problem_unless_it_tests_what_training_achieved(tmp_path):
    """Random-weight stand-ins may fail the checks of what training achieved, never a check that the code computes
    what it should (a loss by hand against TRL's, every response judged)."""
    checks = [{"name": "reward model beats chance", "passed": False, "message": "accuracy 25%", "mode": "report",
               "model_quality": True},
              {"name": "the DPO loss by hand equals TRL's", "passed": False, "message": "largest 6e-4",
               "mode": "report", "model_quality": False},
              {"name": "every split has pairs", "passed": True, "message": "yes", "mode": "report",
               "model_quality": False}]
    (tmp_path / "manifest.json").write_text(json.dumps({"stages": {
        "04_dpo": {"status": "checks failed", "finished": "now", "checks": checks}}}))
    problems, recorded = standin_run.verify(tmp_path, rounds=1, chapters=["04_dpo"])
    about_checks = [p for p in problems if "check " in p]
    assert about_checks == ["chapter 04_dpo: check \"the DPO loss by hand equals TRL's\" failed: largest 6e-4 (only "
                            "checks of what training achieved may fail on random-weight stand-ins)"]
    assert len(recorded) == 3


def test_only_checks_of_what_training_achieved_are_marked_so_in_the_chapters():
    """The chapters mark exactly the checks of the models' quality; every other check must hold on stand-ins."""
    marked = []
    for notebook in sorted((standin_run.REPO_ROOT / "notebooks").glob("0*.py")):
        for call in notebook.read_text(encoding="utf-8").split("checks.require(")[1:]:
            if "model_quality=True" in call.split("\n\n")[0]:
                marked.append(call.split('"')[1])
    assert marked == ["reward model beats chance and the length baseline", "DPO raises the held-out reward",
                      "held-out reward: {started_from} < DPO-Iter"]


def test_contract_check_names_every_missing_artifact_and_unfinished_chapter(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"stages": {
        "01_dataset_construction": {"status": "ok", "finished": "now", "checks": []},
        "02_judging": {"status": "failed", "cell": 3, "checks": []}}}))
    problems, _ = standin_run.verify(tmp_path, rounds=2, chapters=["01_dataset_construction", "02_judging", "03_x"])
    text = "\n".join(problems)
    for artifact in ("statements/statements.parquet", "judgments.sqlite", "psycopref/", "reward_model/model",
                     "reward_model/test_predictions.parquet", "dpo/model", "dpo_iter/round_2/model",
                     "eval/win_rates.json"):
        assert artifact in text
    assert "chapter 02_judging is not recorded as finished" in text and "chapter 03_x" in text
    assert "chapter 01_dataset_construction" not in text


@pytest.mark.parametrize("profile", ["colab", "paper"])
def test_precision_keeps_replaces_or_drops_the_overlays_precision_keys(tmp_path, profile):
    preset = yaml.safe_load((PRESET_DIR / f"{profile}.yaml").read_text())
    paths = {h: tmp_path / h for h in standin_run.hub_models(preset)}
    stages = ("reward", "dpo", "dpo_iter")
    cpu = ProfileConfig.model_validate(standin_run.overlaid_profile(profile, paths)[0])
    assert cpu.models.dtype == "float32"
    assert not any(getattr(cpu, s).training.get(flag) for s in stages for flag in ("fp16", "bf16"))
    own = ProfileConfig.model_validate(standin_run.overlaid_profile(profile, paths, "preset")[0])
    real = ProfileConfig.model_validate(preset)
    assert own.models.dtype == real.models.dtype
    assert [getattr(own, s).training.get("bf16") for s in stages] == [getattr(real, s).training.get("bf16")
                                                                       for s in stages]
    for precision, dtype in (("bf16", "bfloat16"), ("fp16", "float16")):
        half = ProfileConfig.model_validate(standin_run.overlaid_profile(profile, paths, precision)[0])
        assert half.models.dtype == dtype
        assert all(getattr(half, s).training[precision] and not getattr(half, s).training[
            "fp16" if precision == "bf16" else "bf16"] for s in stages)
        assert half.dpo.training["per_device_train_batch_size"] == 8  # the sizes of the overlay still apply
        assert not any(getattr(half, s).training.get("use_cpu") for s in stages)
    on_cpu = ProfileConfig.model_validate(standin_run.overlaid_profile(profile, paths, "bf16-cpu")[0])
    assert on_cpu.models.dtype == "bfloat16"
    assert all(getattr(on_cpu, s).training["bf16"] and getattr(on_cpu, s).training["use_cpu"]
               and not getattr(on_cpu, s).training["fp16"] for s in stages)
    with pytest.raises(ValueError, match="choose one of float32, bf16-cpu, preset, bf16, fp16"):
        standin_run.precision_overlay({}, "int8")


def test_half_precision_without_cuda_is_refused_before_anything_is_built(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(standin_run, "_cuda_available", lambda: False)
    monkeypatch.setattr(standin_run, "prepare_profile", lambda *a: pytest.fail("nothing may be built"))
    with pytest.raises(SystemExit) as stopped:
        standin_run.main(["--profile", "paper", "--precision", "bf16", "--root", str(tmp_path)])
    assert stopped.value.code == 2
    assert "--precision bf16 needs a CUDA GPU and none is visible" in capsys.readouterr().err


def test_the_standin_runs_are_kept_in_the_run_folder_of_their_policy(tmp_path):
    preset = yaml.safe_load((PRESET_DIR / "paper.yaml").read_text())
    paths = {h: tmp_path / "models" / h for h in standin_run.hub_models(preset)}
    raw, _ = standin_run.overlaid_profile("paper", paths)
    cfg = ProfileConfig.model_validate(raw)
    from psyco_utils.config import run_dir

    assert run_dir(cfg, tmp_path / "runs") == tmp_path / "runs" / "paper" / "llama-3.2-3b-instruct"
