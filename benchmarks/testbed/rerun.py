"""`python -m benchmarks.testbed.rerun STUDY/runs/RUN.json`: train one finished configuration again, from the base
kept with the study, and compare its per-problem test outcomes with the stored ones (issue 21: a kept result must be
reproducible, not only re-analysable).

The run's settings are found by its settings key among the regimes' (and `--quick`'s), its base in `STUDY/bases/`
(checked against the weights' sha256 recorded in the run). Prints one line per family and exits 0 when every outcome
is the same, 1 when any differs (the differing problems are listed, and the versions if they changed), 2 on a mistake
(one line). Bit-identical on the machine that ran the study; on another CPU, see the README's 'Reproducing a run'. The new result goes to
a temporary file unless `--keep PATH` is given; the stored run is never touched.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from .settings import QUICK, REGIMES, TestbedSettings


def settings_for(run: dict) -> TestbedSettings:
    """The settings (base seed included) whose key is the run's, or ValueError naming the key."""
    candidates = [REGIMES[run["regime"]]] if run.get("regime") in REGIMES else list(REGIMES.values())
    for settings in candidates + [QUICK]:
        st = settings.for_base(run.get("base_seed", 0))
        if st.run_key() == run["settings_key"]:
            return st
    raise ValueError(f"settings key {run['settings_key']} matches no regime of this checkout (benchmarks/testbed/"
                     "settings.py changed since the run): check out the commit the run was made with")


def kept_base(study: Path, run: dict) -> Path:
    from .base import HASH_FILE, weights_sha256

    path = study / "bases" / f"base-{run['base_key']}"
    if not (path / HASH_FILE).is_file():
        raise ValueError(f"{path}: no kept base for this run (expected next to runs/, as the study keeps it)")
    actual = weights_sha256(path)
    if actual != run["base_sha256"]:
        raise ValueError(f"{path}: weights sha256 {actual[:12]}... is not the run's {run['base_sha256'][:12]}...")
    return path


def compare_outcomes(stored: dict, again: dict) -> dict[str, list[str]]:
    """Per family: the questions whose test outcome differs between two results (empty lists: identical)."""
    out = {}
    for family, cell in stored["eval"]["test"].items():
        new = again["eval"]["test"][family]["outcomes"]
        out[family] = sorted(q for q, ok in cell["outcomes"].items() if new.get(q) != ok)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.testbed.rerun", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished run: STUDY/runs/<method>-seed<k>-lr<rate>-<key>.json")
    parser.add_argument("--keep", type=Path, default=None, help="also write the new result here")
    args = parser.parse_args(argv)
    try:
        run = json.loads(args.run.read_text())
        if run.get("method") == "base" or "outcomes" not in next(iter(run["eval"]["test"].values())):
            raise ValueError(f"{args.run}: not a v3 training run with per-problem outcomes")
        settings = settings_for(run)
        base = kept_base(args.run.resolve().parent.parent, run)
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        message = f"{args.run}: missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 2

    from .runs import run_one, worker_init

    worker_init()
    with tempfile.TemporaryDirectory() as tmp:
        target = args.keep or Path(tmp) / "again.json"
        again = run_one(run["method"], run["seed"], run["learning_rates"], settings, str(base), str(target))
    differing = compare_outcomes(run, again)
    for family, questions in differing.items():
        n = len(run["eval"]["test"][family]["outcomes"])
        before, after = run["eval"]["test"][family]["accuracy"], again["eval"]["test"][family]["accuracy"]
        print(f"{family}: accuracy {before:.3f} -> {after:.3f}, {n - len(questions)}/{n} outcomes identical"
              + (f"; differ: {', '.join(questions[:5])}{' ...' if len(questions) > 5 else ''}" if questions else ""))
    same = not any(differing.values())
    print("reproduced: every test outcome is the same" if same else "NOT reproduced: some test outcomes differ")
    changed = {k: (v, again["versions"].get(k)) for k, v in run.get("versions", {}).items()
               if again["versions"].get(k) != v}
    if changed:
        print("versions differ: " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()))
    elif not same:
        print("versions match: on another machine the float rounding of the backward pass can differ in the last "
              "bits, and sampled rollouts then diverge (benchmarks/testbed/README.md, 'Reproducing a run')")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
