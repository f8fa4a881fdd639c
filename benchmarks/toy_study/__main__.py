"""`python -m benchmarks.toy_study [--quick] [--out DIR]`: the SRFT toy study, end to end.

1. pre-train (or reuse from the cache) the weak base model;
2. evaluate it and measure its entropy scale;
3. train every (method, seed) from that base in `--workers` processes (one torch thread each),
   skipping runs whose result JSON already exists (resume);
4. write `results.json`, `results.md`, the PNG plots and `command.txt` into `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

from .methods import METHODS
from .runs import run_one, worker_init
from .settings import FULL, QUICK

DEFAULT_OUT = Path("benchmarks/results/toy_study")
DEFAULT_CACHE = Path(os.environ.get("SRFT_TOY_CACHE", Path.home() / ".cache" / "srft_trl" / "toy_study"))


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _load_avg():
    try:
        return os.getloadavg()
    except OSError:
        return None


def _git_commit() -> str | None:
    """The checked-out commit (read only), so a result can be traced to the code that made it."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "srft_trl"], capture_output=True, text=True,
                               timeout=10)
        return head.stdout.strip() + ("+dirty(srft_trl)" if dirty.stdout.strip() else "") if head.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _fmt_load(load) -> str:
    return "?" if not load else "/".join(f"{x:.1f}" for x in load)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.toy_study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 3 methods, 4 steps (< 10 min)")
    parser.add_argument("--out", type=Path, default=None, help=f"output folder (default {DEFAULT_OUT}; "
                        "--quick defaults to $TMPDIR/srft_toy_study_quick)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="base-model cache folder")
    parser.add_argument("--workers", type=int, default=None, help="parallel run processes (default 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--methods", nargs="+", default=None, choices=list(METHODS))
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per method")
    parser.add_argument("--prompts-per-step", type=int, default=None, help="prompts per optimizer step (default 4)")
    parser.add_argument("--learning-rate", type=float, default=None, help="shared learning rate (default 1e-4)")
    parser.add_argument("--reward", choices=["math_verify", "exact"], default=None,
                        help="training/eval reward: the product's math_accuracy_reward (default) or exact match")
    parser.add_argument("--report-only", action="store_true", help="rebuild tables/plots from existing runs")
    args = parser.parse_args(argv)

    settings = QUICK if args.quick else FULL
    if args.workers is not None:
        settings = replace(settings, workers=args.workers)
    if args.seeds:
        settings = replace(settings, seeds=tuple(args.seeds))
    if args.methods:
        settings = replace(settings, methods=tuple(args.methods))
    if args.steps:
        settings = replace(settings, steps=args.steps)
    if args.reward:
        settings = replace(settings, reward=args.reward)
    if args.learning_rate is not None:
        settings = replace(settings, learning_rate=args.learning_rate)
    if args.prompts_per_step is not None:
        settings = replace(settings, prompts_per_step=args.prompts_per_step)
    out = args.out or (Path(tempfile.gettempdir()) / "srft_toy_study_quick" if args.quick else DEFAULT_OUT)
    out.mkdir(parents=True, exist_ok=True)
    runs_dir = out / "runs"
    runs_dir.mkdir(exist_ok=True)
    command = ("python -m benchmarks.toy_study " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    # Invocations that trained runs into this folder (a resumed study has several); --report-only adds none.
    invocations = []
    if (out / "results.json").exists():
        old = json.loads((out / "results.json").read_text())
        invocations = old.get("invocations") or ([old["invocation"]] if old.get("invocation") else [])
        if not invocations and old.get("command"):  # the first layout of results.json
            invocations = [{"command": old["command"], "wall_seconds": old.get("wall_seconds_this_invocation"),
                            "load_average_start": old.get("load_average_start"),
                            "load_average_end": old.get("load_average_end"), "runs": None}]
    if not args.report_only and not (out / "command.txt").exists():  # a resumed study keeps its first command
        (out / "command.txt").write_text(command + "\n")

    import torch

    torch.set_num_threads(1)
    worker_init()
    from .base import ensure_base
    from .runs import atomic_write_json, evaluate_base

    start = time.time()
    load_start = _load_avg()
    base_path = ensure_base(settings.base, args.cache, log=_log)
    _log(f"base model: {base_path}")
    base_json = runs_dir / "base.json"
    if not base_json.exists() and not args.report_only:
        base = evaluate_base(settings, str(base_path), str(base_json))
        _log(f"base: test {base['test_accuracy']:.2f} ood {base['ood_accuracy']:.2f} "
             f"demo entropy {base['demo_token_entropy']}")

    key = f"{settings.reward}-s{settings.steps}-p{settings.prompts_per_step}-b{settings.base.key()}"
    if settings.learning_rate != FULL.learning_rate:
        key += f"-lr{settings.learning_rate:g}"
    jobs = []
    for seed in settings.seeds:
        for method in settings.methods:
            path = runs_dir / f"{method}-seed{seed}-{key}.json"
            if not path.exists():
                jobs.append((method, seed, path))
    _log(f"{len(jobs)} runs to do ({len(settings.methods) * len(settings.seeds) - len(jobs)} already done), "
         f"{settings.workers} workers")
    failures = []
    if jobs and not args.report_only:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=settings.workers, mp_context=context, initializer=worker_init) as pool:
            futures = {pool.submit(run_one, m, s, settings, str(base_path), str(p)): (m, s) for m, s, p in jobs}
            for future in as_completed(futures):
                m, s = futures[future]
                try:
                    r = future.result()
                    _log(f"done {m} seed {s}: test {r['test_accuracy']:.2f} ood {r['ood_accuracy']:.2f} "
                         f"({r['total_seconds']:.0f}s wall, {r['cpu_seconds']:.0f}s cpu)")
                except Exception as exc:  # keep going: report the failure, the rest of the study still runs
                    failures.append(f"{m} seed {s}: {exc!r}")
                    _log(f"FAILED {m} seed {s}: {exc!r}")

    from .report import markdown_tables, plot_figures, summarize

    results = {"settings": settings.to_dict(), "base_path": str(base_path), "runs": {}, "failures": failures}
    if base_json.exists():
        results["base"] = json.loads(base_json.read_text())
    for method in settings.methods:
        runs = []
        for seed in settings.seeds:
            path = runs_dir / f"{method}-seed{seed}-{key}.json"
            if path.exists():
                runs.append(json.loads(path.read_text()))
        if runs:
            results["runs"][method] = runs
    any_run = next((r for runs in results["runs"].values() for r in runs), None)
    results["eval_sizes"] = {s: any_run["eval"][s]["n"] for s in ("test", "ood")} if any_run else {}
    summary = summarize(results)
    results["summary"] = summary
    if jobs and not args.report_only:
        invocations.append({"command": command, "wall_seconds": time.time() - start, "runs": len(jobs),
                            "git_commit": _git_commit(),
                            "load_average_start": load_start, "load_average_end": _load_avg(),
                            "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")})
    results["invocations"] = invocations
    results["cpu_seconds_runs"] = sum(r.get("cpu_seconds", 0) for runs in results["runs"].values() for r in runs)
    table = markdown_tables(results, summary)
    plots = plot_figures(results, out)
    commands = sorted({inv["command"] for inv in invocations}) or [command]
    md = ["# SRFT toy study: results\n\n", "Command: " + ", ".join(f"`{c}`" for c in commands) + "\n\n",
          "Set-up, the reading of these numbers (what reproduced, what did not, and why) and the follow-up "
          "investigations: `benchmarks/toy_study/README.md`.\n\n", table]
    if failures:
        md.append("\n### Failed runs\n\n" + "\n".join(f"* {f}" for f in failures) + "\n")
    for inv in invocations:
        md.append(f"\nInvocation `{inv['command']}`: {inv.get('runs') or 'all'} runs in "
                  f"{(inv.get('wall_seconds') or 0) / 60:.1f} min wall, load average (1/5/15 min) at start "
                  f"{_fmt_load(inv.get('load_average_start'))}, at end {_fmt_load(inv.get('load_average_end'))} "
                  f"(2 cores, shared with other jobs); code: commit {inv.get('git_commit') or '?'}.\n")
    md.append(f"\nCPU time of the run processes (graders excluded): {results['cpu_seconds_runs'] / 60:.1f} min.\n")
    md.append("\nPlots: " + ", ".join(f"`{Path(p).name}`" for p in plots) + ". Per-run JSON (full per-step "
              "histories, sample completions): `runs/`.\n")
    (out / "results.md").write_text("".join(md))
    atomic_write_json(out / "results.json", slim(results))
    _log(f"wrote {out / 'results.md'}")
    print(table)
    return 1 if failures else 0


_KEEP = ("step", "stage", "loss", "reward", "reward_std", "entropy", "completions/mean_length",
         "frac_reward_zero_std", "learning_rate", "grad_norm", "mean_token_accuracy")


def slim(results: dict) -> dict:
    """results.json without the bulky parts (full histories and samples stay in runs/*.json)."""
    out = dict(results)
    out["runs"] = {}
    for name, runs in results["runs"].items():
        out["runs"][name] = []
        for run in runs:
            run = dict(run)
            run["eval"] = {s: {k: v for k, v in e.items() if k != "examples"} for s, e in run["eval"].items()}
            run["history"] = [
                {k: (round(v, 5) if isinstance(v, float) else v) for k, v in h.items()
                 if k in _KEEP or k.startswith("srft/")}
                for h in run["history"]
            ]
            out["runs"][name].append(run)
    return out


if __name__ == "__main__":
    sys.exit(main())
