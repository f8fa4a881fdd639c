"""Property tests: hostile model output never makes the extractors, graders or rewards raise, and
never executes code (a sentinel file that an ``eval`` of the payload would create never appears).

Examples are kept few (the graders run in worker processes with a time bound per completion);
``python -m benchmarks.fuzz_graders`` runs the same kind of input (``srft_trl.grading.hostile``) at scale.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from srft_trl.grading import hostile
from srft_trl.grading import (
    answer_after_think,
    extract_boxed,
    extract_choice,
    grade_batch,
    normalize_answer,
)
from srft_trl.rewards import format_reward, math_accuracy_reward, multiple_choice_reward

# One hostile vocabulary for the property tests and the 10,000-input benchmark; the tests add the
# few inputs that exercised regressions found here (long blank runs, unbalanced brackets).
SENTINEL, PAYLOADS = hostile.SENTINEL, hostile.PAYLOADS
ATOMS = [*hostile.ATOMS, "\\sqrt[", "\\left.", "$$", "answer is (", " " * 3000, "answer" + " " * 1000]
BOMBS = {**hostile.BOMBS, "many_commas": lambda n: "(" + ",".join(["1"] * n) + ")"}

hostile_text = st.lists(st.sampled_from(ATOMS) | st.text(max_size=6), max_size=40).map("".join)
bomb = st.builds(
    lambda kind, n: BOMBS[kind](n), st.sampled_from(sorted(BOMBS)), st.integers(1, 4000)
)
completion = st.builds(
    lambda head, body, boxed: head + body + ("\\boxed{" + boxed + "}" if boxed is not None else ""),
    st.sampled_from(["", "<think>", "<think>ok</think>", "</think>", "<think>a</think>b</think>"]),
    hostile_text | hostile_text | bomb,  # bombs often hit the time bound: keep them to a third
    st.none() | hostile_text | bomb,
)
golds = st.sampled_from(["1", "0.5", "\\frac{1}{2}", "(1,2)", "", "\\text{}", "x", "E", "I"]) | (
    hostile_text
)

FAST = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
POOLED = settings(max_examples=12, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _assert_no_sentinel():
    assert not SENTINEL.exists(), "a payload in a completion was executed"


@FAST
@given(hostile_text | bomb)
def test_extractors_never_raise(text):
    boxed = extract_boxed(text)
    assert boxed is None or boxed in text
    after = answer_after_think(text)
    assert after is None or text.endswith(after)
    assert extract_choice(text, "ABCD") in (None, "A", "B", "C", "D")
    assert isinstance(normalize_answer(text), str)


# Brace-balanced strings without backslashes: whatever sits in one box comes back unchanged.
balanced = st.recursive(
    st.text(alphabet=st.characters(blacklist_characters="{}\\", blacklist_categories=["Cs"])),
    lambda inner: st.lists(inner.map(lambda s: "{" + s + "}") | inner, max_size=4).map("".join),
    max_leaves=20,
)


@FAST
@given(balanced, st.text(alphabet="ab {$"), st.text(alphabet="ab }$"))
def test_extract_boxed_round_trip(content, before, after):
    assert extract_boxed(f"{before}\\boxed{{{content}}}{after}") == content


@pytest.mark.filterwarnings("ignore:math_accuracy_reward:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:multiple_choice_reward:RuntimeWarning")
@POOLED
@given(st.lists(completion, min_size=1, max_size=4), st.data())
def test_rewards_never_raise(completions, data):
    solution = [data.draw(golds) for _ in completions]
    scores = math_accuracy_reward(completions, solution, reward_timeout_s=1)
    assert len(scores) == len(completions) and set(scores) <= {0.0, 1.0}
    letters = [data.draw(st.sampled_from("ABCDEFGHIJ")) for _ in completions]
    choice_scores = multiple_choice_reward(completions, letters)
    assert len(choice_scores) == len(completions) and set(choice_scores) <= {0.0, 1.0}
    assert set(format_reward(completions)) <= {0.0, 1.0}
    _assert_no_sentinel()


@POOLED
@given(st.lists(completion, min_size=1, max_size=4), golds)
def test_graders_never_raise(responses, gold):
    results = grade_batch([("math", responses, gold, None)], require_think=False, timeout_s=1)[0]
    assert len(results) == len(responses)
    for result in results:
        assert result["status"] in {"ok", "timeout", "crash", "error"}
        assert isinstance(result["math_verify"], bool) and isinstance(result["oat"], bool)
    _assert_no_sentinel()


def test_payloads_are_never_executed():
    responses = [f"</think>{p}" for p in PAYLOADS] + [f"</think>\\boxed{{{p}}}" for p in PAYLOADS]
    jobs = [("math", [response], gold, None) for response, gold in zip(responses, PAYLOADS * 2)]
    results = [verdict for (verdict,) in grade_batch(jobs, require_think=True, timeout_s=5)]
    math_accuracy_reward(responses, PAYLOADS * 2, reward_timeout_s=5)
    assert all(r["status"] == "ok" for r in results)
    _assert_no_sentinel()
    assert not Path("SENTINEL").exists()
