"""The tiny arithmetic task: integer expressions with a worked solution, the shipped `tiny_math` set.

`generate_arithmetic_problems` makes the problems (the shipped files under
`srft_trl/resources/tiny_math/` are written by `scripts/make_tiny_data.py` through it), so larger amounts
can be generated programmatically; `to_openr1_record` puts one into the OpenR1 schema `srft_trl.data`
loads.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class ArithmeticFamily:
    """How the problems of one difficulty are drawn.

    Operands are integers in [1, max_operand]; every intermediate value and the answer lie in
    [0, max_value]. With `parentheses`, one `a + b` or `a - b` is bracketed and computed first,
    always one whose brackets change the result's order of evaluation.
    """

    min_ops: int
    max_ops: int
    max_operand: int = 9
    max_value: int = 99
    parentheses: bool = False


ARITHMETIC_FAMILIES = {
    "easy": ArithmeticFamily(min_ops=1, max_ops=2),
    "basic": ArithmeticFamily(min_ops=2, max_ops=3),
    "hard": ArithmeticFamily(min_ops=3, max_ops=4, parentheses=True),
}
_OPERATORS = ("+", "-", "*")


def generate_arithmetic_problems(
    n: int,
    seed: int = 0,
    difficulty: str | ArithmeticFamily = "basic",
    *,
    exclude: Iterable[str] = (),
) -> list[dict]:
    """Return `n` distinct integer-arithmetic problems, deterministic for a given seed.

    Each problem is a dict with `question` ("Compute 7 + 3 * 4."), `demo` (a worked solution:
    "<think>\\n3*4=12\\n7+12=19\\n</think>\\n\\boxed{19}", one line per operation in the order
    precedence dictates) and `answer` (the integer, as a string). Questions in `exclude` are
    never returned, so e.g. pre-training text can avoid the evaluation problems.

    `difficulty` is a name in `ARITHMETIC_FAMILIES` ("easy": 1-2 operations, "basic": 2-3,
    "hard": 3-4 with a bracketed sum or difference) or an `ArithmeticFamily`.
    """
    family = ARITHMETIC_FAMILIES[difficulty] if isinstance(difficulty, str) else difficulty
    rng = random.Random(seed)
    seen = set(exclude)
    problems = []
    while len(problems) < n:
        problem = _draw_problem(rng, family)
        if problem is not None and problem["question"] not in seen:
            seen.add(problem["question"])
            problems.append(problem)
    return problems


def to_openr1_record(problem: dict, index: int, split: str, data_source: str = "tiny_math") -> dict:
    """Put a generated problem into the OpenR1 schema (a user-only prompt, no system message)."""
    return {
        "data_source": data_source,
        "prompt": [{"role": "user", "content": problem["question"]}],
        "target": [{"role": "assistant", "content": problem["demo"]}],
        "ability": "math",
        "reward_model": {"ground_truth": problem["answer"], "style": "rule"},
        "extra_info": {"index": index, "split": split},
    }


def _draw_problem(rng: random.Random, family: ArithmeticFamily) -> dict | None:
    """Draw one problem; None when a value leaves [0, max_value] (the caller draws again)."""
    num_ops = rng.randint(family.min_ops, family.max_ops)
    values = [rng.randint(1, family.max_operand) for _ in range(num_ops + 1)]
    ops = [rng.choice(_OPERATORS) for _ in range(num_ops)]
    bracket = None
    if family.parentheses:
        # Only brackets that change the order of evaluation: next to a `*`, or after a `-`.
        candidates = [
            i
            for i, op in enumerate(ops)
            if op != "*" and ((i > 0 and ops[i - 1] in "*-") or (i + 1 < num_ops and ops[i + 1] == "*"))
        ]
        if not candidates:
            return None
        bracket = rng.choice(candidates)
    question = "Compute " + _render(values, ops, bracket) + "."

    steps = []
    if bracket is not None:
        result = _apply(values[bracket], ops[bracket], values[bracket + 1])
        steps.append(_step(values[bracket], ops[bracket], values[bracket + 1], result))
        values[bracket : bracket + 2] = [result]
        del ops[bracket]
    # Multiplications first, then + and - from left to right.
    while ops:
        i = ops.index("*") if "*" in ops else 0
        result = _apply(values[i], ops[i], values[i + 1])
        steps.append(_step(values[i], ops[i], values[i + 1], result))
        values[i : i + 2] = [result]
        del ops[i]
    if any(not 0 <= step[1] <= family.max_value for step in steps):
        return None
    answer = str(values[0])
    demo = "<think>\n" + "".join(text + "\n" for text, _ in steps) + "</think>\n\\boxed{" + answer + "}"
    return {"question": question, "demo": demo, "answer": answer}


def _render(values: list[int], ops: list[str], bracket: int | None) -> str:
    parts = []
    for i, value in enumerate(values):
        text = str(value)
        if i == bracket:
            text = "(" + text
        if bracket is not None and i == bracket + 1:
            text += ")"
        parts.append(text)
        if i < len(ops):
            parts.append(ops[i])
    return " ".join(parts)


def _apply(left: int, op: str, right: int) -> int:
    return left + right if op == "+" else left - right if op == "-" else left * right


def _step(left: int, op: str, right: int, result: int) -> tuple[str, int]:
    return f"{left}{op}{right}={result}", result
