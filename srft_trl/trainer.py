"""`SRFTTrainer`: TRL's `GRPOTrainer` with demonstrations in each group and the SRFT loss (Eq. 13).

The subclass is glue over five narrow overrides, each calling the parent:

* `_generate_and_score_completions`: decide which rows of the batch are demonstration slots, call
  the parent, and attach per-row flags (`srft_row_kind`, `srft_correct`) as tensors so they survive
  TRL's shuffling and splitting into micro-batches, plus each term's sample counts (0-dim tensors,
  which every micro-batch receives whole).
* `_generate`: ask the generation backend (transformers, vLLM colocate or server) for the on-policy
  rows only, then splice the tokenised demonstrations into their slots.
* `_calculate_rewards`: demonstrations are scored by the same reward functions as rollouts (so the
  group advantage of Eq. 7 covers the augmented group); dropped slots are made unscorable.
* `_get_per_token_logps_and_entropies`: hands the log-probs and entropies of the parent's single
  training forward pass to the SRFT terms (no second forward pass, no extra vocabulary-sized tensor).
* `_compute_loss`: the parent computes its GRPO loss on the rollouts (with `w_RL` folded into the
  advantages, or zero advantages when Eq. 12 replaces it); the SRFT terms are added, each reduced over
  its own samples (`term_normalization="per_term"`, counts fixed per generation batch and attached by
  `_generate_and_score_completions`), with the parent's normaliser for `loss_type` (`"shared"`), or per
  micro-batch as the public verl code does (`"verl"`: policy token sum / L, SFT demonstration-token mean).
"""

from __future__ import annotations

import textwrap

import torch
from accelerate.logging import get_logger
from datasets import IterableDataset
from trl import GRPOTrainer
from trl.data_utils import is_conversational
from trl.trainer.utils import get_config_model_id

from .checkpoints import last_complete_checkpoint
from .config import SRFTConfig
from .demos import DemoSlot, demo_slot_mask, tokenize_demo, validate_rows
from .losses import (
    aggregate,
    aggregate_micro_batch,
    aggregate_own,
    demo_rl_loss,
    entropy_weight,
    gradient_geometry,
    logp_gradient_sq_norm,
    masked_mean,
    micro_batch_normalizer,
    own_normalizer,
    parameter_gradients,
    parent_normalizer,
    scale_positive_advantages,
    self_rollout_loss,
    sft_loss,
)
from . import vllm_cpu
from .models import NO_HUB_KERNELS
from .upstream_noise import TiedWeightsResumeMixin

logger = get_logger(__name__)

# `srft_row_kind` values. An UNSCORED row is a rollout no reward function could score (all returned None): TRL gives it
# advantage 0 and leaves it out of the group statistics; under Eq. 12 it carries no loss either.
ROLLOUT, DEMO, DROPPED, UNSCORED = 0, 1, 2, 3
# Per-generation-batch sample counts (0-dim tensors, so TRL's shuffling and splitting hand them to every micro-batch).
_COUNT_KEYS = ("srft_demo_rows", "srft_demo_tokens", "srft_rollout_rows", "srft_rollout_tokens")


