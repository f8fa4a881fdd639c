"""Reward functions: TRL signature, think policy, conversational input, bad golds, hostile input."""

from __future__ import annotations

import threading
import warnings

import pytest

from srft_trl.rewards import (
    REWARD_FUNCS,
    _timeout,
    completion_text,
    format_reward,
    get_reward_funcs,
    math_accuracy_reward,
    multiple_choice_reward,
)


def test_math_reward_on_strings():
    completions = [
        "<think>1/2 is 0.5</think> The answer is \\boxed{\\frac{1}{2}}.",
        "<think>hmm</think> The answer is $0.5$.",
        "no closing tag, but \\boxed{0.5}",  # the paper's reward requires </think>
        "<think>hmm</think> \\boxed{3}",
        "<think>the box in the reasoning does not count \\boxed{0.5}</think> so 7",
        "",
    ]
    assert math_accuracy_reward(completions, ["0.5"] * 6) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]


def test_math_reward_on_conversations():
    completions = [
        [{"role": "assistant", "content": "<think>x</think> \\boxed{2}"}],
        [
            {"role": "user", "content": "</think> \\boxed{2}"},
            {"role": "assistant", "content": "<think>x</think> \\boxed{5}"},
        ],
        [{"role": "assistant", "content": [{"type": "text", "text": "</think> \\boxed{2}"}]}],
        [{"role": "user", "content": "</think> \\boxed{2}"}],  # no assistant message
    ]
    assert math_accuracy_reward(completions, ["2", "2", "2", "2"]) == [1.0, 0.0, 1.0, 0.0]


def test_completion_text():
    assert completion_text("abc") == "abc"
    assert completion_text({"role": "assistant", "content": "x"}) == "x"
    assert completion_text([{"role": "assistant", "content": None}]) == ""
    assert completion_text(None) == ""


def test_math_reward_output_length_and_values():
    assert math_accuracy_reward([], []) == []
    completions = [f"</think> \\boxed{{{i}}}" for i in range(7)]
    scores = math_accuracy_reward(completions, [str(i % 2) for i in range(7)])
    assert scores == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="solutions"):
        math_accuracy_reward(completions, ["1"])
    with pytest.raises(ValueError, match="solution"):
        math_accuracy_reward(completions)


def test_math_reward_ignores_trl_kwargs():
    scores = math_accuracy_reward(
        ["</think> \\boxed{4}"], ["4"], prompts=["p"], completion_ids=[[1, 2]], trainer_state=None
    )
    assert scores == [1.0]


def test_unparseable_or_empty_gold_scores_zero_and_warns_once(monkeypatch):
    import srft_trl.rewards

    monkeypatch.setattr(srft_trl.rewards, "_warned_golds", set())  # other tests may have warned for these golds
    completions = ["</think> \\boxed{3}"] * 2
    with pytest.warns(RuntimeWarning, match=r"\\\\text\{\}"):
        assert math_accuracy_reward(completions, ["\\text{}", "\\text{}"]) == [0.0, 0.0]
    with pytest.warns(RuntimeWarning, match="is empty"):
        assert math_accuracy_reward(completions, ["", None]) == [0.0, 0.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning for the same gold would raise here
        assert math_accuracy_reward(completions[:1], ["\\text{}"]) == [0.0]


def test_numeric_gold_is_accepted():
    # AMC golds are floats such as 142.0 in the Hub data set.
    assert math_accuracy_reward(["</think> \\boxed{142}"], [142.0]) == [1.0]


def test_two_megabyte_completions_return():
    reasoning = "<think>" + "let me think. " * 150_000 + "</think>"
    assert len(reasoning) > 2_000_000
    assert math_accuracy_reward([reasoning + " \\boxed{12}"], ["12"]) == [1.0]
    bomb = "</think>" + "\\frac{1}{" * 230_000 + "2" + "}" * 230_000
    assert len(bomb) > 2_000_000
    assert math_accuracy_reward([bomb], ["1"], reward_timeout_s=3) in ([0.0], [1.0])


def test_hostile_completions_score_zero():
    completions = [
        "</think> \\boxed{" + "9^{" * 500 + "9" + "}" * 500 + "}",
        "</think> \\boxed{" + "(" * 5000 + "1" + ")" * 5000 + "}",
        "</think> \\boxed{__import__('os').system('echo pwned')}",
    ]
    assert math_accuracy_reward(completions, ["1", "2", "3"], reward_timeout_s=3) == [0.0] * 3


def test_reward_from_a_thread():
    out = {}
    thread = threading.Thread(
        target=lambda: out.setdefault("s", math_accuracy_reward(["</think>\\boxed{5}"], ["5"]))
    )
    thread.start()
    thread.join()
    assert out["s"] == [1.0]


def test_timeout_setting(monkeypatch):
    monkeypatch.delenv("SRFT_REWARD_TIMEOUT_S", raising=False)
    assert _timeout({}) == 5.0
    monkeypatch.setenv("SRFT_REWARD_TIMEOUT_S", "2.5")
    assert _timeout({}) == 2.5
    assert _timeout({"reward_timeout_s": 7}) == 7.0


def test_multiple_choice_reward():
    completions = [
        "<think>B or C</think> \\boxed{C}",
        "<think>x</think> Answer: (c)",
        "\\boxed{C}",  # no </think>
        "<think>x</think> Answer: E",
        [{"role": "assistant", "content": "<think>x</think> The answer is J."}],
    ]
    scores = multiple_choice_reward(completions, ["C", "c", "C", "C", "J"])
    assert scores == [1.0, 1.0, 0.0, 0.0, 1.0]
    with pytest.warns(RuntimeWarning, match="'Z'"):
        assert multiple_choice_reward(["</think> \\boxed{Z}"], ["Z"]) == [0.0]


def test_format_reward():
    completions = [
        "<think>a</think> \\boxed{1}",
        "a</think> \\boxed{1}",  # <think> was in the prompt
        "<think>a</think> 1",
        "<think>a \\boxed{1}",
        "<think>a</think> \\boxed{1} </think>",
        "</think><think>a \\boxed{1}",
        "<think>a</think> \\boxed{ }",
    ]
    assert format_reward(completions) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def test_registry():
    assert set(REWARD_FUNCS) == {"math_accuracy", "multiple_choice", "format", "exact_answer"}
    assert get_reward_funcs(["math_accuracy", "format"]) == [math_accuracy_reward, format_reward]
    assert get_reward_funcs("multiple_choice") == [multiple_choice_reward]
    with pytest.raises(ValueError, match="accuracy_typo"):
        get_reward_funcs(["math_accuracy", "accuracy_typo"])
