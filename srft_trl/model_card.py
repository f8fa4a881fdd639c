"""The model card of a run: TRL's card plus the recipe, the command line and the final metrics.

Every card the trainer writes (checkpoints, end of training, `push_to_hub`) carries them:
`install_model_card` wraps the trainer's `create_model_card`.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Sequence

CARD_MARKER = "<!-- srft-trl: recipe and metrics -->"


def final_metrics(trainer, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The last logged value of every training metric, the run summary, and `extra`."""
    metrics: dict[str, Any] = {}
    for entry in trainer.state.log_history:
        metrics.update({k: v for k, v in entry.items() if isinstance(v, (int, float)) and k not in ("epoch", "step")})
    if trainer.state.global_step:
        metrics["global_step"] = trainer.state.global_step
    metrics.update(extra or {})
    return metrics


def extend_model_card(path: str | os.PathLike, *, recipe_text: str, overrides: Sequence[str],
                      metrics: dict[str, Any], base_model: str | None = None) -> None:
    """Append the recipe and the final metrics to the model card at `path` (replacing a previous copy)."""
    from huggingface_hub import ModelCard

    path = Path(path)
    card = ModelCard.load(path) if path.is_file() else ModelCard("")
    if base_model and not Path(base_model).exists():
        card.data.base_model = base_model  # TRL's card omits a local (e.g. RoPE-extended) path
    body = card.text.split(CARD_MARKER)[0].rstrip()
    command = "srft-trl train --config recipe.yaml" + ("".join(f" {t}" for t in overrides) if overrides else "")
    rows = "\n".join(f"| {k} | {v:.6g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items())
    card.text = (
        f"{body}\n\n{CARD_MARKER}\n## Training recipe\n\nTrained with srft-trl, the SRFT trainer for TRL"
        f":\n\n```bash\n{command}\n```\n\n`recipe.yaml`:\n\n```yaml\n{recipe_text.rstrip()}\n```\n\n"
        f"## Final metrics\n\n| metric | value |\n|---|---|\n{rows}\n"
    )
    card.save(path)


def install_model_card(trainer, *, recipe_text: str, overrides: Sequence[str], base_model: str | None,
                       extra_metrics: dict[str, Any]) -> None:
    """Make every model card the trainer writes (checkpoints, end of training, `push_to_hub`) carry
    the recipe and the metrics so far, by wrapping its `create_model_card`."""
    create = trainer.create_model_card

    @functools.wraps(create)
    def create_model_card(*args, **kwargs):
        create(*args, **kwargs)
        if trainer.is_world_process_zero():
            extend_model_card(
                Path(trainer.args.output_dir) / "README.md",
                recipe_text=recipe_text,
                overrides=overrides,
                metrics=final_metrics(trainer, extra_metrics),
                base_model=base_model,
            )

    trainer.create_model_card = create_model_card
