"""Run the SRFT-vs-GRPO performance benchmarks and write `report.md` (+ raw JSON) into `--out`.

    python -m benchmarks.perf --quick --out /tmp/perf     # ~30 s: tiny model, step cost only (CI smoke run)
    python -m benchmarks.perf                             # CPU: step cost, large vocabulary, scaling, profile
    python -m benchmarks.perf --gpu                       # CUDA: also Qwen2.5-0.5B/1.5B shapes in bf16, MFU

Each part can also be run on its own (`python -m benchmarks.perf.step_cost --help`, `.large_vocab`, `.scaling`,
`.profile_step`); `python -m benchmarks.perf --render` rebuilds `report.md` from the JSON already in `--out`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import common, large_vocab, profile_step, report, scaling, step_cost


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny model, one repeat, step cost only (CI smoke run)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"output folder (default {common.DEFAULT_OUT.relative_to(common.REPO_ROOT)}, /quick for --quick)")
    p.add_argument("--gpu", action="store_true", help="also run the Qwen2.5-0.5B/1.5B shapes (needs CUDA)")
    p.add_argument("--render", action="store_true", help="only rebuild report.md from the JSON in --out")
    p.add_argument("--threads", type=int, default=1, help="torch threads on CPU (1 is fastest for small models)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    argv_str = " ".join(argv if argv is not None else sys.argv[1:])
    out = args.out or (common.DEFAULT_OUT / "quick" if args.quick else common.DEFAULT_OUT)
    out.mkdir(parents=True, exist_ok=True)
    if args.render:
        report.write_report(out)
        return
    if args.quick:
        step_cost.main(["--quick", "--out", str(out)])
        report.write_report(out, quick=True, command=f"python -m benchmarks.perf {argv_str}")
        return
    step_cost.main(["--out", str(out), "--repeats", str(args.repeats), "--threads", str(args.threads)])
    large_vocab.main(["--out", str(out), "--threads", str(args.threads)])
    scaling.main(["--out", str(out), "--threads", str(args.threads)])
    profile_step.main(["--out", str(out), "--threads", str(args.threads)])
    if args.gpu:
        for name, extra in report.GPU_RUNS.items():
            step_cost.main(["--out", str(out), "--tag", name, *extra])
    report.write_report(out, command=f"python -m benchmarks.perf {argv_str}")
    print(json.dumps({"report": str(out / "report.md")}))


if __name__ == "__main__":
    main()
