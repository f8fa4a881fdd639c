"""FSDP2 on a machine without a GPU: make accelerate shard there, and refuse any silent fallback.

Why by hand: accelerate 1.16 does not shard on CPU. In `AcceleratorState.__init__` (accelerate/state.py,
"elif self.distributed_type in [DistributedType.MULTI_GPU, DistributedType.MULTI_MLU, ...]:" followed by
"if (os.environ.get("ACCELERATE_USE_FSDP", ...) == "true" or fsdp_plugin is not None) ...: self.distributed_type =
DistributedType.FSDP") the switch to FSDP applies only to accelerator-type distributed runs. A CPU run is
`DistributedType.MULTI_CPU`, so `--accelerate_config fsdp2` on CPU quietly trains plain multi-process DDP. torch's
own `fully_shard` (FSDP2) works on CPU over gloo; `enable_fsdp_on_cpu` adds the CPU case to that switch, for the
training process only, and only on a machine without a GPU. Remove it when accelerate switches MULTI_CPU runs too.

`check_distributed_type` is the guard for every platform: a run whose launcher asked for FSDP or DeepSpeed and whose
accelerator set up something else stops with one line saying what it got, before any training step.
"""

from __future__ import annotations

import functools
import os

LAUNCHER_ASKED = (("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DEEPSPEED"))


def launcher_asked_for() -> str | None:
    """`"FSDP"` or `"DEEPSPEED"` when `accelerate launch` was given such a config (it sets these variables)."""
    for variable, kind in LAUNCHER_ASKED:
        if os.environ.get(variable, "false").lower() == "true":
            return kind
    return None


def enable_fsdp_on_cpu() -> bool:
    """On a machine without a GPU whose launcher asked for FSDP, let accelerate switch MULTI_CPU runs to FSDP.

    Returns whether the switch was installed. Idempotent; a no-op with a GPU or without an FSDP launch.
    """
    import torch
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    if torch.cuda.is_available() or launcher_asked_for() != "FSDP":
        return False
    if getattr(AcceleratorState.__init__, "_srft_cpu_fsdp", False):
        return True
    original_init = AcceleratorState.__init__

    @functools.wraps(original_init)
    def init(self, *args, fsdp_plugin=None, **kwargs):
        original_init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            # The lines accelerate runs for GPU-type runs, applied to the CPU one.
            self.distributed_type = DistributedType.FSDP
            if self._mixed_precision != "no":
                fsdp_plugin.set_mixed_precision(self._mixed_precision)
            self.fsdp_plugin = fsdp_plugin
            PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    init._srft_cpu_fsdp = True
    AcceleratorState.__init__ = init
    return True


class DistributedTypeMismatch(RuntimeError):
    """The launcher asked for FSDP or DeepSpeed and the accelerator set up something else."""


def check_distributed_type(accelerator) -> None:
    """Raise `DistributedTypeMismatch` (one line) if the launcher asked for FSDP/DeepSpeed and did not get it."""
    asked = launcher_asked_for()
    got = accelerator.distributed_type.name if hasattr(accelerator.distributed_type, "name") else str(
        accelerator.distributed_type)
    if asked is None or got == asked:
        return
    why = (
        f" with {accelerator.num_processes} process" if accelerator.num_processes == 1 else ""
    )
    raise DistributedTypeMismatch(
        f"the accelerate config asks for {asked}, but accelerate set up {got}{why} on {accelerator.device.type}: "
        f"refusing to train without it (use --num_processes 2 or more on CPU, or another --accelerate_config)."
    )


def sharding_summary(model) -> str:
    """How the model's parameters are spread over the processes, e.g. `26 of 26 parameters sharded (DTensor), 45,472 of
    90,944 elements in this process` (FSDP2), `... partitioned (ZeRO-3) ...` (DeepSpeed), or `not sharded`."""
    from torch.distributed.tensor import DTensor

    params = list(model.parameters())
    if any(hasattr(p, "ds_tensor") for p in params):  # DeepSpeed ZeRO-3: a local partition beside an empty stub
        kind, sharded = "partitioned (ZeRO-3)", [p for p in params if hasattr(p, "ds_tensor")]
        local = sum(p.ds_tensor.numel() if hasattr(p, "ds_tensor") else p.numel() for p in params)
        total = sum(getattr(p, "ds_numel", p.numel()) for p in params)
    else:
        kind, sharded = "sharded (DTensor)", [p for p in params if isinstance(p, DTensor)]
        local = sum(p.to_local().numel() if isinstance(p, DTensor) else p.numel() for p in params)
        total = sum(p.numel() for p in params)
    if not sharded:
        return f"not sharded ({len(params)} parameters, none a DTensor or a ZeRO-3 partition)"
    return f"{len(sharded)} of {len(params)} parameters {kind}, {local:,} of {total:,} elements in this process"
