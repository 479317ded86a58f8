"""The response pool: one generator in memory at a time, large generators split or served, and a pool that resumes.

Every test is driven by the pool's own events (``build_pool(on_event=...)``), never by the clock: memory is sampled
when a model is about to load, has loaded, has drawn a batch and has been freed; a crash is simulated by raising
from the hook after a number of batches.
"""

import os
import sys
import types
import weakref
from pathlib import Path

import pandas as pd
import psutil
import pytest

from psyco_utils import models, pool
from psyco_utils.layout import RunLayout
from psyco_utils.config import ProfileError, load_profile

# the session's tiny world (tests/conftest.py) as a profile sees it
SMALL_WORLD = {"vocab_size": 600, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
               "num_attention_heads": 2, "sft_epochs": 1, "sft_max_length": 128, "sft_batch_size": 32}

STATEMENTS = [
    "I have been feeling so tired lately that even getting out of bed feels like a mountain I cannot climb.",
    "My sister and I stopped talking after our father's funeral and I do not know how to start again with her.",
    "Every time my manager calls me into a meeting my heart races and I am sure I am about to be let go.",
    "I moved to a new city for university and I have not made a single friend here in four months.",
    "My partner says I check my phone too much when we are together and I think they might be right.",
    "I keep replaying a mistake I made at work last year even though everyone else seems to have forgotten it.",
    "Since the baby was born I feel like a stranger in my own house and I cannot tell anyone how much I miss sleep.",
]


def _statements(n: int = len(STATEMENTS)) -> pd.DataFrame:
    return pd.DataFrame({"statement_id": [f"s{i}" for i in range(n)], "text": STATEMENTS[:n],
                         "source": "csv", "source_id": [str(i) for i in range(n)]})


def _tiny_profile(tmp_path, tiny_world, **generator_changes):
    """The tiny profile with the tiny policy at two temperatures (one model, two generators), small batches."""
    generators = [{"name": f"tiny-t{t}", "kind": "hf", "model": "tiny", "temperature": t, "max_new_tokens": 8,
                   **generator_changes.get(f"tiny-t{t}", {})} for t in (0.7, 1.2)]
    overrides = {"pool.generators": generators, "pool.responses_per_statement": 2, "pool.generation_batch_size": 2,
                 "models.tiny": SMALL_WORLD, "seed": 7, **generator_changes.get("profile", {})}
    tmp_path.mkdir(parents=True, exist_ok=True)
    if not (tmp_path / "tiny_world").exists():
        os.symlink(tiny_world.root, tmp_path / "tiny_world")  # the session's tiny world, reused by its fingerprint
    return load_profile("tiny", overrides)


class Crash(RuntimeError):
    """What the test hook raises to stand for a killed run."""


class Recorder:
    """Counts the pool's events and the prompts sent to ``generate_responses``; raises after ``crash_after`` batches."""

    def __init__(self, crash_after: int | None = None):
        self.events, self.sent, self.crash_after = [], [], crash_after

    def __call__(self, event: pool.PoolEvent) -> None:
        self.events.append((event.kind, event.generators, event.batch))
        batches = sum(kind == "batch" for kind, _, _ in self.events)
        if event.kind == "batch" and batches == self.crash_after:
            raise Crash(f"killed after {batches} batches")

    def kinds(self, kind: str) -> list:
        return [e for e in self.events if e[0] == kind]


@pytest.fixture
def counted_generation(monkeypatch):
    """Every call of ``generate_responses`` recorded with the statements it was sent."""
    calls = []
    real = models.generate_responses

    def counting(model, tokenizer, statements, **kwargs):
        calls.append((kwargs["temperature"], kwargs["seed"], list(statements)))
        return real(model, tokenizer, statements, **kwargs)

    monkeypatch.setattr(models, "generate_responses", counting)
    return calls


# ------------------------------------------------------------------------------------------------------- resume


