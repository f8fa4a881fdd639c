"""Scaling of the step with sequence length and group size, GRPO vs SRFT.

Sequence length: completion length 512 -> 16,384 (prompt 64), one prompt, group of 2 (SRFT: 1 rollout + 1 demo), training
part only (fixed tensors, as in `step_cost`). Group size: G = 2 -> 16 at completion 512, generation included.
Each point is one fresh process running GRPO and SRFT alternately. Between consecutive points the growth
exponent `log(t2/t1) / log(x2/x1)` is reported: 1 is linear, 2 quadratic.

    python -m benchmarks.perf.scaling [--out DIR] [--quick] [--shape tiny] [--max-len 16384]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from . import common, step_cost


def point(shape, *, completion_len, num_generations, skip_gen, steps, warmup, bf16, prompt_len=64,
          micro_batches=1, gradient_checkpointing=False):
    return dict(shape=shape, num_prompts=1, num_generations=num_generations, num_demos=1, prompt_len=prompt_len,
                completion_len=completion_len, steps=steps, warmup=warmup, gen_steps=1, micro_batches=micro_batches,
                bf16=bf16, gradient_checkpointing=gradient_checkpointing, skip_gen=skip_gen,
                methods=["grpo", "srft"])


def run(out_dir: Path, *, quick: bool, shape: str, max_len: int, threads: int | None, command: str,
        groups=(2, 4, 8, 16), resume: bool = False) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    info = common.machine_info()
    info["torch_threads"] = threads
    bf16 = common.device_name() == "cuda"
    name = "scaling_quick" if quick else "scaling"
    data = {"machine": info, "command": command, "shape": shape, "seq": [], "group": []}
    if resume and (out_dir / f"{name}.json").is_file():  # keep the points already measured
        import json

        old = json.loads((out_dir / f"{name}.json").read_text())
        data["seq"], data["group"] = old.get("seq", []), old.get("group", [])
        data["command"] = f"{old.get('command')}; then {command}"
    done = {json_key(p["config"]) for p in data["seq"] + data["group"] if "error" not in p}
    for g in [2, 4] if quick else groups:
        cfg = point(shape, completion_len=64 if quick else 512, num_generations=g, skip_gen=False, steps=2, warmup=1,
                    bf16=bf16)
        if json_key(cfg) in done:
            continue
        t = time.perf_counter()
        r = common.run_worker("benchmarks.perf.step_cost", cfg, threads=threads)
        print(f"[scaling] G {g}: {time.perf_counter() - t:.0f}s", file=sys.stderr, flush=True)
        data["group"].append({"config": cfg, "summary": step_cost.aggregate([r]), "run": r})
        common.write_json(out_dir / f"{name}.json", data)
    lengths = [64, 128] if quick else [n for n in (512, 1024, 2048, 4096, 8192, 16384) if n <= max_len]
    for n in lengths:
        cfg = point(shape, completion_len=n, num_generations=2, skip_gen=True, steps=2 if n <= 4096 else 1,
                    warmup=1 if n <= 2048 else 0, bf16=bf16)
        if json_key(cfg) in done:
            continue
        t = time.perf_counter()
        try:
            r = common.run_worker("benchmarks.perf.step_cost", cfg, threads=threads)
        except RuntimeError as err:  # out of memory: record and stop growing
            data["seq"].append({"config": cfg, "error": str(err)[-500:]})
            break
        print(f"[scaling] seq {n}: {time.perf_counter() - t:.0f}s", file=sys.stderr, flush=True)
        data["seq"].append({"config": cfg, "summary": step_cost.aggregate([r]), "run": r})
        common.write_json(out_dir / f"{name}.json", data)
    (out_dir / f"{name}.md").write_text(render(data))
    return data


def json_key(cfg: dict) -> str:
    import json

    return json.dumps(cfg, sort_keys=True)


def _exp(x1, y1, x2, y2):
    if not y1 or not y2 or y1 <= 0 or y2 <= 0:
        return None
    return math.log(y2 / y1) / math.log(x2 / x1)


def _time(per: dict) -> tuple[float, str]:
    """Process CPU time of the training part when measured (CPU runs), else wall time."""
    if "cpu_train" in per:
        return per["cpu_train"]["median"], "CPU"
    return per["train"]["median"], "wall"


def render(data: dict) -> str:
    lines = [f"### Scaling (`{data['shape']}` shape)", "", f"Command: `{data['command']}`", "",
             "**Sequence length** (training part on fixed tensors; 1 prompt x G=2, prompt 64 tokens; one process "
             "per row, GRPO and SRFT alternated; time is process CPU time where measured (wall time in brackets), "
             "exponent = log-log slope vs the previous row: 1 linear, 2 quadratic):", "",
             "| completion tokens | GRPO train (s) | SRFT train (s) | SRFT/GRPO | exponent (GRPO time) "
             "| GRPO peak (MiB) | SRFT peak (MiB) | exponent (GRPO peak) |",
             "|---|---|---|---|---|---|---|---|"]
    prev = None
    for p in sorted(data["seq"], key=lambda p: p["config"]["completion_len"]):
        n = p["config"]["completion_len"]
        if "error" in p:
            lines.append(f"| {n:,} | failed: `{p['error'][-120:]}` | | | | | | |")
            continue
        s = p["summary"]
        g, r = s["per_method"]["grpo"], s["per_method"]["srft"]
        (t_g, kind), (t_s, _) = _time(g), _time(r)
        ratio = s["ratios"].get("cpu_train" if kind == "CPU" else "train")
        m_g, m_s = g["peak_mb_max"], r["peak_mb_max"]
        e_t = _exp(prev[0], prev[1], n, t_g) if prev and prev[3] == kind else None
        e_m = _exp(prev[0], prev[2], n, m_g) if prev else None
        wall = f" ({g['train']['median']:.3g} wall)" if kind == "CPU" else ""
        lines.append(
            f"| {n:,} | {t_g:.3g}{wall} | {t_s:.3g} | {step_cost.ratio_fmt(ratio)} | "
            f"{'' if e_t is None else f'{e_t:.2f}'} | {m_g:.0f} | {m_s:.0f} | {'' if e_m is None else f'{e_m:.2f}'} |"
        )
        prev = (n, t_g, m_g, kind)
    lines += ["", "**Group size** (completion 512 tokens, generation included; SRFT generates G-1 rows per prompt; "
              "generation and training times are process CPU time where measured, else wall):", "",
              "| G | GRPO gen (s) | SRFT gen (s) | SRFT/GRPO gen (wall) | SRFT/GRPO gen (CPU time) | expected (G-1)/G "
              "| GRPO train (s) | SRFT train (s) | exponent (GRPO train) | GRPO peak (MiB) | SRFT peak (MiB) "
              "| exponent (GRPO peak) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    prev = None
    for p in sorted(data["group"], key=lambda p: p["config"]["num_generations"]):
        G = p["config"]["num_generations"]
        g, r = p["summary"]["per_method"]["grpo"], p["summary"]["per_method"]["srft"]
        e_m = _exp(prev[0], prev[1], G, g["peak_mb_max"]) if prev else None
        (t_g, kind), (t_s, _) = _time(g), _time(r)
        e_t = _exp(prev[0], prev[2], G, t_g) if prev and prev[3] == kind else None
        gen_key = "gen_cpu_generate_and_score" if "gen_cpu_generate_and_score" in g else "gen_generate_and_score"
        lines.append(
            f"| {G} | {g[gen_key]['median']:.3g} | {r[gen_key]['median']:.3g} | "
            f"{step_cost.ratio_fmt(p['summary']['ratios']['gen_generate_and_score'])} | "
            f"{step_cost.ratio_fmt(p['summary']['ratios'].get('gen_cpu_generate_and_score'))} | {(G - 1) / G:.3f} | "
            f"{t_g:.3g} | {t_s:.3g} | {'' if e_t is None else f'{e_t:.2f}'} | {g['peak_mb_max']:.0f} | "
            f"{r['peak_mb_max']:.0f} | {'' if e_m is None else f'{e_m:.2f}'} |"
        )
        prev = (G, g["peak_mb_max"], t_g, kind)
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=common.DEFAULT_OUT)
    p.add_argument("--shape", default="tiny", choices=list(common.SHAPES))
    p.add_argument("--max-len", type=int, default=16384)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--groups", default="2,4,8,16", help="group sizes of the group-size sweep")
    p.add_argument("--resume", action="store_true", help="keep the points already in scaling.json")
    args = p.parse_args(argv)
    command = "python -m benchmarks.perf.scaling " + " ".join(argv if argv is not None else sys.argv[1:])
    data = run(args.out, quick=args.quick, shape=args.shape, max_len=args.max_len, threads=args.threads or None,
               command=command, groups=[int(g) for g in args.groups.split(",") if g],
               resume=args.resume)
    print(render(data))


if __name__ == "__main__":
    main()
