"""benchmarks/gpu_check.py without a GPU: it refuses clearly when CUDA is missing, checks its arguments, and turns
measurements (fakes here, never timed) into the section benchmarks/RESULTS.md takes."""

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_check = _load()

MACHINE = {"gpu": "NVIDIA H100 80GB HBM3", "gpus": 8, "gpu_memory_gib": 79.1, "cuda": "12.4", "python": "3.11.7",
           "torch": "2.13.0", "transformers": "5.23.0", "trl": "1.16.0", "vllm": "0.9.1"}
STANDIN = {"status": 0, "seconds": 412.25, "problems": [],
           "profiles": {"colab": {"chapters": 7, "seconds": 180.5, "peak_memory_gib": 3.2},
                        "paper": {"chapters": 7, "seconds": 210.0, "peak_memory_gib": 4.75}}}
GENERATION = [{"backend": "hf", "status": "ok", "prompts": 64, "new_tokens": 8192, "seconds": 4.0,
               "tokens_per_s": 2048.0},
              {"backend": "vllm", "status": "vLLM not installed"}]
TRAINING = [{"stage": "DPO", "pairs": 256, "steps": 16, "seconds": 8.0, "steps_per_s": 2.0, "pairs_per_s": 32.0},
            {"stage": "reward model", "pairs": 256, "steps": 32, "seconds": 4.0, "steps_per_s": 8.0,
             "pairs_per_s": 64.0}]


@pytest.fixture
def faked(monkeypatch):
    """CUDA present and every measurement replaced by a fixed fake; the calls each check got are recorded."""
    calls = {}
    monkeypatch.setattr(gpu_check, "require_cuda", lambda: None)
    monkeypatch.setattr(gpu_check, "machine", lambda: MACHINE)
    monkeypatch.setattr(gpu_check, "standin_paths", lambda root: {gpu_check.GENERATION_MODEL: Path("/m/llama")})
    monkeypatch.setattr(gpu_check, "check_standin", lambda root, p: calls.setdefault("standin", (p,)) and STANDIN)
    monkeypatch.setattr(gpu_check, "check_generation",
                        lambda model, p, n, t: calls.setdefault("generation", (model, p, n, t)) and GENERATION)
    monkeypatch.setattr(gpu_check, "check_training", lambda root, paths, p, n: calls.setdefault("training", (p, n))
                        and TRAINING)
    return calls


def test_without_cuda_it_refuses_before_measuring_anything(monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu_check, "measure", lambda args: pytest.fail("nothing may be measured without CUDA"))
    assert gpu_check.main([]) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA GPU" in err and "torch" in err and "benchmarks/run.py" in err


@pytest.mark.parametrize("argv, message", [
    (["--precision", "fp8"], "invalid choice: 'fp8'"),
    (["--skip", "standin", "generation", "training"], "--skip leaves no check to run"),
    (["--prompts", "0"], "--prompts must be at least 1"),
    (["--skip", "tokenizer"], "invalid choice: 'tokenizer'"),
])
def test_bad_arguments_are_refused_with_the_argument_named(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        gpu_check.parse_args(argv)
    assert stopped.value.code == 2 and message in capsys.readouterr().err


def test_arguments_reach_the_checks_and_the_section_is_written_into_results(faked, tmp_path, capsys):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmarks\n\n## Judge throughput\n\nfast\n\n## GPU\n\nNo GPU machine was lent.\n\n"
                       "## Later\n\nkept\n")
    raw = tmp_path / "gpu.json"
    code = gpu_check.main(["--precision", "fp16", "--prompts", "16", "--max-new-tokens", "32", "--pairs", "64",
                           "--write", str(results), "--json", str(raw), "--root", str(tmp_path / "work")])
    assert code == 0
    assert faked == {"standin": ("fp16",), "generation": (Path("/m/llama"), "fp16", 16, 32), "training": ("fp16", 64)}
    text = results.read_text()
    assert "No GPU machine was lent" not in text and text.count("## GPU") == 1
    assert text.startswith("# Benchmarks\n\n## Judge throughput\n\nfast\n\n## GPU\n") and text.endswith("## Later\n\nkept\n")
    assert "- machine: 8 x NVIDIA H100 80GB HBM3 (79.1 GiB), CUDA 12.4" in text
    assert "| colab | 7 | 180.50 | 3.20 |" in text and "complete in 412.2 s" in text
    assert "| hf | ok | 64 | 8,192 | 4.00 | 2,048.00 |" in text and "| vllm | vLLM not installed |" in text
    assert "| reward model | 256 | 32 | 4.00 | 8.00 | 64.00 |" in text
    assert json.loads(raw.read_text())["training"][0]["pairs_per_s"] == 32.0
    assert "## GPU" in capsys.readouterr().out


def test_a_failed_check_is_reported_and_the_others_still_run(faked, monkeypatch, tmp_path):
    def broken(*args):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(gpu_check, "check_generation", broken)
    results = tmp_path / "RESULTS.md"
    assert gpu_check.main(["--skip", "standin", "--write", str(results), "--root", str(tmp_path)]) == 1
    text = results.read_text()
    assert "### HF generate against vLLM (bf16)\n\nFAILED: RuntimeError: CUDA out of memory" in text
    assert "| DPO | 256 | 16 | 8.00 | 2.00 | 32.00 |" in text and "stand-in run" not in text


def test_the_section_is_appended_when_results_has_none():
    section = gpu_check.gpu_section({"machine": MACHINE, "precision": "bf16", "when": "2026-12-02 05:00 UTC",
                                     "training": TRAINING})
    assert section.startswith("## GPU\n\nWritten by `benchmarks/gpu_check.py` on 2026-12-02 05:00 UTC at bf16.")
    assert gpu_check.put_section("# Benchmarks\n\n## A\n\ntext\n", section) == "# Benchmarks\n\n## A\n\ntext\n\n" + section
    assert "### The stand-in run" not in section and "### Training throughput (bf16)" in section
