"""`python -m benchmarks.testbed.pilot [--regime signal]`: how often a regime's base solves each family.

Pre-trains (or reuses from the cache) the regime's base for every base seed asked for and samples one completion per
problem at the rollout temperature (1.0) and the evaluation temperature, on problems of the study's half that no
held-out set uses (a separate stream: no test or validation problem is looked at). Used once, before any
comparative run, to choose a regime whose ID rollouts succeed about 30-60% of the time (issue 21).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .__main__ import DEFAULT_CACHE
from .problems import take, unique_stream
from .settings import REGIMES, heldout_questions


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.testbed.pilot", description=__doc__)
    parser.add_argument("--regime", default="signal", choices=sorted(REGIMES))
    parser.add_argument("--base-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--problems", type=int, default=200, help="problems per family (default 200)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    if args.problems < 1:
        parser.error("--problems must be at least 1")

    from .base import ensure_base
    from .evaluation import accuracy
    from .runs import _quiet, worker_init

    worker_init()
    _quiet()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    settings = REGIMES[args.regime]
    exclude = heldout_questions(settings)
    families = {"id": settings.id_terms, "zero": settings.zero_terms, "ood": settings.ood_terms}
    problems = {f: take(unique_stream(5000 + terms[0], terms, exclude), args.problems) for f, terms in families.items()}
    report = {"regime": args.regime, "problems_per_family": args.problems, "bases": {}}
    for seed in args.base_seeds:
        start = time.time()
        path = ensure_base(settings.for_base(seed).base, args.cache, log=print)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        cells = {}
        for temperature in (1.0, settings.eval_temperature):
            for fam, ps in problems.items():
                cells[f"{fam}@{temperature:g}"] = accuracy(model, tokenizer, ps, settings.eval_max_new_tokens,
                                                           temperature, examples=0)["accuracy"]
        report["bases"][seed] = {"path": str(path), "accuracy": cells, "seconds": time.time() - start}
        print(f"base seed {seed}: " + " ".join(f"{k} {100 * v:.1f}" for k, v in cells.items()), flush=True)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
