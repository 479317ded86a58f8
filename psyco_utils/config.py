"""Profiles: YAML presets inside the package, parsed into typed, validated configs.

Every notebook starts with ``cfg = load_profile(profile, overrides)``.  The presets live in
``psyco_utils/presets/<name>.yaml`` (``tiny`` for CPU and CI, ``colab`` for one T4, ``paper`` for the paper's scale).
Papermill checks neither names nor types of the parameters it injects, so this module does: an unknown key or a value
of the wrong type is an error that names the key and the preset it came from.

Training sections (``reward.training``, ``dpo.training``, ``dpo_iter.training``) hold keyword arguments of TRL's own
config classes (``RewardConfig``, ``DPOConfig``); :func:`trl_config` validates them against those classes, so the
presets use TRL's names rather than parallel ones.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .judge.config import JudgeConfig

PRESET_DIR = Path(__file__).parent / "presets"
PROFILES = ("tiny", "colab", "paper")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    """One source of client statements (chapter 01).

    ``kind`` is ``bundled`` (the corpus shipped with the package), a local file (``csv``, ``json``, ``jsonl``,
    ``parquet``), or ``hub`` (a Hugging Face dataset id).  ``text_column`` and ``id_column`` map the source's own
    column names; a source without an id column gets its row numbers as ids.  Sources published with one row per
    answer (counsel-chat, Amod) map ``answer_column`` (and ``upvotes_column`` where votes exist): rows of one statement,
    by id or else by text, become one statement, and the answers are kept beside it.
    """

    kind: Literal["bundled", "csv", "json", "jsonl", "parquet", "hub"]
    name: str | None = None
    path: str | None = None
    hub_id: str | None = None
    hub_split: str = "train"
    text_column: str = "text"
    id_column: str | None = None
    title_column: str | None = None
    answer_column: str | None = None
    upvotes_column: str | None = None
    max_rows: int | None = None


class DataConfig(_Strict):
    sources: list[SourceConfig]
    min_chars: int = 100
    max_chars: int = 1000
    max_input_chars: int = 20_000
    near_duplicate_threshold: float = Field(0.6, gt=0, le=1)
    shingle_chars: int = 5
    minhash_permutations: int = 128
    minhash_bands: int = 32
    theme_labeller: Literal["keyword", "llm"] = "keyword"
    max_statements: int | None = None
    # An LLM's second opinion on crisis language, through the judge backend (psyco_utils.crisis.add_second_opinion)
    crisis_second_opinion: bool = False


class PoolGeneratorConfig(_Strict):
    """One member of the response pool: bundled responses, a local/hub HF model, or an OpenAI-compatible model."""

    name: str
    kind: Literal["bundled", "hf", "openai"]
    model: str | None = None
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 256
    base_url: str | None = None
    # kind hf through vLLM only: the GPUs one engine spans (a model too large for one GPU: 4 or 8 for a 70B) and the
    # share of each GPU's memory it may take (default PSYCO_VLLM_GPU_MEMORY or 0.45); see psyco_utils.pool.
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)


class PoolConfig(_Strict):
    responses_per_statement: int = 4
    generators: list[PoolGeneratorConfig]
    generation_batch_size: int = 32


class TinyModelConfig(_Strict):
    """Size of the tiny Llama models and of their supervised warm start (tiny profile only).

    ``sentence_tokens``: every sentence of the bundled answers is one token of the tokenizer (statements stay
    BPE-tokenised), so the policy writes answers by choosing whole sentences (:func:`psyco_utils.tiny.sentence_units`).
    ``tie_word_embeddings``: one matrix for the input and output embeddings; untied, a tiny model is less inclined to
    predict the token it has just read, which with sentence tokens is a sentence said twice."""

    vocab_size: int = 2000
    sentence_tokens: bool = True
    tie_word_embeddings: bool = False
    hidden_size: int = 64
    intermediate_size: int = 192
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    max_position_embeddings: int = 512
    sft_epochs: int = 3
    sft_learning_rate: float = 3e-3
    sft_batch_size: int = 16
    sft_max_length: int = 384


class LoraSettings(_Strict):
    r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] | str = "all-linear"


class ModelsConfig(_Strict):
    """``policy`` and ``reward_backbone`` are hub ids, local paths, or ``tiny`` (built by :mod:`psyco_utils.tiny`)."""

    policy: str
    reward_backbone: str
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    lora: LoraSettings | None = None
    tiny: TinyModelConfig = TinyModelConfig()
    generation_backend: Literal["hf", "vllm", "auto"] = "auto"


class SplitConfig(_Strict):
    source: Literal["constructed", "released"] = "constructed"
    released_id: str = "Psychotherapy-LLM/PsychoCounsel-Preference"
    released_path: str | None = None
    dev_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.1, gt=0, lt=1)
    min_score_gap: float = 1.0


class JudgingStageConfig(_Strict):
    """Chapter 02's checks of the judge: position-swap consistency, agreement with human labels when given, and
    agreement with therapists' upvotes where a source publishes them.

    ``human_labels_path``: a CSV with columns ID, prefID, shown_first (``chosen`` or ``rejected``: which response was
    shown as A) and human_choice (``A`` or ``B``), e.g. from therapists labelling a sample of pairs
    (:func:`psyco_utils.pairs.human_agreement`).  ``upvote_pairs``: at most this many pairs of therapists' answers to
    one question whose upvotes differ by at least ``upvote_min_gap``, compared by the judge in both orders
    (:mod:`psyco_utils.upvotes`); 0 turns the check off.
    """

    swap_check_pairs: int = 50
    human_labels_path: str | None = None
    upvote_pairs: int = Field(200, ge=0)
    upvote_min_gap: int = Field(1, ge=1)


class RewardDataMix(_Strict):
    """One reward model of the paper's data ablation (chapter 03): how many pairs it trains on from each source.

    ``psycopref_pairs`` and ``helpsteer2_pairs``: a number of pairs (drawn with the profile's seed) or ``all``; 0
    leaves the source out.  The paper's rows: HelpSteer2 alone (0 / all), HelpSteer2 plus PsyCoPref (all / all), and
    a 10k-pair budget split three ways (10000 / 0, 0 / 10000, 5000 / 5000).
    """

    name: str
    psycopref_pairs: int | Literal["all"] = "all"
    helpsteer2_pairs: int | Literal["all"] = 0

    @field_validator("psycopref_pairs", "helpsteer2_pairs")
    @classmethod
    def _not_negative(cls, value):
        if value != "all" and value < 0:
            raise ValueError("a pair count is 0 or more, or 'all'")
        return value


class RankerConfig(_Strict):
    """An LLM used as a ranker of the reward test pairs (chapter 03), through the judge's ``compare`` operation in
    both orders: the judge's settings with another ``model`` and endpoint (any OpenAI-compatible server, e.g. vLLM
    serving Llama-3.1-70B-Instruct): the URL in the environment variable ``base_url_env`` when set, else
    ``base_url``, else the judge's own.  ``backend: rubric`` makes the offline rubric judge play the ranker."""

    name: str
    backend: Literal["rubric", "openai"] = "openai"
    model: str | None = None
    base_url: str | None = None
    base_url_env: str = "PSYCO_RANKER_BASE_URL"
    max_pairs: int | None = Field(None, ge=1)


