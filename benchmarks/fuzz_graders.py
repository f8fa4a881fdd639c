"""Fuzz the graders and reward functions with generated hostile completions.

Generates ``--n`` completions (LaTeX bombs, deep braces, megabyte strings, unicode noise, code
payloads, plus ordinary right and wrong answers) and runs every one through:

* the in-process extractors (``extract_boxed``, ``extract_choice``, ``answer_after_think``,
  ``normalize_answer``), which must be linear time and never raise;
* the rewards (``math_accuracy_reward``, ``multiple_choice_reward``, ``format_reward``) in batches,
  as a trainer would call them;
* ``grade_batch`` (Math-Verify and the OAT grader, in the bounded worker pool).

It counts exceptions, per-completion timeouts and worker crashes, reports the maximum resident
memory of this process and of the grading workers, and checks that a sentinel file, which any
executed payload would create, never appears. Run from the repository root::

    python -m benchmarks.fuzz_graders --n 10000 --seed 0 --out benchmarks/results/fuzz_graders.md
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import random
import resource
import sys
import time
from pathlib import Path

from srft_trl.grading import (
    answer_after_think,
    close_shared_pool,
    extract_boxed,
    extract_choice,
    get_shared_pool,
    grade_batch,
    normalize_answer,
)
from srft_trl.grading.hostile import ATOMS, BOMBS, PAYLOADS, SENTINEL
from srft_trl.rewards import (
    format_reward,
    math_accuracy_reward,
    multiple_choice_reward,
)

GOLDS = ["1", "0.5", "\\frac{1}{2}", "(1,2)", "[0,1)", "x+1", "\\sqrt{2}", "42", "50\\%", "E", "I"]
PREFIXES = ["", "<think>", "<think>reasoning</think>", "</think>", "<think>a</think>b</think>"]


def make_completion(rng: random.Random) -> tuple[str, str, str]:
    """One (completion, gold, kind)."""
    gold = rng.choice(GOLDS + PAYLOADS[:1] + ["", "\\text{}"])
    roll = rng.random()
    if roll < 0.15:  # ordinary answers, right or wrong, so the graders also say yes sometimes
        kind, body = "ordinary", f"\\boxed{{{rng.choice([gold, *GOLDS])}}}"
    elif roll < 0.60:
        kind = "soup"
        body = "".join(rng.choice(ATOMS + PAYLOADS) for _ in range(rng.randint(1, 80)))
    elif roll < 0.72:
        name = rng.choice(sorted(BOMBS))
        kind, body = f"bomb:{name}", BOMBS[name](rng.choice([2, 10, 100, 1000, 20_000]))
        if rng.random() < 0.5:
            body = f"\\boxed{{{body}}}"
    elif roll < 0.82:
        kind, body = "payload", rng.choice(PAYLOADS)
        body = f"\\boxed{{{body}}}" if rng.random() < 0.5 else body
    elif roll < 0.995:
        kind = "unicode"
        body = "".join(chr(rng.randint(1, 0x10FFFF)) for _ in range(rng.randint(1, 200)))
        body = body.encode("utf-8", "replace").decode("utf-8", "replace")
    else:  # 1-2 MB
        kind = "megabyte"
        filler = rng.choice(["a", "{", "\\frac{", "9^{", "(", "\\boxed{", " "])
        body = filler * (rng.randint(1_000_000, 2_000_000) // len(filler)) + "\\boxed{1}"
    return rng.choice(PREFIXES) + body, gold, kind


def run(n: int, seed: int, batch: int, timeout_s: float) -> dict:
    rng = random.Random(seed)
    cases = [make_completion(rng) for _ in range(n)]
    kinds = collections.Counter(kind.split(":")[0] for _, _, kind in cases)
    exceptions: collections.Counter = collections.Counter()
    slowest: dict[str, float] = collections.defaultdict(float)
    rewards: collections.Counter = collections.Counter()
    statuses: collections.Counter = collections.Counter()
    start = time.monotonic()

    extractors = {
        "extract_boxed": extract_boxed,
        "extract_choice": lambda t: extract_choice(t, "ABCDEFGHIJ"),
        "answer_after_think": answer_after_think,
        "normalize_answer": normalize_answer,
    }
    for text, _, _ in cases:
        for name, fn in extractors.items():
            t0 = time.monotonic()
            try:
                fn(text)
            except Exception:
                exceptions[name] += 1
            slowest[name] = max(slowest[name], time.monotonic() - t0)

    pool = get_shared_pool()
    before = collections.Counter(pool.stats)
    for i in range(0, n, batch):
        chunk = cases[i : i + batch]
        texts, golds = [c[0] for c in chunk], [c[1] for c in chunk]
        letters = [rng.choice("ABCDEFGHIJ") for _ in chunk]
        calls = {
            "math_accuracy_reward": lambda: math_accuracy_reward(
                texts, golds, reward_timeout_s=timeout_s
            ),
            "multiple_choice_reward": lambda: multiple_choice_reward(texts, letters),
            "format_reward": lambda: format_reward(texts),
        }
        for name, call in calls.items():
            try:
                scores = call()
                assert len(scores) == len(chunk) and set(scores) <= {0.0, 1.0}
                rewards.update(f"{name}={s:g}" for s in scores)
            except Exception:
                exceptions[name] += 1
        try:
            jobs = [("math", [text], gold, None) for text, gold in zip(texts, golds)]
            for (result,) in grade_batch(jobs, require_think=False, timeout_s=timeout_s):
                statuses[result["status"]] += 1
                rewards[f"oat={int(result['oat'])}"] += 1
                rewards[f"math_verify={int(result['math_verify'])}"] += 1
        except Exception:
            exceptions["grade_batch"] += 1
        print(f"\r{min(i + batch, n)}/{n} graded", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    pool_stats = collections.Counter(pool.stats)
    pool_stats.subtract(before)
    close_shared_pool()  # records the peak memory of the workers still running

    return {
        "tried": n,
        "seed": seed,
        "batch": batch,
        "timeout_s": timeout_s,
        "workers": pool.processes,
        "seconds": round(time.monotonic() - start, 1),
        "kinds": dict(sorted(kinds.items())),
        "exceptions": dict(exceptions),
        "exceptions_total": sum(exceptions.values()),
        "slowest_extractor_call_s": {k: round(v, 3) for k, v in slowest.items()},
        "pool_outcomes": {k: v for k, v in sorted(pool_stats.items()) if v},
        "grade_batch_statuses": dict(statuses),
        "verdicts": dict(sorted(rewards.items())),
        "max_rss_main_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "max_rss_worker_mb": round(pool.peak_worker_rss_mb, 1),
        "load_average_1_5_15min_at_end": tuple(round(x, 1) for x in os.getloadavg()),
        "sentinel_present": SENTINEL.exists(),
    }


def to_markdown(report: dict, command: str) -> str:
    lines = [
        "# Grader and reward fuzzing",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {report['workers']} grading workers.",
        "",
        "Each generated completion goes through the in-process extractors, the three rewards (in "
        f"batches of {report['batch']}, per-completion bound {report['timeout_s']:g} s) and "
        "`grade_batch` (Math-Verify + OAT grader, same bound). A pool outcome is one graded "
        "item in a worker: `timeout` means the item exceeded the bound and its worker was killed "
        "and replaced; `error` that the grader raised inside the worker (e.g. `MemoryError` at the "
        "worker's memory limit); `crash` that the worker died. All of these score 0. "
        "`max_rss_worker_mb` is the highest peak resident memory (`VmHWM`) of a worker, read just "
        "before it was killed, replaced or closed; each worker may grow by at most 2048 MB "
        "(`RLIMIT_AS`) beyond its start-up footprint.",
        "",
        "| measure | value |",
        "|---|---|",
    ]
    for key, value in report.items():
        lines.append(f"| {key} | {value} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of completions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=64, help="completions per reward call")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-completion bound (s)")
    parser.add_argument("--out", type=Path, default=None, help="write a Markdown report here")
    args = parser.parse_args()

    report = run(args.n, args.seed, args.batch, args.timeout)
    for key, value in report.items():
        print(f"{key}: {value}")
    if args.out:
        command = "python -m benchmarks.fuzz_graders " + " ".join(sys.argv[1:])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(to_markdown(report, command))
    SENTINEL.unlink(missing_ok=True)
    if report["exceptions_total"] or report["sentinel_present"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
