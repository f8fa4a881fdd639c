"""`SRFTConfig`: the SRFT settings on top of TRL's `GRPOConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from trl import GRPOConfig

# No clip on the on-policy surrogate: LUFFY's `loss_remove_clip=True` (TRL's clip bounds become -inf and +inf).
NO_CLIP = float("inf")

# Every setting a `method` preset decides. A field left at `None` takes its preset's value (or, for a GRPO field the
# preset does not name, `GRPOConfig`'s default); a field the user sets explicitly wins over the preset.
_SRFT = dict(
    num_demos=1,
    sft_weighting="entropy",
    sft_coef=0.5,
    rl_weighting="entropy",
    rl_coef=0.1,
    demo_rl="prob",
    rollout_loss="srft",
    demo_in_baseline=True,
    term_normalization="per_term",
)
METHOD_PRESETS: dict[str, dict] = {
    # The paper (Eq. 13): entropy-weighted SFT + off-policy RL on demos + Eq. 12 on rollouts, each term an
    # expectation over its own samples; Eq. 7's group std; TRL's defaults for everything the paper does not state.
    "srft": _SRFT,
    # Table 3 ablations: the weight replaced by the constant 1.0.
    "srft_no_wsft": {**_SRFT, "sft_weighting": "constant", "sft_coef": 1.0},
    "srft_no_wrl": {**_SRFT, "rl_weighting": "constant", "rl_coef": 1.0},
    # The public verl re-implementation of SRFT (HPT, TsinghuaC3I/Unify-Post-Training, exp_scripts/train_srft.sh):
    # field-by-field sources in docs/presets.md.
    "srft_hpt": dict(
        num_demos=1,
        sft_weighting="entropy",
        sft_coef=0.5,
        rl_weighting="entropy",
        rl_coef=0.1,
        demo_rl="shaped",
        rollout_loss="srft",
        demo_in_baseline=True,
        term_normalization="verl",
        scale_rewards="none",
        loss_type="dr_grpo",
        entropy_coef=0.001,
    ),
    # LUFFY (Yan et al., 2025, ElliottYan/LUFFY exp_scripts/train.sh): demo in the group, shaped off-policy ratio, no
    # SFT term, unclipped GRPO surrogate on rollouts, no std, token sums over a constant length, entropy bonus 0.001.
    "luffy": dict(
        num_demos=1,
        sft_weighting="off",
        sft_coef=0.5,
        rl_weighting="constant",
        rl_coef=1.0,
        demo_rl="shaped",
        rollout_loss="grpo",
        demo_in_baseline=True,
        term_normalization="verl",
        scale_rewards="none",
        loss_type="dr_grpo",
        epsilon=NO_CLIP,
        entropy_coef=0.001,
    ),
    # GRPO on the rollouts plus a plain (unweighted) SFT term on the demos; demos stay out of the baseline.
    "grpo_sft": dict(
        num_demos=1,
        sft_weighting="constant",
        sft_coef=1.0,
        rl_weighting="constant",
        rl_coef=1.0,
        demo_rl="off",
        rollout_loss="grpo",
        demo_in_baseline=False,
        term_normalization="per_term",
    ),
    # Plain GRPO: no demonstrations, exactly `GRPOTrainer`.
    "grpo": dict(
        num_demos=0,
        sft_weighting="off",
        sft_coef=0.5,
        rl_weighting="constant",
        rl_coef=1.0,
        demo_rl="off",
        rollout_loss="grpo",
        demo_in_baseline=True,
        term_normalization="shared",
    ),
}

# GRPO fields a preset may set; `SRFTConfig` re-declares them with default `None` so an explicit value is detectable.
_PRESET_GRPO_FIELDS = ("scale_rewards", "loss_type", "epsilon", "entropy_coef")
_GRPO_DEFAULTS = {f.name: f.default for f in fields(GRPOConfig) if f.name in _PRESET_GRPO_FIELDS}

_CHOICES = {
    "sft_weighting": ("entropy", "constant", "off"),
    "rl_weighting": ("entropy", "constant"),
    "entropy_granularity": ("token", "sequence", "batch"),
    "demo_rl": ("prob", "shaped", "off"),
    "rollout_loss": ("srft", "grpo", "off"),
    "demo_overlength": ("drop", "truncate"),
    "term_normalization": ("per_term", "shared", "sft_token_mean", "verl"),
}


@dataclass
class SRFTConfig(GRPOConfig):
    r"""
    Configuration class for the [`SRFTTrainer`].

    SRFT (Supervised Reinforcement Fine-Tuning, [arXiv 2506.19767](https://huggingface.co/papers/2506.19767)) trains
    in a single stage from expert demonstrations and the policy's own rollouts. This class adds the SRFT settings to
    [`~trl.GRPOConfig`]; every GRPO setting keeps its meaning. In particular `num_generations` is still the group
    size: a group holds `num_generations - num_demos` on-policy rollouts plus `num_demos` demonstrations.

    Fields documented as "defaults to the `method` preset" take their value from the preset named by `method` unless
    set explicitly; an explicit value always wins.

    Parameters:
        > Parameters that select a method

        method (`str`, *optional*, defaults to `"srft"`):
            Preset that sets the method in one word. `"srft"`: the paper (Eq. 13), each term an expectation over its
            own samples. `"srft_no_wsft"` and `"srft_no_wrl"`: the Table 3 ablations, with `w_SFT` or `w_RL` replaced
            by the constant 1.0. `"srft_hpt"`: the public verl re-implementation of SRFT (HPT's
            `exp_scripts/train_srft.sh`): shaped demo ratio, no std in Eq. 7, each term normalised per micro-batch as
            the verl code does (`term_normalization="verl"`), entropy bonus 0.001 (field-by-field sources in
            `docs/presets.md`).
            `"luffy"`: LUFFY on its own: demonstration in the group with the shaped off-policy ratio
            `p / (p + shaping_gamma)`, no SFT term, the unclipped GRPO surrogate on rollouts, no std, the policy loss
            a token sum over the micro-batch divided by the response length (`term_normalization="verl"`), entropy
            bonus 0.001. `"grpo_sft"`: GRPO on rollouts plus an unweighted SFT term on
            demonstrations (kept out of the group baseline). `"grpo"`: no demonstrations, exactly
            [`~trl.GRPOTrainer`]. Presets may also set the GRPO fields `scale_rewards`, `loss_type`, `epsilon` and
            `entropy_coef`; a preset that does not name one leaves `GRPOConfig`'s default.

        > Parameters that control the demonstrations

        num_demos (`int`, *optional*, defaults to the `method` preset, 1 for `"srft"`):
            Demonstrations per group (`|G_demo|` in Eq. 6). Only `num_generations - num_demos` completions per prompt
            are generated. `0` gives exactly [`~trl.GRPOTrainer`]'s behaviour, whatever the other SRFT fields say.
        demo_column (`str`, *optional*, defaults to `"demo"`):
            Dataset column holding the demonstration: a string, or (for conversational prompts) a list with one
            assistant message, as TRL accepts completions. The demonstration is tokenised without special tokens and
            the tokenizer's EOS token is appended unless it already ends with an EOS token.
        demo_overlength (`str`, *optional*, defaults to `"drop"`):
            What happens to a demonstration longer than `max_completion_length` tokens (EOS included). `"drop"`: its
            slot stays in the group but carries no loss and no reward (excluded from the group mean and std, like an
            unscorable completion), counted in the `srft/demos_dropped` metric. `"truncate"`: keep its first
            `max_completion_length` tokens (no EOS) for the loss; its reward is still computed on the full text. With
            `mask_truncated_completions=True`, a truncated demonstration is masked like any truncated completion.
            Rows whose demonstration is missing or empty are always dropped this way. Filter long demonstrations up
            front with `srft_trl.data.filter_by_demo_length` to avoid both.
        demo_in_baseline (`bool`, *optional*, defaults to the `method` preset, `True` for `"srft"`):
            Whether demonstrations count in their group's reward mean and standard deviation (Eq. 7). When `False`
            the demonstration's advantage is 0, so it requires `demo_rl="off"`.

        > Parameters that control the SFT term on demonstrations (Eq. 8)

        sft_weighting (`str`, *optional*, defaults to the `method` preset, `"entropy"` for `"srft"`):
            `"entropy"`: `w_SFT = sft_coef * stop_grad(exp(-H))` (Eq. 8), so the SFT pull weakens when the policy is
            uncertain. `"constant"`: `w_SFT = sft_coef`. `"off"`: no SFT term.
        sft_coef (`float`, *optional*, defaults to the `method` preset, 0.5 for `"srft"`):
            Coefficient of `w_SFT` (the paper's 0.5).

        > Parameters that control the RL terms

        demo_rl (`str`, *optional*, defaults to the `method` preset, `"prob"` for `"srft"`):
            Off-policy RL term on demonstrations (Eq. 9-10) with behaviour policy `pi_beta = 1` and no clipping.
            `"prob"`: per-token loss `-A_demo * pi_theta(y_t)` (the paper). `"shaped"`: LUFFY's policy shaping
            `-A_demo * p / (p + shaping_gamma)` with `p = pi_theta(y_t)`. `"off"`: no RL term on demonstrations.
        shaping_gamma (`float`, *optional*, defaults to `0.1`):
            `gamma` of the shaped ratio (LUFFY's 0.1). Only used with `demo_rl="shaped"`.
        rollout_loss (`str`, *optional*, defaults to the `method` preset, `"srft"` for `"srft"`):
            Loss on the on-policy rollouts. `"srft"`: Eq. 12 literally, `w_RL * NLL(y+) + log pi(y-)`: correct
            rollouts (total reward >= `correct_reward_threshold`) have their likelihood raised with weight `w_RL`,
            incorrect ones have theirs pushed down with weight 1. `"grpo"`: the GRPO loss configured by `loss_type`
            and the other GRPO fields, with rows of positive advantage scaled by `w_RL`. `"off"`: no loss on the
            rollouts (they are still generated and scored, so they set the demonstration's group baseline): an
            imitation-only control with the demonstration terms alone.
        rl_weighting (`str`, *optional*, defaults to the `method` preset, `"entropy"` for `"srft"`):
            `"entropy"`: `w_RL = rl_coef * stop_grad(exp(H))` (Eq. 12), so the positive-sample pull weakens as the
            policy becomes certain, which keeps entropy from collapsing. `"constant"`: `w_RL = rl_coef`.
        rl_coef (`float`, *optional*, defaults to the `method` preset, 0.1 for `"srft"`):
            Coefficient of `w_RL` (the paper's 0.1).
        correct_reward_threshold (`float`, *optional*, defaults to `1.0`):
            A rollout is correct (`y+` in Eq. 12) when its total (weighted) reward is at least this value. With the
            paper's binary `{0, 1}` accuracy reward, 1.0 means "verified correct".

        > Parameters that control how the terms are normalised

        term_normalization (`str`, *optional*, defaults to the `method` preset, `"per_term"` for `"srft"`):
            What each term of Eq. 13 is divided by. `"per_term"`: each term is an expectation over its own samples, as
            Eq. 13 writes it (a sum of three expectations): Eq. 8 and Eq. 9-10 over the demonstrations, Eq. 12 over the
            scorable rollouts. `"shared"`: every term is reduced with `GRPOTrainer`'s normaliser for `loss_type` over
            *all* rows of the batch, so with `num_generations=8, num_demos=1` the two demonstration terms weigh about
            1/8 of what the paper writes relative to the rollout term (the behaviour before srft-trl 0.2).
            `"sft_token_mean"`: the SFT term is a mean over demonstration tokens while the two RL terms share the
            parent's normaliser over the augmented group (the public verl code: one policy-gradient loss over
            rollouts and demonstrations, plus a separate SFT mean). Arithmetic of `"per_term"`, with `N_term` the
            term's loss tokens and `R_term` its rows (with at least one loss token) in the whole generation batch of
            all `P` processes, `GA` = `gradient_accumulation_steps` and `S` = `steps_per_generation`: each micro-batch
            adds `sum(row contributions of the term's rows) / (C_term * GA / (S * P))`, where a row contributes its
            token mean and `C_term = R_term` for `loss_type` `grpo`/`sapo`, its token sum and `C_term = R_term` for
            `luspo`, its token sum and `C_term = R_term * max_completion_length` for `dr_grpo`, and its token sum and
            `C_term = N_term` for `bnpo`/`dapo`/`cispo`/`vespo` (the scaling TRL applies to `num_items_in_batch` for
            `dapo`). The counts are fixed per generation batch, so a micro-batch's share of a term does not depend on
            how TRL shuffled and split the batch (a micro-batch without a demonstration adds 0 to the demonstration
            terms), and summing an optimiser step's micro-batches on all processes gives the term's mean over its
            samples. With `rollout_loss="grpo"` the parent's GRPO loss is brought to the rollouts' own normaliser by
            scaling the rollout advantages (the surrogate is linear in the advantage), leaving KL and the entropy
            bonus as the parent computes them. `"verl"`: each micro-batch normalised on its own as the public verl code
            of HPT and LUFFY does (`mix_core_alg.py`, `loss_remove_token_mean=True`): the policy loss (Eq. 12 or the
            GRPO surrogate on rollouts, plus the demonstration RL term) is a token sum over the micro-batch's rows
            divided by `max_completion_length` only, the SFT term a mean over the micro-batch's demonstration tokens,
            the entropy bonus a token mean over the micro-batch (TRL's), each divided by
            `gradient_accumulation_steps`. Needs `loss_type="dr_grpo"`. Unlike the other modes the update then
            depends on the rows per micro-batch (`per_device_train_batch_size`): the policy terms weigh that many times
            more against the SFT term, as in the source (see `docs/presets.md`).

        > Parameters that control the entropy-aware weights

        entropy_granularity (`str`, *optional*, defaults to `"sequence"`):
            What the entropy `H` in `w_SFT` and `w_RL` is averaged over: `"token"` (each token's own entropy weights
            that token), `"sequence"` (the mean token entropy of the row weights the whole row), or `"batch"` (the
            mean over all weighted tokens of the global micro-batch: demonstration tokens for `w_SFT`, rollout tokens
            for `w_RL`). The paper writes `H(pi_theta)` without saying; `"sequence"` is the default because it is what
            the public re-implementation (HPT) does, because it leaves the relative weights of the tokens within a
            sequence as the SFT / policy-gradient estimators define them (a per-token weight would re-weight tokens by
            their own uncertainty, a different estimator), and because `exp(H)` of a single token is far noisier than
            of a sequence mean. `"token"` is the reading some notes attribute to the authors' code. All three are
            available for comparison.
        log_term_param_grad_norms (`bool`, *optional*, defaults to `False`):
            Also log `srft/param_grad_<term>`, the norm of each SRFT term's gradient with respect to the trainable
            parameters (per process). A diagnostic: it costs one extra backward pass per term per micro-batch. The
            always-on `srft/grad_<term>` is measured with respect to the per-token log-probabilities, which is free
            but understates a term whose per-token gradients all point the same way (SFT raises every demonstration
            token) against terms whose signs mix and partly cancel in parameter space (the RL terms): on the testbed
            the SFT term is the smallest of the three in log-probability space (0.020 against 0.058 and 0.026 over the first 10 steps, v3 default regime) and
            the largest in parameter space (1.14 against 0.79 and 1.04). Also logs `srft/param_grad_total` (the norm
            of the terms' summed gradient), `srft/param_cos_<a>_vs_<b>` (the cosine between two terms' gradients) and
            `srft/param_cos_<term>_vs_total` (a term's cosine with the whole gradient): which terms pull together,
            which against each other, and which one the update follows. The parent's loss counts as the `rollout`
            term under `rollout_loss="grpo"`, and as `parent` when it carries a KL or entropy bonus. With Eq. 12
            (`rollout_loss="srft"`) its two halves are logged too, `rollout_success` (the `w_RL`-weighted likelihood
            on correct rollouts) and `rollout_failure` (the unlikelihood on incorrect ones): their norms and cosines
            with each term and with the total (`srft/param_cos_rollout_failure_vs_total`, ...); two more backward
            passes. Not available with FSDP or DeepSpeed (sharded parameters).
        max_entropy_weight (`float` or `None`, *optional*, defaults to `None`):
            Optional upper clamp on `w_SFT` and `w_RL`. `exp(H)` can reach the vocabulary size (`H <= log V`) at
            initialisation, so the trainer warns once when `w_RL` exceeds 1.0 (the weight of the negative term).
    """

    method: str = field(
        default="srft",
        metadata={"help": "Preset for the SRFT fields.", "choices": list(METHOD_PRESETS)},
    )
    num_demos: int | None = field(
        default=None,
        metadata={"help": "Demonstrations per group; the rest of `num_generations` is generated. Preset: 1."},
    )
    demo_column: str = field(default="demo", metadata={"help": "Dataset column holding the demonstration."})
    demo_overlength: str = field(
        default="drop",
        metadata={"help": "Policy for demos longer than max_completion_length.", "choices": ["drop", "truncate"]},
    )
    demo_in_baseline: bool | None = field(
        default=None,
        metadata={"help": "Whether demos count in the group reward mean/std (Eq. 7). Preset: True."},
    )
    sft_weighting: str | None = field(
        default=None,
        metadata={"help": "SFT weight (Eq. 8): entropy, constant or off. Preset: entropy."},
    )
    sft_coef: float | None = field(default=None, metadata={"help": "Coefficient of w_SFT. Preset: 0.5."})
    demo_rl: str | None = field(
        default=None,
        metadata={"help": "Off-policy RL on demos (Eq. 9-10): prob, shaped or off. Preset: prob."},
    )
    shaping_gamma: float = field(default=0.1, metadata={"help": "gamma of the shaped ratio p/(p+gamma)."})
    rollout_loss: str | None = field(
        default=None,
        metadata={"help": "Loss on rollouts: srft (Eq. 12), grpo (TRL's GRPO loss) or off. Preset: srft."},
    )
    rl_weighting: str | None = field(
        default=None,
        metadata={"help": "RL weight on positive rollouts (Eq. 12): entropy or constant. Preset: entropy."},
    )
    rl_coef: float | None = field(default=None, metadata={"help": "Coefficient of w_RL. Preset: 0.1."})
    correct_reward_threshold: float = field(
        default=1.0, metadata={"help": "Total reward at or above which a rollout counts as correct (y+)."}
    )
    entropy_granularity: str = field(
        default="sequence",
        metadata={"help": "Entropy averaged over token, sequence or batch.", "choices": ["token", "sequence", "batch"]},
    )
    max_entropy_weight: float | None = field(
        default=None, metadata={"help": "Optional clamp on the entropy-aware weights."}
    )
    log_term_param_grad_norms: bool = field(
        default=False,
        metadata={"help": "Log each term's parameter-space gradient norm (one extra backward per term; diagnostic)."},
    )
    term_normalization: str | None = field(
        default=None,
        metadata={
            "help": "What each term of Eq. 13 is divided by: per_term (each over its own samples), shared (GRPO's "
            "normaliser over all rows), sft_token_mean (SFT over demo tokens, RL terms shared) or verl (per "
            "micro-batch as HPT/LUFFY: policy token sum / L, SFT demo-token mean). Preset: per_term.",
        },
    )
    # GRPO fields a preset may set: re-declared with `None` so an explicit value wins (see `method`).
    scale_rewards: str | None = field(
        default=None,
        metadata={
            "help": "GRPOConfig.scale_rewards: group, batch or none. Defaults to the method preset, else 'group'.",
        },
    )
    loss_type: str | None = field(
        default=None,
        metadata={"help": "GRPOConfig.loss_type. Defaults to the method preset, else GRPOConfig's default ('dapo')."},
    )
    epsilon: float | None = field(
        default=None,
        metadata={"help": "GRPOConfig.epsilon (clip range). Defaults to the method preset (luffy: inf = no clip), else 0.2."},
    )
    entropy_coef: float | None = field(
        default=None,
        metadata={"help": "GRPOConfig.entropy_coef (entropy bonus). Defaults to the method preset, else 0.0."},
    )

    def __post_init__(self):
        if self.method not in METHOD_PRESETS:
            raise ValueError(f"SRFTConfig.method={self.method!r} is not one of {sorted(METHOD_PRESETS)}.")
        for name, value in {**_GRPO_DEFAULTS, **METHOD_PRESETS[self.method]}.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"SRFTConfig.{name}={getattr(self, name)!r} must be one of {list(allowed)}.")
        super().__post_init__()
        if not 0 <= self.num_demos < self.num_generations:
            raise ValueError(
                f"SRFTConfig.num_demos={self.num_demos} must be >= 0 and smaller than num_generations="
                f"{self.num_generations}: a group needs at least one on-policy rollout."
            )
        for name in ("sft_coef", "rl_coef", "shaping_gamma"):
            if getattr(self, name) < 0:
                raise ValueError(f"SRFTConfig.{name}={getattr(self, name)} must be >= 0.")
        if self.max_entropy_weight is not None and self.max_entropy_weight <= 0:
            raise ValueError(f"SRFTConfig.max_entropy_weight={self.max_entropy_weight} must be positive or None.")
        if self.log_term_param_grad_norms and (self.fsdp or self.deepspeed):
            raise ValueError(
                "SRFTConfig.log_term_param_grad_norms needs whole parameters on each process; it is not available "
                "with FSDP or DeepSpeed. Turn it off (srft/grad_<term> is still logged)."
            )
        if self.term_normalization == "verl" and self.loss_type != "dr_grpo":
            raise ValueError(
                f"SRFTConfig.term_normalization='verl' sums the policy loss over tokens and divides by the response "
                f"length, as loss_type='dr_grpo' does; got loss_type={self.loss_type!r}. Use loss_type='dr_grpo' or "
                "another term_normalization."
            )
        if not self.demo_in_baseline and self.demo_rl != "off":
            raise ValueError(
                f"SRFTConfig.demo_in_baseline=False gives demonstrations an advantage of 0, so demo_rl="
                f"{self.demo_rl!r} would do nothing; set demo_rl='off' or demo_in_baseline=True."
            )

    @property
    def uses_demos(self) -> bool:
        """Whether the SRFT machinery is active (with `num_demos=0` the trainer is exactly GRPO)."""
        return self.num_demos > 0
