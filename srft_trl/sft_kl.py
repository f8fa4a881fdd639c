"""The paper's SFT baselines: TRL's `SFTTrainer` (`SFTBaselineTrainer`, the `sft` recipes) and SFT_KL, the same plus
`beta * KL(pi_theta || pi_base)` (App. B, Eq. A1)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from trl import SFTConfig, SFTTrainer

from .upstream_noise import TiedWeightsResumeMixin


@dataclass
class SFTKLConfig(SFTConfig):
    """TRL's `SFTConfig` plus `beta`, the weight of the KL penalty to the base model (App. B, Eq. A1)."""

    beta: float = field(
        default=0.2, metadata={"help": "Weight of KL(pi_theta || pi_base) added to the SFT loss (paper: 0.2)."}
    )


class SFTBaselineTrainer(TiedWeightsResumeMixin, SFTTrainer):
    """TRL's `SFTTrainer`, unchanged except that resuming a model with tied embeddings does not print the false
    `missing keys ['lm_head.weight']` warning (`srft_trl.upstream_noise`), as `SRFTTrainer` does not."""


class SFTKLTrainer(SFTBaselineTrainer):
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
