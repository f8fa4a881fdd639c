"""`python -m benchmarks.testbed [--regime default|signal] [--quick] [--resume]`: the SRFT testbed study, end to end.

1. pre-train every base of `base_seeds` (or reuse the one kept in `<out>/bases/`, checked by its weights' sha256;
   a new base is kept there), evaluate it;
2. learning-rate sweeps on the first base, seed 0, scored on the validation split only: every swept method
   (each compared method has its own; SFT → RL's two stages one after the other). A method's rate is the one with
   the best mean validation accuracy over the two trained families (ties: the smaller rate); a best rate at the
   grid's edge extends the grid by `sweep_factor` on that side until it is bracketed (at most
   `max_sweep_extensions` times). Skipped for methods given `--lr`;
3. every (method, base, seed) at its rate (the sweep's run at the chosen rate is that method's first unit);
4. tables with paired t intervals over the units (stats.py), plots and JSON into `--out`, all recomputed
   from the per-problem outcomes in `runs/`.

Every run writes `runs/<method>-seed<k>-lr<rate>-<settings key>.json` atomically (the key covers the base's
settings, its seed included); with `--resume` finished runs are skipped, so an interrupted study continues.
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

from .methods import METHODS, SWEPT, sweep_dependencies
from .settings import QUICK, REGIMES, TestbedSettings

DEFAULT_OUT = Path("benchmarks/results/testbed/v3")
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
    """The rate(s) `method` trains with: its own and its earlier stages', or those of the methods it reuses."""
    return {s: chosen[s] for s in sweep_dependencies(method)}


def needed_sweeps(methods) -> list[str]:
    return sorted({s for m in methods for s in sweep_dependencies(m)})


def validation_score(result: dict) -> float:
    val = result["eval"]["val"]
    return sum(v["accuracy"] for v in val.values()) / len(val)


def pick_lr(results: dict[float, dict]) -> float:
    """Best mean validation accuracy over the trained families; ties go to the smaller rate."""
    return max(sorted(results), key=lambda lr: (validation_score(results[lr]), -lr))


def pick_or_extend(results: dict[float, dict], settings: TestbedSettings) -> tuple[float, float | None, str]:
    """`(best rate, rate to add or None, status)`: a best rate at the grid's lower (upper) edge asks for the rate a
    factor `sweep_factor` below (above) it, unless that side was already extended `max_sweep_extensions` times."""
    best = pick_lr(results)
    grid = sorted(results)
    below = sum(r < min(settings.sweep_lrs) for r in grid)
    above = sum(r > max(settings.sweep_lrs) for r in grid)
    if len(grid) == 1:
        return best, None, "single rate"
    if best == grid[0]:
        if below < settings.max_sweep_extensions:
            return best, float(f"{best / settings.sweep_factor:.3g}"), "extending down"
        return best, None, "at the lower edge"
    if best == grid[-1]:
        if above < settings.max_sweep_extensions:
            return best, float(f"{best * settings.sweep_factor:.3g}"), "extending up"
        return best, None, "at the upper edge"
    return best, None, "bracketed"


def _run_jobs(jobs, workers: int, failures) -> None:
    """Run `(method, seed, lrs, path, settings, base_path)` jobs in `workers` processes (one torch thread each)."""
    import multiprocessing

    from .runs import run_one, worker_init

    if not jobs:
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=worker_init) as pool:
        futures = {pool.submit(run_one, m, s, lrs, st, str(bp), str(p)): (m, s, lrs, st)
                   for m, s, lrs, p, st, bp in jobs}
        for future in as_completed(futures):
            m, s, lrs, st = futures[future]
            where = f"{m} base {st.base.seed} seed {s} lr {lr_tag(lrs)}"
            try:
                r = future.result()
                test = r["eval"]["test"]
                _log(f"done {where}: " + " ".join(f"{f} {v['accuracy']:.3f}" for f, v in test.items())
                     + f" ({r['total_seconds']:.0f}s)")
            except Exception as exc:  # keep going; the failure is reported and the run is redone on --resume
                failures.append(f"{where}: {exc!r}")
                _log(f"FAILED {where}: {exc!r}")


