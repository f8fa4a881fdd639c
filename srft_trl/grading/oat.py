"""An OAT-style grader: last ``\\boxed{}``, Hendrycks-style normalisation, sympy, then Math-Verify.

The paper reports its final numbers with the grader of the OAT framework. This is an independent
implementation of the same recipe:

1. take the last ``\\boxed{}`` of the response (brace matched); none means wrong;
2. normalise prediction and gold as strings (:func:`normalize_answer`) and compare;
3. else compare with sympy, element-wise for tuples, intervals and comma-separated lists;
4. else fall back to Math-Verify.

Model output is converted to sympy only through ``latex2sympy2_extended`` (an ANTLR parser), never
through ``sympify``/``parse_expr`` on raw text, which would ``eval`` it.
"""

from __future__ import annotations

import cmath
import re
from typing import Any

from .extract import extract_boxed
from .math import math_verify_equal

__all__ = ["oat_grade", "answers_equivalent", "normalize_answer"]

_MAX_SYMPY_CHARS = 400  # longer answers skip sympy (cost) and go straight to Math-Verify
_REL_TOL = 1e-4

_UNIT_WORDS = (
    "mm|cm|km|m|in|inch|inches|ft|feet|foot|yd|yard|yards|mi|mile|miles|meter|meters|metre|metres|"
    "centimeter|centimeters|millimeter|millimeters|kilometer|kilometers|g|kg|gram|grams|"
    "kilogram|kilograms|lb|lbs|pound|pounds|oz|ounce|ounces|s|sec|second|seconds|min|minute|"
    "minutes|h|hr|hrs|hour|hours|day|days|week|weeks|month|months|year|years|degree|degrees|"
    "dollar|dollars|cent|cents|unit|units|l|ml|liter|liters|litre|litres|mph|people|students|"
    "square|sq|cubic|cm\\^2|cm\\^3|m\\^2|m\\^3|units\\^2"
)
_TEXT_COMMAND = r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mathit|mbox|operatorname)\s*"
_TRAILING_TEXT = re.compile(_TEXT_COMMAND + r"\{([^{}]*)\}\s*$")
_TEXT_WRAPPER = re.compile(_TEXT_COMMAND + r"\{([^{}]*)\}")
_UNIT_WORD = re.compile(rf"^\s*(?:{_UNIT_WORDS})(?:\^?\{{?[23]\}}?)?\b", re.IGNORECASE)
_NUMBER_THEN_UNIT = re.compile(
    rf"^(-?[\d.,]*\d)\s*(?:{_UNIT_WORDS})(?:\^?\{{?[23]\}}?)?\s*$", re.IGNORECASE
)
_SIMPLE_LHS = re.compile(r"^(?:[A-Za-z](?:_\{?\w+\}?)?|\\[A-Za-z]+)$")
_SPACING = re.compile(r"\\(?:quad|qquad|[,;:! ])|~")
_DEGREES = re.compile(r"\^\s*(?:\{\s*)?\\circ(?:\s*\})?|°|\\circ")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def _drop_trailing_units(s: str) -> str:
    # "10\text{ cm}", "10 \mbox{cm}": a trailing text block that starts with a space or a unit.
    for _ in range(3):
        match = _TRAILING_TEXT.search(s)
        if not match or not s[: match.start()].strip():
            break
        content = match.group(1)
        if not (content[:1].isspace() or _UNIT_WORD.match(content)):
            break
        s = s[: match.start()].rstrip()
    return s


def _fix_shorthand(s: str) -> str:
    s = re.sub(r"\\sqrt\s*([0-9a-zA-Z])", r"\\sqrt{\1}", s)
    s = re.sub(r"\\frac\s*([0-9a-zA-Z])", r"\\frac{\1}", s)
    s = re.sub(r"(\\frac\{[^{}]*\})([0-9a-zA-Z])", r"\1{\2}", s)
    return s


