"""The digit-chain task (the quickstart's and the testbed's): summing a chain of single digits by running sums.

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

The package ships this task's pre-trained base and data (`srft_trl/resources/digit_chains/`, written
by `scripts/build_quickstart_base.py` with the testbed's pre-training): `dataset_name: digit_chains`
and `model_name_or_path: digit_chains_base` in a recipe (`recipes/srft_quickstart.yaml`).
`shipped_base()` checks every file of the base against its `SHA256SUMS` before it is used.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import random
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

SHIPPED_DIR = Path(str(importlib.resources.files("srft_trl") / "resources" / "digit_chains"))
BASE_NAME = "digit_chains_base"  # model_name_or_path of the shipped base
DATASET_NAME = "digit_chains"  # dataset_name of the shipped data
SPLITS = ("train", "test", "test_long")


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


def to_openr1_record(problem: Problem, index: int, split: str) -> dict:
    """A problem in the OpenR1 schema (a user-only prompt, its correct running-sum demonstration)."""
    return {
        "data_source": DATASET_NAME,
        "prompt": [{"role": "user", "content": problem.question}],
        "target": [{"role": "assistant", "content": problem.procedure()}],
        "ability": "math",
        "reward_model": {"ground_truth": problem.answer, "style": "rule"},
        "extra_info": {"index": index, "split": split},
    }


def data_file(split: str) -> Path:
    """The shipped JSONL file of `split` (`train`, `test`, `test_long`)."""
    if split not in SPLITS:
        raise ValueError(f"unknown {DATASET_NAME} split {split!r}; choose one of {SPLITS}")
    return SHIPPED_DIR / f"{split}.jsonl"


class CorruptBase(ValueError):
    """A file of the shipped base does not match its SHA256SUMS."""


def shipped_base() -> Path:
    """The folder of the shipped pre-trained base, after checking every file's sha256 (`CorruptBase` if not)."""
    folder = SHIPPED_DIR / "base"
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        raise CorruptBase(f"{BASE_NAME}: {sums} is missing; rebuild with scripts/build_quickstart_base.py")
    for line in sums.read_text().splitlines():
        expected, name = line.split(maxsplit=1)
        path = folder / name
        if not path.is_file():
            raise CorruptBase(f"{BASE_NAME}: {path} is missing; reinstall srft-trl or rebuild it "
                              "(scripts/build_quickstart_base.py)")
        if hashlib.sha256(path.read_bytes()).hexdigest() != expected:
            raise CorruptBase(f"{BASE_NAME}: {path} does not match its sha256 in {sums}; reinstall srft-trl or "
                              "rebuild it (scripts/build_quickstart_base.py)")
    return folder
