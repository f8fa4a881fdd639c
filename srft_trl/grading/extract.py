"""Find the final answer in a response: the last ``\\boxed{}``, the text after ``</think>``.

Everything here is linear in the length of the input and uses no recursion, so megabyte-long or
deeply nested responses cannot blow the stack or stall grading.
"""

from __future__ import annotations

import re

__all__ = ["extract_boxed", "answer_after_think", "THINK_CLOSE"]

THINK_CLOSE = "</think>"

_BOX_COMMANDS = ("\\boxed", "\\fbox")
# A backslash escape (``\{``, ``\}``, ``\\``) or a bare brace; escapes are skipped whole.
_BRACE_TOKEN = re.compile(r"\\.|[{}]", re.DOTALL)
_BRACELESS_ARG = re.compile(r"[^\s$]+")


def _last_box_command(text: str) -> int:
    """End index of the last ``\\boxed``/``\\fbox`` not followed by a letter, or -1."""
    best = -1
    for command in _BOX_COMMANDS:
        end = len(text)
        while True:
            start = text.rfind(command, 0, end)
            if start < 0:
                break
            after = start + len(command)
            if after >= len(text) or not text[after].isalpha():  # not e.g. \boxedx
                best = max(best, after)
                break
            end = start
    return best


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, or None.

    Braces are matched (nested braces are fine, ``\\{``/``\\}`` are not counted). The braceless
    form ``\\boxed 5`` yields the token after the space, up to whitespace or ``$``. If the last box
    is never closed (a truncated response) the result is None: earlier boxes are not used.
    """
    if not isinstance(text, str):
        return None
    pos = _last_box_command(text)
    if pos < 0:
        return None
    n = len(text)
    cursor = pos
    while cursor < n and text[cursor].isspace():
        cursor += 1
    if cursor >= n:
        return None
    if text[cursor] != "{":
        if cursor == pos:  # "\boxed" glued to a non-brace, non-letter character, e.g. "\boxed5"
            return None
        match = _BRACELESS_ARG.match(text, cursor)
        return match.group(0) if match else None
    depth = 0
    for token in _BRACE_TOKEN.finditer(text, cursor):
        char = token.group(0)
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[cursor + 1 : token.start()]
    return None


def answer_after_think(text: str, require_think: bool = True) -> str | None:
    """The text after the last ``</think>``.

    Without a ``</think>``: None when ``require_think`` (the paper's and LUFFY's reward: an answer
    only counts once the reasoning is closed), else the whole text.
    """
    if not isinstance(text, str):
        return None
    index = text.rfind(THINK_CLOSE)
    if index < 0:
        return None if require_think else text
    return text[index + len(THINK_CLOSE) :]
