"""`python -m srft_trl.train --config recipes/x.yaml [--flag value ...]`: a recipe to a trained model.

One flat YAML mixes three groups of settings, parsed by TRL's `TrlParser` (command-line flags
override the YAML):

* `ScriptArguments` (below): data, rewards, model building, held-out evaluation;
* the trainer's config: `SRFTConfig` (`trainer: srft`, every method preset), TRL's `SFTConfig`
  (`trainer: sft`) or `SFTKLConfig` (`trainer: sft_kl`, SFT plus a KL penalty to the base model);
* TRL's `ModelConfig`: model id, dtype, attention, LoRA (`use_peft`, `lora_r`, ...), quantisation.

Keys used by the launcher (`accelerate_config`, `num_processes` and the other `accelerate launch`
options) may also sit in the recipe: `srft-trl train` (see `srft_trl.cli`) hands them to
`accelerate launch`; this module ignores them. Any other unknown key fails before anything is
loaded, with an error naming it.

A run: parse and check the recipe; build the tiny model if asked; extend the RoPE window if asked;
load and filter the data (counting dropped rows); evaluate held-out accuracy; train (checkpoints
by the Trainer's save strategy, `resume_from_checkpoint` passed through); evaluate again and print
`held-out accuracy before: X / after: Y`; save the model, the recipe and a model card (TRL's, with
the recipe and final metrics appended); push to the Hub only if `push_to_hub` is set.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import yaml
from transformers import AutoTokenizer
from trl import ModelConfig, SFTConfig, SFTTrainer, TrlParser, get_peft_config, get_quantization_config

from . import data as srft_data
from .config import SRFTConfig
from .shipped import recipe_path

logger = logging.getLogger(__name__)

TRAINERS = ("srft", "sft", "sft_kl")
RECIPES_DIR = Path(__file__).resolve().parent / "resources" / "recipes"  # shipped in the wheel (srft_trl.shipped)
DEFAULT_RECIPE = RECIPES_DIR / "srft_tiny_cpu.yaml"
CARD_MARKER = "<!-- srft-trl: recipe and metrics -->"


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@dataclass
class ScriptArguments:
    """Data, reward, model-building and held-out evaluation settings of a recipe.

    Parameters:
        trainer: `srft` (`SRFTTrainer`: SRFT and every preset of `SRFTConfig.method`, GRPO and LUFFY
            included), `sft` (TRL's `SFTTrainer` on the demonstrations) or `sft_kl` (SFT plus
            `beta` times the KL divergence to the frozen base model, the paper's SFT_KL).
        dataset_name: `tiny_math` (shipped with the package), `openr1` (the paper's
            `Elliott/Openr1-Math-46k-8192`), or a Hub id / local file / directory.
        dataset_format: `openr1` (the OpenR1 schema: `prompt`, `target`, `reward_model`) or
            `columns` (any dataset; name its columns with the three `dataset_*_column` fields).
        system_prompt: `srft` (the paper's instruction, App. B Fig. A3), `none` (prompts exactly as
            the dataset has them) or the literal text of a system message.
        max_demo_tokens: drop rows whose demonstration (+ EOS) is longer, once, before training
            (the paper's data keeps demonstrations within 8,192 tokens).
        max_prompt_tokens: drop rows whose chat-formatted prompt is longer (the paper: 1,024).
        reward_funcs: names in `srft_trl.rewards.REWARD_FUNCS` or dotted import paths.
        tiny_model: build the tiny random model and byte-level tokenizer at `model_name_or_path`
            (default: `~/.cache/srft_trl/tiny-model`) if none is saved there yet.
        rope_theta, max_position_embeddings: RoPE base and position window for the base model
            (the paper's Qwen2.5-Math-7B: 40,000 and 16,384). Applied by writing an extended
            copy of the checkpoint (config only; weights are linked) to
            `<output_dir>/_extended_base`, so that vLLM, which loads the model from its path,
            generates with the same positions as the trained model.
        eval_split: split of the same dataset evaluated before and after training.
    """

    trainer: str = field(default="srft", metadata={"help": "srft, sft or sft_kl.", "choices": list(TRAINERS)})
    dataset_name: str = field(
        default="tiny_math", metadata={"help": "tiny_math, openr1, or a Hub id / local path."}
    )
    dataset_format: str = field(
        default="openr1",
        metadata={"help": "Schema of dataset_name: openr1 or columns.", "choices": ["openr1", "columns"]},
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Training split."})
    dataset_prompt_column: str = field(default="prompt", metadata={"help": "Prompt column (dataset_format=columns)."})
    dataset_demo_column: str = field(default="demo", metadata={"help": "Demonstration column (dataset_format=columns)."})
    dataset_solution_column: str = field(
        default="solution", metadata={"help": "Ground-truth answer column (dataset_format=columns)."}
    )
    system_prompt: str = field(
        default="srft", metadata={"help": "srft (the paper's), none (as in the dataset) or literal text."}
    )
    max_demo_tokens: int | None = field(
        default=None, metadata={"help": "Drop rows whose demo + EOS exceeds this many tokens (paper: 8192)."}
    )
    max_prompt_tokens: int | None = field(
        default=None, metadata={"help": "Drop rows whose chat-formatted prompt exceeds this many tokens (paper: 1024)."}
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["math_accuracy"],
        metadata={"help": "Reward functions: names in srft_trl.rewards.REWARD_FUNCS or dotted import paths."},
    )
    tiny_model: bool = field(
        default=False, metadata={"help": "Build the tiny local model at model_name_or_path if it is missing."}
    )
    rope_theta: float | None = field(default=None, metadata={"help": "RoPE base for the model (paper: 40000)."})
    max_position_embeddings: int | None = field(
        default=None, metadata={"help": "Position window for the model (paper: 16384)."}
    )
    eval_split: str | None = field(
        default=None, metadata={"help": "Split of the dataset evaluated before and after training."}
    )
    eval_limit: int | None = field(default=None, metadata={"help": "Evaluate only the first N held-out problems."})
    eval_max_new_tokens: int | None = field(
        default=None, metadata={"help": "Held-out generation budget (default: max_completion_length, or 1024)."}
    )
    eval_temperature: float = field(default=0.6, metadata={"help": "Held-out sampling temperature (paper: 0.6)."})
    eval_generation_batch_size: int = field(default=64, metadata={"help": "Held-out prompts per generate call."})
    torch_num_threads: int | None = field(
        default=None,
        metadata={"help": "torch.set_num_threads; 1 on small CPU machines, where OpenMP threads slow tiny matmuls."},
    )

    def __post_init__(self):
        if self.trainer not in TRAINERS:
            raise ValueError(f"trainer={self.trainer!r} must be one of {list(TRAINERS)}.")
        if isinstance(self.reward_funcs, str):
            self.reward_funcs = [self.reward_funcs]


@dataclass
class SFTKLConfig(SFTConfig):
    """TRL's `SFTConfig` plus `beta`, the weight of the KL penalty to the base model (App. B, Eq. A1)."""

    beta: float = field(
        default=0.2, metadata={"help": "Weight of KL(pi_theta || pi_base) added to the SFT loss (paper: 0.2)."}
    )


CONFIG_CLASSES: dict[str, type] = {"srft": SRFTConfig, "sft": SFTConfig, "sft_kl": SFTKLConfig}


class RecipeError(ValueError):
    """A recipe or command line that cannot be run (unknown keys, unreadable file)."""


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def launcher_keys() -> frozenset[str]:
    """Options of `accelerate launch` (plus `accelerate_config`), allowed in a recipe for `srft-trl train`."""
    from accelerate.commands.launch import launch_command_parser

    dests = {action.dest for action in launch_command_parser()._actions}
    return frozenset(dests - {"help", "training_script", "training_script_args"} | {"accelerate_config"})


def make_parser(trainer: str = "srft") -> TrlParser:
    """The `TrlParser` for a recipe run by `trainer` (`srft`, `sft` or `sft_kl`)."""
    if trainer not in CONFIG_CLASSES:
        raise RecipeError(f"trainer={trainer!r} must be one of {list(TRAINERS)}.")
    # allow_abbrev=False: a typo such as `--max_step` must not silently match `--max_steps`.
    return TrlParser((ScriptArguments, CONFIG_CLASSES[trainer], ModelConfig), prog="srft-trl train", allow_abbrev=False)


def _flag_value(argv: Sequence[str], flag: str) -> str | None:
    for i, token in enumerate(argv):
        if token == flag and i + 1 < len(argv):
            return argv[i + 1]
        if token.startswith(flag + "="):
            return token.split("=", 1)[1]
    return None


def resolve_recipe_path(value: str) -> Path:
    """A recipe path, or the name of a recipe shipped with the package (`srft_trl.shipped.recipe_path`)."""
    try:
        return recipe_path(value)
    except ValueError as error:
        raise RecipeError(str(error)) from None


def read_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """The recipe's YAML mapping."""
    with open(path) as handle:
        recipe = yaml.safe_load(handle) or {}
    if not isinstance(recipe, dict):
        raise RecipeError(f"recipe {path} must be a YAML mapping of settings, got {type(recipe).__name__}.")
    return recipe


def _suggest(key: str, known: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_recipe_keys(recipe: dict[str, Any], parser: TrlParser, source: str = "recipe") -> None:
    """Fail on keys that no dataclass of `parser` and no launcher option knows, naming them.

    TrlParser would pass such keys on as "remaining strings" (to `accelerate launch` in TRL's CLI,
    which fails late and without the key's origin), so they are checked here, up front.
    """
    known = {action.dest for action in parser._actions} | {"env"}
    unknown = [key for key in recipe if key not in known and key not in launcher_keys()]
    if unknown:
        details = "; ".join(f"{key!r}{_suggest(key, known)}" for key in unknown)
        raise RecipeError(f"unknown key(s) in {source}: {details}.")


def _check_remaining(tokens: Sequence[str]) -> list[str]:
    """Command-line leftovers must be launcher options; returns them, raises naming any other."""
    unknown = [t for t in tokens if t.startswith("--") and t[2:].split("=", 1)[0] not in launcher_keys()]
    if unknown or (tokens and not tokens[0].startswith("--")):
        raise RecipeError(f"unrecognised command-line argument(s): {' '.join(unknown or tokens)}")
    return list(tokens)


def remove_subsequence(tokens: Sequence[str], removed: Sequence[str]) -> list[str]:
    """`tokens` without the ordered subsequence `removed` (the command-line launcher options)."""
    pending = iter(removed)
    current = next(pending, None)
    kept = []
    for token in tokens:
        if current is not None and token == current:
            current = next(pending, None)
        else:
            kept.append(token)
    return kept


def launcher_args(recipe: dict[str, Any], parser: TrlParser) -> list[str]:
    """The recipe's launcher-only keys as `accelerate launch` flags (booleans as bare flags).

    A key both sides know (`gradient_accumulation_steps`, `debug`) belongs to the training
    settings, as in TRL's CLI.
    """
    known = {action.dest for action in parser._actions} | {"env"}
    args = []
    for key, value in recipe.items():
        if key in launcher_keys() and key not in known:
            if value is True:
                args.append(f"--{key}")
            elif value not in (False, None):
                args += [f"--{key}", str(value)]
    return args


@dataclass
class ParsedArgs:
    """Everything a run needs, from the recipe and the command line."""

    script: ScriptArguments
    training: SRFTConfig | SFTConfig
    model: ModelConfig
    recipe_path: Path | None
    recipe: dict[str, Any]
    overrides: list[str]  # command-line tokens other than --config
    launch: list[str]  # launcher options (recipe first, then command line)
    argv: list[str]  # the command line, with `--config` resolved
    cli_launch: list[str]  # the launcher options given on the command line


def parse_args(argv: Sequence[str] | None = None) -> ParsedArgs:
    """Parse a recipe and command-line overrides; unknown keys fail before any expensive work.

    Without `--config`, the shipped tiny CPU recipe is used.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = [part for token in argv for part in (token.split("=", 1) if token.startswith("--config=") else [token])]
    if "--config" not in argv and DEFAULT_RECIPE.is_file():
        argv = ["--config", str(DEFAULT_RECIPE), *argv]
    recipe_path = None
    if "--config" in argv:
        index = argv.index("--config")
        if index + 1 >= len(argv):
            raise RecipeError("--config needs a recipe path.")
        recipe_path = resolve_recipe_path(argv[index + 1])
        argv[index + 1] = str(recipe_path)
    recipe = read_recipe(recipe_path) if recipe_path else {}
    trainer = _flag_value(argv, "--trainer") or recipe.get("trainer", "srft")
    parser = make_parser(trainer)
    check_recipe_keys(recipe, parser, str(recipe_path or "recipe"))
    script, training, model, _, cli_rest = parser.parse_args_and_config(
        argv, return_remaining_strings=True, separate_remaining_strings=True
    )
    cli_launch = _check_remaining(cli_rest)
    overrides = [t for i, t in enumerate(argv) if t != "--config" and (i == 0 or argv[i - 1] != "--config")]
    overrides = remove_subsequence(overrides, cli_launch)
    launch = launcher_args(recipe, parser) + cli_launch
    return ParsedArgs(script, training, model, recipe_path, recipe, overrides, launch, argv, cli_launch)


# --------------------------------------------------------------------------------------------
# Model preparation
# --------------------------------------------------------------------------------------------


def default_tiny_model_path() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "srft_trl" / "tiny-model"


def extend_context(
    model_id: str,
    target: str | os.PathLike,
    *,
    rope_theta: float | None = None,
    max_position_embeddings: int | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> Path:
    """Write `target`: `model_id` with its RoPE base and position window replaced (App. B).

    Only `config.json` is rewritten; every other file is a symbolic link to the original
    checkpoint (a Hub id is downloaded to the local cache first). Loading the model with config
    overrides would be shorter, but TRL starts vLLM from the model's path, which would then
    generate with the native 10,000 base while the policy is trained with 40,000. Idempotent: an
    existing `target` with the same settings is reused.
    """
    from transformers import AutoConfig

    from .eval.backends import rope_overrides

    target = Path(target)
    source = Path(model_id)
    if not source.is_dir():
        from huggingface_hub import snapshot_download

        source = Path(snapshot_download(model_id, revision=revision))
    config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    overrides = rope_overrides(config, rope_theta, max_position_embeddings)
    if (target / "config.json").is_file():
        existing = json.loads((target / "config.json").read_text())
        if all(existing.get(key) == json.loads(json.dumps(value)) for key, value in overrides.items()):
            return target
        raise RecipeError(f"{target} holds a checkpoint with other RoPE settings; remove it or change output_dir.")
    for key, value in overrides.items():
        setattr(config, key, value)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for item in source.iterdir():
            if item.name != "config.json" and not item.name.startswith("."):
                (tmp / item.name).symlink_to(item.resolve())
        config.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another machine sharing output_dir wrote it first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def prepare_model_path(script: ScriptArguments, training, model_args: ModelConfig) -> str:
    """Build the tiny model and/or the RoPE-extended copy if asked; return the path to train from."""
    from .tiny import ensure_tiny_model

    path = model_args.model_name_or_path
    if script.tiny_model:
        path = str(path or default_tiny_model_path())
        with training.main_process_first(local=True, desc="building the tiny model"):
            ensure_tiny_model(path)
    if not path:
        raise RecipeError("model_name_or_path is required (or set tiny_model: true).")
    if script.rope_theta is not None or script.max_position_embeddings is not None:
        target = Path(training.output_dir) / "_extended_base"
        with training.main_process_first(local=True, desc="extending the RoPE window"):
            path = str(
                extend_context(
                    path,
                    target,
                    rope_theta=script.rope_theta,
                    max_position_embeddings=script.max_position_embeddings,
                    revision=model_args.model_revision,
                    trust_remote_code=training.trust_remote_code,
                )
            )
    return path


def model_init_kwargs(training, model_args: ModelConfig) -> dict[str, Any]:
    """What the trainer passes to `from_pretrained`, as in TRL's own scripts."""
    kwargs = dict(
        revision=model_args.model_revision,
        trust_remote_code=training.trust_remote_code,
        attn_implementation=model_args.attn_implementation,
        dtype=model_args.dtype,
    )
    kwargs.update(training.model_init_kwargs or {})
    return kwargs


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def resolve_system_prompt(choice: str) -> str | None:
    """`srft` -> the paper's instruction; `none` -> None (prompts as in the dataset); else the text."""
    if choice == "srft":
        return srft_data.SRFT_SYSTEM_PROMPT
    if choice == "none":
        return None
    return choice


def load_split(script: ScriptArguments, split: str, tokenizer, demo_column: str = "demo"):
    """One split as TRL rows: `prompt`, the demonstration in `demo_column`, the answer in `solution`."""
    system_prompt = resolve_system_prompt(script.system_prompt)
    common = dict(system_prompt=system_prompt, tokenizer=tokenizer)
    name = script.dataset_name
    if name == "tiny_math":
        return srft_data.load_tiny_math(split, demo_column=demo_column, solution_column="solution", **common)
    if script.dataset_format == "openr1":
        source = srft_data.OPENR1_HUB_ID if name == "openr1" else name
        return srft_data.load_openr1(source, split, demo_column=demo_column, solution_column="solution", **common)
    dataset = srft_data.load_prompt_demo_dataset(
        name,
        prompt_column=script.dataset_prompt_column,
        demo_column=script.dataset_demo_column,
        solution_column=script.dataset_solution_column,
        split=split,
        conversational=system_prompt is not None,
        **common,
    )
    renames = {script.dataset_demo_column: demo_column, script.dataset_solution_column: "solution"}
    renames = {old: new for old, new in renames.items() if old != new}
    clashes = [new for new in renames.values() if new in dataset.column_names]
    if clashes:
        dataset = dataset.remove_columns(clashes)
    return dataset.rename_columns(renames) if renames else dataset


def filter_prompt_length(dataset, tokenizer, max_tokens: int):
    """Drop rows whose chat-formatted prompt is longer than `max_tokens`; return (dataset, dropped)."""

    def length(prompt) -> int:
        if isinstance(prompt, str):
            return len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        encoded = tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True, return_dict=True)
        return len(encoded["input_ids"])

    def fits(batch):
        return [length(prompt) <= max_tokens for prompt in batch["prompt"]]

    filtered = dataset.filter(fits, batched=True, desc="Filtering prompt length")
    return filtered, len(dataset) - len(filtered)


def build_datasets(script: ScriptArguments, training, tokenizer, demo_column: str = "demo", log=print):
    """The training split (filtered by demo and prompt length, with counts) and the held-out split."""
    with training.main_process_first(desc="loading the dataset"):
        train = load_split(script, script.dataset_train_split, tokenizer, demo_column)
        total = len(train)
        if script.max_demo_tokens is not None:
            train, dropped = srft_data.filter_by_demo_length(train, tokenizer, script.max_demo_tokens, demo_column)
            log(f"max_demo_tokens={script.max_demo_tokens}: dropped {dropped} of {total} rows")
        if script.max_prompt_tokens is not None:
            before = len(train)
            train, dropped = filter_prompt_length(train, tokenizer, script.max_prompt_tokens)
            log(f"max_prompt_tokens={script.max_prompt_tokens}: dropped {dropped} of {before} rows")
        heldout = load_split(script, script.eval_split, tokenizer, demo_column) if script.eval_split else None
    if len(train) == 0:
        raise RecipeError("no training rows left after filtering.")
    return train, heldout


def to_sft_rows(dataset, demo_column: str = "demo"):
    """Prompt-completion rows for TRL's `SFTTrainer` (loss on the demonstration only)."""

    def convert(row):
        completion = row[demo_column]
        if not isinstance(row["prompt"], str):
            completion = [{"role": "assistant", "content": completion}]
        return {"prompt": row["prompt"], "completion": completion}

    return dataset.map(convert, remove_columns=dataset.column_names, desc="Prompt-completion rows")


def get_reward_functions(names: Sequence[str]) -> list[Callable]:
    """Reward functions by registry name (`srft_trl.rewards.REWARD_FUNCS`) or dotted import path."""
    from .rewards import REWARD_FUNCS, get_reward_funcs

    funcs = []
    for name in names:
        if name in REWARD_FUNCS or "." not in name:
            funcs += get_reward_funcs([name])
        else:
            module, attribute = name.rsplit(".", 1)
            funcs.append(getattr(importlib.import_module(module), attribute))
    return funcs


# --------------------------------------------------------------------------------------------
# SFT with a KL penalty to the base model (the paper's SFT_KL baseline)
# --------------------------------------------------------------------------------------------


class SFTKLTrainer(SFTTrainer):
    """TRL's `SFTTrainer` with `beta * KL(pi_theta || pi_base)` added to the loss (App. B, Eq. A1).

    The KL is exact: summed over the vocabulary at every completion (label) token and averaged
    over the same tokens as the NLL (`num_items_in_batch`), so the two terms share one scale. The
    reference is a frozen copy of the base model, or the base model itself with the LoRA adapter
    disabled. The loss goes through `SFTTrainer`'s `compute_loss_func` hook, the branch of
    `SFTTrainer.compute_loss` that works on the full logits; everything else (metrics,
    multi-process token averaging) is the parent's.
    """

    _tag_names = ["trl", "sft", "sft-kl", "srft-trl"]
    _name = "SFT-KL"

    def __init__(self, *args, **kwargs):
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError("SFTKLTrainer sets its own compute_loss_func.")
        super().__init__(*args, **kwargs)
        from accelerate.utils import is_peft_model
        from trl.models.utils import prepare_deepspeed, prepare_fsdp
        from trl.trainer.utils import create_model_from_path, disable_dropout_in_model, get_config_model_id

        self.beta = self.args.beta
        self.ref_model = None
        if self.beta and not is_peft_model(self.model):
            init_kwargs = dict(self.args.model_init_kwargs or {})
            init_kwargs.setdefault("dtype", self.model.dtype)
            if self.args.distributed_state.distributed_type in ("MULTI_GPU", "DEEPSPEED"):
                init_kwargs["device_map"] = None
            ref = create_model_from_path(get_config_model_id(self.model.config), **init_kwargs)
            ref.requires_grad_(False)
            disable_dropout_in_model(ref)
            if self.is_deepspeed_enabled:
                ref = prepare_deepspeed(ref, self.accelerator)
            elif self.is_fsdp_enabled:
                ref = prepare_fsdp(ref, self.accelerator)
            else:
                ref = self.accelerator.prepare_model(ref, evaluation_mode=True)
            self.ref_model = ref
        self.compute_loss_func = self._nll_plus_kl
        self._kl_inputs = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self._kl_inputs = inputs  # the hook receives outputs and labels only; the reference needs the inputs
        try:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        finally:
            self._kl_inputs = None

    def _reference_logits(self, inputs) -> torch.Tensor:
        forward = {k: v for k, v in inputs.items() if k != "labels"}
        with torch.no_grad():
            if self.ref_model is not None:
                return self.ref_model(**forward).logits
            from trl.trainer.utils import use_adapter

            unwrapped = self.accelerator.unwrap_model(self.model)
            with use_adapter(unwrapped, adapter_name="ref" if "ref" in unwrapped.peft_config else None):
                return self.model(**forward).logits

    def _nll_plus_kl(self, outputs, labels, num_items_in_batch=None):
        labels = labels[:, 1:]
        mask = labels != -100
        logps = outputs.logits[:, :-1][mask].float().log_softmax(-1)  # (tokens, vocab): completion tokens only
        nll = -logps.gather(-1, labels[mask].unsqueeze(-1)).squeeze(-1)
        if self.beta:
            ref_logps = self._reference_logits(self._kl_inputs)[:, :-1][mask].float().log_softmax(-1)
            kl = (logps.exp() * (logps - ref_logps)).sum(-1)
        else:
            kl = torch.zeros_like(nll)
        denominator = torch.as_tensor(mask.sum() if num_items_in_batch is None else num_items_in_batch)
        loss = (nll + self.beta * kl).sum() / denominator.to(nll.device).clamp(min=1)
        mode = "train" if self.model.training else "eval"
        stats = self.accelerator.gather_for_metrics(torch.stack([kl.detach().sum(), kl.new_tensor(kl.numel())]).view(1, 2))
        stats = stats.view(-1, 2).sum(0)
        self._metrics[mode]["kl"].append((stats[0] / stats[1].clamp(min=1)).item())
        return loss


# --------------------------------------------------------------------------------------------
# Held-out evaluation
# --------------------------------------------------------------------------------------------


def _render_prompt(prompt, tokenizer) -> str:
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)


def generate_batched(model, tokenizer, prompts: list[str], *, max_new_tokens: int, temperature: float,
                     batch_size: int = 64, seed: int = 0) -> list[str]:
    """Sample one response per prompt, `batch_size` prompts per `generate` call (left padding).

    `srft_trl.eval.TransformersBackend` makes one `generate` call per prompt; batching prompts is
    what makes the held-out evaluation of the tiny CPU recipe take seconds instead of a minute.
    Sampling follows the evaluation protocol: temperature and top_p 1.0 only, no top-k.
    """
    from transformers import GenerationConfig

    config = GenerationConfig(
        do_sample=temperature > 0,
        temperature=temperature if temperature > 0 else None,
        top_p=1.0 if temperature > 0 else None,
        top_k=0 if temperature > 0 else None,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    was_training, padding_side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    devices = [model.device.index or 0] if model.device.type == "cuda" else []
    responses = []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(seed)
            for start in range(0, len(prompts), batch_size):
                encoded = tokenizer(
                    prompts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
                ).to(model.device)
                output = model.generate(**encoded, generation_config=config)
                responses += tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
    finally:
        model.train(was_training)
        tokenizer.padding_side = padding_side
    return responses


def heldout_accuracy(model, tokenizer, dataset, *, max_new_tokens: int, temperature: float = 0.6,
                     batch_size: int = 64, seed: int = 0) -> float:
    """Fraction of `dataset` rows (`prompt`, `solution`) answered correctly, graded like `srft-trl eval`.

    The prompts are the rows' own (the system prompt the model is trained with); a response must
    close its reasoning with `</think>` and is graded by the evaluation harness's grader (OAT
    grader, Math-Verify fallback) in bounded worker processes.
    """
    from .eval.grade import grade_sample
    from .grading.bounded import run_bounded_status

    prompts = [_render_prompt(p, tokenizer) for p in dataset["prompt"]]
    responses = generate_batched(
        model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
        batch_size=batch_size, seed=seed,
    )
    tasks = [
        {"kind": "math", "response": r, "gold": g, "letters": None, "require_think": True}
        for r, g in zip(responses, dataset["solution"])
    ]
    outcomes = run_bounded_status(grade_sample, tasks, timeout_s=10.0)
    return sum(o.status == "ok" and bool(o.value["correct"]) for o in outcomes) / max(len(tasks), 1)


# --------------------------------------------------------------------------------------------
# Model card
# --------------------------------------------------------------------------------------------


def final_metrics(trainer, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The last logged value of every training metric, the run summary, and `extra`."""
    metrics: dict[str, Any] = {}
    for entry in trainer.state.log_history:
        metrics.update({k: v for k, v in entry.items() if isinstance(v, (int, float)) and k not in ("epoch", "step")})
    if trainer.state.global_step:
        metrics["global_step"] = trainer.state.global_step
    metrics.update(extra or {})
    return metrics


def extend_model_card(path: str | os.PathLike, *, recipe_text: str, overrides: Sequence[str],
                      metrics: dict[str, Any], base_model: str | None = None) -> None:
    """Append the recipe and the final metrics to the model card at `path` (replacing a previous copy)."""
    from huggingface_hub import ModelCard

    path = Path(path)
    card = ModelCard.load(path) if path.is_file() else ModelCard("")
    if base_model and not Path(base_model).exists():
        card.data.base_model = base_model  # TRL's card omits a local (e.g. RoPE-extended) path
    body = card.text.split(CARD_MARKER)[0].rstrip()
    command = "srft-trl train --config recipe.yaml" + ("".join(f" {t}" for t in overrides) if overrides else "")
    rows = "\n".join(f"| {k} | {v:.6g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items())
    card.text = (
        f"{body}\n\n{CARD_MARKER}\n## Training recipe\n\nTrained with srft-trl, the SRFT trainer for TRL"
        f":\n\n```bash\n{command}\n```\n\n`recipe.yaml`:\n\n```yaml\n{recipe_text.rstrip()}\n```\n\n"
        f"## Final metrics\n\n| metric | value |\n|---|---|\n{rows}\n"
    )
    card.save(path)


def install_model_card(trainer, *, recipe_text: str, overrides: Sequence[str], base_model: str | None,
                       extra_metrics: dict[str, Any]) -> None:
    """Make every model card the trainer writes (checkpoints, end of training, `push_to_hub`) carry
    the recipe and the metrics so far, by wrapping its `create_model_card`."""
    create = trainer.create_model_card

    @functools.wraps(create)
    def create_model_card(*args, **kwargs):
        create(*args, **kwargs)
        if trainer.is_world_process_zero():
            extend_model_card(
                Path(trainer.args.output_dir) / "README.md",
                recipe_text=recipe_text,
                overrides=overrides,
                metrics=final_metrics(trainer, extra_metrics),
                base_model=base_model,
            )

    trainer.create_model_card = create_model_card


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def _resume_value(value):
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true" or None
    return value


def _hub_dataset_name(script: ScriptArguments) -> str | None:
    if script.dataset_name == "openr1":
        return srft_data.OPENR1_HUB_ID
    if script.dataset_name == "tiny_math" or Path(script.dataset_name).exists():
        return None
    return script.dataset_name


def build_trainer(args: ParsedArgs, model_path: str, tokenizer, train_dataset):
    """The trainer for `args.script.trainer`, set up as TRL's own scripts set theirs up."""
    script, training, model_args = args.script, args.training, args.model
    training.model_init_kwargs = model_init_kwargs(training, model_args)
    common = dict(
        model=model_path,
        args=training,
        processing_class=tokenizer,
        quantization_config=get_quantization_config(model_args),
        peft_config=get_peft_config(model_args),
    )
    if script.trainer == "srft":
        from .trainer import SRFTTrainer

        return SRFTTrainer(reward_funcs=get_reward_functions(script.reward_funcs), train_dataset=train_dataset, **common)
    trainer_class = SFTKLTrainer if script.trainer == "sft_kl" else SFTTrainer
    return trainer_class(train_dataset=to_sft_rows(train_dataset), **common)


def run(args: ParsedArgs) -> dict[str, Any]:
    """Train as the recipe says; return the final metrics."""
    script, training, model_args = args.script, args.training, args.model
    if script.torch_num_threads:
        torch.set_num_threads(script.torch_num_threads)
    is_main = training.process_index == 0
    say = print if is_main else (lambda *a, **k: None)

    model_path = prepare_model_path(script, training, model_args)
    tokenizer = AutoTokenizer.from_pretrained(
        model_path, revision=model_args.model_revision, trust_remote_code=training.trust_remote_code
    )
    demo_column = training.demo_column if script.trainer == "srft" else "demo"
    train_dataset, heldout = build_datasets(script, training, tokenizer, demo_column, log=say)
    if heldout is not None and script.eval_limit is not None:
        heldout = heldout.select(range(min(script.eval_limit, len(heldout))))

    trainer = build_trainer(args, model_path, tokenizer, train_dataset)
    print(
        f"[srft-trl] process {training.process_index} of {training.world_size}: trainer={script.trainer} "
        f"train_rows={len(train_dataset)} device={trainer.accelerator.device}",
        flush=True,
    )

    extra: dict[str, Any] = {}
    evaluate = None
    if heldout is not None:
        budget = script.eval_max_new_tokens or getattr(training, "max_completion_length", None) or 1024
        evaluate = functools.partial(
            heldout_accuracy, tokenizer=tokenizer, dataset=heldout, max_new_tokens=budget,
            temperature=script.eval_temperature, batch_size=script.eval_generation_batch_size, seed=training.seed,
        )
        # Every process evaluates (a sharded model needs all of them); the same seed gives the same samples.
        extra["heldout_accuracy_before"] = evaluate(trainer.model)
        say(f"held-out accuracy before training: {extra['heldout_accuracy_before']:.3f} ({len(heldout)} problems)")

    base_model = None if script.tiny_model else model_args.model_name_or_path
    recipe_text = args.recipe_path.read_text() if args.recipe_path else yaml.safe_dump(args.recipe)
    install_model_card(trainer, recipe_text=recipe_text, overrides=args.overrides, base_model=base_model,
                       extra_metrics=extra)

    result = trainer.train(resume_from_checkpoint=_resume_value(training.resume_from_checkpoint))
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()

    if evaluate is not None:
        extra["heldout_accuracy_after"] = evaluate(trainer.model)
        say(
            f"held-out accuracy before: {extra['heldout_accuracy_before']:.3f} / "
            f"after: {extra['heldout_accuracy_after']:.3f} "
            f"({len(heldout)} problems of {script.dataset_name}/{script.eval_split})"
        )

    trainer.save_model(training.output_dir)
    if trainer.is_world_process_zero():
        (Path(training.output_dir) / "recipe.yaml").write_text(recipe_text)
    trainer.create_model_card(model_name=Path(training.output_dir).name, dataset_name=_hub_dataset_name(script))
    say(f"model, recipe.yaml and model card saved to {training.output_dir}")
    if training.push_to_hub:
        trainer.push_to_hub(dataset_name=_hub_dataset_name(script))
        say(f"pushed to https://huggingface.co/{trainer.hub_model_id}")
    metrics = final_metrics(trainer, extra)
    if hasattr(trainer, "end"):  # transformers >= 5.18: finish the trackers, destroy the process group
        trainer.end()
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m srft_trl.train`; returns the exit status."""
    try:
        args = parse_args(argv)
    except RecipeError as error:
        print(f"srft-trl: error: {error}", file=sys.stderr)
        return 2
    launched = "ACCELERATE_MIXED_PRECISION" in os.environ  # set by `accelerate launch` in every process
    if args.launch and not launched:
        logger.warning("launcher options %s are used by `srft-trl train` only; ignored here.", args.launch)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