class SRFTTrainer(TiedWeightsResumeMixin, GRPOTrainer):
    """Trainer for SRFT (Supervised Reinforcement Fine-Tuning), a drop-in replacement for `GRPOTrainer`.

    Use it as `GRPOTrainer`, with an [`SRFTConfig`] and a training dataset that has a demonstration
    column (`SRFTConfig.demo_column`, `"demo"` by default) beside `"prompt"`. Each group of
    `num_generations` completions then holds `num_generations - num_demos` on-policy rollouts and
    `num_demos` demonstrations of the same prompt, and the loss is Eq. 13 of the paper:

        L = w_SFT * NLL(demo)                         (Eq. 8)
          + sum_t -A_demo * pi_theta(y_t | demo)      (Eq. 9-10, pi_beta = 1, no clipping)
          + w_RL * NLL(y+) + log pi_theta(y-)         (Eq. 12, on rollouts)

    with `w_SFT = 0.5 * stop_grad(exp(-H))` and `w_RL = 0.1 * stop_grad(exp(H))`, each of the three an
    expectation over its own samples (demonstrations, demonstrations, scorable rollouts). See [`SRFTConfig`]
    for every setting and the presets (`method="srft" | "srft_hpt" | "luffy" | "grpo" | ...`).

    Tools, environments and `rollout_func` are not supported together with demonstrations, nor are
    vision-language models.

    Example:

    ```python
    from srft_trl import SRFTConfig, SRFTTrainer
    from srft_trl.rewards import math_accuracy_reward

    trainer = SRFTTrainer(
        model="Qwen/Qwen2.5-Math-1.5B",
        reward_funcs=math_accuracy_reward,
        args=SRFTConfig(output_dir="srft-run", num_generations=8, num_demos=1),
        train_dataset=dataset,  # columns: prompt, demo, solution
    )
    trainer.train()
    ```
    """

    _tag_names = ["trl", "srft"]
    _name = "SRFT"
    _paper = {
        "title": "SRFT: A Single-Stage Method with Supervised and Reinforcement Fine-Tuning for Reasoning",
        "id": "2506.19767",
        # docstyle-ignore
        "citation": textwrap.dedent("""\
            @article{fu2025srft,
                title        = {{SRFT: A Single-Stage Method with Supervised and Reinforcement Fine-Tuning for Reasoning}},
                author       = {Yuqian Fu and Tinghong Chen and Jiajun Chai and Xihuai Wang and Songjun Tu and Guojun Yin and Wei Lin and Qichao Zhang and Yuanheng Zhu and Dongbin Zhao},
                year         = 2025,
                eprint       = {arXiv:2506.19767},
            }"""),
    }

    # Per-batch state, also as class defaults: a trainer built without `__init__` (TRL's own tests of the
    # rollout-function dispatch do so) behaves as `GRPOTrainer` instead of failing on a missing attribute.
    _srft_slots = None
    _srft_correct = None
    _srft_scorable = None
    _srft_on_forward = None
    _srft_warned_weight = False

    def __init__(
        self,
        model,
        reward_funcs=None,
        args: SRFTConfig | None = None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        reward_processing_classes=None,
        callbacks=None,
        optimizers=(None, None),
        quantization_config=None,
        peft_config=None,
        tools=None,
        rollout_func=None,
        environment_factory=None,
    ):
        if args is None:  # the `srft` preset: a dataset without demonstrations is named before the config is built
            if train_dataset is not None and not isinstance(train_dataset, IterableDataset):
                validate_rows(train_dataset, demo_column=SRFTConfig.demo_column, max_rows=0)
            model_name = model if isinstance(model, str) else get_config_model_id(model.config)
            args = SRFTConfig(f"{model_name.split('/')[-1]}-SRFT")
        elif not isinstance(args, SRFTConfig):
            raise TypeError(
                f"SRFTTrainer needs an SRFTConfig, got {type(args).__name__}: build it with the same arguments, "
                "SRFTConfig(output_dir=..., ...) (it subclasses GRPOConfig, every GRPO argument keeps its meaning); "
                "SRFTConfig(method=\"grpo\") trains exactly as GRPOTrainer does, without demonstrations."
            )
        if args.uses_demos:
            self._check_supported(tools, rollout_func, environment_factory, args)
            self._check_dataset(train_dataset, args)
        if isinstance(model, str) and isinstance(args.model_init_kwargs, (dict, type(None))):
            args.model_init_kwargs = {**NO_HUB_KERNELS, **(args.model_init_kwargs or {})}  # unless asked for
        with vllm_cpu.engine_dtype(args, lambda: self.model.dtype):  # the loaded model's, when vLLM is built
            super().__init__(
                model,
                reward_funcs,
                args=args,
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                processing_class=processing_class,
                reward_processing_classes=reward_processing_classes,
                callbacks=callbacks,
                optimizers=optimizers,
                quantization_config=quantization_config,
                peft_config=peft_config,
                tools=tools,
                rollout_func=rollout_func,
                environment_factory=environment_factory,
            )
        vllm_cpu.install_cpu_weight_sync(self)  # a no-op unless vLLM generates colocated on a CPU
        if args.uses_demos and self._is_vlm:
            raise ValueError("SRFTTrainer supports text-only models; demonstrations for vision-language models are not supported.")
        self._srft_slots: list[DemoSlot | None] | None = None  # demo slots of the generation batch in flight
        self._srft_correct: torch.Tensor | None = None  # local correctness flags set while scoring
        self._srft_scorable: torch.Tensor | None = None  # local flags: some reward function scored the row
        self._srft_on_forward = None  # callback receiving the training forward's log-probs and entropies
        self._srft_warned_weight = False

    # ------------------------------------------------------------------ checkpoints read back whole

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        """`Trainer.train`, except that every checkpoint is marked complete once written
        (`CompleteCheckpointCallback`) and `resume_from_checkpoint=True` picks the newest *complete* one."""
        from .callbacks import CompleteCheckpointCallback, ensure_callback

        ensure_callback(self, CompleteCheckpointCallback)
        if resume_from_checkpoint is True:
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"No complete checkpoint found in output_dir {self.args.output_dir!r} to resume from.")
        return super().train(resume_from_checkpoint, *args, **kwargs)

    # ------------------------------------------------------------------ checks before anything expensive

    @staticmethod
    def _check_supported(tools, rollout_func, environment_factory, args: SRFTConfig) -> None:
        unsupported = {"tools": tools, "rollout_func": rollout_func, "environment_factory": environment_factory}
        given = [name for name, value in unsupported.items() if value]
        if given:
            raise ValueError(
                f"SRFTTrainer does not support {', '.join(given)} together with demonstrations (num_demos="
                f"{args.num_demos}): a demonstration is a fixed completion, not a multi-turn rollout. Use "
                "GRPOTrainer, or set num_demos=0."
            )
        if args.remove_unused_columns:
            raise ValueError(
                "SRFTConfig.remove_unused_columns=True would drop the demonstration column "
                f"{args.demo_column!r} before it reaches the trainer; set it to False."
            )
        rows_per_process = args.per_device_train_batch_size * args.steps_per_generation
        if rows_per_process * args.num_demos % args.num_generations:
            raise ValueError(
                f"per_device_train_batch_size * steps_per_generation ({rows_per_process}) times num_demos "
                f"({args.num_demos}) must be divisible by num_generations ({args.num_generations}), so that every "
                "process holds the same number of on-policy rows (the generation backends and TRL's collectives "
                "need equal shares). Make the per-process generation batch a multiple of num_generations."
            )

    @staticmethod
    def _check_dataset(train_dataset, args: SRFTConfig) -> None:
        if train_dataset is None:
            raise ValueError("SRFTTrainer needs a train_dataset with 'prompt' and demonstration columns.")
        if isinstance(train_dataset, IterableDataset):
            return  # rows are checked one by one as they are spliced in (see `_make_slot`)
        missing = validate_rows(train_dataset, demo_column=args.demo_column)
        if missing:
            logger.warning(
                f"{missing} of {len(train_dataset)} training rows have no demonstration in column "
                f"{args.demo_column!r}; their demonstration slots are dropped (no loss, excluded from the group "
                "baseline) and counted in the `srft/demos_dropped` metric."
            )

    # ------------------------------------------------------------------ generation: demos into their slots

    def _make_slot(self, example: dict) -> DemoSlot:
        return tokenize_demo(
            example.get(self.args.demo_column),
            self._tokenizer,
            eos_token_ids=self.eos_token_ids,
            max_length=self.max_completion_length,
            overlength=self.args.demo_overlength,
        )

    def _generate_and_score_completions(self, inputs):
        if not self.args.uses_demos:
            return super()._generate_and_score_completions(inputs)
        if self.model.training:
            first_row = self.accelerator.process_index * len(inputs)
            is_slot = demo_slot_mask(len(inputs), first_row, self.num_generations, self.args.num_demos)
            self._srft_slots = [self._make_slot(x) if slot else None for x, slot in zip(inputs, is_slot)]
        else:  # evaluation generates every completion, as GRPO does
            self._srft_slots = [None] * len(inputs)
        try:
            output = super()._generate_and_score_completions(inputs)
            kinds = [ROLLOUT if s is None else DROPPED if s.dropped else DEMO for s in self._srft_slots]
        finally:
            self._srft_slots = None
        device = output["advantages"].device
        kinds = torch.tensor(kinds, device=device)
        kinds = torch.where((kinds == ROLLOUT) & ~self._srft_scorable, torch.full_like(kinds, UNSCORED), kinds)
        output["srft_row_kind"] = kinds
        output["srft_correct"] = self._srft_correct & (kinds == ROLLOUT)
        output.update(self._count_samples(output, kinds))
        return output

    def _count_samples(self, output, kinds) -> dict[str, torch.Tensor]:
        """Rows (with at least one loss token) and loss tokens of each term in the generation batch, all processes:
        the denominators of `term_normalization="per_term"` (see `srft_trl.losses.own_normalizer`)."""
        mask = output["completion_mask"] * output["tool_mask"] if "tool_mask" in output else output["completion_mask"]
        tokens = mask.float().sum(-1)
        local = torch.stack(
            [
                ((kinds == kind) & (tokens > 0)).sum().float() if what == "rows" else (tokens * (kinds == kind)).sum()
                for kind in (DEMO, ROLLOUT)
                for what in ("rows", "tokens")
            ]
        )
        total = self.accelerator.reduce(local, reduction="sum")
        return dict(zip(_COUNT_KEYS, total.unbind()))

    def _generate(self, prompts):
        slots = self._srft_slots
        if not slots or all(slot is None for slot in slots):
            return super()._generate(prompts)
        rollout_rows = [i for i, slot in enumerate(slots) if slot is None]
        demo_rows = [i for i, slot in enumerate(slots) if slot is not None]
        # The backend generates only the on-policy slots; vLLM server mode de-duplicates by this group size.
        group_size, self.num_generations = self.num_generations, self.num_generations - self.args.num_demos
        try:
            generated = super()._generate([prompts[i] for i in rollout_rows])
        finally:
            self.num_generations = group_size
        prompt_ids, completion_ids, tool_mask, completions, logprobs, extra_fields, images, tool_images = generated
        demo_prompt_ids = self._tokenize_prompts([prompts[i] for i in demo_rows])[0]
        conversational = is_conversational({"prompt": prompts[0]})

        size = len(prompts)
        merged_prompt_ids, merged_ids, merged_completions = [None] * size, [None] * size, [None] * size
        merged_logprobs = [None] * size if logprobs is not None else None
        for j, i in enumerate(rollout_rows):
            merged_prompt_ids[i], merged_ids[i], merged_completions[i] = prompt_ids[j], completion_ids[j], completions[j]
            if logprobs is not None:
                merged_logprobs[i] = logprobs[j]
        for j, i in enumerate(demo_rows):
            slot = slots[i]
            merged_prompt_ids[i], merged_ids[i] = list(demo_prompt_ids[j]), slot.ids
            merged_completions[i] = [{"role": "assistant", "content": slot.text}] if conversational else slot.text
            if logprobs is not None:  # no sampling log-probs: TRL reads None as NaN, i.e. no IS correction
                merged_logprobs[i] = [None] * len(slot.ids)
        merged_tool_mask = tool_mask
        if any(slot is not None and slot.dropped for slot in slots):
            # A dropped slot keeps its place (shapes and groups stay fixed) but none of its tokens is a loss token.
            merged_tool_mask = [
                [0] * len(ids) if slot is not None and slot.dropped else [1] * len(ids)
                for ids, slot in zip(merged_ids, slots)
            ]
        self._log_completion_extra("is_demo", [slot is not None for slot in slots])
        demo_lengths = [len(slots[i].ids) for i in demo_rows if not slots[i].dropped]
        if demo_lengths:
            self._metrics["train"]["srft/demo_length"].append(sum(demo_lengths) / len(demo_lengths))
        return (
            merged_prompt_ids,
            merged_ids,
            merged_tool_mask,
            merged_completions,
            merged_logprobs,
            extra_fields,
            images,
            tool_images,
        )

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if not self.args.uses_demos:
            return rewards_per_func
        device = rewards_per_func.device
        slots = self._srft_slots or [None] * len(prompts)
        local_kinds = torch.tensor(
            [ROLLOUT if s is None else DROPPED if s.dropped else DEMO for s in slots], device=device
        )
        kinds = self.accelerator.gather(local_kinds)
        total = (rewards_per_func * self.reward_weights.to(device).unsqueeze(0)).nansum(dim=1)
        # TRL's convention: a row every reward function returned None for is unscorable, neither right nor wrong.
        scorable = ~torch.isnan(rewards_per_func).all(dim=1)
        correct = (total >= self.args.correct_reward_threshold) & scorable
        start = self.accelerator.process_index * len(prompts)
        self._srft_correct = correct[start : start + len(prompts)]
        self._srft_scorable = scorable[start : start + len(prompts)]

        mode = "train" if self.model.training else "eval"
        scored_rollouts = (kinds == ROLLOUT) & scorable
        if scored_rollouts.any():
            self._metrics[mode]["srft/reward_rollout"].append(total[scored_rollouts].mean().item())
        if (kinds == DEMO).any():
            self._metrics[mode]["srft/reward_demo"].append(total[kinds == DEMO].mean().item())
        if mode == "train":
            self._metrics[mode]["srft/demos_dropped"].append((kinds == DROPPED).sum().item())

        excluded = kinds == DROPPED if self.args.demo_in_baseline else kinds != ROLLOUT
        if excluded.any():  # NaN rows are left out of the group mean/std and get a zero advantage
            rewards_per_func = rewards_per_func.masked_fill(excluded.unsqueeze(1), float("nan"))
        return rewards_per_func

    # ------------------------------------------------------------------ loss: the parent's forward, SRFT terms

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        logps, entropies, aux_loss = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        # The hook is armed only inside `_compute_loss`, whose first forward is the policy's (with or without grad:
        # evaluation computes the same loss under `torch.no_grad()`).
        if self._srft_on_forward is not None:
            callback, self._srft_on_forward = self._srft_on_forward, None
            callback(logps, entropies)
        return logps, entropies, aux_loss

    def _compute_loss(self, model, inputs):
        if not self.args.uses_demos:
            return super()._compute_loss(model, inputs)
        args = self.args
        mode = "train" if self.model.training else "eval"
        completion_mask = inputs["completion_mask"]
        mask = (completion_mask * inputs["tool_mask"] if "tool_mask" in inputs else completion_mask).float()
        kinds = inputs["srft_row_kind"]
        demo_mask = mask * (kinds == DEMO).unsqueeze(1)
        rollout_mask = mask * (kinds == ROLLOUT).unsqueeze(1)
        correct = inputs["srft_correct"] & (kinds == ROLLOUT)
        advantages = inputs["advantages"]
        reduce = self._term_reducers(inputs, mask, demo_mask)
        parent_inputs = dict(inputs)
        forward = {}

        def on_forward(logps, entropies):
            if entropies is None:
                raise RuntimeError("GRPOTrainer's training forward no longer returns entropies; SRFT needs them.")
            forward["logps"], forward["entropies"] = logps, entropies.detach()
            w_rl = self._entropy_weight(entropies, rollout_mask, "rl")
            forward["w_rl"] = w_rl
            # The parent's GRPO loss acts on rollouts only: demonstrations get their own RL term below.
            if args.rollout_loss == "grpo":
                row_weight = w_rl if args.entropy_granularity == "token" and args.rl_weighting == "entropy" else (
                    masked_mean(w_rl, rollout_mask, dim=-1)
                )
                # The surrogate is linear in the advantage: this also moves it to the rollouts' own normaliser.
                scaled = scale_positive_advantages(advantages, row_weight) * reduce["rollout_grpo_scale"]
                is_rollout = (kinds == ROLLOUT).view(-1, *([1] * (scaled.dim() - 1)))
                parent_inputs["advantages"] = torch.where(is_rollout, scaled, torch.zeros_like(scaled))
            else:  # Eq. 12 (or nothing: "off") replaces the GRPO policy term; KL, entropy bonus, aux losses still apply
                parent_inputs["advantages"] = torch.zeros_like(advantages)

        self._srft_on_forward = on_forward
        try:
            parent_loss = super()._compute_loss(model, parent_inputs)
        finally:
            self._srft_on_forward = None
        if "logps" not in forward:
            raise RuntimeError(
                "SRFTTrainer did not receive the training forward pass from GRPOTrainer._compute_loss: the installed "
                "TRL no longer calls _get_per_token_logps_and_entropies there. srft-trl is pinned to trl==1.16.*."
            )
        logps, entropies, w_rl = forward["logps"], forward["entropies"], forward["w_rl"]

        # Each term as a function of the log-probabilities, so its gradient size can be logged on one scale.
        term_fns = {}
        if args.rollout_loss == "srft":
            term_fns["rollout"] = lambda lp: reduce["rollout"](self_rollout_loss(lp, rollout_mask, correct, w_rl))
        w_sft = None
        if args.sft_weighting != "off":
            w_sft = self._entropy_weight(entropies, demo_mask, "sft")
            term_fns["sft"] = lambda lp: reduce["sft"](sft_loss(lp, demo_mask, w_sft))
        if args.demo_rl != "off":
            term_fns["demo_rl"] = lambda lp: reduce["demo_rl"](
                demo_rl_loss(lp, demo_mask, advantages, mode=args.demo_rl, shaping_gamma=args.shaping_gamma)
            )
        terms = {name: fn(logps) for name, fn in term_fns.items()}
        grad_sq = {name: logp_gradient_sq_norm(fn, logps) for name, fn in term_fns.items()}
        geometry = {}
        if args.log_term_param_grad_norms and torch.is_grad_enabled():
            parts = {}
            if args.rollout_loss == "srft":  # Eq. 12's two halves: which of them the rollout term's gradient is
                for name, rows in (("rollout_success", correct), ("rollout_failure", ~correct)):
                    parts[name] = reduce["rollout"](self_rollout_loss(logps, rollout_mask * rows.unsqueeze(1), correct,
                                                                      w_rl))
            geometry = self._term_gradient_geometry(model, terms, parent_loss, parts)
        loss = parent_loss + sum(terms.values()) if terms else parent_loss
        if args.rollout_loss == "grpo":
            terms["rollout"] = parent_loss
        # Rollout tokens whose loss w_RL actually scales: correct rows (Eq. 12) or positive-advantage rows (GRPO).
        if args.rollout_loss == "srft":
            applied = correct
        elif args.rollout_loss == "grpo":
            applied = (advantages > 0) & (kinds == ROLLOUT)
        else:
            applied = torch.zeros_like(correct)
        self._log_srft_metrics(mode, terms, grad_sq, geometry, entropies, demo_mask, rollout_mask, w_sft, w_rl,
                               applied)
        return loss

    def _term_gradient_geometry(self, model, terms: dict, parent_loss, parts: dict) -> dict:
        """`log_term_param_grad_norms`: each term's parameter gradient, their sum (the whole loss's) and the cosines
        between them (`srft_trl.losses.gradient_geometry`). The parent's loss is a term of its own when it carries the
        rollouts' GRPO loss (`"rollout"`) or a KL / entropy bonus (`"parent"`). `parts` (pieces of a term, not added
        to the total again) get their norms and cosines too."""
        components = dict(terms)
        if self.args.rollout_loss == "grpo":
            components["rollout"] = parent_loss
        elif self.args.entropy_coef or self.args.beta:
            components["parent"] = parent_loss
        trainable = [p for p in model.parameters() if p.requires_grad]
        order = [name for name in ("sft", "demo_rl", "rollout", "parent") if name in components]  # stable metric names
        return gradient_geometry({name: parameter_gradients(components[name], trainable) for name in order},
                                 {name: parameter_gradients(part, trainable) for name, part in parts.items()})

    def _entropy_weight(self, entropies, mask, which: str) -> torch.Tensor:
        args = self.args
        weighting, coef, sign = (
            (args.sft_weighting, args.sft_coef, -1) if which == "sft" else (args.rl_weighting, args.rl_coef, 1)
        )
        batch_entropy = None
        if weighting == "entropy" and args.entropy_granularity == "batch":
            local = torch.stack([(entropies.detach().float() * mask).sum(), mask.sum()])
            total = self.accelerator.reduce(local, reduction="sum")
            batch_entropy = total[0] / total[1].clamp(min=1.0)
        return entropy_weight(
            entropies,
            mask,
            coef=coef,
            sign=sign,
            weighting="constant" if weighting == "off" else weighting,
            granularity=args.entropy_granularity,
            batch_entropy=batch_entropy,
            max_weight=args.max_entropy_weight,
        )

    def _term_reducers(self, inputs, mask, demo_mask) -> dict:
        """How each term is reduced to a scalar under `term_normalization` (see `SRFTConfig.term_normalization`).

        Returns a reducer per term (`"sft"`, `"demo_rl"`, `"rollout"`) and `"rollout_grpo_scale"`, the factor that
        moves the parent's GRPO loss from its normaliser to the term's (1.0 for `"shared"` and `"sft_token_mean"`).
        """
        args = self.args
        schedule = dict(
            max_completion_length=self.max_completion_length,
            num_processes=self.accelerator.num_processes,
            gradient_accumulation_steps=self.current_gradient_accumulation_steps,
            steps_per_generation=args.steps_per_generation,
            training=self.model.training,
        )

        def shared(per_token_loss):
            return aggregate(per_token_loss, mask, self.loss_type, num_items_in_batch=inputs.get("num_items_in_batch"),
                             **schedule)

        def own(samples: str, loss_type: str):
            counts = dict(num_rows=inputs[f"srft_{samples}_rows"], num_tokens=inputs[f"srft_{samples}_tokens"])
            # `mask` covers all rows; rows outside the term have a zero per-token loss and add nothing.
            return lambda per_token_loss: aggregate_own(per_token_loss, mask, loss_type, **counts, **schedule)

        if args.term_normalization == "shared":
            return {"sft": shared, "demo_rl": shared, "rollout": shared, "rollout_grpo_scale": 1.0}
        if args.term_normalization == "sft_token_mean":
            return {"sft": own("demo", "dapo"), "demo_rl": shared, "rollout": shared, "rollout_grpo_scale": 1.0}
        if args.term_normalization == "verl":  # per micro-batch, as HPT's and LUFFY's verl actors
            length, training = self.max_completion_length, self.model.training
            accumulation = dict(gradient_accumulation_steps=self.current_gradient_accumulation_steps, training=training)
            policy = micro_batch_normalizer(mask, "policy", max_completion_length=length, **accumulation)
            sft = micro_batch_normalizer(demo_mask, "token_mean", max_completion_length=length, **accumulation)
            parent = parent_normalizer(mask, self.loss_type, **schedule)  # dr_grpo: rows * L * accumulation
            return {
                "sft": lambda per_token_loss: aggregate_micro_batch(per_token_loss, demo_mask, sft),
                "demo_rl": lambda per_token_loss: aggregate_micro_batch(per_token_loss, mask, policy),
                "rollout": lambda per_token_loss: aggregate_micro_batch(per_token_loss, mask, policy),
                "rollout_grpo_scale": parent / policy.to(parent.device),
            }
        shared_normalizer = parent_normalizer(
            mask, self.loss_type, num_items_in_batch=inputs.get("num_items_in_batch"), **schedule
        )
        rollout_normalizer = own_normalizer(
            self.loss_type,
            num_rows=inputs["srft_rollout_rows"],
            num_tokens=inputs["srft_rollout_tokens"],
            **schedule,
        ).to(shared_normalizer.device)
        return {
            "sft": own("demo", self.loss_type),
            "demo_rl": own("demo", self.loss_type),
            "rollout": own("rollout", self.loss_type),
            "rollout_grpo_scale": shared_normalizer / rollout_normalizer,
        }

    def _log_srft_metrics(
        self, mode, terms, grad_sq, geometry, entropies, demo_mask, rollout_mask, w_sft, w_rl, applied
    ):
        """Log the SRFT metrics, reduced over processes in one collective call.

        `srft/w_rl` is the mean over all rollout tokens of the weight Eq. 12 gives a correct rollout (so
        the curve exists from the first step, whether or not any rollout was correct yet). `srft/loss_<term>` is each
        term's value and `srft/grad_<term>` the norm of its gradient with respect to the per-token log-probabilities
        of the micro-batch (all processes), both on the scale of one optimiser step (accumulation undone), so the
        balance of the terms reads directly off the logs (see `srft_trl.losses.logp_gradient_sq_norm`). The parent's
        GRPO loss (`rollout_loss="grpo"`) has a logged loss but no gradient norm. With
        `log_term_param_grad_norms`, `srft/param_grad_<term>` is the parameter-space norm of each term's gradient
        (`total`: of their sum), `srft/param_cos_<a>_vs_<b>` the cosine between two terms' gradients and
        `srft/param_cos_<term>_vs_total` a term's cosine with the whole gradient, and under Eq. 12 the same for its
        halves `rollout_success` and `rollout_failure` (each per micro-batch, mean over processes).
        """
        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1
        names = ["rollout", "sft", "demo_rl"]
        stats = [
            (entropies.float() * rollout_mask).sum(),
            rollout_mask.sum(),
            (entropies.float() * demo_mask).sum(),
            demo_mask.sum(),
            (w_rl * rollout_mask).sum(),
            (w_sft * demo_mask).sum() if w_sft is not None else demo_mask.new_zeros(()),
            *[terms[n].detach().float() * accumulation if n in terms else demo_mask.new_zeros(()) for n in names],
            *[grad_sq[n].float() if n in grad_sq else demo_mask.new_zeros(()) for n in names],
            *[value.float() * (accumulation if key.startswith("norm/") else 1) for key, value in geometry.items()],
        ]
        reduced = self.accelerator.reduce(torch.stack([s.float() for s in stats]), reduction="sum")
        # The warning looks only where w_RL is applied; padding and other rows are 0 and weights are >= 0.
        local_max_w_rl = (w_rl * rollout_mask * applied.unsqueeze(1)).max().float().reshape(1)
        *total, max_w_rl = torch.cat([reduced, local_max_w_rl]).tolist()  # one host sync per micro-batch
        metrics = self._metrics[mode]
        if total[1]:
            metrics["srft/entropy_rollout"].append(total[0] / total[1])
        if total[3]:
            metrics["srft/entropy_demo"].append(total[2] / total[3])
        if total[1]:
            metrics["srft/w_rl"].append(total[4] / total[1])
        if total[3] and w_sft is not None:
            metrics["srft/w_sft"].append(total[5] / total[3])
        for offset, name in enumerate(names):
            if name in terms:
                metrics[f"srft/loss_{name}"].append(total[6 + offset] / self.accelerator.num_processes)
            if name in grad_sq:  # DDP averages the processes' gradients
                grad_norm = total[6 + len(names) + offset] ** 0.5 * accumulation / self.accelerator.num_processes
                metrics[f"srft/grad_{name}"].append(grad_norm)
        for key, value in zip(geometry, total[6 + 2 * len(names) :]):
            kind, *pair = key.split("/")
            prefix = "srft/param_grad_" if kind == "norm" else "srft/param_cos_"
            metrics[prefix + "_vs_".join(pair)].append(value / self.accelerator.num_processes)
        if max_w_rl > 1.0 and not self._srft_warned_weight and self.args.rl_weighting == "entropy":
            self._srft_warned_weight = True
            logger.warning(
                f"w_RL reached {max_w_rl:.3g} (> 1.0, the weight of the negative term of Eq. 12): the policy's entropy "
                "is high, so exp(H) is large (it can reach the vocabulary size). Consider SRFTConfig.max_entropy_weight "
                "to clamp it. This warning is shown once."
            )
