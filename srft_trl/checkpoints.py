"""Checkpoints that are only ever read back whole, and the one place that knows `checkpoint-N`.

transformers writes `checkpoint-N/` file by file, in place, so a run killed mid-save leaves a
half-written folder that `get_last_checkpoint` would happily pick. `CompleteCheckpointCallback`
(`srft_trl.callbacks`) writes a marker file as the last act of a save (after every process has
finished its part), atomically; resuming picks the newest checkpoint that has it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Collection
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


# --------------------------------------------------------------------------------------------
# Re-running into an output folder: resume the same run, refuse another one
# --------------------------------------------------------------------------------------------

RUN_RECIPE = "recipe.yaml"  # the effective settings of the run an output folder holds
FINISHED = "train_results.json"  # written by `Trainer.save_metrics("train", ...)` once training ended


class OutputDirConflict(ValueError):
    """`output_dir` holds something a new run must not overwrite silently."""


class RunFinished(Exception):
    """`output_dir` holds the finished run of these settings and no more steps were asked: nothing to do.
    Not an error: the message says what is there and how to train further."""


def finished_step(output_dir: str | os.PathLike) -> int | None:
    """The step a finished run in `output_dir` ended at (its `trainer_state.json`), or None if unfinished."""
    import json

    out = Path(output_dir)
    if not (out / FINISHED).is_file():
        return None
    try:
        return int(json.loads((out / "trainer_state.json").read_text())["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def resume_point(output_dir: str | os.PathLike, settings: dict, *, ignore: Collection[str] = ()) -> str | None:
    """Where a run with `settings` into `output_dir` starts: None (step 0: the folder is new, empty,
    or holds a run stopped before it saved anything), or the newest complete checkpoint of the
    same run (same settings, except the keys in `ignore` and `max_steps`: a larger `max_steps`
    continues the run).

    Raises `RunFinished` when the folder holds the finished run and `max_steps` asks for no more
    steps (nothing is changed), `OutputDirConflict` when it holds another run, files of unknown
    origin, or the finished run with no checkpoint to continue from.
    """
    import yaml

    out = Path(output_dir)
    if not out.is_dir() or not any(not entry.name.startswith(".") for entry in out.iterdir()):
        return None
    fixes = "choose another output_dir, or pass --overwrite_output_dir true to train from step 0 there"
    if not (out / RUN_RECIPE).is_file():
        raise OutputDirConflict(f"output_dir {out} is not empty and holds no {RUN_RECIPE} of a srft-trl run; {fixes}")
    if not checkpoint_dirs(out) and not (out / FINISHED).is_file():
        return None  # a run that stopped before saving anything: nothing to resume, nothing to lose
    saved = yaml.safe_load((out / RUN_RECIPE).read_text()) or {}
    changed = [key for key in dict.fromkeys([*saved, *settings])
               if key not in ignore and key != "max_steps" and saved.get(key) != settings.get(key)]
    if changed:
        shown = ", ".join(f"{key}: {saved.get(key)!r} -> {settings.get(key)!r}" for key in changed[:3])
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise OutputDirConflict(
            f"output_dir {out} holds another run ({shown}{more}); {fixes} (or --resume_from_checkpoint true to "
            "continue it with the new settings)"
        )
    last = last_complete_checkpoint(out)
    done = finished_step(out)
    if done is None:
        return last
    max_steps = settings.get("max_steps", saved.get("max_steps"))
    if not isinstance(max_steps, int) or max_steps <= done:
        further = (f"pass a larger --max_steps to continue it from {Path(last).name}" if last else
                   "it kept no checkpoint to continue from")
        raise RunFinished(
            f"output_dir {out} already holds this run, finished at step {done}: nothing to do, nothing changed. "
            f"To train further, {further}; to train again from step 0, pass --overwrite_output_dir true."
        )
    if last is None:
        raise OutputDirConflict(
            f"output_dir {out} holds this run finished at step {done} with no checkpoint to continue from "
            f"(save_strategy: no) up to max_steps {max_steps}; {fixes}"
        )
    return last


def remove_checkpoints(output_dir: str | os.PathLike) -> None:
    """Delete the `checkpoint-N` folders under `output_dir` (a run restarted with --overwrite_output_dir)."""
    for entry in checkpoint_dirs(output_dir):
        shutil.rmtree(entry)