class RewardStageConfig(_Strict):
    """Chapter 03.  ``off_the_shelf``: general reward models from the hub (or local folders) scored on the test
    pairs: sequence classifiers with one output (Skywork), or causal language models that publish their reward as the
    logit of token 0 at the next position (Llama-3.1-Nemotron-70B-Reward-HF; :mod:`psyco_utils.reward.scoring`).
    ``helpsteer2_mix``: add HelpSteer2 pairs to the main model's training pairs.  ``degenerate_negatives``: add
    that share of the train pairs again, each chosen answer against a corrupted copy of it (a book choice; 0 is the
    paper's setting).  ``ablations``: further reward models on other data (:class:`RewardDataMix`), trained and
    scored beside it.  ``rewardbench``: a hub id or local file in
    RewardBench's schema, scored by every reward model of the chapter.  ``ranker``: an LLM as a ranker."""

    training: dict[str, Any] = {}
    off_the_shelf: list[str] = []
    helpsteer2_mix: bool = False
    helpsteer2_path: str | None = None
    degenerate_negatives: float = Field(0.0, ge=0.0, le=1.0)
    ablations: list[RewardDataMix] = []
    rewardbench: str | None = None
    rewardbench_split: str = "filtered"
    rewardbench_max_rows: int | None = Field(None, ge=1)
    ranker: RankerConfig | None = None
    ece_bins: int = 10
    bootstrap_samples: int = 1000


