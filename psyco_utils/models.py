"""Load policy and reward backbones (hub id, local path, or the tiny world) and generate responses.

One loading path for every profile: a hub id (``meta-llama/Llama-3.2-3B-Instruct``) and a local directory go through
the same ``from_pretrained`` calls; ``tiny`` resolves to the models built by :mod:`psyco_utils.tiny`.  With
``HF_HUB_OFFLINE=1`` (the tiny profile) a hub id fails at once instead of hanging.

One generation interface (:func:`generate_responses`) serves chapters 01, 04, 05 and 06: batched, left-padded
``model.generate`` by default, vLLM when it is installed and a GPU is present (or when the profile asks for it).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from .config import ModelsConfig, ProfileConfig


def resolve_model_path(name: str, cfg: ProfileConfig, run_root: Path | None = None) -> str:
    """``tiny`` -> the tiny world's policy directory; any other name is passed on as a hub id or local path."""
    if name == "tiny":
        from .config import run_dir
        from .layout import RunLayout
        from .tiny import build_tiny_world

        root = RunLayout(run_root or run_dir(cfg)).tiny_world
        world = build_tiny_world(root, cfg.models.tiny, cfg.seed)
        return str(world.policy_dir)
    return name


def model_origin(name: str) -> str:
    """Where a model named in a profile comes from, in words: the tiny world, a local folder, or a hub id."""
    if name == "tiny":
        return "the tiny world built by chapter 01"
    if Path(name).is_dir():
        return f"local folder {name}"
    if Path(name).is_absolute() or name.startswith((".", "~")) or name.count("/") > 1:
        return f"local folder {name} (missing)"
    return f"hub id {name}"


class DeviceError(RuntimeError):
    """A profile asks for hardware or an optional package that this machine lacks; the message names the fix."""


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def check_vllm(models: ModelsConfig) -> None:
    """``generation_backend: vllm`` needs the ``[vllm]`` extra and a CUDA GPU: say which one is missing and what to
    do, instead of a bare ``ModuleNotFoundError`` deep in the pool or the sampling loop."""
    if models.generation_backend != "vllm":
        return
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise DeviceError("models.generation_backend is 'vllm' but vLLM is not installed: install the extra with "
                          "`pip install 'psyco-utils[vllm]'` (or `pip install -e '.[vllm]'` in a checkout), or set "
                          "models.generation_backend=auto to use vLLM only where it is installed") from None
    if not has_gpu():
        raise DeviceError("models.generation_backend is 'vllm' but no CUDA GPU is visible (torch.cuda.is_available() "
                          "is False): vLLM runs on a GPU only. Run on a GPU machine (Colab: Runtime > Change runtime "
                          "type > T4 GPU), or set models.generation_backend=auto to generate with transformers")


def release_unused_memory() -> None:
    """Collect garbage and, on a GPU, empty PyTorch's CUDA cache: called once the last reference to a model is
    dropped, so that the next model loaded has the memory."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def check_precision(training: dict, section: str) -> None:
    """Mixed precision needs a CUDA GPU (and bf16 one of Ampere or newer): say so, and name the setting, before
    transformers fails with a generic error.  bf16 with ``use_cpu: true`` trains under bf16 autocast on the CPU, which
    transformers supports, and needs no GPU (the stand-in run's ``--precision bf16-cpu``)."""
    bf16_on_cpu = bool(training.get("bf16") and training.get("use_cpu"))
    for flag, gpu in (("fp16", "a GPU such as Colab's T4"), ("bf16", "an Ampere or newer GPU")):
        if training.get(flag) and not has_gpu() and not (flag == "bf16" and bf16_on_cpu):
            raise DeviceError(f"{section}.{flag} is true ({flag} mixed precision, for {gpu}) but no CUDA GPU is "
                              "visible (torch.cuda.is_available() is False). Run on a GPU runtime (Colab: Runtime > "
                              f"Change runtime type > T4 GPU), or set {section}.{flag}=false and models.dtype=float32 "
                              "to train on the CPU")
    if training.get("bf16") and has_gpu() and not bf16_on_cpu:
        import torch

        if not torch.cuda.is_bf16_supported():
            raise DeviceError(f"{section}.bf16 is true but this GPU ({torch.cuda.get_device_name()}) has no bf16: "
                              f"set {section}.bf16=false and {section}.fp16=true (as the colab profile does for a T4)")


def _torch_dtype(models: ModelsConfig):
    import torch

    if models.dtype == "auto":
        return "auto"
    return getattr(torch, models.dtype)


def load_tokenizer(name_or_path: str):
    """The tokenizer of a policy or backbone, with left padding for generation and a pad token."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name_or_path)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_policy(name_or_path: str, models: ModelsConfig, device: str | None = None):
    """A causal LM and its tokenizer from a hub id or local directory (chapters 01, 04, 05, 06)."""
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(name_or_path)
    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=_torch_dtype(models))
    model.to(device or default_device())
    model.eval()
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def load_reward_backbone(name_or_path: str, models: ModelsConfig, device: str | None = None):
    """A sequence classifier with one output (the reward head) and its tokenizer (chapter 03).

    Loading a causal LM checkpoint this way keeps its body and adds a freshly initialised ``score`` head.
    """
    from transformers import AutoModelForSequenceClassification

    tok = load_tokenizer(name_or_path)
    tok.padding_side = "right"
    model = AutoModelForSequenceClassification.from_pretrained(name_or_path, num_labels=1, dtype=_torch_dtype(models))
    model.config.pad_token_id = tok.pad_token_id
    model.to(device or default_device())
    return model, tok


def default_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def vllm_available() -> bool:
    try:
        import torch
        import vllm  # noqa: F401
    except Exception:
        return False
    return torch.cuda.is_available()


def chat_prompts(tokenizer, statements: list[str], system_prompt: str | None = None) -> list[str]:
    """Each statement as the user turn of a chat, rendered with the model's own template and a generation prompt."""
    prompts = []
    for statement in statements:
        messages = [{"role": "user", "content": statement}]
        if system_prompt:
            messages.insert(0, {"role": "system", "content": system_prompt})
        prompts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return prompts


@dataclass
class GenerationStats:
    prompts: int = 0
    samples: int = 0
    new_tokens: int = 0
    seconds: float = 0.0
    backend: str = "hf"

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds else 0.0


def _generate_vllm(llm, prompts, n, temperature, top_p, max_new_tokens, seed, progress, stats) -> list[list[str]]:
    from vllm import SamplingParams

    params = SamplingParams(n=n, temperature=temperature, top_p=top_p if temperature > 0 else 1.0,
                            max_tokens=max_new_tokens, seed=seed)
    outputs = []
    for result in llm.generate(prompts, params, use_tqdm=progress):
        outputs.append([o.text.strip() for o in result.outputs])
        stats.new_tokens += sum(len(o.token_ids) for o in result.outputs)
    return outputs


def _generate_hf(model, tokenizer, prompts, n, temperature, top_p, max_new_tokens, batch_size, seed, progress,
                 stats) -> list[list[str]]:
    """Left-padded batches of ``batch_size`` prompts, one ``model.generate`` call each; greedy at temperature 0."""
    import torch
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    device = next(model.parameters()).device
    tokenizer.padding_side = "left"
    sampling = temperature > 0
    kwargs = dict(do_sample=sampling, max_new_tokens=max_new_tokens, num_return_sequences=n,
                  pad_token_id=tokenizer.pad_token_id)
    kwargs.update(dict(temperature=temperature, top_p=top_p) if sampling else dict(temperature=None, top_p=None,
                                                                                   top_k=None))
    outputs: list[list[str]] = []
    for start_idx in tqdm(range(0, len(prompts), batch_size), desc="generating", disable=not progress):
        chunk = prompts[start_idx : start_idx + batch_size]
        enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.no_grad():
            out = model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1] :]
        stats.new_tokens += int((new != tokenizer.pad_token_id).sum())
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        for i in range(len(chunk)):
            outputs.append([t.strip() for t in texts[i * n : (i + 1) * n]])
    return outputs


