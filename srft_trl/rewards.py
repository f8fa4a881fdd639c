"""Reward functions with TRL's signature: ``f(completions, solution, **kwargs) -> list[float]``.

``completions`` is a list of strings, or of conversational completions (lists of message dicts;
the last assistant message's ``content`` is graded). ``solution`` holds the gold answers, one per
completion (TRL passes dataset columns as keyword arguments, so the column must be named
``solution``).

* ``math_accuracy`` (the paper's binary reward, as in LUFFY): 1.0 if the completion closes its
  reasoning with ``</think>`` and Math-Verify finds the text after it equivalent to
  ``"$" + gold + "$"``, else 0.0. Each completion is graded in a worker process with a time
  bound (default 5 s; ``reward_timeout_s=`` keyword or the ``SRFT_REWARD_TIMEOUT_S`` environment
  variable); a completion that runs out of time or crashes its worker scores 0.0. An empty or
  unparseable gold answer scores 0.0 with a one-time warning naming it.
* ``multiple_choice``: 1.0 if the letter chosen after ``</think>`` (see
  :func:`srft_trl.grading.extract_choice`, letters A-J) equals the gold letter.
* ``exact_answer``: 1.0 if the ``\\boxed{}`` after ``</think>`` holds exactly the gold text (integer
  answers: the digit-chain task of the quickstart and the testbed); in process, no worker pool.
* ``format``: 1.0 if the completion has ``<think>...</think>`` (the opening tag may be in the
  prompt, as with the paper's template) followed by a ``\\boxed{}`` answer.

Use :func:`get_reward_funcs` to build the list passed as ``reward_funcs`` to the trainer.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import warnings
from typing import Any, Callable, Sequence

from .grading import answer_after_think, extract_boxed, extract_choice
from .grading.bounded import OK
from .grading.verdict import grade_batch

__all__ = [
    "math_accuracy_reward",
    "multiple_choice_reward",
    "format_reward",
    "exact_answer_reward",
    "REWARD_FUNCS",
    "get_reward_funcs",
    "completion_text",
    "DEFAULT_TIMEOUT_S",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
CHOICE_LETTERS = "ABCDEFGHIJ"

_warned_golds: set[str] = set()
_warned_lock = threading.Lock()


def _warn_bad_gold(gold: Any, reward: str, why: str) -> None:
    key = f"{reward}\0{gold!r}"
    with _warned_lock:
        if key in _warned_golds or len(_warned_golds) > 10_000:
            return
        _warned_golds.add(key)
    shown = repr(gold)
    shown = shown if len(shown) <= 200 else shown[:200] + "...'"
    warnings.warn(
        f"{reward}: gold answer {shown} {why}; completions for it score 0.0",
        RuntimeWarning,
        stacklevel=3,
    )


def _message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal style: [{"type": "text", "text": ...}, ...]
        return "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    return ""


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or the last assistant message of a conversation."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _message_text(completion)
    if isinstance(completion, (list, tuple)):
        for message in reversed(completion):
            if isinstance(message, dict) and message.get("role", "assistant") == "assistant":
                return _message_text(message)
    return ""


def _check_lengths(completions: Sequence, solution: Sequence | None, reward: str) -> None:
    if solution is None:
        raise ValueError(f"{reward} needs the gold answers in a dataset column named 'solution'")
    if len(solution) != len(completions):
        raise ValueError(f"{reward}: {len(completions)} completions but {len(solution)} solutions")


def _timeout(kwargs: dict) -> float:
    value = kwargs.get("reward_timeout_s") or os.environ.get("SRFT_REWARD_TIMEOUT_S")
    return float(value) if value else DEFAULT_TIMEOUT_S


def math_accuracy_reward(
    completions: Sequence, solution: Sequence | None = None, **kwargs
) -> list[float]:
    """1.0 per completion whose answer after ``</think>`` Math-Verifies against its gold, else 0.0.

    Keyword ``reward_timeout_s`` (or env ``SRFT_REWARD_TIMEOUT_S``) sets the per-completion
    bound in seconds (default 5). Other keyword arguments (TRL's extra columns) are ignored.
    """
    _check_lengths(completions, solution, "math_accuracy_reward")
    scores = [0.0] * len(completions)
    jobs: list[tuple[int, str, str]] = []
    for i, (completion, gold) in enumerate(zip(completions, solution)):
        gold_text = "" if gold is None else str(gold).strip()
        if not gold_text:
            _warn_bad_gold(gold, "math_accuracy_reward", "is empty")
            continue
        answer = answer_after_think(completion_text(completion), require_think=True)
        if answer is None or not answer.strip():
            continue
        jobs.append((i, answer, gold_text))
    if not jobs:
        return scores
    verdicts = grade_batch([("math_verify", [answer], gold, None) for _, answer, gold in jobs],
                           require_think=False, timeout_s=_timeout(kwargs))
    failed = 0
    for (i, _, gold_text), (verdict,) in zip(jobs, verdicts):
        if verdict["status"] != OK:
            failed += 1
            continue
        if not verdict["gold_parsed"]:
            _warn_bad_gold(gold_text, "math_accuracy_reward", "could not be parsed by Math-Verify")
        scores[i] = float(verdict["math_verify"])
    if failed:
        logger.warning(
            "math_accuracy_reward: %d of %d completions timed out or crashed their grader; "
            "scored 0.0",
            failed,
            len(jobs),
        )
    return scores


def multiple_choice_reward(
    completions: Sequence, solution: Sequence | None = None, **kwargs
) -> list[float]:
    """1.0 per completion whose chosen letter (after ``</think>``, A-J) equals the gold letter."""
    _check_lengths(completions, solution, "multiple_choice_reward")
    scores = []
    for completion, gold in zip(completions, solution):
        gold_letter = "" if gold is None else str(gold).strip().strip("()").upper()
        if len(gold_letter) != 1 or gold_letter not in CHOICE_LETTERS:
            _warn_bad_gold(gold, "multiple_choice_reward", "is not a letter A-J")
            scores.append(0.0)
            continue
        answer = answer_after_think(completion_text(completion), require_think=True)
        chosen = extract_choice(answer, CHOICE_LETTERS) if answer is not None else None
        scores.append(1.0 if chosen == gold_letter else 0.0)
    return scores


def format_reward(completions: Sequence, **kwargs) -> list[float]:
    """1.0 per completion shaped ``[<think>]...</think>...\\boxed{...}``, else 0.0.

    Exactly one ``</think>``, at most one ``<think>`` and before it (the opening tag is usually
    part of the prompt), and a non-empty ``\\boxed{}`` after the closing tag.
    """
    scores = []
    for completion in completions:
        text = completion_text(completion)
        close = text.find("</think>")
        ok = close >= 0 and text.count("</think>") == 1
        if ok and "<think>" in text:
            ok = text.count("<think>") == 1 and text.find("<think>") < close
        if ok:
            boxed = extract_boxed(text[close + len("</think>") :])
            ok = boxed is not None and bool(boxed.strip())
        scores.append(1.0 if ok else 0.0)
    return scores


def exact_answer_reward(completions: Sequence, solution: Sequence | None = None, **kwargs) -> list[float]:
    """1.0 per completion whose ``\\boxed{}`` after ``</think>`` holds exactly its gold answer (stripped).

    For integer answers exact match and Math-Verify agree, and a step of a tiny model takes about as
    long as dispatching its completions to ``math_accuracy``'s grading workers would.
    """
    _check_lengths(completions, solution, "exact_answer_reward")
    scores = []
    for completion, gold in zip(completions, solution):
        answer = answer_after_think(completion_text(completion), require_think=True)
        boxed = extract_boxed(answer) if answer is not None else None
        scores.append(1.0 if boxed is not None and gold is not None and boxed.strip() == str(gold).strip() else 0.0)
    return scores


REWARD_FUNCS: dict[str, Callable[..., list[float]]] = {
    "math_accuracy": math_accuracy_reward,
    "exact_answer": exact_answer_reward,
    "multiple_choice": multiple_choice_reward,
    "format": format_reward,
}


def get_reward_funcs(names: Sequence[str] | str) -> list[Callable[..., list[float]]]:
    """Reward functions by name (see ``REWARD_FUNCS``) or dotted import path (``pkg.module.func``);
    unknown names raise ``ValueError``."""
    if isinstance(names, str):
        names = [names]
    unknown = [name for name in names if name not in REWARD_FUNCS and "." not in name]
    if unknown:
        raise ValueError(
            f"unknown reward function(s) {unknown}; available: {sorted(REWARD_FUNCS)} or a dotted import path"
        )
    funcs = []
    for name in names:
        if name in REWARD_FUNCS:
            funcs.append(REWARD_FUNCS[name])
        else:
            module, attribute = name.rsplit(".", 1)
            funcs.append(getattr(importlib.import_module(module), attribute))
    return funcs
