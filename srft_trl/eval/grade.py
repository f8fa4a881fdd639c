"""Grading while generating: `BackgroundGrader` feeds finished items to `srft_trl.grading.grade_batch`
(the verdicts and the worker pool are `srft_trl.grading`'s; see `srft_trl.grading.verdict`)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from srft_trl.grading.verdict import PRIMARY_GRADER, grade_batch, grade_sample

__all__ = ["grade_sample", "grade_samples", "grade_batch", "BackgroundGrader", "PRIMARY_GRADER"]


def grade_samples(
    kind: str, samples: Sequence[str], gold: str, *, require_think: bool, letters: str | None = None,
    timeout_s: float = 10.0,
) -> list[dict[str, Any]]:
    """Grade the samples of one item in worker processes (see `grade_batch`)."""
    return grade_batch([(kind, samples, gold, letters)], require_think=require_think, timeout_s=timeout_s)[0]


class BackgroundGrader:
    """Grades finished items on a thread while generation goes on.

    Each pass takes everything queued (up to `max_batch_items` items) and grades it in one
    `grade_batch` call, so a chunk of generations or a resumed cache keeps every worker busy.
    `on_graded(item_id, verdicts)` is called from the grading thread.
    """

    def __init__(
        self,
        on_graded: Callable[[str, list[dict[str, Any]]], None],
        *,
        require_think: bool,
        timeout_s: float = 10.0,
        max_batch_items: int = 256,
    ):
        self._on_graded = on_graded
        self._require_think = require_think
        self._timeout_s = timeout_s
        self._max_batch_items = max_batch_items
        self._queue: queue.Queue = queue.Queue()
        self._cancelled = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="srft-eval-grader", daemon=True)
        self._thread.start()

    def submit(self, item_id: str, kind: str, samples: Sequence[str], gold: str, letters: str | None) -> None:
        if self._error is not None:
            raise RuntimeError("grading failed") from self._error
        self._queue.put((item_id, (kind, list(samples), gold, letters)))

    def finish(self) -> None:
        """Wait until everything submitted is graded; re-raise a grading failure."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise RuntimeError("grading failed") from self._error

    def cancel(self) -> None:
        """Stop without grading what is still queued (the run is being interrupted)."""
        self._cancelled.set()
        self._queue.put(None)
        self._thread.join()

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while batch[-1] is not None and len(batch) < self._max_batch_items:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = batch[-1] is None
            batch = [entry for entry in batch if entry is not None]
            if self._cancelled.is_set():
                return
            if batch:
                try:
                    results = grade_batch([job for _, job in batch], require_think=self._require_think,
                                          timeout_s=self._timeout_s)
                    for (item_id, _), verdicts in zip(batch, results):
                        self._on_graded(item_id, verdicts)
                except BaseException as error:  # noqa: BLE001 - handed to the submitting thread
                    self._error = error
                    return
            if stop:
                return
