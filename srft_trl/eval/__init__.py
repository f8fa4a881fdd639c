"""Evaluation with the SRFT paper's protocol (Sec. 5.1, App. B).

`evaluate(model, benchmarks)` generates, caches, grades and scores; `srft-trl eval` is its CLI.
Benchmarks are declarative entries in `BENCHMARKS` (add one with `register_benchmark`); metrics
are `avg_at_k` and the unbiased `pass_at_k`; `EvalCallback` evaluates held-out problems during
training. vLLM is optional and imported only when its backend is used.
"""

from .backends import Backend, Request, SamplingConfig, TransformersBackend, VLLMBackend, make_backend
from .benchmarks import BENCHMARKS, Benchmark, Item, get_benchmark, load_items, register_benchmark
from .metrics import avg_at_k, mean_pass_at_k, pass_at_k
from .report import PAPER_TABLE2, markdown_report
from .runner import DEFAULT_BENCHMARKS, evaluate, run_benchmark

__all__ = [
    "evaluate",
    "run_benchmark",
    "pass_at_k",
    "avg_at_k",
    "mean_pass_at_k",
    "BENCHMARKS",
    "DEFAULT_BENCHMARKS",
    "Benchmark",
    "Item",
    "register_benchmark",
    "get_benchmark",
    "load_items",
    "Backend",
    "Request",
    "SamplingConfig",
    "TransformersBackend",
    "VLLMBackend",
    "make_backend",
    "PAPER_TABLE2",
    "markdown_report",
    "EvalCallback",
]


def __getattr__(name):
    # The callback pulls in transformers' Trainer machinery; load it only when asked for.
    if name == "EvalCallback":
        from .callback import EvalCallback

        return EvalCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
