"""Hostile model output the grading must survive: code payloads, LaTeX bombs, token soup.

One vocabulary for the reliability tests (`tests/test_grading_fuzz.py`) and the 10,000-input fuzz
benchmark (`python -m benchmarks.fuzz_graders`). Any payload that were executed (by an ``eval`` of
model output) would create `SENTINEL`; nothing in srft-trl may ever let it appear.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["SENTINEL", "PAYLOADS", "ATOMS", "BOMBS"]

SENTINEL = Path(tempfile.gettempdir()) / f"srft_fuzz_graders_sentinel_{os.getpid()}"
PAYLOADS = [
    f"__import__('os').system('touch {SENTINEL}')",
    f"eval(\"__import__('os').system('touch {SENTINEL}')\")",
    f"exec('open(\"{SENTINEL}\", \"w\").close()')",
    f"(lambda: __import__('os').system('touch {SENTINEL}'))()",
    f"\\text{{__import__('os').system('touch {SENTINEL}')}}",
    f"1+__import__('subprocess').call(['touch', '{SENTINEL}'])",
]
ATOMS = [
    "\\boxed{", "\\boxed ", "\\fbox{", "{", "}", "\\{", "\\}", "\\", "\\frac{", "}{", "^{", "_{",
    "\\sqrt{", "\\left(", "\\right)", "(", ")", "[", "]", "$", "\\text{", "\\text{ cm}", "</think>",
    "<think>", "Answer: ", "the answer is (", "(C)", "I", "E", "\\%", "=", ",", ".", "0.5", "9",
    "-", "x", "\\pi", "\\infty", "!", "\\begin{pmatrix}", "&", "\\\\", "\\end{pmatrix}", "\\circ",
    "\u202e", "\x00", "🙂", "ﬁ", "\n", " ", "\\dfrac", "1,000", "\\cdot", "**", "\\int",
    "\\sum",
]
BOMBS = {
    "nested_frac": lambda n: "\\frac{" * n + "1" + "}{2}" * n,
    "power_tower": lambda n: "9^{" * n + "9" + "}" * n,
    "deep_braces": lambda n: "{" * n + "x" + "}" * n,
    "unclosed_boxes": lambda n: "\\boxed{" * n,
    "deep_parens": lambda n: "(" * n + "1" + ")" * n,
    "long_number": lambda n: "9" * n,
    "factorials": lambda n: "99" + "!" * n,
    "nested_sqrt": lambda n: "\\sqrt{" * n + "2" + "}" * n,
    "many_equals": lambda n: "x=" * n + "1",
    "huge_power": lambda n: f"{n}^{{{n}^{{{n}}}}}",
    "blank_runs": lambda n: "Answer is" + " " * n * 10 + "^" + " " * n * 10 + "x",
    "big_matrix": lambda n: "\\begin{pmatrix}" + "\\\\".join(["&".join("x" * 20)] * n)
    + "\\end{pmatrix}",
}
