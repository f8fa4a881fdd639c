"""`evaluate`: generate, cache, grade and score benchmarks, then write the three outputs.

For each benchmark: load its items, render the prompts, take every finished item from the
generation cache, generate the rest (appending each to the cache as it finishes), grade every
sample in bounded worker processes, and score. Outputs, under `output_dir`:

* `<benchmark>.jsonl`: one line per sample (prompt, sample, extracted answer, gold, each
  grader's verdict, the option permutation for multiple choice);
* `summary.json`: settings, per-benchmark scores, pass@k, grader agreement, group averages;
* `results.md`: the paper's Table 2 layout with its rows beside this model's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .backends import Backend, ContextOverflowError, Request, SamplingConfig, make_backend
from .benchmarks import Benchmark, Item, data_file, get_benchmark, load_items, metric_name
from ..files import atomic_write_text
from .cache import GenerationCache
from .grade import PRIMARY_GRADER, BackgroundGrader
from .metrics import default_ks, mean, mean_pass_at_k
from .prompts import TEMPLATES, render_prompt, require_think
from .report import group_averages, markdown_report

__all__ = ["evaluate", "run_benchmark", "check_context", "request_seed", "DEFAULT_BENCHMARKS"]

logger = logging.getLogger(__name__)

DEFAULT_BENCHMARKS = ("aime24", "amc", "math500", "minerva", "olympiad", "arc_c", "gpqa_diamond", "mmlu_pro")


def request_seed(seed: int, key: str) -> int:
    """A per-item sampling seed derived from the run seed (stable across processes)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def _progress_bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="item", disable=not enabled, dynamic_ncols=True)