class DPOStageConfig(_Strict):
    training: dict[str, Any] = {}
    eval_statements: int = 32
    eval_samples_per_statement: int = Field(4, ge=1)  # held-out samples per statement (chapters 04 and 05)
    max_new_tokens: int = 128
    temperature: float = 0.7


class DPOIterStageConfig(_Strict):
    """DPO-Iter (chapter 05). ``start_from``: the policy round 1 starts from (and is referenced to), ``base`` (the
    paper's "+DPO-Iter" beside "+DPO", both from the instruct model) or ``dpo`` (the chapter-04 policy)."""

    start_from: Literal["base", "dpo"] = "base"
    rounds: int = 3
    statements_per_round: int = 6400
    samples_per_statement: int = 8
    temperature: float = 1.0
    max_new_tokens: int = 256
    length_penalty: float = 0.0
    training: dict[str, Any] = {}


class EvalConfig(_Strict):
    """Chapter 06's settings.

    ``lc_estimator``: which length-controlled win rate the chapter reports (it shows both): ``minimal_unpenalised``
    (alpaca-eval's ``length_controlled_minimal`` formula fitted without a penalty: sigmoid of the intercept) or
    ``alpaca_eval_2`` (AlpacaEval 2's: an L1 fit with cross-validation and an instruction-difficulty term, averaged
    over items), the one to put beside published LC win rates.  ``length_instructions_contrast``: judge the same
    answers a second time with ``judge.length_instructions`` flipped, to show how the instruction moves the result.
    ``human_reference``: compare each policy with the top-voted human answer too (the bundled corpus's empathic
    responses stand in for it in the tiny profile), on up to ``human_reference_statements`` held-out statements
    (None: ``n_statements``).
    """

    n_statements: int = 200
    reference: Literal["base_policy", "openai"] = "openai"
    reference_model: str = "gpt-4o"
    word_limit: int = 150
    constrained_max_new_tokens: int = 256
    max_new_tokens: int = 512
    temperature: float = 0.0
    crisis_file: str | None = None
    bootstrap_samples: int = 1000
    lc_estimator: Literal["minimal_unpenalised", "alpaca_eval_2"] = "minimal_unpenalised"
    length_instructions_contrast: bool = True
    human_reference: bool = True
    human_reference_statements: int | None = Field(None, ge=1)


class ProfileConfig(_Strict):
    name: str
    description: str
    seed: int = 1234
    hub_offline: bool = False
    # A training stage re-run on exactly the same inputs loads the model it saved instead of training again
    # (psyco_utils.reuse); false always retrains.
    reuse_trained_models: bool = True
    # What a failed quality check in a chapter does (psyco_utils.checks): ``enforce`` stops the run with a named
    # error; ``report`` records it in the manifest and on the page and goes on (the stand-in runs).
    checks: Literal["enforce", "report"] = "enforce"
    data: DataConfig
    pool: PoolConfig
    models: ModelsConfig
    judge: JudgeConfig
    splits: SplitConfig = SplitConfig()
    judging: JudgingStageConfig = JudgingStageConfig()
    reward: RewardStageConfig = RewardStageConfig()
    dpo: DPOStageConfig = DPOStageConfig()
    dpo_iter: DPOIterStageConfig = DPOIterStageConfig()
    eval: EvalConfig = EvalConfig()

    @field_validator("name")
    @classmethod
    def _known_name(cls, value: str) -> str:
        if not value.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"profile name {value!r} must be letters, digits, '-' or '_'")
        return value


class ProfileError(ValueError):
    """A preset or an override that does not fit the profile schema."""


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ProfileError(f"override {item!r} is not of the form key.path=value")
    key, raw = item.split("=", 1)
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise ProfileError(f"override {item!r} has an empty key")
    value = yaml.safe_load(raw)
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value.strip()):
        value = float(value)  # YAML 1.1 reads 2e-3 (no dot) as a string
    return path, value


