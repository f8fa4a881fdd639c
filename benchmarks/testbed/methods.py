"""The methods the testbed compares: rows of the paper's Table 2 / Table 3, all through the product.

Every RL / mixed method is `SRFTTrainer` with one of the product's presets (`SRFTConfig.method`);
SFT is TRL's `SFTTrainer`. Since issue 21 every compared method has its own learning-rate sweep
(`lr_from=()`), the Table 3 ablations and the imitation control included. SFT → RL's two stages are
swept separately: `sft_half` is its SFT stage alone (half the steps), swept first; `sft_grpo` then sweeps
its RL stage from the chosen stage-1 rate (`stage_from`). `lr_from` names the methods whose swept rate a
method reuses instead of a sweep of its own (only the investigation rows, kept for the v2 study).
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
    stage_from: tuple[str, ...] = ()  # earlier stages whose chosen rates this method's own sweep builds on
    table: str = "main"  # "main" (Table 2), "ablation" (Table 3), "stage", "investigation", "capacity"
    budget: float = 1  # multiple of the shared budget (the capacity check: 4; SFT → RL's first stage alone: 0.5)
    max_seeds: int | None = None  # run only the first this many of the study's seeds


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("sft", "SFT", "sft"),
        # Capacity check, not a comparison row: SFT with 4x the budget, to show the model can learn the procedure.
        Method("sft_long", "SFT, 4x budget (capacity check)", "sft", lr_from=("sft",), table="capacity", budget=4,
               max_seeds=1),
        Method("grpo", "RL (GRPO)", "rl", "grpo"),
        # The simplest use of both sources: GRPO on the rollouts plus an unweighted SFT term (the `grpo_sft` preset).
        Method("grpo_sft", "GRPO + SFT", "rl", "grpo_sft"),
        # SFT → RL's first stage on its own (half the steps, the first half of the problems): swept to pick its rate.
        Method("sft_half", "SFT, first half (SFT → RL stage 1)", "sft", table="stage", budget=0.5),
        Method("sft_grpo", "SFT → RL (GRPO)", "sft_rl", "grpo", stage_from=("sft_half",)),
        Method("luffy", "LUFFY", "rl", "luffy"),
        Method("srft", "SRFT (paper)", "rl", "srft"),
        Method("srft_hpt", "SRFT (public code)", "rl", "srft_hpt"),
        # SRFT with Eq. 12 replaced by TRL's group-baselined GRPO loss on the rollouts (issue 13's lead).
        Method("srft_grpo_rollouts", "SRFT, GRPO loss on rollouts", "rl", "srft", {"rollout_loss": "grpo"}),
        # Imitation-only control: SRFT's SFT and demo-RL terms, no loss on the rollouts (they still set the group
        # baseline of the demonstration's advantage). SRFT minus this row is what the rollouts add.
        Method("srft_imitation", "SRFT without the rollout term (imitation control)", "rl", "srft",
               {"rollout_loss": "off"}),
        Method("srft_no_wsft", "SRFT w/o w_SFT", "rl", "srft_no_wsft", table="ablation"),
        Method("srft_no_wrl", "SRFT w/o w_RL", "rl", "srft_no_wrl", table="ablation"),
        # Investigations of the v2 study (rates reused, no sweep of their own): not in the default study.
        Method("srft_sft_rate", "SRFT at SFT's rate", "rl", "srft", lr_from=("sft",), table="investigation"),
        Method("srft_no_sft", "SRFT without the SFT term", "rl", "srft", {"sft_weighting": "off"}, lr_from=("srft",),
               table="investigation"),
        Method("luffy_srft_rate", "LUFFY at SRFT's rate", "rl", "luffy", lr_from=("srft",), table="investigation"),
        # What moves the parameters: per-term gradient norms and cosines over training (one extra backward per term).
        Method("srft_param_grads", "SRFT, per-term parameter gradients logged", "rl", "srft",
               {"log_term_param_grad_norms": True}, lr_from=("srft",), table="investigation", max_seeds=1),
    ]
}

MAIN_ROWS = ["sft", "grpo", "grpo_sft", "sft_grpo", "luffy", "srft", "srft_hpt", "srft_grpo_rollouts",
             "srft_imitation"]
ABLATION_ROWS = ["srft", "srft_no_wsft", "srft_no_wrl"]
SWEPT = [name for name, m in METHODS.items() if not m.lr_from]


def sweep_dependencies(method: str) -> list[str]:
    """Every swept method whose chosen rate `method` needs (itself included when it is swept), stages first."""
    m = METHODS[method]
    if m.lr_from:
        return [d for source in m.lr_from for d in sweep_dependencies(source)]
    return [d for stage in m.stage_from for d in sweep_dependencies(stage)] + [method]
