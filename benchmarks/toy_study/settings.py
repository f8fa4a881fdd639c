"""Study settings: the full study and the `--quick` smoke run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from .base import BaseSettings


@dataclass(frozen=True)
class StudySettings:
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = (
        "sft", "grpo", "sft_grpo", "luffy", "srft", "srft_no_wsft", "srft_no_wrl", "srft_token", "srft_batch",
        "control",
    )
    steps: int = 80  # optimizer steps per method (SFT -> RL: half SFT, half GRPO)
    prompts_per_step: int = 4  # prompts per optimizer step (SFT: demos per step)
    num_generations: int = 8  # group size: 8 rollouts, or 7 rollouts + 1 demo
    max_completion_length: int = 64  # every demo (<= 58 chars + EOS) fits: none is dropped
    learning_rate: float = 1e-4
    max_entropy_weight: float | None = None  # see README: the pre-trained base's H keeps exp(H) small
    train_limit: int | None = None  # rows of the shipped train split (400)
    eval_limit: int | None = None  # rows of test / ood (100 each)
    eval_max_new_tokens: int = 64
    reward: str = "math_verify"  # or "exact"
    workers: int = 2
    base: BaseSettings = field(default_factory=BaseSettings)

    def to_dict(self) -> dict:
        return asdict(self)


FULL = StudySettings()

QUICK = replace(
    FULL,
    seeds=(0,),
    methods=("sft", "grpo", "srft"),
    steps=4,
    prompts_per_step=2,
    eval_limit=20,
    base=replace(FULL.base, steps=60),
)
