"""Math answer checking with Math-Verify, and the combined ``grade_math`` used by evaluation.

Math-Verify is always called with its SIGALRM-based timeouts disabled (``parsing_timeout=None``,
``timeout_seconds=None``): those alarms raise outside the main thread and cancel the caller's own
alarms. Nothing here bounds time by itself; run untrusted responses through
:func:`grade_math_many` or :mod:`srft_trl.grading.bounded`, which kill slow workers.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from math_verify import parse, verify

from .bounded import OK, run_bounded_status
from .extract import answer_after_think, extract_boxed

__all__ = [
    "wrap_gold",
    "parse_gold",
    "parse_pred",
    "math_verify_check",
    "math_verify_equal",
    "grade_math",
    "grade_math_item",
    "grade_math_many",
    "warm_up",
]

_DELIMITERS = ("$", "\\(", "\\[")


def wrap_gold(gold: Any) -> str:
    """Gold answer as Math-Verify wants it: ``"$" + gold + "$"`` unless already delimited."""
    text = str(gold).strip() if gold is not None else ""
    if not text:
        return ""
    return text if text.startswith(_DELIMITERS) else f"${text}$"


def parse_gold(gold: Any) -> list:
    """Math-Verify parse of a gold answer; ``[]`` when empty or unparseable (never raises)."""
    wrapped = wrap_gold(gold)
    if not wrapped:
        return []
    try:
        return parse(wrapped, parsing_timeout=None)
    except Exception:  # parse already swallows errors; this guards against its own bugs
        return []


def parse_pred(pred: str) -> list:
    """Math-Verify parse of a prediction (default extraction: LaTeX, then plain expressions)."""
    if not isinstance(pred, str) or not pred:
        return []
    try:
        return parse(pred, parsing_timeout=None)
    except Exception:
        return []


def math_verify_check(pred: str, gold: Any) -> tuple[bool, str | None]:
    """``(equal, extracted)``: Math-Verify verdict and the string it extracted from ``pred``.

    ``verify`` is asymmetric; the gold goes first, as Math-Verify documents.
    """
    gold_parsed = parse_gold(gold)
    if not gold_parsed:
        return False, None
    pred_parsed = parse_pred(pred)
    extracted = str(pred_parsed[-1]) if pred_parsed else None
    if not pred_parsed:
        return False, None
    try:
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None)), extracted
    except Exception:
        return False, extracted


def math_verify_equal(pred: str, gold: Any) -> bool:
    """True if Math-Verify finds ``pred`` equivalent to ``gold``; False for unparseable gold.

    Note that Math-Verify reads every ``\\boxed{}`` of ``pred``: two boxes become a set.
    """
    return math_verify_check(pred, gold)[0]


def grade_math(response: str, gold: Any, require_think: bool = True) -> dict:
    """Grade one response with both graders.

    Returns ``{"extracted", "math_verify", "oat"}``: both verdicts are computed on the answer part
    (after ``</think>``; without one, nothing when ``require_think`` else the whole response).
    ``extracted`` is the last boxed answer, else what Math-Verify extracted, else None.
    """
    from .oat import oat_grade  # oat imports this module for its Math-Verify fallback

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


def grade_math_item(item: Sequence) -> dict:
    """``grade_math(*item)``: a picklable entry point for worker processes."""
    return grade_math(*item)


def grade_math_many(
    responses: Sequence[str],
    golds: Sequence[Any],
    require_think: bool = True,
    timeout_s: float = 10.0,
) -> list[dict]:
    """``grade_math`` over many responses in the shared bounded pool.

    Each result has an extra ``"status"``: "ok", or "timeout"/"crash"/"error" when grading that
    response did not finish within ``timeout_s`` seconds or failed (then both verdicts are False).
    """
    if len(responses) != len(golds):
        raise ValueError(f"{len(responses)} responses but {len(golds)} gold answers")
    items = [(r, g, require_think) for r, g in zip(responses, golds)]
    results = []
    for outcome in run_bounded_status(grade_math_item, items, timeout_s=timeout_s):
        if outcome.status == OK:
            results.append({**outcome.value, "status": OK})
        else:
            results.append(
                {"extracted": None, "math_verify": False, "oat": False, "status": outcome.status}
            )
    return results


def warm_up() -> None:
    """Import and exercise the graders once (used as the bounded workers' initializer).

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