def apply_overrides(raw: dict, overrides: list[str] | dict[str, Any] | None, origin: str) -> dict:
    """Return a copy of ``raw`` with dotted ``key.path=value`` overrides applied (values parsed as YAML)."""
    result = copy.deepcopy(raw)
    if not overrides:
        return result
    items = overrides.items() if isinstance(overrides, dict) else (_parse_override(o) for o in overrides)
    for key, value in items:
        path = key.split(".") if isinstance(key, str) else key
        node = result
        for i, part in enumerate(path[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if child is None:
                child = {}
                node[part] = child
            if not isinstance(child, dict):
                raise ProfileError(f"override {'.'.join(path)}: {'.'.join(path[: i + 1])} in {origin} is not a section")
            node = child
        node[path[-1]] = value
    return result


def _format_validation_error(exc: ValidationError, origin: str) -> str:
    lines = [f"invalid profile {origin}:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown key")
        else:
            lines.append(f"  {where}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def load_profile(name_or_path: str = "tiny", overrides: list[str] | dict[str, Any] | None = None) -> ProfileConfig:
    """Load a preset by name (``tiny``, ``colab``, ``paper``) or from a YAML path, apply overrides, validate.

    Used by every chapter's first cell.
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise ProfileError(f"unknown profile {name_or_path!r}; presets: {', '.join(list_presets())}")
    if not path.exists():
        raise ProfileError(f"profile file {path} does not exist")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ProfileError(f"profile file {path} must hold a mapping at the top level")
    merged = apply_overrides(raw, overrides, str(path))
    try:
        return ProfileConfig.model_validate(merged)
    except ValidationError as exc:
        raise ProfileError(_format_validation_error(exc, str(path))) from None


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


#: The preset key that states a training section's batch as the paper does: pairs per optimizer step, over all
#: processes.  It is not a TRL field: :func:`trl_config` turns it into ``gradient_accumulation_steps`` for the number of
#: processes that run the training.
GLOBAL_BATCH_KEY = "global_batch_size"


def accumulation_steps(training: dict[str, Any], section: str, processes: int) -> int | None:
    """The ``gradient_accumulation_steps`` that make ``per_device_train_batch_size`` x accumulation x ``processes``
    equal the section's ``global_batch_size``; None when the section states no global batch (then its own
    accumulation, if any, holds on every process and the global batch grows with the number of processes).

    A global batch that the per-device batch times the processes does not divide is an error naming the setting.
    """
    from trl import DPOConfig

    global_batch = training.get(GLOBAL_BATCH_KEY)
    if global_batch is None:
        return None
    if isinstance(global_batch, bool) or not isinstance(global_batch, int) or global_batch < 1:
        raise ProfileError(f"{section}.{GLOBAL_BATCH_KEY} must be a positive whole number, got {global_batch!r}")
    if "gradient_accumulation_steps" in training:
        raise ProfileError(f"{section}: set {GLOBAL_BATCH_KEY} or gradient_accumulation_steps, not both (the "
                           "accumulation is derived from the global batch and the number of processes)")
    per_device = training.get("per_device_train_batch_size",
                              DPOConfig.__dataclass_fields__["per_device_train_batch_size"].default)
    step = per_device * processes
    if global_batch % step:
        raise ProfileError(
            f"{section}.{GLOBAL_BATCH_KEY} = {global_batch} is not a multiple of per_device_train_batch_size "
            f"({per_device}) x {processes} process{'es' if processes != 1 else ''} = {step}: choose a per-device "
            f"batch that divides {global_batch / processes:g}, or another number of processes")
    return global_batch // step


def global_batch(args, processes: int | None = None) -> int:
    """Pairs per optimizer step of a TRL config: per-device batch x accumulation x processes (``processes`` defaults
    to the launcher's world size, :func:`psyco_utils.distributed.world_size`)."""
    from .distributed import world_size

    return args.per_device_train_batch_size * args.gradient_accumulation_steps * (processes or world_size())


def trl_config(kind: Literal["reward", "dpo"], training: dict[str, Any], output_dir: str | Path, *,
               section: str | None = None, processes: int | None = None, **extra):
    """Build TRL's own ``RewardConfig`` or ``DPOConfig`` from a preset's ``training`` section.

    Unknown keys are errors that name the key and the TRL class, before TRL sees them.  ``extra`` holds values the
    chapter derives (output directory, seed, logging), which the preset may not set.  ``global_batch_size`` (the
    paper's batch, over all processes) becomes ``gradient_accumulation_steps`` for ``processes`` processes (default:
    the launcher's world size, 1 in a notebook): :func:`accumulation_steps`.  ``section`` names the preset section in
    errors (default ``<kind>.training``).
    """
    from trl import DPOConfig, RewardConfig

    from .distributed import world_size

    section = section or f"{kind}.training"
    cls = {"reward": RewardConfig, "dpo": DPOConfig}[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(training) - names - {GLOBAL_BATCH_KEY})
    if unknown:
        raise ProfileError(f"{section}: unknown {cls.__name__} key(s): {', '.join(unknown)}")
    settings = {**training, **{k: v for k, v in extra.items() if k == "per_device_train_batch_size"}}
    accumulation = accumulation_steps(settings, section, processes or world_size())
    kwargs = {k: v for k, v in training.items() if k != GLOBAL_BATCH_KEY}
    if accumulation is not None:
        kwargs["gradient_accumulation_steps"] = accumulation
    kwargs = {**kwargs, **extra, "output_dir": str(output_dir)}
    kwargs.setdefault("report_to", "none")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ProfileError(f"{section}: {cls.__name__} rejected the values: {exc}") from None


def run_dir(cfg: ProfileConfig, root: str | Path | None = None) -> Path:
    """Where every stage of this run reads and writes its artifacts, created: ``runs/<profile>/`` for the tiny world's
    policy, ``runs/<profile>/<model tag>/`` for a hub or local policy (``runs/paper/llama-3.2-3b-instruct/``), under
    ``$PSYCO_RUNS_DIR`` when that is set (:mod:`psyco_utils.layout`).  The model runs of one profile share its
    dataset stages (statements, pool, judge cache, pairs) in ``runs/<profile>/``."""
    from .layout import mark_shared_dataset, model_tag, run_folder

    path = run_folder(cfg.name, cfg.models.policy, root)
    path.mkdir(parents=True, exist_ok=True)
    if model_tag(cfg.models.policy) is not None:
        mark_shared_dataset(path.parent)
    return path


def _model_name(model: str) -> str:
    """A hub id as it is; a local folder by its name only (pages show no machine paths)."""
    path = Path(model)
    return f"{path.name} (local copy)" if path.is_absolute() or model.startswith(".") else model


def judge_summary(judge: JudgeConfig) -> str:
    """The judge a run used, from its settings (not from the preset's description, which overrides may contradict)."""
    if judge.backend == "rubric":
        return "offline rubric judge"
    return f"{judge.model} judge through an OpenAI-compatible API" + (" (Batch API)" if judge.use_batch_api else "")


def profile_summary(cfg: ProfileConfig) -> str:
    """What ran, from the settings that ran: models, judge and statement sources."""
    if cfg.models.policy == "tiny":
        models = "tiny Llama models built locally"
    else:
        models = f"policy {_model_name(cfg.models.policy)}" + (" with LoRA" if cfg.models.lora else "")
    sources = [("the bundled corpus" if s.kind == "bundled" else s.name or s.hub_id or Path(s.path or "?").name)
               for s in cfg.data.sources]
    listed = sources[0] if len(sources) == 1 else f"{', '.join(sources[:-1])} and {sources[-1]}"
    return f"{models}, {judge_summary(cfg.judge)}, statements from {listed}"



__all__ = [
    "judge_summary", "profile_summary",
    "PRESET_DIR", "PROFILES", "SourceConfig", "DataConfig", "PoolGeneratorConfig", "PoolConfig",
    "TinyModelConfig", "LoraSettings", "ModelsConfig", "SplitConfig", "JudgingStageConfig", "RewardStageConfig",
    "RewardDataMix", "RankerConfig",
    "DPOStageConfig", "DPOIterStageConfig", "EvalConfig", "ProfileConfig", "ProfileError", "apply_overrides",
    "load_profile", "list_presets", "trl_config", "run_dir", "GLOBAL_BATCH_KEY", "accumulation_steps",
    "global_batch",
]
