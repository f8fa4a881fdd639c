"""`python -m benchmarks.testbed [--quick] [--resume]`: the SRFT testbed study, end to end.

1. pre-train (or reuse from the cache) the base model, evaluate it;
2. learning-rate sweep: every swept method, seed 0, each rate of `sweep_lrs`, scored on the
   validation split only; a method's rate is the one with the best mean validation accuracy over
   the two trained families (ties: the smaller rate). Skipped for methods given `--lr`;
3. every (method, seed) at its rate (seed-0 runs at the chosen rate are the sweep's own runs);
4. tables, plots and JSON into `--out`.

Every run writes `runs/<method>-seed<k>-lr<rate>-<settings key>.json` atomically; with `--resume`
finished runs are skipped, so an interrupted study continues where it stopped.
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

from .methods import METHODS, SWEPT
from .settings import FULL, QUICK, TestbedSettings

DEFAULT_OUT = Path("benchmarks/results/testbed")
DEFAULT_CACHE = Path(os.environ.get("SRFT_TESTBED_CACHE", Path.home() / ".cache" / "srft_trl" / "testbed"))


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_lrs(items: list[str]) -> dict[str, float]:
    lrs = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in SWEPT:
            raise ValueError(f"--lr {item}: method must be one of {SWEPT} (the others take their rate from these)")
        try:
            lrs[name] = float(value)
        except ValueError:
            raise ValueError(f"--lr {item}: expected METHOD=RATE, e.g. srft=3e-4") from None
        if not lrs[name] > 0:
            raise ValueError(f"--lr {item}: the rate must be positive")
    return lrs


def lr_tag(lrs: dict[str, float]) -> str:
    return "_".join(f"{k}{v:g}" for k, v in sorted(lrs.items()))


def run_path(runs_dir: Path, method: str, seed: int, lrs: dict[str, float], settings: TestbedSettings) -> Path:
    return runs_dir / f"{method}-seed{seed}-lr{lr_tag(lrs)}-{settings.run_key()}.json"


def method_lrs(method: str, chosen: dict[str, float]) -> dict[str, float]:
    """The rate(s) `method` trains with: its own, or those of the methods it takes them from."""
    sources = METHODS[method].lr_from or (method,)
    return {s: chosen[s] for s in sources}


def needed_sweeps(methods) -> list[str]:
    return sorted({s for m in methods for s in (METHODS[m].lr_from or (m,))})


def pick_lr(results: dict[float, dict]) -> float:
    """Best mean validation accuracy over the trained families; ties go to the smaller rate."""
    def score(lr):
        val = results[lr]["eval"]["val"]
        return sum(v["accuracy"] for v in val.values()) / len(val)

    return max(sorted(results), key=lambda lr: (score(lr), -lr))


def _run_jobs(jobs, settings, base_path, failures) -> None:
    import multiprocessing

    from .runs import run_one, worker_init

    if not jobs:
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=settings.workers, mp_context=context, initializer=worker_init) as pool:
        futures = {pool.submit(run_one, m, s, lrs, settings, str(base_path), str(p)): (m, s, lrs)
                   for m, s, lrs, p in jobs}
        for future in as_completed(futures):
            m, s, lrs = futures[future]
            try:
                r = future.result()
                test = r["eval"]["test"]
                _log(f"done {m} seed {s} lr {lr_tag(lrs)}: " + " ".join(f"{f} {v['accuracy']:.3f}" for f, v in
                     test.items()) + f" ({r['total_seconds']:.0f}s)")
            except Exception as exc:  # keep going; the failure is reported and the run is redone on --resume
                failures.append(f"{m} seed {s} lr {lr_tag(lrs)}: {exc!r}")
                _log(f"FAILED {m} seed {s}: {exc!r}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.testbed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, SFT / GRPO / SRFT, 3 steps (< 5 min)")
    parser.add_argument("--resume", action="store_true", help="continue the study in --out, skipping finished runs")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output folder (default {DEFAULT_OUT}; --quick: $TMPDIR/srft_testbed_quick)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="base-model cache folder")
    parser.add_argument("--workers", type=int, default=None, help="parallel run processes (default 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--methods", nargs="+", default=None, choices=list(METHODS))
    parser.add_argument("--lr", nargs="+", default=[], metavar="METHOD=RATE",
                        help=f"fix a swept method's learning rate (skips its sweep); methods: {', '.join(SWEPT)}")
    parser.add_argument("--report-only", action="store_true", help="rebuild tables and plots from finished runs")
    args = parser.parse_args(argv)
    try:
        fixed = parse_lrs(args.lr)
    except ValueError as exc:
        parser.error(str(exc))

    settings = QUICK if args.quick else FULL
    for name in ("workers", "seeds", "methods"):
        value = getattr(args, name)
        if value:
            settings = replace(settings, **{name: tuple(value) if isinstance(value, list) else value})
    out = args.out or (Path(tempfile.gettempdir()) / "srft_testbed_quick" if args.quick else DEFAULT_OUT)
    runs_dir = out / "runs"
    if runs_dir.is_dir() and any(runs_dir.glob("*.json")) and not (args.resume or args.report_only):
        parser.error(f"{out} already holds a study's runs; pass --resume to continue it (finished runs are kept) "
                     "or --out for a new folder")
    runs_dir.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.testbed " + " ".join(sys.argv[1:] if argv is None else argv)

    from .base import ensure_base
    from .runs import evaluate_base, worker_init

    worker_init()
    start = time.time()
    base_path = ensure_base(settings.base, args.cache, log=_log)
    base_json = runs_dir / f"base-{settings.run_key()}.json"
    if not base_json.exists() and not args.report_only:
        base = evaluate_base(settings, str(base_path), str(base_json))
        _log("base: " + " ".join(f"{f} {v['accuracy']:.3f}" for f, v in base["eval"]["test"].items()))

    failures: list[str] = []
    # 1. The sweep (seed 0, validation split) for every swept method the study needs and --lr does not fix.
    to_sweep = [m for m in needed_sweeps(settings.methods) if m not in fixed]
    sweep_jobs, sweep_files = [], {}
    for m in to_sweep:
        for lr in settings.sweep_lrs:
            path = run_path(runs_dir, m, 0, {m: lr}, settings)
            sweep_files[(m, lr)] = path
            if not path.exists():
                sweep_jobs.append((m, 0, {m: lr}, path))
    _log(f"sweep: {len(sweep_jobs)} runs to do ({len(sweep_files) - len(sweep_jobs)} done)")
    if not args.report_only:
        _run_jobs(sweep_jobs, settings, base_path, failures)
    chosen, sweep = dict(fixed), {}
    for m in to_sweep:
        done = {lr: json.loads(p.read_text()) for (mm, lr), p in sweep_files.items() if mm == m and p.exists()}
        # Every seed-0 run of this method alone, also at rates outside the grid (the first grid's run is reported).
        every = {r["learning_rates"][m]: r for p in runs_dir.glob(f"{m}-seed0-lr{m}*-{settings.run_key()}.json")
                 if len((r := json.loads(p.read_text()))["learning_rates"]) == 1}
        sweep[m] = {f"{lr:g}": {f: v["accuracy"] for f, v in r["eval"]["val"].items()} for lr, r in sorted(every.items())}
        if len(done) == len(settings.sweep_lrs):
            chosen[m] = pick_lr(done)
    _log("learning rates: " + ", ".join(f"{m}={v:g}" for m, v in sorted(chosen.items())))

    # 2. Every (method, seed) at its rate.
    jobs, missing = [], []
    for index, seed in enumerate(settings.seeds):
        for m in settings.methods:
            if METHODS[m].max_seeds is not None and index >= METHODS[m].max_seeds:
                continue
            if any(s not in chosen for s in (METHODS[m].lr_from or (m,))):
                missing.append(m)
                continue
            lrs = method_lrs(m, chosen)
            path = run_path(runs_dir, m, seed, lrs, settings)
            if not path.exists():
                jobs.append((m, seed, lrs, path))
    # Table 2 rows first, then Table 3, the capacity check and the investigation, so that an interrupted study
    # has the main comparison complete; within a group, seed by seed.
    priority = {"main": 0, "ablation": 1, "capacity": 2, "investigation": 3}
    jobs.sort(key=lambda j: (priority[METHODS[j[0]].table], j[1]))
    _log(f"study: {len(jobs)} runs to do")
    if not args.report_only:
        _run_jobs(jobs, settings, base_path, failures)
    wall = time.time() - start

    from .report import write_report

    runs = {}
    for m in settings.methods:
        if m in missing:
            continue
        lrs = method_lrs(m, chosen)
        seeds = settings.seeds[: METHODS[m].max_seeds] if METHODS[m].max_seeds else settings.seeds
        found = [json.loads(p.read_text()) for s in seeds if (p := run_path(runs_dir, m, s, lrs, settings)).exists()]
        if found:
            runs[m] = found
    results = {
        "settings": settings.to_dict(), "settings_key": settings.run_key(), "base_path": str(base_path),
        "base": json.loads(base_json.read_text()) if base_json.exists() else None,
        "learning_rates": {m: v for m, v in sorted(chosen.items())}, "fixed_by_command": sorted(fixed),
        "sweep": sweep, "runs": runs, "failures": failures, "command": command,
    }
    write_report(results, out, wall_seconds=None if args.report_only else wall, log=_log)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