def generate_responses(
    model,
    tokenizer,
    statements: list[str],
    n: int = 1,
    temperature: float = 0.7,
    top_p: float = 0.95,
    max_new_tokens: int = 256,
    batch_size: int = 32,
    seed: int = 0,
    system_prompt: str | None = None,
    backend: str = "hf",
    progress: bool = False,
    stats: GenerationStats | None = None,
) -> list[list[str]]:
    """``n`` responses to each statement: a list (one per statement) of lists of ``n`` strings.

    ``backend="hf"``: prompts are left-padded and sent in batches of ``batch_size`` prompts, each batch one
    ``model.generate`` call with ``num_return_sequences=n``.  ``temperature=0`` means greedy decoding.
    ``backend="vllm"``: ``model`` is a ``vllm.LLM``; same prompts, same sampling parameters.
    """
    stats = stats if stats is not None else GenerationStats()
    stats.backend = backend
    prompts = chat_prompts(tokenizer, statements, system_prompt)
    start = time.perf_counter()
    if backend == "vllm":
        outputs = _generate_vllm(model, prompts, n, temperature, top_p, max_new_tokens, seed, progress, stats)
    else:
        outputs = _generate_hf(model, tokenizer, prompts, n, temperature, top_p, max_new_tokens, batch_size, seed,
                               progress, stats)
    stats.prompts += len(prompts)
    stats.samples += len(prompts) * n
    stats.seconds += time.perf_counter() - start
    return outputs


def load_generator(name_or_path: str, models: ModelsConfig, tensor_parallel_size: int = 1,
                   gpu_memory_utilization: float | None = None):
    """``(model, tokenizer, backend)`` for generation: vLLM when the profile allows it and it can run, else HF.

    ``tensor_parallel_size`` (vLLM) splits the model across that many GPUs; ``gpu_memory_utilization`` is the share of
    each GPU's memory the engine may take (default ``PSYCO_VLLM_GPU_MEMORY`` or 0.45).
    """
    check_vllm(models)
    wants_vllm = models.generation_backend == "vllm" or (models.generation_backend == "auto" and vllm_available())
    if wants_vllm:
        from vllm import LLM

        memory = gpu_memory_utilization or float(os.environ.get("PSYCO_VLLM_GPU_MEMORY", "0.45"))
        llm = LLM(model=name_or_path, dtype=models.dtype if models.dtype != "float32" else "auto",
                  tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=memory)
        return llm, load_tokenizer(name_or_path), "vllm"
    model, tok = load_policy(name_or_path, models)
    return model, tok, "hf"


__all__ = [
    "DeviceError", "GenerationStats", "resolve_model_path", "model_origin", "has_gpu", "check_vllm",
    "check_precision", "release_unused_memory", "load_tokenizer", "load_policy", "load_reward_backbone", "default_device",
    "vllm_available", "chat_prompts", "generate_responses", "load_generator",
]