def run_benchmark(
    backend: Backend,
    benchmark: Benchmark,
    items: Sequence[Item],
    *,
    n: int,
    sampling: SamplingConfig,
    template: str = "srft",
    think_policy: str = "auto",
    seed: int = 0,
    cache: GenerationCache | None = None,
    grade_timeout: float = 10.0,
    pass_ks: Sequence[int] | None = None,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Generate (or reuse) and grade `n` samples per item; return the per-sample rows and the
    benchmark's scores."""
    needs_think = require_think(template, think_policy)
    prompts = {item.id: render_prompt(item, template, backend.tokenizer) for item in items}
    if len(prompts) != len(items):
        raise ValueError(f"{benchmark.name}: item ids are not unique")

    records: dict[str, dict[str, Any]] = {}
    if cache is not None:
        for item_id, record in cache.load().items():
            # Reuse only what this exact prompt produced with this n.
            if prompts.get(item_id) == record.get("prompt") and len(record.get("samples", ())) == n:
                records[item_id] = record

    graded: dict[str, list[dict[str, Any]]] = {}
    by_id = {item.id: item for item in items}
    bar = _progress_bar(len(items), benchmark.name, progress)

    def on_graded(item_id: str, verdicts: list[dict[str, Any]]) -> None:
        graded[item_id] = verdicts
        bar.set_postfix(acc=f"{mean(mean(g['correct'] for g in v) for v in graded.values()):.3f}", refresh=False)
        bar.update(1)

    grader = BackgroundGrader(on_graded, require_think=needs_think, timeout_s=grade_timeout)

    def submit(item_id: str) -> None:
        item = by_id[item_id]
        grader.submit(item_id, item.kind, records[item_id]["samples"], item.gold, item.letters)

    try:
        for item in items:
            if item.id in records:
                submit(item.id)
        pending = [Request(item.id, prompts[item.id], n, request_seed(seed, f"{benchmark.name}/{item.id}"))
                   for item in items if item.id not in records]
        if pending:
            for request, samples, info in backend.generate(pending, sampling):
                record = {"id": request.id, "prompt": request.prompt, "samples": list(samples), **info}
                if cache is not None:
                    cache.append(record)
                records[request.id] = record
                submit(request.id)
    except BaseException:
        grader.cancel()
        raise
    else:
        grader.finish()
    finally:
        bar.close()

    rows = []
    for item in items:
        record = records[item.id]
        for index, (sample, verdict) in enumerate(zip(record["samples"], graded[item.id])):
            rows.append({
                "benchmark": benchmark.name, "id": item.id, "sample_index": index, "prompt": record["prompt"],
                "sample": sample, "gold": item.gold, **verdict, "options": item.options,
                "permutation": item.permutation, "max_new_tokens": record.get("max_new_tokens"),
            })
    return rows, score_benchmark(benchmark, items, graded, n=n, pass_ks=pass_ks,
                                 clipped=sum(records[i.id].get("max_new_tokens", sampling.max_new_tokens)
                                             < sampling.max_new_tokens for i in items))


def check_context(backend: Backend, benchmark: Benchmark, items: Sequence[Item], *, template: str,
                  max_new_tokens: int, origin: str) -> None:
    """Before any generation: raise `ContextOverflowError` naming the longest prompt when a prompt fills the
    backend's context window on its own (or, with `context_overflow="error"`, leaves less than `max_new_tokens`);
    warn when budgets will be cut to fit. `origin` names where the items were read from."""
    window, tokenizer = backend.max_model_len, backend.tokenizer
    if window is None or tokenizer is None or not items:
        return
    lengths = [len(tokenizer(render_prompt(item, template, tokenizer), add_special_tokens=False)["input_ids"])
               for item in items]
    index = max(range(len(items)), key=lengths.__getitem__)
    longest = lengths[index]
    if longest + max_new_tokens <= window:
        return
    where = f"{benchmark.name} row {index + 1} (id {items[index].id}) of {origin}: {longest} tokens"
    if longest >= window:
        shorter = " a shorter --template (own or none)," if template in ("srft", "qwen_math") else ""
        raise ContextOverflowError(
            f"{sum(n >= window for n in lengths)} of {len(items)} {benchmark.name} prompts fill the model's "
            f"{window}-token context on their own, leaving no room for new tokens (longest: {where} with --template "
            f"{template}); this model cannot evaluate this set: use{shorter} a model with a longer context, "
            "or leave these rows out"
        )
    if backend.context_overflow == "error":
        raise ContextOverflowError(
            f"the longest prompt ({where}) + --max-new-tokens {max_new_tokens} exceeds the model's {window}-token "
            f"context; lower --max-new-tokens to {window - longest}, or drop --context-overflow error to cut "
            "each budget to fit"
        )
    logger.warning("%s: prompt + %d new tokens exceeds the model's %d-token context for %d of %d prompts: their "
                   "budgets are cut to fit (the longest prompt gets %d; --context-overflow error refuses instead)",
                   benchmark.name, max_new_tokens, window, sum(n + max_new_tokens > window for n in lengths),
                   len(items), window - longest)


def score_benchmark(
    benchmark: Benchmark,
    items: Sequence[Item],
    graded: Mapping[str, list[dict[str, Any]]],
    *,
    n: int,
    pass_ks: Sequence[int] | None = None,
    clipped: int = 0,
) -> dict[str, Any]:
    """Headline score (avg@n, i.e. pass@1 from n samples), per-grader accuracy, grader
    agreement, and unbiased pass@k for each k <= n."""
    verdicts = [graded[item.id] for item in items]
    counts = [sum(v["correct"] for v in samples) for samples in verdicts]
    ks = sorted({k for k in (pass_ks or default_ks(n)) if 1 <= k <= n})
    graders = ("math_verify", "oat") if benchmark.kind == "math" else ("choice",)
    flat = [v for samples in verdicts for v in samples]
    result = {
        "benchmark": benchmark.name,
        "title": benchmark.title,
        "kind": benchmark.kind,
        "group": benchmark.group,
        "n": n,
        "num_items": len(items),
        "metric": metric_name(n),
        "score": mean(c / n for c in counts),
        "accuracy": {g: mean(v[g] for v in flat) for g in graders},
        "pass_at_k": {str(k): mean_pass_at_k(n, counts, k) for k in ks},
        "grading_errors": sum("grading_error" in v for v in flat),
        "clipped_items": clipped,
    }
    if benchmark.kind == "math":
        result["grader_agreement"] = mean(v["math_verify"] == v["oat"] for v in flat)
    return result


def _source(data, name: str):
    if data is None:
        return None
    if isinstance(data, Mapping):
        return data.get(name)
    return data


def _model_label(model, backend: Backend) -> str:
    ref = model if isinstance(model, (str, os.PathLike)) else getattr(backend, "model_ref", None)
    return str(ref) if ref else type(getattr(backend, "model", backend)).__name__


def evaluate(
    model: str | os.PathLike | None = None,
    benchmarks: Sequence[str | Benchmark] | None = None,
    *,
    backend: str | Backend = "transformers",
    tokenizer=None,
    n: int | Mapping[str, int] | None = None,
    template: str = "srft",
    think_policy: str = "auto",
    temperature: float = 0.6,
    top_p: float = 1.0,
    max_new_tokens: int = 8192,
    seed: int = 0,
    limit: int | None = None,
    data: str | os.PathLike | Mapping[str, str | os.PathLike] | None = None,
    output_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    pass_k: Sequence[int] | None = None,
    shuffle_options: bool = True,
    grade_timeout: float = 10.0,
    progress: bool = True,
    backend_kwargs: Mapping[str, Any] | None = None,
    model_label: str | None = None,
) -> dict[str, Any]:
    """Evaluate a model on benchmarks with the paper's protocol; return (and write) the summary.

    Args:
        model: checkpoint path or Hub id (or a loaded model with `backend="transformers"`; pass
            `tokenizer` then). Not needed when `backend` is a `Backend` instance.
        benchmarks: names from `BENCHMARKS` (or entries); all eight of the paper by default.
        backend: `"transformers"`, `"vllm"`, `"auto"` (vLLM if installed and a GPU is visible),
            or a `Backend` instance.
        n: samples per problem, for all benchmarks or per name; each benchmark's default
            (32 for AIME24 and AMC, else 1) where not given.
        template: `srft` (the paper's training template), `qwen_math`, `own` or `none`.
        think_policy: `auto`, `require` (no `</think>`, no credit, as in training) or `optional`.
        temperature, top_p, max_new_tokens: sampling (paper: 0.6, 1.0, 8,192).
        seed: seeds both the per-item sampling and the per-item option shuffles.
        limit: evaluate only the first `limit` items of each benchmark (smoke tests).
        data: a directory with `<benchmark>.jsonl|json|parquet|csv` files, or a mapping from
            benchmark name to file, to read instead of the Hub.
        output_dir: where outputs go (default `eval_results/<model name>`).
        cache_dir: generation cache root (default `<output_dir>/cache`); `use_cache=False` disables it.
        pass_k: the k for pass@k (default 1, 2, 4, ... up to n); k > n are skipped.
        grade_timeout: wall-clock bound in seconds for grading one sample.
        backend_kwargs: passed to the backend (`tensor_parallel_size`, `max_model_len`,
            `hf_overrides`, `gpu_memory_utilization`, `dtype`, `batch_size`, ...).
    """
    if template not in TEMPLATES:
        raise ValueError(f"template must be one of {TEMPLATES}, got {template!r}")
    require_think(template, think_policy)  # validates the policy before any work
    entries = [get_benchmark(b) for b in (benchmarks or DEFAULT_BENCHMARKS)]
    sampling = SamplingConfig(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
    owns_backend = not isinstance(backend, Backend)
    if owns_backend:
        if model is None:
            raise ValueError("pass a model (path or Hub id) or a Backend instance")
        kwargs = dict(backend_kwargs or {})
        if tokenizer is not None:
            kwargs["tokenizer"] = tokenizer
        kwargs.setdefault("seed", seed)
        backend = make_backend(backend, model, **kwargs)
    label = model_label or _model_label(model, backend)
    output_dir = Path(output_dir or Path("eval_results") / Path(label.rstrip("/")).name.replace("/", "__"))
    fingerprint = backend.fingerprint() if use_cache else None
    if use_cache and fingerprint is None:
        logger.warning("the backend's model has no stable identity (an in-memory model): caching is off")
    cache_root = Path(cache_dir) if cache_dir else output_dir / "cache"

    settings = {
        "backend": backend.name, "template": template, "think_policy": think_policy,
        **sampling.to_dict(), "n": dict(n) if isinstance(n, Mapping) else n, "seed": seed, "limit": limit,
        "shuffle_options": shuffle_options, "grade_timeout": grade_timeout,
    }
    summary: dict[str, Any] = {
        "model": label,
        "output_dir": str(output_dir),
        "primary_grader": PRIMARY_GRADER,
        "settings": settings,
        "benchmarks": _previous_results(output_dir, label, settings),
    }
    try:
        loaded = []
        for benchmark in entries:  # every benchmark's data and context checked before any generation
            source = _source(data, benchmark.name)
            items = load_items(benchmark, source, limit=limit, seed=seed, shuffle=shuffle_options)
            origin = str(data_file(benchmark, source)) if source is not None else f"the Hub dataset {benchmark.hub_id}"
            check_context(backend, benchmark, items, template=template, max_new_tokens=max_new_tokens, origin=origin)
            loaded.append((benchmark, items))
        for benchmark, items in loaded:
            bench_n = (n.get(benchmark.name) if isinstance(n, Mapping) else n) or benchmark.n
            cache = None
            if fingerprint is not None:
                cache = GenerationCache(cache_root, benchmark.name, {
                    "model": fingerprint, "backend": backend.name, "template": template,
                    "sampling": sampling.to_dict(), "n": bench_n, "seed": seed, "shuffle_options": shuffle_options,
                })
            rows, result = run_benchmark(
                backend, benchmark, items, n=bench_n, sampling=sampling, template=template,
                think_policy=think_policy, seed=seed, cache=cache, grade_timeout=grade_timeout,
                pass_ks=pass_k, progress=progress,
            )
            result["results_file"] = f"{benchmark.name}.jsonl"
            if cache is not None:
                result["cache"] = str(cache.dir)
            atomic_write_text(output_dir / f"{benchmark.name}.jsonl",
                              "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
            summary["benchmarks"][benchmark.name] = result
            _write_summary(output_dir, summary)
    finally:
        if owns_backend:
            backend.close()
    return summary


def _previous_results(output_dir: Path, label: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Results already in `output_dir/summary.json` from a run of the same model with the same
    settings, so benchmarks evaluated in separate runs accumulate in one summary and table."""
    try:
        previous = json.loads((output_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    same = previous.get("model") == label and previous.get("settings") == json.loads(json.dumps(settings))
    return dict(previous.get("benchmarks", {})) if same else {}


def _write_summary(output_dir: Path, summary: dict[str, Any]) -> None:
    summary["averages"] = group_averages(summary["benchmarks"])
    atomic_write_text(output_dir / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False))
    atomic_write_text(output_dir / "results.md", markdown_report(summary))
