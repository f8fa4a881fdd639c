"""The model a recipe trains: the tiny local model when asked for, a model shipped with the package
(`digit_chains_base`, the quickstart's pre-trained base), the paper's RoPE extension, and the keyword
arguments the trainer passes to `from_pretrained`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .files import atomic_directory


def default_tiny_model_path() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "srft_trl" / "tiny-model"


def rope_overrides(config, rope_theta: float | None = None, max_position_embeddings: int | None = None) -> dict[str, Any]:
    """Config overrides that set the RoPE base and the position window, in the form the installed
    transformers uses (`rope_parameters` since v5, a top-level `rope_theta` before).

    This is the paper's context extension of Qwen2.5-Math-7B (App. B: theta 10,000 -> 40,000,
    window 16,384), applied at load time to a checkpoint whose config still has the native values.
    """
    overrides: dict[str, Any] = {}
    if rope_theta is not None:
        parameters = getattr(config, "rope_parameters", None)
        if isinstance(parameters, dict):
            overrides["rope_parameters"] = {**parameters, "rope_theta": float(rope_theta)}
        else:
            overrides["rope_theta"] = float(rope_theta)
    if max_position_embeddings is not None:
        overrides["max_position_embeddings"] = int(max_position_embeddings)
    return overrides


def extend_context(
    model_id: str,
    target: str | os.PathLike,
    *,
    rope_theta: float | None = None,
    max_position_embeddings: int | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> Path:
    """Write `target`: `model_id` with its RoPE base and position window replaced (App. B).

    Only `config.json` is rewritten; every other file is a symbolic link to the original
    checkpoint (a Hub id is downloaded to the local cache first). Loading the model with config
    overrides would be shorter, but TRL starts vLLM from the model's path, which would then
    generate with the native 10,000 base while the policy is trained with 40,000. Idempotent: an
    existing `target` with the same settings is reused.
    """
    from transformers import AutoConfig

    target = Path(target)
    source = Path(model_id)
    if not source.is_dir():
        from huggingface_hub import snapshot_download

        source = Path(snapshot_download(model_id, revision=revision))
    config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    overrides = rope_overrides(config, rope_theta, max_position_embeddings)
    if (target / "config.json").is_file():
        existing = json.loads((target / "config.json").read_text())
        if all(existing.get(key) == json.loads(json.dumps(value)) for key, value in overrides.items()):
            return target
        raise ValueError(f"{target} holds a checkpoint with other RoPE settings; remove it or change output_dir.")
    for key, value in overrides.items():
        setattr(config, key, value)
    with atomic_directory(target) as tmp:  # another machine sharing output_dir may write it first: kept
        for item in source.iterdir():
            if item.name != "config.json" and not item.name.startswith("."):
                (tmp / item.name).symlink_to(item.resolve())
        config.save_pretrained(tmp)
    return target


def looks_like_path(value: str) -> bool:
    """Whether a model reference is meant as a local path rather than a Hub id (`org/name`): it starts
    like a path, has more than one `/`, or its first part is a local folder (`models/nope` next to `models/`)."""
    text = str(value)
    first = text.split("/", 1)[0]
    return (
        text.startswith(("/", "./", "../", "~", ".\\")) or text.endswith(("/", os.sep)) or text.count("/") > 1
        or os.path.isabs(text) or text in (".", "..") or ("/" in text and Path(first).is_dir())
    )


def shipped_model(value: str | None) -> Path | None:
    """The folder of a model shipped with the package (`digit_chains_base`, checked by sha256), or None
    when `value` names no shipped model or names an existing local path (a local folder wins)."""
    from .tasks import digit_chains

    if value != digit_chains.BASE_NAME or Path(value).exists():
        return None
    try:
        return digit_chains.shipped_base()
    except digit_chains.CorruptBase as error:
        raise FileNotFoundError(str(error)) from None


def check_model_reference(value: str | None, *, tiny_model: bool = False, what: str = "model_name_or_path") -> None:
    """Fail early, naming the path, when `value` is a local path that holds no model.

    A Hub id is left to the Hub. With `tiny_model`, `value` may only name a folder that already
    holds a model: the tiny model is never built at a path the user typed (a typo would train a
    random model there).
    """
    if not value or shipped_model(value) is not None:
        return
    path = Path(value).expanduser()
    if tiny_model and not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{what} {value}: no model there; with tiny_model: true leave {what} unset to use the tiny model "
            f"built in {default_tiny_model_path()}"
        )
    if looks_like_path(value) and not path.exists():
        raise FileNotFoundError(f"{what} {value}: no such file or folder (a local path; Hub ids look like org/name)")
    if path.is_dir() and not ((path / "config.json").is_file() or (path / "adapter_config.json").is_file()):
        raise FileNotFoundError(f"{what} {value}: the folder holds no model (no config.json)")


def prepare_model_path(script, training, model_args) -> str:
    """The tiny model when asked for (built once), the RoPE-extended copy when asked for; the path to train from."""
    from .tiny import ensure_tiny_model

    path = model_args.model_name_or_path
    check_model_reference(path, tiny_model=script.tiny_model)
    shipped = shipped_model(path)
    if shipped is not None:
        path = str(shipped)
    if script.tiny_model and not path:
        path = str(default_tiny_model_path())
        with training.main_process_first(local=True, desc="building the tiny model"):
            ensure_tiny_model(path)
    if not path:
        raise ValueError("model_name_or_path is required (or set tiny_model: true).")
    if script.rope_theta is not None or script.max_position_embeddings is not None:
        target = Path(training.output_dir) / "_extended_base"
        with training.main_process_first(local=True, desc="extending the RoPE window"):
            path = str(
                extend_context(
                    path,
                    target,
                    rope_theta=script.rope_theta,
                    max_position_embeddings=script.max_position_embeddings,
                    revision=model_args.model_revision,
                    trust_remote_code=training.trust_remote_code,
                )
            )
    return path


def model_init_kwargs(training, model_args) -> dict[str, Any]:
    """What the trainer passes to `from_pretrained`, as in TRL's own scripts."""
    kwargs = dict(
        revision=model_args.model_revision,
        trust_remote_code=training.trust_remote_code,
        attn_implementation=model_args.attn_implementation,
        dtype=model_args.dtype,
    )
    kwargs.update(training.model_init_kwargs or {})
    kwargs.setdefault("use_kernels", False)  # see NO_HUB_KERNELS
    return kwargs


# transformers >= 5.2x loads with `use_kernels=True` unless told otherwise, and a CUDA model's first `train()` then
# fetches kernels from the Hub (`kernels-community/rotary`, ...): code downloaded at training time, and on an offline
# GPU machine a crash at step 0 ("... is not available in the local cache and Hugging Face Hub is in offline mode";
# found by benchmarks.gpu_check on an H200). srft-trl loads models without them unless `model_init_kwargs` asks for
# them (`use_kernels: true`). CPU runs never fetch them.
NO_HUB_KERNELS = {"use_kernels": False}
