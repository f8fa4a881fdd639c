"""Multiple-choice answer extraction (ARC-C, GPQA, MMLU-Pro).

Letters never go through the math path: Math-Verify reads ``I`` as the imaginary unit and ``E`` as
Euler's number, so ``\\boxed{E}`` would be compared as 2.718...
"""

from __future__ import annotations

import re

from .extract import extract_boxed

__all__ = ["extract_choice"]

_WRAPPER = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
# Whole box content: "C", "(C)", "C.", "C)"; or a letter and its option text: "C: 42", "(C) 42".
_BOXED_LETTER = re.compile(r"\(?([A-Za-z])\)?[.:)]?")
_BOXED_LETTER_WITH_TEXT = re.compile(r"(?:\(([A-Za-z])\)|([A-Za-z])[.:)])\s+\S.*", re.DOTALL)
# "Answer: C", "the answer is (C)", "Final Answer: **C**", "answer is $\text{B}$". Only the word
# "answer" anchors: "option"/"choice" also appear where a model walks through the options.
# The anchor word is found first; the letter is then looked for in a short window after it, with
# one starred group whose alternatives start with different characters, so matching stays linear
# (adjacent optional whitespace runs would backtrack polynomially on long blank stretches).
_ANCHOR_WORD = re.compile(r"answer", re.IGNORECASE)
_WINDOW = 60
_AFTER_ANCHOR = re.compile(
    r"(?:[\s:=*$]|is\b|\\text\{|\\textbf\{|\\mathrm\{|\\boxed\{)*"
    r"(?:\((?P<paren>[A-Za-z])\)|(?P<bare>[A-Z]))"
)
# After a bare "A" or "I", a lowercase word means an article or pronoun: "answer is a prime".
_ENGLISH_WORD_AFTER = re.compile(r"\s{1,8}[a-z]")


def _unwrap(content: str) -> str:
    s = content.strip()
    for _ in range(3):
        unwrapped = _WRAPPER.sub(r"\1", s)
        if unwrapped == s:
            break
        s = unwrapped
    return s.replace("$", "").replace("*", "").strip()


def _letter_in_box(text: str) -> str | None:
    content = extract_boxed(text)
    if content is None:
        return None
    content = _unwrap(content)
    match = _BOXED_LETTER.fullmatch(content) or _BOXED_LETTER_WITH_TEXT.fullmatch(content)
    if not match:
        return None
    return next(group for group in match.groups() if group).upper()


def extract_choice(text: str, letters: str = "ABCD") -> str | None:
    """The chosen option letter in ``text`` (upper case), or None.

    Order: the last ``\\boxed{}`` if it holds a single allowed letter (``C``, ``\\text{C}``,
    ``(C)``; lower case accepted inside a box); otherwise the last anchored statement such as
    ``Answer: C`` or ``the answer is (C)``. Outside a box a letter must be upper case unless it is
    in parentheses, and a bare ``A``/``I`` followed by a lowercase word is read as English. Only
    letters in ``letters`` count.
    """
    if not isinstance(text, str) or not text:
        return None
    allowed = set(letters.upper())
    boxed = _letter_in_box(text)
    if boxed is not None and boxed in allowed:
        return boxed
    chosen = None
    for anchor in _ANCHOR_WORD.finditer(text):
        window = text[anchor.end() : anchor.end() + _WINDOW]
        match = _AFTER_ANCHOR.match(window)
        if not match:
            continue
        if match.group("paren"):
            letter = match.group("paren").upper()
        else:
            letter = match.group("bare")
            end = anchor.end() + match.end()
            rest = text[end : end + 10]
            if rest[:1].isalnum():  # part of a word: "Answer: Choices ..."
                continue
            if letter in "AI" and _ENGLISH_WORD_AFTER.match(rest):
                continue
        if letter in allowed:
            chosen = letter
    return chosen
