"""`python -m benchmarks.testbed.reanalyse RESULTS_OR_STUDY_DIR`: the paired comparisons of a finished study,
recomputed with the training run as the unit (stats.py), without retraining.

Accepts a study folder (its `runs/*.json`, with per-problem outcomes since issue 21) or a `results.json` (the v2 study
kept only per-seed accuracies: those are used). Prints the comparison table and the gains over the base.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .report import FAMILIES, bases, comparisons
from .methods import METHODS, sweep_dependencies
from .stats import against_base, format_interval


def load(path: Path) -> dict:
    """`{"runs": {method: [run, ...]}, "bases": {seed: base}}` from a study folder or a results.json."""
    if path.is_dir():
        runs: dict[str, list] = {}
        found_bases = {}
        for p in sorted((path / "runs").glob("*.json")):
            r = json.loads(p.read_text())
            if r["method"] == "base":
                found_bases[r.get("base_seed", 0)] = r
            else:
                runs.setdefault(r["method"], []).append(r)
        results = json.loads((path / "results.json").read_text()) if (path / "results.json").exists() else {}
        chosen = results.get("learning_rates")
        if chosen:  # only the runs at each method's chosen rate(s), not the sweep's other rates
            from .__main__ import method_lrs

            runs = {m: [r for r in rs if r["learning_rates"] == method_lrs(m, chosen)] for m, rs in runs.items()
                    if m in METHODS and all(d in chosen for d in sweep_dependencies(m))}
        return {"runs": runs, "bases": found_bases}
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a study folder or a results.json")
    return json.loads(path.read_text())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.testbed.reanalyse", description=__doc__)
    parser.add_argument("source", type=Path, help="a study folder (with runs/) or its results.json")
    args = parser.parse_args(argv)
    try:
        results = load(args.source)
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        parser.error(str(exc))
    print("| A | B | " + " | ".join(FAMILIES.values()) + " |\n|---|---|---|---|---|")
    for row in comparisons(results):
        print(f"| {METHODS[row['a']].label} | {METHODS[row['b']].label} | "
              + " | ".join(format_interval(row["pooled"][f]) for f in FAMILIES) + " |")
    base_results = bases(results)
    if base_results:
        print("\n| method − its base | " + " | ".join(FAMILIES.values()) + " |\n|---|---|---|---|")
        for m, runs in results["runs"].items():
            print(f"| {METHODS[m].label} | "
                  + " | ".join(format_interval(against_base(runs, base_results, f)) for f in FAMILIES) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
