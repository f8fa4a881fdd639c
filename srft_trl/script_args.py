"""The script's own settings (`ScriptArguments`) and `srft-trl train --help`: no TRL, transformers or
torch import, so that `--help` answers at once (`srft_trl.recipes` adds the trainer configs)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

TRAINERS = ("srft", "sft", "sft_kl")
# Settings that do not change what a run computes: a re-run that differs only in these is the same run.
NOT_RUN_IDENTITY = frozenset({
    "output_dir", "resume_from_checkpoint", "overwrite_output_dir", "push_to_hub", "hub_model_id", "hub_token",
    "hub_strategy", "hub_private_repo", "report_to", "run_name", "logging_dir", "torch_num_threads",
    "dataloader_num_workers", "disable_tqdm",
})


@dataclass
class ScriptArguments:
    """Data, reward, model-building and held-out evaluation settings of a recipe.

    Parameters:
        trainer: `srft` (`SRFTTrainer`: SRFT and every preset of `SRFTConfig.method`, GRPO and LUFFY
            included), `sft` (TRL's `SFTTrainer` on the demonstrations) or `sft_kl` (SFT plus
            `beta` times the KL divergence to the frozen base model, the paper's SFT_KL).
        dataset_name: `tiny_math` or `digit_chains` (shipped with the package), `openr1` (the paper's
            `Elliott/Openr1-Math-46k-8192`), or a Hub id / local file / directory.
        dataset_format: `openr1` (the OpenR1 schema: `prompt`, `target`, `reward_model`) or
            `columns` (any dataset; name its columns with the three `dataset_*_column` fields).
        system_prompt: `srft` (the paper's instruction, App. B Fig. A3), `none` (prompts exactly as
            the dataset has them) or the literal text of a system message.
        max_demo_tokens: drop rows whose demonstration (+ EOS) is longer, once, before training
            (the paper's data keeps demonstrations within 8,192 tokens).
        max_prompt_tokens: drop rows whose chat-formatted prompt is longer (the paper: 1,024).
        reward_funcs: names in `srft_trl.rewards.REWARD_FUNCS` or dotted import paths.
        tiny_model: train the tiny random model and byte-level tokenizer (`srft_trl.tiny`) instead
            of a real one: built once at `~/.cache/srft_trl/tiny-model` (`$XDG_CACHE_HOME`), or taken
            from `model_name_or_path` when that folder already holds it. A tiny model is never built
            unless this is set.
        rope_theta, max_position_embeddings: RoPE base and position window for the base model
            (the paper's Qwen2.5-Math-7B: 40,000 and 16,384). Applied by writing an extended
            copy of the checkpoint (config only; weights are linked) to
            `<output_dir>/_extended_base`, so that vLLM, which loads the model from its path,
            generates with the same positions as the trained model.
        eval_split: split of the same dataset evaluated before and after training.
    """

    trainer: str = field(default="srft", metadata={"help": "srft, sft or sft_kl.", "choices": list(TRAINERS)})
    dataset_name: str = field(
        default="tiny_math", metadata={"help": "tiny_math, digit_chains, openr1, or a Hub id / local path."}
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
        default=False,
        metadata={"help": "Train the tiny random local model (built once in ~/.cache/srft_trl); never built otherwise."},
    )
    rope_theta: float | None = field(default=None, metadata={"help": "RoPE base for the model (paper: 40000)."})
    max_position_embeddings: int | None = field(
        default=None, metadata={"help": "Position window for the model (paper: 16384)."}
    )
    eval_split: str | None = field(
        default=None, metadata={"help": "Split of the dataset evaluated before and after training (none: no check)."}
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
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Train from step 0 into an output_dir that holds another run (its checkpoints are removed)."},
    )

    def __post_init__(self):
        if self.trainer not in TRAINERS:
            raise ValueError(f"trainer={self.trainer!r} must be one of {list(TRAINERS)}.")
        if isinstance(self.reward_funcs, str):
            self.reward_funcs = [self.reward_funcs]
        if isinstance(self.eval_split, str) and self.eval_split.strip().lower() in ("", "none"):
            self.eval_split = None  # like `system_prompt: none`

# The trainer config class of each `trainer:` value, by name (the classes are in `srft_trl.recipes`).
CONFIG_NAMES = {"srft": "SRFTConfig", "sft": "SFTConfig", "sft_kl": "SFTKLConfig"}


def short_help(trainer: str = "srft") -> str:
    """`srft-trl train --help`: the recipe, the launcher and the script's own settings; the
    trainer's ~300 TRL/transformers settings are listed by `--help-all`."""
    lines = [
        "usage: srft-trl train --config RECIPE [--KEY VALUE ...] [--accelerate_config NAME|PATH] [--num_processes N]",
        "",
        "  --config RECIPE          a recipe YAML path, or a shipped recipe name (srft_quickstart, srft_tiny_cpu, srft_qwen7b, ...)",
        "  --KEY VALUE              override any recipe setting (snake_case or kebab-case)",
        "  --accelerate_config X    run through `accelerate launch`: ddp, fsdp2, zero3, multinode, cpu_2proc or a path",
        "  --num_processes N        processes for `accelerate launch`",
        "  --help-all               every setting: the script's, the trainer config's (SRFTConfig / TRL) and ModelConfig",
        "",
        "script settings (srft_trl.recipes.ScriptArguments):",
    ]
    for spec in dataclasses.fields(ScriptArguments):
        help_text = spec.metadata.get("help", "")
        lines.append(f"  --{spec.name:<26} {help_text}")
    lines += [
        "",
        f"trainer settings: every field of {CONFIG_NAMES[trainer]} (method, num_demos, num_generations, "
        "learning_rate, max_steps, output_dir, ...) and of TRL's ModelConfig (model_name_or_path, dtype, use_peft, "
        "lora_r, ...); see --help-all.",
    ]
    return "\n".join(lines)
