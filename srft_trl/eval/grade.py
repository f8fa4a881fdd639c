"""Grading of generated samples, run in bounded worker processes (`srft_trl.grading.bounded`).

Math answers go through `srft_trl.grading.grade_math`, which reports Math-Verify's and the OAT
grader's verdicts. Multiple-choice answers never go through the math path (Math-Verify reads `E`
as Euler's number and `I` as the imaginary unit): the letter is extracted with
`srft_trl.grading.extract_choice` (a boxed letter first, then an anchored `Answer: X`), limited
to the item's letters, and compared with the gold letter.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["grade_sample", "grade_samples", "grade_batch", "BackgroundGrader", "PRIMARY_GRADER"]

# The paper's final numbers use the OAT grader (Sec. 5.1).
PRIMARY_GRADER = "oat"


def grade_sample(task: dict[str, Any]) -> dict[str, Any]:
    """Grade one sample; runs inside a worker process (top-level, so it pickles)."""
    response, gold = task["response"], task["gold"]
    if task["kind"] == "math":
        from srft_trl.grading import grade_math

        verdict = grade_math(response, gold, require_think=task["require_think"])
        math_verify, oat = bool(verdict["math_verify"]), bool(verdict["oat"])
        return {"extracted": verdict.get("extracted"), "math_verify": math_verify, "oat": oat,
                "correct": oat if PRIMARY_GRADER == "oat" else math_verify}
    from srft_trl.grading import answer_after_think, extract_choice

    answer = answer_after_think(response, require_think=task["require_think"])
    letter = extract_choice(answer, letters=task["letters"]) if answer is not None else None
    return {"extracted": letter, "choice": letter == gold, "correct": letter == gold}


def _failed(kind: str, status: str) -> dict[str, Any]:
    verdicts = {"math_verify": False, "oat": False} if kind == "math" else {"choice": False}
    return {"extracted": None, **verdicts, "correct": False, "grading_error": status}


def grade_batch(
    jobs: Sequence[tuple[str, Sequence[str], str, str | None]], *, require_think: bool, timeout_s: float = 10.0,
) -> list[list[dict[str, Any]]]:
    """Grade the samples of several items, `(kind, samples, gold, letters)` each, in one pass over
    the worker pool (so all workers are busy); one list of verdicts per item.

    A sample whose grading exceeds `timeout_s`, crashes its worker or raises is graded incorrect
    and marked with `grading_error`.
    """
    from srft_trl.grading.bounded import run_bounded_status

    tasks = [{"kind": kind, "response": sample, "gold": gold, "letters": letters, "require_think": require_think}
             for kind, samples, gold, letters in jobs for sample in samples]
    outcomes = iter(run_bounded_status(grade_sample, tasks, timeout_s=timeout_s) if tasks else [])
    results = []
    for kind, samples, _, _ in jobs:
        verdicts = []
        for _ in samples:
            outcome = next(outcomes)
            verdicts.append(outcome.value if outcome.status == "ok" else _failed(kind, f"{outcome.status}: {outcome.value}"))
        results.append(verdicts)
    return results


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
