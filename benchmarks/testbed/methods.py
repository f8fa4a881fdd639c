"""The methods the testbed compares: rows of the paper's Table 2 / Table 3, all through the product.

Every RL / mixed method is `SRFTTrainer` with one of the product's presets (`SRFTConfig.method`);
SFT is TRL's `SFTTrainer`. `lr_from` names the method whose swept learning rate a method uses
when it gets no sweep of its own (the Table 3 ablations use SRFT's, as the paper keeps SRFT's
settings for them; SFT -> GRPO uses SFT's rate for its SFT stage and GRPO's for its RL stage).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    kind: str  # "sft", "rl" or "sft_rl" (SFT for half the steps, then GRPO)
    preset: str | None = None
    overrides: dict = field(default_factory=dict)
    lr_from: tuple[str, ...] = ()  # () = swept itself
    table: str = "main"  # "main" (Table 2), "ablation" (Table 3), "investigation", "capacity"
    budget: int = 1  # multiple of the shared budget (only the capacity check differs)
    max_seeds: int | None = None  # run only the first this many of the study's seeds


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("sft", "SFT", "sft"),
        # Capacity check, not a comparison row: SFT with 4x the budget, to show the model can learn the procedure.
        Method("sft_long", "SFT, 4x budget (capacity check)", "sft", lr_from=("sft",), table="capacity", budget=4,
               max_seeds=1),
        Method("grpo", "RL (GRPO)", "rl", "grpo"),
        Method("sft_grpo", "SFT → RL (GRPO)", "sft_rl", "grpo", lr_from=("sft", "grpo")),
        Method("luffy", "LUFFY", "rl", "luffy"),
        Method("srft", "SRFT (paper)", "rl", "srft"),
        Method("srft_hpt", "SRFT (public code)", "rl", "srft_hpt"),
        Method("srft_no_wsft", "SRFT w/o w_SFT", "rl", "srft_no_wsft", lr_from=("srft",), table="ablation"),
        Method("srft_no_wrl", "SRFT w/o w_RL", "rl", "srft_no_wrl", lr_from=("srft",), table="ablation"),
        # Issue 13's lead: SRFT's demo terms with TRL's group-baselined GRPO loss on the rollouts instead of Eq. 12.
        Method("srft_grpo_rollouts", "SRFT, GRPO loss on rollouts", "rl", "srft", {"rollout_loss": "grpo"},
               lr_from=("srft",), table="investigation"),
        # Investigation: SRFT at SFT's swept rate, to compare how fast each learns the procedure at equal rates.
        Method("srft_sft_rate", "SRFT at SFT's rate", "rl", "srft", lr_from=("sft",), table="investigation"),
        # Investigations added after the v2 study (SRFT tied with SFT): what SRFT's RL terms do without the SFT term,
        # and the exact parameter-space size of each term on one seed (same training; one extra backward per term).
        Method("srft_no_sft", "SRFT without the SFT term", "rl", "srft", {"sft_weighting": "off"}, lr_from=("srft",),
               table="investigation"),
        # LUFFY's sweep picks GRPO's stable rate, where its demonstration term teaches nothing: LUFFY at SRFT's rate.
        Method("luffy_srft_rate", "LUFFY at SRFT's rate", "rl", "luffy", lr_from=("srft",), table="investigation"),
        Method("srft_param_grads", "SRFT, per-term parameter gradients logged", "rl", "srft",
               {"log_term_param_grad_norms": True}, lr_from=("srft",), table="investigation", max_seeds=1),
    ]
}

MAIN_ROWS = ["sft", "grpo", "sft_grpo", "luffy", "srft", "srft_hpt"]
ABLATION_ROWS = ["srft", "srft_no_wsft", "srft_no_wrl"]
SWEPT = [name for name, m in METHODS.items() if not m.lr_from]
