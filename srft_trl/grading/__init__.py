"""Answer grading: extraction, Math-Verify, an OAT-style grader, multiple choice, bounded runs.

Grading untrusted model output can hang or exhaust memory; run it through
:func:`grade_batch` (the one batch API: worker processes with a per-item time bound, see
:mod:`srft_trl.grading.verdict`) rather than calling the graders directly in a training or
evaluation loop.

Names are imported lazily, so ``import srft_trl.grading`` (done by every bounded worker) does not
pull in sympy and Math-Verify until a grader is actually used.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "BoundedPool": "bounded",
    "TaskOutcome": "bounded",
    "close_shared_pool": "bounded",
    "get_shared_pool": "bounded",
    "run_bounded": "bounded",
    "run_bounded_status": "bounded",
    "extract_choice": "choice",
    "answer_after_think": "extract",
    "extract_boxed": "extract",
    "GRADERS": "verdict",
    "PRIMARY_GRADER": "verdict",
    "grade_batch": "verdict",
    "grade_math": "verdict",
    "grade_sample": "verdict",
    "math_verify_check": "math",
    "math_verify_equal": "math",
    "parse_gold": "math",
    "wrap_gold": "math",
    "answers_equivalent": "oat",
    "normalize_answer": "oat",
    "oat_grade": "oat",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
