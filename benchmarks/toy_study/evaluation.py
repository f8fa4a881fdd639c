"""Held-out accuracy: greedy decoding on the shipped `test` (in-distribution) and `ood` splits.

Batched greedy generation (`srft_trl.generation.generate`) rather than `srft_trl.eval.evaluate`: that is built
for the paper's benchmarks (Hub data, the paper's prompt templates, caches and reports), while the
study needs a few hundred greedy completions of a ~1M-parameter model in a second or two. Grading
goes through the product's own reward, `srft_trl.rewards.math_accuracy_reward` (Math-Verify after
`</think>`), so held-out accuracy means exactly what the training reward means.
"""

from __future__ import annotations

from srft_trl.data import load_tiny_math


def load_split(split: str, limit: int | None = None) -> list[dict]:
    rows = list(load_tiny_math(split))
    if limit is not None:
        rows = rows[:limit]
    return [{"prompt": r["prompt"], "solution": r["solution"], "demo": r["demo"]} for r in rows]


def generate_greedy(model, tokenizer, prompts: list, max_new_tokens: int, batch_size: int = 50) -> list[str]:
    """Greedy responses, through the product's batched generation (`srft_trl.generation.generate`)."""
    from srft_trl.generation import generate, render_prompt

    texts = [render_prompt(tokenizer, p) for p in prompts]
    responses = generate(model, tokenizer, texts, max_new_tokens=max_new_tokens, temperature=0.0, batch_size=batch_size)
    return [samples[0] for samples in responses]


def accuracy(model, tokenizer, rows: list[dict], reward_fn, max_new_tokens: int) -> dict:
    completions = generate_greedy(model, tokenizer, [r["prompt"] for r in rows], max_new_tokens)
    scores = reward_fn(completions, [r["solution"] for r in rows])
    return {
        "accuracy": sum(scores) / len(scores),
        "n": len(scores),
        "mean_length": sum(len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in completions) / len(completions),
        "has_think_close": sum("</think>" in c for c in completions) / len(completions),
        "examples": [{"completion": c, "solution": r["solution"], "score": s}
                     for c, r, s in list(zip(completions, rows, scores))[:3]],
    }
