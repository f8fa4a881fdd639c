"""Finding and loading the models to analyse: saved models, Trainer checkpoints, PEFT adapters, loaded objects.

A *model reference* (`ModelRef`) is one of:

* a path or Hub id that `transformers` loads (`config.json` in a folder);
* a PEFT adapter folder (`adapter_config.json`): loaded with `peft.AutoPeftModelForCausalLM` and
  merged into its base model, which `adapter_config.json` names;
* a `(model, tokenizer)` pair already in memory (the Python API only; it is never freed here).

In a trajectory, a training output folder stands for its `checkpoint-N` sub-folders in step
order, then its own final model if it has one (`expand_checkpoints`). Models are loaded one at a time and freed after
use (`loaded`), so an analysis holds at most one model in memory.
"""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Union

from ..checkpoints import checkpoint_dirs
from ..checkpoints import checkpoint_step as folder_step

__all__ = [
    "ModelRef",
    "checkpoint_step",
    "expand_checkpoints",
    "free_memory",
    "is_model_dir",
    "load_model",
    "loaded",
    "model_label",
    "resolve_device",
]

logger = logging.getLogger(__name__)

ModelRef = Union[str, os.PathLike, tuple]


def is_model_dir(path: str | os.PathLike) -> bool:
    """Whether `path` is a folder holding a full model (`config.json`) or a PEFT adapter."""
    path = Path(path)
    return (path / "config.json").is_file() or (path / "adapter_config.json").is_file()


def _checkpoint_dirs(path: Path) -> list[Path]:
    return [p for p in checkpoint_dirs(path) if is_model_dir(p)]


def expand_checkpoints(refs: Iterable[ModelRef]) -> list[ModelRef]:
    """Replace each training output folder by its `checkpoint-N` sub-folders in step order.

    The folder's own model (the final one `trainer.save_model()` writes), if it has one, follows
    its checkpoints. Any other reference is kept as it is. A folder that is neither a model nor
    holds checkpoints raises `FileNotFoundError`.
    """
    out: list[ModelRef] = []
    for ref in refs:
        if isinstance(ref, tuple) or not Path(ref).exists():
            out.append(ref)  # a loaded model, or a Hub id
            continue
        path = Path(ref)
        checkpoints = _checkpoint_dirs(path) if path.is_dir() else []
        if not checkpoints and not is_model_dir(path):
            raise FileNotFoundError(
                f"{path}: neither a model (config.json / adapter_config.json) nor a folder of checkpoint-N"
            )
        out.extend(str(p) for p in checkpoints)
        if is_model_dir(path):
            out.append(str(path))
    return out


def checkpoint_step(ref: ModelRef) -> int | None:
    """The training step of a checkpoint: N for `checkpoint-N`, else `global_step` of its `trainer_state.json`."""
    if isinstance(ref, tuple):
        return None
    path = Path(ref)
    if (step := folder_step(path)) is not None:
        return step
    state = path / "trainer_state.json"
    if state.is_file():
        try:
            return int(json.loads(state.read_text())["global_step"])
        except (ValueError, KeyError, TypeError):
            return None
    return None


def model_label(ref: ModelRef) -> str:
    """A short name: the folder name, `run/checkpoint-N` for a checkpoint, the model's name for a loaded one."""
    if isinstance(ref, tuple):
        model = ref[0]
        name = getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", "")
        return Path(str(name)).name or type(model).__name__
    path = Path(ref)
    if folder_step(path) is not None and path.parent.name:
        return f"{path.parent.name}/{path.name}"
    return path.name or str(ref)


def resolve_device(device: str | None = "auto") -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _resolve_dtype(dtype: str | None, device: str):
    import torch

    if dtype in (None, "auto"):
        # Saved dtype on an accelerator; float32 on CPU, where bf16 matmuls are slow and imprecise.
        return "auto" if device != "cpu" else torch.float32
    if isinstance(dtype, str):
        return getattr(torch, dtype)
    return dtype


def _load_tokenizer(path: Path | str, candidates: list[str], trust_remote_code: bool):
    from transformers import AutoTokenizer

    errors = []
    for candidate in candidates:
        try:
            return AutoTokenizer.from_pretrained(candidate, trust_remote_code=trust_remote_code)
        except (OSError, ValueError, TypeError) as error:
            errors.append(f"{candidate}: {error}")
    raise OSError(
        f"no tokenizer found for {path}; tried {candidates}. Pass one explicitly (--tokenizer).\n" + "\n".join(errors)
    )


def load_model(
    path: str | os.PathLike,
    *,
    device: str | None = "auto",
    dtype: str | None = "auto",
    tokenizer: str | os.PathLike | Any | None = None,
    trust_remote_code: bool = False,
):
    """Load a causal LM and its tokenizer for scoring and generation, in eval mode; returns `(model, tokenizer)`.

    The tokenizer is `tokenizer` when given (an object or a path), else the first that loads of:
    `path` itself; for a PEFT adapter, its base model; for `checkpoint-N`, the training output
    folder above it.
    """
    from transformers import AutoModelForCausalLM

    device = resolve_device(device)
    torch_dtype = _resolve_dtype(dtype, device)
    path_str = str(path)
    local = Path(path_str)
    adapter = local / "adapter_config.json"
    candidates = [path_str]
    # On an accelerator the weights load straight onto it; on CPU they already are where they belong.
    placement = {"device_map": device} if device != "cpu" else {}
    if adapter.is_file():
        from peft import AutoPeftModelForCausalLM

        base = json.loads(adapter.read_text()).get("base_model_name_or_path")
        model = AutoPeftModelForCausalLM.from_pretrained(
            path_str, dtype=torch_dtype, trust_remote_code=trust_remote_code, **placement
        )
        try:
            model = model.merge_and_unload()  # one plain model: faster, and a standard forward signature
        except (AttributeError, ValueError, NotImplementedError) as error:
            logger.info("Scoring %s with the adapter unmerged (%s)", path_str, error)
        if base:
            candidates.append(base)
    else:
        model = AutoModelForCausalLM.from_pretrained(
            path_str, dtype=torch_dtype, trust_remote_code=trust_remote_code, **placement
        )
    if folder_step(local) is not None:
        candidates.append(str(local.parent))
    if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = _load_tokenizer(
            path_str, [str(tokenizer)] if tokenizer is not None else candidates, trust_remote_code
        )
    if not placement:
        model.to(device)
    model.eval()
    return model, tokenizer


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextmanager
def loaded(ref: ModelRef, **load_kwargs) -> Iterator[tuple[Any, Any]]:
    """Yield `(model, tokenizer)` for a reference; a model loaded here is freed on exit, a given one kept."""
    if isinstance(ref, tuple):
        model, tokenizer = ref
        if tokenizer is None:
            tokenizer = _load_tokenizer(model.name_or_path, [model.name_or_path], False)
        was_training = model.training
        model.eval()
        try:
            yield model, tokenizer
        finally:
            model.train(was_training)
        return
    model, tokenizer = load_model(ref, **load_kwargs)
    try:
        yield model, tokenizer
    finally:
        del model
        free_memory()