def run_sweeps(settings: TestbedSettings, methods, fixed: dict[str, float], runs_dir: Path, base_path: Path,
               failures: list, run: bool) -> tuple[dict, dict, dict]:
    """Every sweep the study needs, on the first base and seed 0, in rounds: a method whose earlier stages have a
    rate is swept; a sweep whose best rate is at an edge gets the next rate beyond it in the next round.
    Returns `(chosen rates, validation accuracies by method and rate, status by method)`."""
    chosen, sweep, status = dict(fixed), {}, {}
    grids = {m: set(settings.sweep_lrs) for m in needed_sweeps(methods) if m not in fixed}
    while grids:
        ready = [m for m in sorted(grids) if all(d in chosen for d in sweep_dependencies(m)[:-1])]
        if not ready:
            break
        jobs, paths = [], {}
        for m in ready:
            for lr in sorted(grids[m]):
                lrs = {**{d: chosen[d] for d in sweep_dependencies(m)[:-1]}, m: lr}
                paths[(m, lr)] = path = run_path(runs_dir, m, 0, lrs, settings)
                if not path.exists():
                    jobs.append((m, 0, lrs, path, settings, base_path))
        _log(f"sweep round ({', '.join(ready)}): {len(jobs)} runs to do")
        if run:
            _run_jobs(jobs, settings.workers, failures)
        for m in ready:
            done = {lr: json.loads(p.read_text()) for (mm, lr), p in paths.items() if mm == m and p.exists()}
            sweep[m] = {f"{lr:g}": {f: v["accuracy"] for f, v in r["eval"]["val"].items()}
                        for lr, r in sorted(done.items())}
            if len(done) < len(grids[m]):
                status[m] = "incomplete"
                del grids[m]
                continue
            best, extend, status[m] = pick_or_extend(done, settings)
            if extend is None:
                chosen[m] = best
                del grids[m]
            else:
                grids[m].add(extend)
    return chosen, sweep, status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.testbed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, SFT / GRPO / SRFT, 3 steps (< 5 min)")
    parser.add_argument("--regime", default="default", choices=sorted(REGIMES),
                        help="default: today's task; signal: a stronger base and groups of 8 (README: Regimes)")
    parser.add_argument("--resume", action="store_true", help="continue the study in --out, skipping finished runs")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output folder (default {DEFAULT_OUT}/<regime>; --quick: $TMPDIR/srft_testbed_quick)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="base-model cache folder")
    parser.add_argument("--workers", type=int, default=None, help="parallel run processes (default 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--base-seeds", type=int, nargs="+", default=None, help="independently pre-trained bases")
    parser.add_argument("--methods", nargs="+", default=None, choices=[m for m in METHODS if m not in ("sft_half",)])
    parser.add_argument("--lr", nargs="+", default=[], metavar="METHOD=RATE",
                        help=f"fix a swept method's learning rate (skips its sweep); methods: {', '.join(SWEPT)}")
    parser.add_argument("--report-only", action="store_true", help="rebuild tables and plots from finished runs")
    args = parser.parse_args(argv)
    try:
        fixed = parse_lrs(args.lr)
    except ValueError as exc:
        parser.error(str(exc))
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")

    settings = QUICK if args.quick else REGIMES[args.regime]
    for name in ("workers", "seeds", "base_seeds", "methods"):
        value = getattr(args, name)
        if value:
            settings = replace(settings, **{name: tuple(value) if isinstance(value, list) else value})
    default_out = Path(tempfile.gettempdir()) / "srft_testbed_quick" if args.quick else DEFAULT_OUT / settings.regime
    out = args.out or default_out
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
    per_base = {b: settings.for_base(b) for b in settings.base_seeds}
    base_paths, bases = {}, {}
    for b, st in per_base.items():
        try:
            base_paths[b] = ensure_base(st.base, args.cache, log=_log, kept_dir=out / "bases")
        except RuntimeError as exc:  # a kept base whose weights do not match their recorded hash
            parser.error(str(exc))
        base_json = runs_dir / f"base-{st.run_key()}.json"
        if not base_json.exists() and not args.report_only:
            evaluate_base(st, str(base_paths[b]), str(base_json))
        if base_json.exists():
            bases[b] = json.loads(base_json.read_text())
            _log(f"base {b}: " + " ".join(f"{f} {v['accuracy']:.3f}" for f, v in bases[b]["eval"]["test"].items()))

    failures: list[str] = []
    # 1. Sweeps on the first base, seed 0, validation split only.
    first = settings.base_seeds[0]
    chosen, sweep, sweep_status = run_sweeps(per_base[first], settings.methods, fixed, runs_dir, base_paths[first],
                                             failures, run=not args.report_only)
    _log("learning rates: " + ", ".join(f"{m}={v:g}" for m, v in sorted(chosen.items())))

    # 2. Every (method, base, seed) at its rate.
    jobs, missing = [], []
    for index, seed in enumerate(settings.seeds):
        for b, st in per_base.items():
            for m in settings.methods:
                if METHODS[m].max_seeds is not None and index >= METHODS[m].max_seeds:
                    continue
                if any(s not in chosen for s in sweep_dependencies(m)):
                    missing.append(m)
                    continue
                lrs = method_lrs(m, chosen)
                path = run_path(runs_dir, m, seed, lrs, st)
                if not path.exists():
                    jobs.append((m, seed, lrs, path, st, base_paths[b]))
    # Table 2 rows first, then Table 3 and the rest, unit by unit, so an interrupted study has complete units.
    priority = {"main": 0, "ablation": 1, "stage": 2, "capacity": 2, "investigation": 3}
    jobs.sort(key=lambda j: (priority[METHODS[j[0]].table], settings.seeds.index(j[1]), j[4].base.seed))
    _log(f"study: {len(jobs)} runs to do")
    if not args.report_only:
        _run_jobs(jobs, settings.workers, failures)
    wall = time.time() - start

    from .report import write_report

    runs = {}
    for m in settings.methods:
        if m in missing:
            continue
        lrs = method_lrs(m, chosen)
        seeds = settings.seeds[: METHODS[m].max_seeds] if METHODS[m].max_seeds else settings.seeds
        found = [json.loads(p.read_text()) for s in seeds for st in per_base.values()
                 if (p := run_path(runs_dir, m, s, lrs, st)).exists()]
        if found:
            runs[m] = found
    results = {
        "settings": settings.to_dict(), "settings_key": settings.run_key(),
        "settings_keys_by_base": {b: st.run_key() for b, st in per_base.items()},
        "bases": bases, "learning_rates": {m: v for m, v in sorted(chosen.items())}, "fixed_by_command": sorted(fixed),
        "sweep": sweep, "sweep_status": sweep_status, "runs": runs, "failures": failures, "command": command,
    }
    write_report(results, out, wall_seconds=None if args.report_only else wall, log=_log)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
