"""Held-out accuracy of a model on a list of problems: one sample per problem at the paper's evaluation
temperature (0.6, its pass@1), exact-match grading.

Generation goes through the product's batched generation (one place: `sample_completions`), under a fixed
seed, so an evaluation is reproducible.
Grading is `srft_trl.rewards.exact_answer_reward`, which is also the training reward, so held-out accuracy means
exactly what the training reward means.
"""

from __future__ import annotations

from srft_trl.rewards import exact_answer_reward  # noqa: F401  (the training reward, re-exported)
from srft_trl.tasks.digit_chains import Problem


def chat_prompt(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


def sample_completions(model, tokenizer, questions: list[str], max_new_tokens: int, temperature: float,
                       seed: int = 0, batch_size: int = 128) -> list[str]:
    from srft_trl.generation import generate, render_prompt

    texts = [render_prompt(tokenizer, chat_prompt(q)) for q in questions]
    responses = generate(model, tokenizer, texts, max_new_tokens=max_new_tokens, temperature=temperature,
                         batch_size=batch_size, seed=seed)
    return [samples[0] for samples in responses]


def accuracy(model, tokenizer, problems: list[Problem], max_new_tokens: int, temperature: float,
             examples: int = 3) -> dict:
    """Accuracy (and what the answers look like) of one sample per problem at `temperature` (0: greedy)."""
    completions = sample_completions(model, tokenizer, [p.question for p in problems], max_new_tokens, temperature)
    scores = exact_answer_reward(completions, [p.answer for p in problems])
    n = len(scores)
    acc = sum(scores) / n
    return {
        "accuracy": acc,
        "n": n,
        # Per-problem outcomes (question -> 1/0): every comparison is recomputed from these (stats.run_accuracy).
        "outcomes": {p.question: int(s) for p, s in zip(problems, scores)},
        "stderr": (acc * (1 - acc) / n) ** 0.5,
        "uses_procedure": sum("=" in c.split("</think>")[0] for c in completions) / n,
        "mean_chars": sum(len(c) for c in completions) / n,
        "examples": [{"question": p.question, "completion": c, "score": s}
                     for p, c, s in list(zip(problems, completions, scores))[:examples]],
    }
