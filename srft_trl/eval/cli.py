"""`srft-trl eval`: the command-line face of `srft_trl.eval.evaluate`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..console import quiet_on_closed_pipe
from .backends import ContextOverflowError
from .benchmarks import BENCHMARKS, SAMPLES
from .prompts import TEMPLATES, THINK_POLICIES
from .runner import DEFAULT_BENCHMARKS, evaluate

__all__ = ["build_parser", "main"]


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _ints(value: str) -> list[int]:
    return [int(part) for part in _csv(value)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srft-trl eval",
        description="Evaluate a model on the SRFT paper's benchmarks with its protocol "
        "(temperature 0.6, top_p 1.0, 8,192 new tokens; avg@32 on AIME24/AMC, pass@1 elsewhere). "
        "Flags are accepted in kebab-case or snake_case (--max-new-tokens, --max_new_tokens).",
    )
    parser.add_argument("--model", help="checkpoint directory or Hub id")
    parser.add_argument("--benchmarks", type=_csv, default=list(DEFAULT_BENCHMARKS),
                        help=f"comma-separated (default: {','.join(DEFAULT_BENCHMARKS)})")
    parser.add_argument("--list-benchmarks", action="store_true", help="list the registered benchmarks and exit")
    parser.add_argument("--n", type=int, default=None,
                        help="samples per problem for every benchmark (default: 32 for AIME24/AMC, 1 otherwise)")
    parser.add_argument("--pass-k", type=_ints, default=None, help="k values for pass@k (default 1,2,4,...,n)")
    parser.add_argument("--backend", choices=["auto", "vllm", "transformers"], default="auto",
                        help="auto: vLLM when installed and a GPU is visible, else transformers")

    prompting = parser.add_argument_group("prompting and grading")
    prompting.add_argument("--template", choices=TEMPLATES, default="srft",
                           help="srft: the paper's training template; qwen_math: Qwen-Math CoT; own: the model's "
                                "chat template; none: raw question")
    prompting.add_argument("--think-policy", choices=THINK_POLICIES, default="auto",
                           help="require: no </think>, no credit (as in training); optional; auto: require for srft")
    prompting.add_argument("--no-shuffle", action="store_true", help="keep multiple-choice options in source order")
    prompting.add_argument("--grade-timeout", type=float, default=10.0, help="seconds allowed to grade one sample")

    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--temperature", type=float, default=0.6)
    sampling.add_argument("--top-p", type=float, default=1.0)
    sampling.add_argument("--max-new-tokens", type=int, default=8192)
    sampling.add_argument("--seed", type=int, default=0)

    data = parser.add_argument_group("data and outputs")
    data.add_argument("--data-dir", help="read <benchmark>.jsonl|json|parquet|csv from here instead of the Hub")
    data.add_argument("--data", action="append", default=[], metavar="NAME=PATH",
                      help="read one benchmark from a local file (repeatable)")
    data.add_argument("--limit", type=int, default=None, help="only the first N items of each benchmark")
    data.add_argument("--output-dir", help="default: eval_results/<model name>")
    data.add_argument("--cache-dir", help="generation cache root (default: <output-dir>/cache)")
    data.add_argument("--no-cache", action="store_true", help="neither read nor write the generation cache")
    data.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    engine = parser.add_argument_group("backend")
    engine.add_argument("--tensor-parallel-size", type=int, default=None, help="vLLM: GPUs per model")
    engine.add_argument("--max-model-len", type=int, default=None,
                        help="context window (default: the model's); prompt + budget beyond it is truncated or fails")
    engine.add_argument("--context-overflow", choices=["truncate", "error"], default="truncate",
                        help="when prompt + max-new-tokens exceeds the window: shorten the budget, or fail")
    engine.add_argument("--hf-overrides", type=json.loads, default=None,
                        help="JSON config attributes to override at load time (vLLM's hf_overrides), "
                             'e.g. \'{"max_position_embeddings": 16384}\'')
    engine.add_argument("--rope-theta", type=float, default=None,
                        help="set the RoPE base at load time (with --max-model-len, also the position window); "
                             "the paper's Qwen2.5-Math-7B extension is --rope-theta 40000 --max-model-len 16384")
    engine.add_argument("--gpu-memory-utilization", type=float, default=None,
                        help="vLLM: fraction of GPU memory (default 0.9), or of RAM on a CPU-only machine (default 0.05)")
    engine.add_argument("--enforce-eager", action="store_true", default=None, help="vLLM: no CUDA graphs")
    engine.add_argument("--chunk-size", type=int, default=None, help="vLLM: prompts per submitted chunk (cache granularity)")
    engine.add_argument("--dtype", default=None, help="auto, bfloat16, float16, float32")
    engine.add_argument("--device", default=None, help="transformers: cpu, cuda, cuda:1, ...")
    engine.add_argument("--batch-size", type=int, default=None, help="transformers: sequences per generate call")
    engine.add_argument("--revision", default=None)
    engine.add_argument("--trust-remote-code", action="store_true", default=None)
    return parser


def _data_sources(args) -> dict[str, str] | str | None:
    if not args.data:
        return args.data_dir
    sources = {}
    for spec in args.data:
        name, sep, path = spec.partition("=")
        if not sep:
            raise ValueError(f"--data expects NAME=PATH, got {spec!r}")
        sources[name.strip()] = path.strip()
    if args.data_dir:
        for name in args.benchmarks:
            sources.setdefault(name, args.data_dir)
    return sources


def _kebab_flags(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """`--max_new_tokens` as `--max-new-tokens`: flags in either case, as `srft-trl train` takes them."""
    out = []
    for token in argv:
        if token.startswith("--") and "_" in token:
            flag, sep, value = token.partition("=")
            kebab = flag.replace("_", "-")
            if kebab in parser._option_string_actions:
                token = kebab + sep + value
        out.append(token)
    return out


def _fail(message: str) -> int:
    print(f"srft-trl eval: error: {message}", file=sys.stderr)
    return 2


@quiet_on_closed_pipe
def main(argv: list[str] | None = None) -> int:
    """Run `srft-trl eval`; returns the exit status (2 and one line for a user error)."""
    from ..models import check_model_reference, shipped_model

    parser = build_parser()
    args = parser.parse_args(_kebab_flags(list(sys.argv[1:] if argv is None else argv), parser))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("srft_trl").setLevel(logging.INFO)
    if args.list_benchmarks:
        for name, b in BENCHMARKS.items():
            print(f"{name:14s} {b.kind:4s} {b.group:16s} n={b.n:<3d} {b.hub_id}"
                  f"{'/' + b.config if b.config else ''} ({b.split})")
        return 0
    if not args.model:
        parser.error("--model is required")
    try:
        check_model_reference(args.model, what="--model")
        shipped = shipped_model(args.model)
    except FileNotFoundError as error:
        return _fail(str(error))
    args.model_label = args.model if shipped else None  # `digit_chains_base`: results named so, loaded from the package
    args.model = str(shipped) if shipped else args.model
    unknown = [name for name in args.benchmarks if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(unknown)} (see --list-benchmarks)")

    backend_kwargs = {
        key: getattr(args, key)
        for key in ("tensor_parallel_size", "max_model_len", "context_overflow", "hf_overrides", "rope_theta",
                    "gpu_memory_utilization", "enforce_eager", "chunk_size", "dtype", "device", "batch_size",
                    "revision", "trust_remote_code")
        if getattr(args, key) is not None
    }
    try:
        sources = _data_sources(args)
    except ValueError as error:
        return _fail(str(error))
    named = sources.values() if isinstance(sources, dict) else [sources] if sources else []
    missing = [path for path in named if path != SAMPLES and not Path(path).expanduser().exists()]
    if missing:  # before the model is loaded
        return _fail(f"no such data file or folder: {missing[0]}")
    try:
        summary = _evaluate(args, sources, backend_kwargs)
    except (FileNotFoundError, ContextOverflowError) as error:  # a data path, or prompts the model's context can't hold
        return _fail(str(error))
    for name, result in summary["benchmarks"].items():
        print(f"{name}: {result['metric']} = {100 * result['score']:.1f}")
    for group, average in summary.get("averages", {}).items():
        print(f"average {group}: {100 * average['score']:.1f}{'' if average['complete'] else ' (partial)'}")
    print(f"outputs: {summary['output_dir']} (per-sample JSONL, summary.json, results.md)")
    return 0


def _evaluate(args, sources, backend_kwargs) -> dict:
    return evaluate(
        args.model,
        args.benchmarks,
        backend=args.backend,
        n=args.n,
        template=args.template,
        think_policy=args.think_policy,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        limit=args.limit,
        data=sources,
        output_dir=args.output_dir,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        pass_k=args.pass_k,
        shuffle_options=not args.no_shuffle,
        grade_timeout=args.grade_timeout,
        progress=not args.no_progress,
        backend_kwargs=backend_kwargs,
        model_label=getattr(args, "model_label", None),
    )


if __name__ == "__main__":
    sys.exit(main())
