"""Why the grading pool is not `pebble.ProcessPool`: what an unguarded user script does under each pool.

A training script written without `if __name__ == "__main__":` (as notebooks exported to scripts
and many quick experiments are) calls a reward that grades in worker processes. This starts such a
script under `srft_trl.grading.bounded.BoundedPool` and under `pebble.ProcessPool` with the
`spawn` and `forkserver` start methods (`fork` is not tried: forking a process that runs torch,
CUDA or OpenMP threads is unsafe), and counts how often the script's top level runs and whether
the pool returns results. Run from the repository root (needs `pip install pebble`)::

    python -m benchmarks.pool_start_methods --out benchmarks/results/pool_start_methods.md
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent('''
    import math, multiprocessing, os, sys
    print("TOP LEVEL RAN", flush=True)
    if sys.argv[1] == "bounded":
        from srft_trl.grading.bounded import BoundedPool
        with BoundedPool(processes=2) as pool:
            print("RESULTS", pool.map(math.sqrt, [4.0, 9.0], timeout_s=30), flush=True)
    else:
        import pebble
        with pebble.ProcessPool(max_workers=2, context=multiprocessing.get_context(sys.argv[1])) as pool:
            futures = [pool.schedule(math.sqrt, args=(x,), timeout=30) for x in (4.0, 9.0)]
            print("RESULTS", [f.result() for f in futures], flush=True)
''')


def probe(method: str, script: Path) -> dict:
    try:
        result = subprocess.run([sys.executable, str(script), method], capture_output=True, text=True, timeout=60)
        output, code = result.stdout + result.stderr, result.returncode
    except subprocess.TimeoutExpired as error:
        output, code = (error.stdout or b"").decode() + (error.stderr or b"").decode(), "timeout"
    return {"method": method, "top_level_runs": output.count("TOP LEVEL RAN"), "results": "RESULTS" in output,
            "exit": code}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write a Markdown report here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "unguarded_train.py"
        script.write_text(SCRIPT)
        rows = [probe(method, script) for method in ("bounded", "spawn", "forkserver")]
    lines = ["| pool | top level of the script ran | results returned | exit status |", "|---|---|---|---|"]
    names = {"bounded": "`BoundedPool` (srft-trl)", "spawn": "`pebble.ProcessPool`, spawn",
             "forkserver": "`pebble.ProcessPool`, forkserver"}
    lines += [f"| {names[r['method']]} | {r['top_level_runs']}x | {'yes' if r['results'] else 'no'} | {r['exit']} |"
              for r in rows]
    report = "\n".join(["# Grading pool start methods", "", f"`python -m benchmarks.pool_start_methods` "
                        f"(Python {sys.version.split()[0]}):", "", *lines, ""])
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
