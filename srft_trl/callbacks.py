"""Trainer callbacks for concerns every trainer the CLI builds shares (SRFT/GRPO, SFT, SFT-KL)."""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

from .checkpoints import checkpoint_dir, mark_complete
from .files import atomic_write_text


class CompleteCheckpointCallback(TrainerCallback):
    """Mark `checkpoint-N/` complete once the Trainer has written all of it (see `srft_trl.checkpoints`).

    `on_save` runs after `Trainer._save_checkpoint` returned on every process; the marker is
    written by the main process only after every process has written its shards and RNG state.
    """

    def on_save(self, args, state, control, **kwargs):
        from accelerate import PartialState

        PartialState().wait_for_everyone()
        folder = checkpoint_dir(args.output_dir, state.global_step)
        if args.should_save and Path(folder).is_dir():
            mark_complete(folder, state.global_step)
        return control


class ModelCardInCheckpointCallback(TrainerCallback):
    """Put the run's model card (`<output_dir>/README.md`, which TRL's trainers rewrite just before
    each checkpoint save) into `checkpoint-N/` too, so a checkpoint pushed or copied on its own says
    what it is. Listed before `CompleteCheckpointCallback`: the card is in place before the marker."""

    def on_save(self, args, state, control, **kwargs):
        card = Path(args.output_dir) / "README.md"
        folder = Path(checkpoint_dir(args.output_dir, state.global_step))
        if args.should_save and card.is_file() and folder.is_dir():
            atomic_write_text(folder / "README.md", card.read_text(encoding="utf-8"))
        return control


def ensure_callback(trainer, callback_class: type[TrainerCallback]) -> None:
    """Add `callback_class()` to `trainer` unless one is already there."""
    if not any(isinstance(cb, callback_class) for cb in trainer.callback_handler.callbacks):
        trainer.add_callback(callback_class())
