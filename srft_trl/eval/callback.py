"""`EvalCallback`: evaluate held-out problems during training and log their accuracy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from transformers import TrainerCallback

from .backends import SamplingConfig, TransformersBackend
from .benchmarks import Benchmark, Item, get_benchmark, load_items
from .runner import run_benchmark

__all__ = ["EvalCallback"]


def _to_item(index: int, problem: Item | Mapping[str, Any]) -> Item:
    if isinstance(problem, Item):
        return problem
    question = problem.get("question", problem.get("problem"))
    gold = problem.get("answer", problem.get("gold"))
    if question is None or gold is None:
        raise ValueError("a held-out problem needs 'question' (or 'problem') and 'answer' (or 'gold')")
    return Item(id=str(problem.get("id", index)), question=str(question), gold=str(gold), kind="math")


class EvalCallback(TrainerCallback):
    """Every `eval_steps` optimizer steps (and on each `evaluate`), sample `n` answers to
    held-out problems with the model being trained, grade them, and log the accuracy.

    Metrics go through `trainer.log` when a trainer is given (so W&B, TensorBoard and the
    console see them; `eval_`-prefixed keys land in the `eval/` section), else into
    `state.log_history`. Generation uses the transformers backend on the training model,
    in eval mode and with its own RNG stream, and restores train mode afterwards; it runs on
    every process (a sharded model needs all of them), and `trainer.log` reports from the main one.

    Args:
        problems: held-out math problems as dicts with `question`/`problem` and `answer`, or
            `Item`s, or a benchmark name / `Benchmark` (read from `data` or the Hub).
        eval_steps: evaluate when `global_step % eval_steps == 0`; None only on `evaluate`.
        name: metric infix: keys are `eval_<name>_accuracy`, `eval_<name>_math_verify`, ...
        limit: with a benchmark, the number of its items used.
    """

    def __init__(
        self,
        problems: Sequence[Item | Mapping[str, Any]] | str | Benchmark,
        *,
        eval_steps: int | None = 100,
        n: int = 1,
        tokenizer=None,
        trainer=None,
        name: str = "heldout",
        template: str = "srft",
        think_policy: str = "auto",
        temperature: float = 0.6,
        top_p: float = 1.0,
        max_new_tokens: int = 1024,
        seed: int = 0,
        grade_timeout: float = 10.0,
        data: str | None = None,
        limit: int | None = None,
        on_evaluate: bool = True,
    ):
        if isinstance(problems, (str, Benchmark)):
            self.benchmark = get_benchmark(problems)
            items = load_items(self.benchmark, data, limit=limit, seed=seed)
        else:
            items = [_to_item(i, p) for i, p in enumerate(problems)]
            self.benchmark = Benchmark(name, name, "math", "", question="question", gold="answer")
        self.items = items
        self.eval_steps = eval_steps
        self.n = n
        self.tokenizer = tokenizer
        self.trainer = trainer
        self.name = name
        self.template = template
        self.think_policy = think_policy
        self.sampling = SamplingConfig(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
        self.seed = seed
        self.grade_timeout = grade_timeout
        self.evaluate_on_evaluate = on_evaluate
        self.last_metrics: dict[str, float] | None = None
        self._last_step: int | None = None

    def attach(self, trainer) -> EvalCallback:
        """Log through `trainer.log` (the same as passing `trainer=` at construction)."""
        self.trainer = trainer
        return self

    def run(self, model, tokenizer=None) -> dict[str, float]:
        """Evaluate `model` on the held-out problems now; return the metrics (not logged)."""
        tokenizer = tokenizer or self.tokenizer
        if tokenizer is None and self.trainer is not None:
            tokenizer = getattr(self.trainer, "processing_class", None)
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor wraps its tokenizer
        backend = TransformersBackend(model, tokenizer)
        _, result = run_benchmark(
            backend, self.benchmark, self.items, n=self.n, sampling=self.sampling, template=self.template,
            # The same seed at every step: sampling noise is held fixed, so changes reflect the model.
            think_policy=self.think_policy, seed=self.seed, grade_timeout=self.grade_timeout,
            pass_ks=[1], progress=False,
        )
        prefix = f"eval_{self.name}"
        metrics = {f"{prefix}_accuracy": result["score"]}
        metrics.update({f"{prefix}_{grader}": value for grader, value in result["accuracy"].items()})
        if "grader_agreement" in result:
            metrics[f"{prefix}_grader_agreement"] = result["grader_agreement"]
        return metrics

    def _evaluate_and_log(self, state, model, tokenizer) -> None:
        if model is None or self._last_step == state.global_step:
            return
        self._last_step = state.global_step
        metrics = self.run(model, tokenizer)
        self.last_metrics = metrics
        if self.trainer is not None:
            self.trainer.log(dict(metrics))
        else:
            state.log_history.append({**metrics, "step": state.global_step})

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if self.eval_steps and state.global_step > 0 and state.global_step % self.eval_steps == 0:
            self._evaluate_and_log(state, model, processing_class)
        return control

    def on_evaluate(self, args, state, control, model=None, processing_class=None, **kwargs):
        if self.evaluate_on_evaluate:
            self._evaluate_and_log(state, model, processing_class)
        return control