def normalize_answer(answer: Any) -> str:
    """Hendrycks-MATH-style string normalisation of a final answer.

    Drops ``\\left``/``\\right``, ``\\!`` and other spacing, ``^\\circ``, dollar and percent signs,
    trailing units (``\\text{ cm}``, ``10 cm``), ``\\text{}`` wrappers, a trailing period and
    whitespace (one blank between two letters stays: ``\\pi r``); rewrites ``\\dfrac`` and
    ``\\tfrac`` as ``\\frac``, ``\\frac12`` as ``\\frac{1}{2}``, ``a/b`` (integers) as
    ``\\frac{a}{b}``, ``.5`` as ``0.5``, ``1,000`` as ``1000``, ``3.0`` as ``3``; and keeps only
    the right side of ``x = 3``.
    """
    s = str(answer).strip() if answer is not None else ""
    s = s.replace("\n", " ").replace("\\displaystyle", "")
    s = re.sub(r"\\(?:left|right)\s*\.", "", s)
    s = re.sub(r"\\(?:left|right)(?![A-Za-z])", "", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _DEGREES.sub("", s)
    s = s.replace("\\$", "").replace("$", "")
    s = s.replace("\\%", "").replace("%", "")
    s = _drop_trailing_units(s)
    s = _TEXT_WRAPPER.sub(r"\1", s)
    s = _SPACING.sub(" ", s).strip()
    unit = _NUMBER_THEN_UNIT.match(s) if len(s) <= 100 else None  # "12 inches" is short
    if unit:
        s = unit.group(1)
    if s.count("=") == 1:
        lhs, rhs = s.split("=")
        if _SIMPLE_LHS.match(lhs.strip()):
            s = rhs
    # Drop whitespace, except one blank between letters, so "\pi r" does not become "\pir".
    s = re.sub(r"\s+", " ", s)
    s = re.sub(r" (?![A-Za-z])|(?<![A-Za-z]) ", "", s)
    s = s.rstrip(".")
    s = _fix_shorthand(s)
    s = re.sub(r"(?<![\d}])\.(\d)", r"0.\1", s)
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    s = re.sub(r"^(-?\d+)\.0+$", r"\1", s)
    fraction = re.fullmatch(r"(-?)(\d+)/(\d+)", s)
    if fraction:
        sign, num, den = fraction.groups()
        s = f"{sign}\\frac{{{num}}}{{{den}}}"
    return s


# --------------------------------------------------------------------------- sympy comparison

_OPENERS, _CLOSERS = "([{", ")]}"


def _top_level_split(s: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        if ch in _OPENERS:
            depth += 1
        elif ch in _CLOSERS:
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return parts


def _outer_brackets(s: str) -> tuple[str, str, str] | None:
    """``(open, inner, close)`` if one bracket pair encloses all of ``s``, else None."""
    for opener, closer in (("\\{", "\\}"), ("(", None), ("[", None)):
        if s.startswith(opener):
            break
    else:
        return None
    if opener == "\\{":
        return ("{", s[2:-2], "}") if s.endswith("\\}") and len(s) >= 4 else None
    if len(s) < 2 or s[-1] not in ")]":
        return None
    depth = 0
    for i, ch in enumerate(s):
        if ch in _OPENERS:
            depth += 1
        elif ch in _CLOSERS:
            depth -= 1
            if depth == 0 and i != len(s) - 1:
                return None  # e.g. "(1)+(2)"
    return s[0], s[1:-1], s[-1]


def _to_sympy(s: str):
    from latex2sympy2_extended import latex2sympy
    from sympy import Basic

    try:
        expr = latex2sympy(s, normalization_config=None)
    except Exception:
        return None
    return expr if isinstance(expr, Basic) else None


def _values_equal(x, y) -> bool:
    from sympy import simplify

    try:
        if x == y:
            return True
        if getattr(x, "is_number", False) and getattr(y, "is_number", False):
            a, b = complex(x.evalf()), complex(y.evalf())
            if cmath.isnan(a) or cmath.isnan(b):
                return False
            return abs(a - b) <= _REL_TOL * max(abs(a), abs(b)) or abs(a - b) <= 1e-9
        return bool(simplify(x - y) == 0)
    except Exception:
        return False


def _element_equal(pred: str, gold: str) -> bool:
    pred, gold = normalize_answer(pred), normalize_answer(gold)
    if not pred or not gold:
        return False
    if pred == gold:
        return True
    x, y = _to_sympy(pred), _to_sympy(gold)
    if x is None or y is None:
        return False
    return _values_equal(x, y)


def _sympy_equivalent(pred: str, gold: str) -> bool:
    if len(pred) > _MAX_SYMPY_CHARS or len(gold) > _MAX_SYMPY_CHARS:
        return False
    bp, bg = _outer_brackets(pred), _outer_brackets(gold)
    if bp and bg:
        parts_p, parts_g = _top_level_split(bp[1]), _top_level_split(bg[1])
        if len(parts_p) > 1 or len(parts_g) > 1:
            # Tuples and intervals: the bracket kinds matter ("(1,2]" is not "[1,2]").
            if (bp[0], bp[2]) != (bg[0], bg[2]) or len(parts_p) != len(parts_g):
                return False
            return all(_element_equal(a, b) for a, b in zip(parts_p, parts_g))
    parts_p, parts_g = _top_level_split(pred), _top_level_split(gold)
    if len(parts_p) > 1 or len(parts_g) > 1:
        return len(parts_p) == len(parts_g) and all(
            _element_equal(a, b) for a, b in zip(parts_p, parts_g)
        )
    return _element_equal(pred, gold)


def answers_equivalent(pred: str, gold: Any) -> bool:
    """OAT-style comparison of an extracted answer with the gold answer (steps 2-4 above)."""
    if pred is None or gold is None:
        return False
    gold = str(gold)
    norm_pred, norm_gold = normalize_answer(pred), normalize_answer(gold)
    if norm_pred and norm_pred == norm_gold:
        return True
    if norm_pred and norm_gold and _sympy_equivalent(norm_pred, norm_gold):
        return True
    return math_verify_equal(f"\\boxed{{{pred}}}", gold)


def oat_grade(response: str, gold: Any) -> bool:
    """True if the last ``\\boxed{}`` of ``response`` matches ``gold`` (OAT-style grading)."""
    boxed = extract_boxed(response)
    if boxed is None or not boxed.strip():
        return False
    return answers_equivalent(boxed, gold)