def test_a_killed_pool_resumes_without_drawing_any_sample_twice(tiny_world, tmp_path, counted_generation):
    statements = _statements()
    cfg = _tiny_profile(tmp_path / "a", tiny_world)
    whole, whole_stats = pool.build_pool(statements, cfg, tmp_path / "a", progress=False)
    assert len(counted_generation) == 8  # 7 statements in batches of 2: 4 batches for each of the 2 generators
    counted_generation.clear()

    cfg = _tiny_profile(tmp_path / "b", tiny_world)
    killed = Recorder(crash_after=3)
    with pytest.raises(Crash):
        pool.build_pool(statements, cfg, tmp_path / "b", progress=False, on_event=killed)
    assert killed.events[-1][0] == "freed"  # the model is released on the way out of the crash
    saved = sorted((RunLayout(tmp_path / "b").pool_partial).glob("*/batch_*.json"))
    assert len(saved) == 3 and len(counted_generation) == 3

    resumed = Recorder()
    again, stats = pool.build_pool(statements, cfg, tmp_path / "b", progress=False, on_event=resumed)
    assert len(counted_generation) == 8  # 3 before the crash + the 5 missing batches, nothing drawn twice
    sent = [(temperature, text) for temperature, _, texts in counted_generation for text in texts]
    assert len(sent) == len(set(sent)) == 2 * len(statements)
    assert [e[2] for e in resumed.kinds("batch")] == [3, 0, 1, 2, 3]  # tiny-t0.7 had batches 0-2, tiny-t1.2 none
    pd.testing.assert_frame_equal(again, whole)
    assert stats["from_checkpoint"].tolist() == [6, 0]
    assert stats["produced"].sum() == whole_stats["produced"].sum()

    rerun = Recorder()
    pool.build_pool(statements, cfg, tmp_path / "b", progress=False, on_event=rerun)
    assert len(counted_generation) == 8 and rerun.events == []  # complete: no model is even loaded


def test_changed_settings_redraw_only_that_generator_and_reuse_off_redraws_all(tiny_world, tmp_path,
                                                                              counted_generation):
    statements = _statements(4)
    pool.build_pool(statements, _tiny_profile(tmp_path, tiny_world), tmp_path, progress=False)
    assert len(counted_generation) == 4
    before = {p.name for p in (RunLayout(tmp_path).pool_partial).iterdir()}

    hotter = _tiny_profile(tmp_path, tiny_world, **{"tiny-t1.2": {"temperature": 1.3}})
    _, stats = pool.build_pool(statements, hotter, tmp_path, progress=False)
    assert [t for t, _, _ in counted_generation[4:]] == [1.3, 1.3]
    assert stats.set_index("generator")["from_checkpoint"].to_dict() == {"tiny-t0.7": 4, "tiny-t1.2": 0}
    after = {p.name for p in (RunLayout(tmp_path).pool_partial).iterdir()}
    assert len(after) == 2 and len(after & before) == 1  # the old partials of tiny-t1.2 are removed

    fresh = _tiny_profile(tmp_path, tiny_world, **{"tiny-t1.2": {"temperature": 1.3},
                                                   "profile": {"reuse_trained_models": False}})
    _, stats = pool.build_pool(statements, fresh, tmp_path, progress=False)
    assert len(counted_generation) == 10 and stats["from_checkpoint"].sum() == 0


def test_a_batch_file_that_does_not_match_its_statements_is_drawn_again(tiny_world, tmp_path, counted_generation):
    statements = _statements(4)
    cfg = _tiny_profile(tmp_path, tiny_world)
    first, _ = pool.build_pool(statements, cfg, tmp_path, progress=False)
    damaged = sorted((RunLayout(tmp_path).pool_partial).glob("tiny-t0.7-*/batch_00001.json"))[0]
    damaged.write_text('{"statement_ids": ["someone else"], "responses": ["x"]', encoding="utf-8")  # cut short
    again, stats = pool.build_pool(statements, cfg, tmp_path, progress=False)
    assert len(counted_generation) == 5 and counted_generation[-1][1] == cfg.seed + 1
    pd.testing.assert_frame_equal(again, first)
    assert stats["from_checkpoint"].tolist() == [2, 4]


# ------------------------------------------------------------------------------------------ one model at a time


def test_generators_that_share_a_model_load_it_once(tiny_world, tmp_path):
    recorder = Recorder()
    pool.build_pool(_statements(3), _tiny_profile(tmp_path, tiny_world), tmp_path, progress=False, on_event=recorder)
    assert recorder.kinds("load") == [("load", ("tiny-t0.7", "tiny-t1.2"), None)]
    assert [e[0] for e in recorder.events] == ["load", "loaded"] + ["batch"] * 4 + ["freed"]


