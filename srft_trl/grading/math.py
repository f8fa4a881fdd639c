"""Math answer checking with Math-Verify.

Math-Verify is always called with its SIGALRM-based timeouts disabled (``parsing_timeout=None``,
``timeout_seconds=None``): those alarms raise outside the main thread and cancel the caller's own
alarms. Nothing here bounds time by itself; run untrusted responses through
:func:`srft_trl.grading.grade_batch`, whose worker processes are killed when slow.
"""

from __future__ import annotations

from typing import Any

from math_verify import parse, verify


__all__ = [
    "wrap_gold",
    "parse_gold",
    "parse_pred",
    "math_verify_check",
    "math_verify_equal",
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
