"""The testbed's task: summing a chain of single digits by running sums.

A problem is `k` single digits joined by `+` (no spaces, so the byte-level tokenizer sees one
token per digit), e.g. ``3+5+2+7``. Its solution is one running sum per line, then the last one boxed::

      <think>
      3+5=8
      8+2=10
      10+7=17
      </think>
      \\boxed{17}

The demonstrations are this, correct on every line. The base model is pre-trained on the same
procedure written by a *sloppy teacher* (`Problem.procedure(carry_slip=...)`) that drops the carry
of a line whose units overflow with some probability (``8+5=3``) and goes on from the wrong sum,
and only on chains of 2 to 5 terms. So the base is partly competent (RL has reward spread), the
demonstrations carry two things it lacks: reliable carries (which RL can also find, by reward) and
chains longer than pre-training showed (which only demonstrations show).

Problems come from seeded streams (`unique_stream`): distinct problems, never one in `exclude`.
`in_study_pool` splits the problem space in two halves by a fixed hash: held-out sets and training
streams use one half, the base's pre-training text the other.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Problem:
    terms: tuple[int, ...]

    @property
    def question(self) -> str:
        return "+".join(str(t) for t in self.terms)

    @property
    def answer(self) -> str:
        return str(sum(self.terms))

    def direct(self) -> str:
        """The answer without working (the base's pre-training text for single `n+d` facts)."""
        return f"<think>\n</think>\n\\boxed{{{self.answer}}}"

    def procedure(self, carry_slip: float = 0.0, rng: random.Random | None = None) -> str:
        """The running-sum solution: one `partial+next=new` line per term after the first, the last sum boxed.

        With `carry_slip > 0` (the base's sloppy teacher) a line whose units overflow drops the carry with that
        probability (`17+5=12`), and the chain goes on from the wrong partial sum, so the boxed answer is wrong too.
        Demonstrations use `carry_slip=0`: correct on every line.
        """
        if carry_slip and rng is None:
            raise ValueError("a sloppy solution (carry_slip > 0) needs the teacher's random generator `rng`")
        lines, total = [], self.terms[0]
        for term in self.terms[1:]:
            new = total + term
            if carry_slip and total % 10 + term >= 10 and rng.random() < carry_slip:
                new -= 10
            lines.append(f"{total}+{term}={new}")
            total = new
        return "<think>\n" + "\n".join(lines) + "\n</think>\n\\boxed{" + str(total) + "}"


def draw(rng: random.Random, length: int) -> Problem:
    return Problem(tuple(rng.randint(0, 9) for _ in range(length)))


def step_facts(max_partial: int) -> list[tuple[int, int]]:
    """Every line a procedure can contain up to partial sums of `max_partial`: (n, d) for n+d."""
    return [(n, d) for n in range(max_partial + 1) for d in range(10)]


def unique_stream(seed: int, lengths: int | tuple[int, ...], exclude: Iterable[str] = ()):
    """Endless stream of distinct problems in the study pool, none in `exclude`, cycling through `lengths`
    (the number of terms of each successive problem)."""
    lengths = (lengths,) if isinstance(lengths, int) else tuple(lengths)
    rng = random.Random(seed)
    seen = set(exclude)
    misses, index = 0, 0
    while True:
        problem = draw(rng, lengths[index % len(lengths)])
        if problem.question in seen or not in_study_pool(problem.question):
            misses += 1
            if misses > 100_000:
                raise RuntimeError(f"the study pool of {lengths}-term problems is exhausted (seed {seed})")
            continue
        misses, index = 0, index + 1
        seen.add(problem.question)
        yield problem


def take(stream, n: int) -> list[Problem]:
    return [next(stream) for _ in range(n)]


def in_study_pool(question: str) -> bool:
    """Half of the problem space (by a fixed hash) is the study's (held-out sets and training streams);
    the base's pre-training text uses only the other half, so the base has not memorised any problem it
    is later trained or tested on."""
    return zlib.crc32(question.encode()) % 2 == 0