def _random_llama(directory, tokenizer_dir, seed: int):
    """A randomly initialised Llama of a few layers (about 40 MB in float32) with the tiny world's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=512, intermediate_size=1376, num_hidden_layers=3,
                         num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def _rss() -> int:
    return psutil.Process().memory_info().rss


class MemoryProbe(Recorder):
    """Samples the process's resident memory at every pool event; keeps a weak reference to each loaded model."""

    def __init__(self):
        super().__init__()
        self.base, self.peak, self.models, self.alive_at_load, self.dead_when_freed = _rss(), 0, [], [], []

    def __call__(self, event: pool.PoolEvent) -> None:
        super().__call__(event)
        if event.kind == "load":
            self.alive_at_load.append(sum(ref() is not None for ref in self.models))
        if event.kind == "loaded":
            self.models.append(weakref.ref(event.model))
        if event.kind == "freed":  # the model just released is gone at once, not at some later collection
            self.dead_when_freed.append(self.models[-1]() is None)
        self.peak = max(self.peak, _rss() - self.base)


def test_each_generator_is_freed_before_the_next_loads(tiny_world, tmp_path):
    import gc

    paths = [_random_llama(tmp_path / f"model-{i}", tiny_world.tokenizer_dir, i) for i in range(3)]
    generators = [{"name": f"random-{i}", "kind": "hf", "model": path, "max_new_tokens": 4}
                  for i, path in enumerate(paths)]
    cfg = load_profile("tiny", {"pool.generators": generators, "pool.responses_per_statement": 3,
                                "pool.generation_batch_size": 4})
    gc.collect()
    probe = MemoryProbe()
    responses, stats = pool.build_pool(_statements(4), cfg, tmp_path, progress=False, on_event=probe)
    assert len(probe.kinds("load")) == 3 and probe.alive_at_load == [0, 0, 0]  # the previous model is gone
    assert probe.dead_when_freed == [True, True, True]
    assert all(ref() is None for ref in probe.models)
    assert stats["asked"].tolist() == [4, 4, 4]

    gc.collect()
    base, held, all_at_once = _rss(), [], 0  # the pool before this change: every generator kept loaded
    for path in paths:
        model, tokenizer, backend = models.load_generator(path, cfg.models)
        models.generate_responses(model, tokenizer, STATEMENTS[:4], max_new_tokens=4, batch_size=4, backend=backend)
        held.append(model)
        all_at_once = max(all_at_once, _rss() - base)
    del model, held
    size = sum(f.stat().st_size for f in Path(paths[0]).glob("*.safetensors"))
    print(f"\npeak resident memory above the start: pool of 3 generators {probe.peak / 2**20:.1f} MiB, all 3 loaded "
          f"at once {all_at_once / 2**20:.1f} MiB (one model's weights: {size / 2**20:.1f} MiB)")
    assert all_at_once > 2.5 * size  # the measure sees every model held
    assert probe.peak < 0.6 * all_at_once


# ----------------------------------------------------------------------------------------------------- vLLM path


class FakeEngine:
    """Stands for a ``vllm.LLM`` (which cannot run here): records its shutdown in a shared log."""

    def __init__(self, name, log, v1_only=False):
        self.name, self.log = name, log
        if v1_only:  # a vLLM without LLM.shutdown(): its V1 engine core shuts down instead
            core = types.SimpleNamespace(shutdown=lambda: log.append(("engine_core.shutdown", name)))
            self.llm_engine = types.SimpleNamespace(engine_core=core)
        else:
            self.shutdown = lambda: log.append(("shutdown", name))


@pytest.fixture
def fake_vllm(monkeypatch):
    """A fake ``vllm.distributed.parallel_state`` whose destroy functions write to the log."""
    log = []
    parallel_state = types.ModuleType("vllm.distributed.parallel_state")
    parallel_state.destroy_model_parallel = lambda: log.append(("destroy_model_parallel",))
    parallel_state.destroy_distributed_environment = lambda: log.append(("destroy_distributed_environment",))
    for name, module in (("vllm", types.ModuleType("vllm")), ("vllm.distributed", types.ModuleType("x")),
                         ("vllm.distributed.parallel_state", parallel_state)):
        monkeypatch.setitem(sys.modules, name, module)
    return log


