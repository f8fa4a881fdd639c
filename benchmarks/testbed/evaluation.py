"""Held-out accuracy of a model on a list of problems: one sample per problem at the paper's evaluation
temperature (0.6, its pass@1), exact-match grading.

Generation goes through the product's batched generation (one place: `sample_completions`), under a fixed
seed, so an evaluation is reproducible.
Grading is `exact_answer_reward`, which is also the training reward, so held-out accuracy means
exactly what the training reward means.
"""

from __future__ import annotations

from .problems import Problem


def exact_answer_reward(completions, solution, **kwargs) -> list[float]:
    """TRL reward function: 1.0 iff the text after `</think>` has a `\\boxed{}` holding the gold integer.

    Written here instead of using `srft_trl.rewards.math_accuracy_reward` (Math-Verify in worker
    processes): the answers are plain integers, for which exact match and Math-Verify agree, and
    a training step of this tiny model takes about as long as dispatching its completions to the
    grading workers would.
    """
    from srft_trl.grading import answer_after_think, extract_boxed
    from srft_trl.rewards import completion_text

    scores = []
    for completion, gold in zip(completions, solution):
        answer = answer_after_think(completion_text(completion), require_think=True)
        boxed = extract_boxed(answer) if answer is not None else None
        scores.append(1.0 if boxed is not None and boxed.strip() == str(gold).strip() else 0.0)
    return scores


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
