"""Checkpoints that are only ever read back whole, and the one place that knows `checkpoint-N`.

transformers writes `checkpoint-N/` file by file, in place, so a run killed mid-save leaves a
half-written folder that `get_last_checkpoint` would happily pick. `CompleteCheckpointCallback`
(`srft_trl.callbacks`) writes a marker file as the last act of a save (after every process has
finished its part), atomically; resuming picks the newest checkpoint that has it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .files import atomic_write_text

# transformers.trainer_utils.PREFIX_CHECKPOINT_DIR, spelled out: importing it pulls in torch (seconds),
# and the analysis of a run's trainer_state.json needs neither.
PREFIX_CHECKPOINT_DIR = "checkpoint"

COMPLETE_MARKER = "srft_checkpoint_complete"
_CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def checkpoint_dir(output_dir: str | os.PathLike, step: int) -> str:
    """Where the Trainer saves the checkpoint of `step` under `output_dir`."""
    return os.path.join(output_dir, f"{PREFIX_CHECKPOINT_DIR}-{step}")


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """N for a folder named `checkpoint-N`, else None."""
    match = _CHECKPOINT.match(Path(path).name)
    return int(match.group(1)) if match else None


def checkpoint_dirs(output_dir: str | os.PathLike) -> list[Path]:
    """The `checkpoint-N` folders under `output_dir`, in step order (none if it does not exist)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(step, entry) for entry in output_dir.iterdir() if entry.is_dir() and (step := checkpoint_step(entry)) is not None]
    return [entry for _, entry in sorted(found)]


def mark_complete(checkpoint: str | os.PathLike, step: int) -> None:
    atomic_write_text(Path(checkpoint) / COMPLETE_MARKER, f"{step}\n")


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest `checkpoint-N` folder under `output_dir` whose save finished, or None."""
    complete = [entry for entry in checkpoint_dirs(output_dir) if (entry / COMPLETE_MARKER).is_file()]
    return str(complete[-1]) if complete else None