@pytest.mark.parametrize("v1_only", [False, True])
def test_a_vllm_engine_is_shut_down_and_dropped(fake_vllm, v1_only):
    loaded = pool.LoadedGenerator(FakeEngine("e", fake_vllm, v1_only), object(), "vllm")
    ref = weakref.ref(loaded.model)
    pool.release_generator(loaded)
    expected = "engine_core.shutdown" if v1_only else "shutdown"
    assert fake_vllm == [(expected, "e"), ("destroy_model_parallel",), ("destroy_distributed_environment",)]
    assert ref() is None and loaded.model is None


def test_vllm_generators_are_loaded_one_at_a_time_with_their_engine_settings(fake_vllm, tmp_path, monkeypatch):
    loads, alive = [], []
    engines = []

    def load_generator(path, models_cfg, tensor_parallel_size=1, gpu_memory_utilization=None):
        alive.append([ref() is not None for ref in engines])
        loads.append((path, tensor_parallel_size, gpu_memory_utilization))
        engine = FakeEngine(path, fake_vllm)
        engines.append(weakref.ref(engine))
        return engine, object(), "vllm"

    def generate_responses(model, tokenizer, statements, **kwargs):
        return [[f"{model.name} answers"] for _ in statements]

    monkeypatch.setattr(models, "load_generator", load_generator)
    monkeypatch.setattr(models, "generate_responses", generate_responses)
    generators = [{"name": "big", "kind": "hf", "model": "org/big", "tensor_parallel_size": 4,
                   "gpu_memory_utilization": 0.9},
                  {"name": "small-cold", "kind": "hf", "model": "org/small", "temperature": 0.3},
                  {"name": "small-warm", "kind": "hf", "model": "org/small", "temperature": 1.0}]
    cfg = load_profile("tiny", {"pool.generators": generators, "pool.responses_per_statement": 3})
    responses, _ = pool.build_pool(_statements(3), cfg, tmp_path, progress=False)
    assert loads == [("org/big", 4, 0.9), ("org/small", 1, None)]  # one load per model, in the pool's order
    assert alive == [[], [False]]  # the big engine was gone before the small one loaded
    assert [e[0] for e in fake_vllm].count("shutdown") == 2
    assert set(responses["response"]) == {"org/big answers", "org/small answers"}


def test_a_split_generator_without_vllm_or_enough_gpus_names_the_fixes(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    big = load_profile("paper").pool.generators
    big = next(g for g in big if "70B" in (g.model or ""))
    with pytest.raises(models.DeviceError) as err:
        pool.check_generator_fits(big, "hf")
    assert f"tensor_parallel_size {big.tensor_parallel_size}" in str(err.value)
    assert "Install vLLM" in str(err.value) and "kind: openai" in str(err.value)
    with pytest.raises(models.DeviceError, match="but 2 GPU"):
        pool.check_generator_fits(big, "vllm")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    pool.check_generator_fits(big, "vllm")


def test_the_paper_presets_70b_generator_is_never_loaded_onto_one_device():
    for gen in load_profile("paper").pool.generators:
        if "70b" in gen.name.lower():
            assert gen.kind == "openai" or gen.tensor_parallel_size >= 4, gen


def test_engine_settings_are_checked_in_the_profile():
    with pytest.raises(ProfileError, match="tensor_parallel_size"):
        load_profile("tiny", {"pool.generators": [{"name": "x", "kind": "hf", "model": "m",
                                                   "tensor_parallel_size": 0}]})
    with pytest.raises(ProfileError, match="gpu_memory_utilization"):
        load_profile("tiny", {"pool.generators": [{"name": "x", "kind": "hf", "model": "m",
                                                   "gpu_memory_utilization": 1.5}]})


def test_partials_live_under_the_run_in_one_folder_per_generator_and_fingerprint(tmp_path):
    path = pool.partial_dir(tmp_path, "qwen2.5-1.5b t/0.7", "ab" * 32)
    assert path == tmp_path / "pool" / "partial" / f"qwen2.5-1.5b_t_0.7-{'ab' * 8}"
