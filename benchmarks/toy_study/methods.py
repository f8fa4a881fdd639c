"""The methods the study compares, each a row of the paper's Table 2 / Table 3.

Every RL method goes through `SRFTTrainer` with one of the product's presets; the SFT baseline
goes through TRL's `SFTTrainer`. `overrides` are the only settings a method changes beyond its
preset; everything else (steps, prompts per step, group size, learning rate, ...) is shared.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Method:
    name: str  # key in results.json
    label: str  # row label in the tables
    kind: str  # "sft", "rl" or "sft_rl" (SFT for half the budget, then GRPO)
    preset: str | None = None  # SRFTConfig.method
    overrides: dict = field(default_factory=dict)
    table: str = "main"  # "main" (Table 2), "ablation" (Table 3) or "granularity"


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("sft", "SFT", "sft"),
        # Control: GRPO with learning rate 0, i.e. the base model's own rollouts on the same prompt sequence.
        # Its reward / length / entropy curves show how much of every other curve is the prompts, not learning.
        Method("control", "No update (control, lr = 0)", "rl", "grpo", {"learning_rate": 0.0}, table="control"),
        Method("grpo", "RL (GRPO)", "rl", "grpo"),
        Method("sft_grpo", "SFT → RL (GRPO)", "sft_rl", "grpo"),
        # LUFFY's public recipe (reference §2): no std division, Dr. GRPO aggregation.
        Method("luffy", "LUFFY", "rl", "luffy", {"scale_rewards": "none", "loss_type": "dr_grpo"}),
        Method("srft", "SRFT", "rl", "srft"),
        Method("srft_no_wsft", "SRFT w/o w_SFT", "rl", "srft_no_wsft", table="ablation"),
        Method("srft_no_wrl", "SRFT w/o w_RL", "rl", "srft_no_wrl", table="ablation"),
        Method("srft_token", "SRFT (H per token)", "rl", "srft", {"entropy_granularity": "token"}, "granularity"),
        # "sequence" is SRFTConfig's default, i.e. the "srft" row itself.
        Method("srft_batch", "SRFT (H per batch)", "rl", "srft", {"entropy_granularity": "batch"}, "granularity"),
        # Investigation (not in the default study): SRFT's demo terms with the GRPO loss on rollouts
        # (group-baselined advantages, positive ones scaled by w_RL) instead of Eq. 12 taken literally.
        Method("srft_grpo_rollouts", "SRFT, GRPO loss on rollouts", "rl", "srft", {"rollout_loss": "grpo"},
               "investigation"),
        # Investigation: the product's "grpo_sft" preset (GRPO + unweighted SFT on demos, demos out of the baseline).
        Method("grpo_sft", "GRPO + SFT (demos out of the group)", "rl", "grpo_sft", table="investigation"),
    ]
}

MAIN_ROWS = ["sft", "grpo", "sft_grpo", "luffy", "srft"]
ABLATION_ROWS = ["srft_no_wsft", "srft_no_wrl", "srft"]
GRANULARITY_ROWS = ["srft_token", "srft", "srft_batch"]
