"""Multiple-choice options: letters, the per-item seeded shuffle, and the question layout."""

from __future__ import annotations

import hashlib
import random
import string

__all__ = ["option_letters", "item_rng", "shuffle_options", "format_mc_question", "MC_QUESTION_FORMAT"]

# The question as the model sees it; options one per line, as `A. text`.
MC_QUESTION_FORMAT = "{question}\n\n{options}"


def option_letters(count: int) -> str:
    """The first `count` capital letters (`ABCD`; MMLU-Pro uses up to `J`)."""
    if not 1 <= count <= 26:
        raise ValueError(f"cannot letter {count} options")
    return string.ascii_uppercase[:count]


def item_rng(seed: int, key: str) -> random.Random:
    """A random generator seeded by (`seed`, `key`) through SHA-256, stable across processes and
    Python versions (unlike `hash()`, which is salted per process)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def shuffle_options(
    options: list[str], gold_index: int, *, seed: int, key: str, shuffle: bool = True
) -> tuple[list[str], list[int], str]:
    """Shuffle `options` with a permutation seeded by (`seed`, `key`).

    Returns `(shown, permutation, gold_letter)`: `shown[i] == options[permutation[i]]`, and
    `gold_letter` is the letter at which the originally correct option is shown.
    """
    permutation = list(range(len(options)))
    if shuffle:
        item_rng(seed, key).shuffle(permutation)
    shown = [options[original] for original in permutation]
    gold_letter = option_letters(len(options))[permutation.index(gold_index)]
    return shown, permutation, gold_letter


def format_mc_question(question: str, options: list[str], template: str = MC_QUESTION_FORMAT) -> str:
    """Lay a multiple-choice question out with lettered options (`A. ...` one per line)."""
    lines = "\n".join(f"{letter}. {text}" for letter, text in zip(option_letters(len(options)), options))
    return template.format(question=question, options=lines)
