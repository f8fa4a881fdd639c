"""The verdict on a response: both math graders or a multiple-choice letter, and the one batch API.

Every caller that grades model output (the math reward, `srft-trl eval`, the held-out accuracy
of `srft-trl train`, the fuzz benchmark) goes through :func:`grade_batch`, which grades in the
bounded worker pool (`srft_trl.grading.bounded`): a per-sample time bound, a memory limit, and a
crashed or hung worker replaced. A sample whose grading fails is graded incorrect, never raises.

Kinds of job:

* ``math``: Math-Verify and the OAT-style grader (:func:`grade_math`), both verdicts reported;
* ``math_verify``: Math-Verify alone (the training reward: no sympy pass per rollout);
* anything else (``mc``): a multiple-choice letter. Letters never go through the math path
  (Math-Verify reads ``E`` as Euler's number and ``I`` as the imaginary unit): the letter is
  extracted with :func:`extract_choice`, limited to the item's letters, and compared with the gold.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from .choice import extract_choice
from .extract import answer_after_think, extract_boxed
from .math import math_verify_check, math_verify_equal, parse_gold

__all__ = ["GRADERS", "PRIMARY_GRADER", "grade_math", "grade_sample", "grade_batch", "warm_up"]

GRADERS = ("oat", "math_verify")
# The paper's final numbers use the OAT grader (Sec. 5.1).
PRIMARY_GRADER = "oat"


def grade_math(response: str, gold: Any, require_think: bool = True) -> dict:
    """Grade one response with both graders.

    Returns ``{"extracted", "math_verify", "oat"}``: both verdicts are computed on the answer part
    (after ``</think>``; without one, nothing when ``require_think`` else the whole response).
    ``extracted`` is the last boxed answer, else what Math-Verify extracted, else None.
    """
    from .oat import oat_grade

    answer = answer_after_think(response, require_think)
    if answer is None:
        return {"extracted": None, "math_verify": False, "oat": False}
    mv_ok, mv_extracted = math_verify_check(answer, gold)
    boxed = extract_boxed(answer)
    return {
        "extracted": boxed if boxed is not None else mv_extracted,
        "math_verify": mv_ok,
        "oat": oat_grade(answer, gold),
    }


def grade_sample(task: dict[str, Any]) -> dict[str, Any]:
    """Grade one sample; runs inside a worker process (top-level, so it pickles)."""
    response, gold, kind = task["response"], task["gold"], task["kind"]
    if kind == "math":
        verdict = grade_math(response, gold, require_think=task["require_think"])
        math_verify, oat = bool(verdict["math_verify"]), bool(verdict["oat"])
        return {"extracted": verdict.get("extracted"), "math_verify": math_verify, "oat": oat,
                "correct": oat if PRIMARY_GRADER == "oat" else math_verify}
    if kind == "math_verify":
        gold_parsed = bool(parse_gold(gold))
        answer = answer_after_think(response, require_think=task["require_think"])
        ok, extracted = math_verify_check(answer, gold) if answer and gold_parsed else (False, None)
        return {"extracted": extracted, "math_verify": ok, "correct": ok, "gold_parsed": gold_parsed}
    answer = answer_after_think(response, require_think=task["require_think"])
    letter = extract_choice(answer, letters=task["letters"]) if answer is not None else None
    return {"extracted": letter, "choice": letter == gold, "correct": letter == gold}


def _failed(kind: str, status: str, detail: Any) -> dict[str, Any]:
    verdicts = {"math_verify": False, "oat": False} if kind == "math" else {"choice": False}
    if kind == "math_verify":
        verdicts = {"math_verify": False, "gold_parsed": True}
    return {"extracted": None, **verdicts, "correct": False, "status": status, "grading_error": f"{status}: {detail}"}


def grade_batch(
    jobs: Sequence[tuple[str, Sequence[str], Any, str | None]], *, require_think: bool, timeout_s: float = 10.0,
) -> list[list[dict[str, Any]]]:
    """Grade the samples of several items, `(kind, samples, gold, letters)` each, in one pass over
    the worker pool (so all workers are busy); one list of verdicts per item.

    Every verdict has `correct` and a `status` ("ok", or "timeout" / "crash" / "error"). A sample
    whose grading exceeds `timeout_s`, crashes its worker or raises is graded incorrect and also
    carries `grading_error` (the status and its detail).
    """
    from .bounded import OK, run_bounded_status

    tasks = [{"kind": kind, "response": sample, "gold": gold, "letters": letters, "require_think": require_think}
             for kind, samples, gold, letters in jobs for sample in samples]
    outcomes = iter(run_bounded_status(grade_sample, tasks, timeout_s=timeout_s) if tasks else [])
    results = []
    for kind, samples, _, _ in jobs:
        verdicts = []
        for _ in samples:
            outcome = next(outcomes)
            if outcome.status == OK:
                verdicts.append({**outcome.value, "status": OK})
            else:
                verdicts.append(_failed(kind, outcome.status, outcome.value))
        results.append(verdicts)
    return results


def warm_up() -> None:
    """Import and exercise the graders once (the bounded workers' initializer).

    Math-Verify logs a one-time warning when its timeouts are disabled; in a bounded worker the
    time bound is provided by the pool, so the warning is consumed here, silently.
    """
    from .oat import oat_grade

    logger = logging.getLogger("math_verify")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        math_verify_equal("\\boxed{\\frac{1}{2}}", "0.5")
        oat_grade("\\boxed{(1, 2)}", "(1,2)")
    finally:
        logger.setLevel(level)
