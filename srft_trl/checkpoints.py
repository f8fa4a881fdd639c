"""Checkpoints that are only ever read back whole.

transformers writes `checkpoint-N/` file by file, in place, so a run killed mid-save leaves a
half-written folder that `get_last_checkpoint` would happily pick. SRFTTrainer writes a marker file
as the last act of a save (after every process has finished its part), atomically; resuming picks
the newest checkpoint that has it.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

COMPLETE_MARKER = "srft_checkpoint_complete"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def mark_complete(checkpoint_dir: str | os.PathLike, step: int) -> None:
    atomic_write_text(Path(checkpoint_dir) / COMPLETE_MARKER, f"{step}\n")


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest `checkpoint-N` folder under `output_dir` whose save finished, or None."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    steps = []
    for entry in output_dir.iterdir():
        match = _CHECKPOINT.match(entry.name)
        if match and entry.is_dir() and (entry / COMPLETE_MARKER).is_file():
            steps.append((int(match.group(1)), entry))
    return str(max(steps)[1]) if steps else None
