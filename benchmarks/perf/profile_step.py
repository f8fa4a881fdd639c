"""Profile one SRFT optimizer step (generation + training part) with `torch.profiler` and list the top costs.

The step is the `step_cost` configuration: generation (`_generate_and_score_completions`, SRFT generates
`num_generations - num_demos` rows per prompt), then `compute_loss` + backward + optimizer step. Regions are
marked with `record_function`, so the report gives both the region split and the top operators by self time
(CPU time on CPU, device time on CUDA). A warm-up step runs first, outside the profile.

    python -m benchmarks.perf.profile_step [--out DIR] [--quick] [--shape cpu-small] ...
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from . import common, step_cost

REGIONS = ["srft.generate_and_score", "srft.compute_loss", "srft.backward", "srft.optimizer"]


def worker(params: dict) -> dict:
    common.setup_torch(params.get("threads"))
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    shapes = {k: params[k] for k in ("num_prompts", "num_generations", "num_demos", "prompt_len", "completion_len")}
    dtype = torch.bfloat16 if params["bf16"] else torch.float32
    model, tokenizer = common.make_model(params["shape"], dtype=dtype)
    trainer, dataset = common.make_trainer(params.get("method", "srft"), model, tokenizer,
                                           output_dir=tempfile.mkdtemp(), bf16=params["bf16"], **shapes)
    optimizer = common.make_optimizer(trainer)
    inputs_rows = common.generation_inputs(dataset, shapes["num_generations"])
    batch = common.batch_for(params.get("method", "srft"), common.fixed_batch(model, **shapes))

    def step():
        with record_function("srft.generate_and_score"):
            trainer._generate_and_score_completions(inputs_rows)
        with record_function("srft.compute_loss"):
            loss = trainer.compute_loss(model, batch)
        with record_function("srft.backward"):
            loss.backward()
        with record_function("srft.optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        common.sync()

    step()  # warm-up
    cuda = torch.cuda.is_available()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, record_shapes=False) as prof:
        step()
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    averages = prof.key_averages()
    total_self = sum(getattr(e, "self_device_time_total" if cuda else "self_cpu_time_total") for e in averages)
    regions = {}
    for e in averages:
        if e.key in REGIONS:
            regions[e.key] = (e.device_time_total if cuda else e.cpu_time_total) / 1e6
            regions[e.key + ".self"] = e.self_cpu_time_total / 1e6  # Python and framework time outside any op
    ops = []
    for e in sorted(averages, key=lambda e: -getattr(e, "self_device_time_total" if cuda else "self_cpu_time_total")):
        if e.key in REGIONS:
            continue
        self_t = getattr(e, "self_device_time_total" if cuda else "self_cpu_time_total")
        ops.append({"op": e.key, "self_s": self_t / 1e6, "share": None,
                    "calls": e.count})
        if len(ops) >= params.get("top", 15):
            break
    table = averages.table(sort_by=key, row_limit=25)
    return {"params": params, "regions": regions, "top_ops": ops, "total_self_s": total_self / 1e6, "table": table}


def render(data: dict) -> str:
    r = data["result"]
    cfg = r["params"]
    lines = [
        f"### Profile of one {cfg.get('method', 'srft').upper()} step (`{cfg['shape']}`, torch.profiler)", "",
        f"Command: `{data['command']}`", "",
        f"{cfg['num_prompts']} prompts x G={cfg['num_generations']}, prompt {cfg['prompt_len']} + completion "
        f"{cfg['completion_len']} tokens; one step after a warm-up step.", "",
        "| region | time (s) | share of step | of which outside torch ops (Python, s) |", "|---|---|---|---|",
    ]
    total = sum(r["regions"].get(k, 0.0) for k in REGIONS) or 1.0
    for k in REGIONS:
        if k in r["regions"]:
            lines.append(f"| `{k}` | {r['regions'][k]:.3f} | {100 * r['regions'][k] / total:.1f}% | "
                         f"{r['regions'].get(k + '.self', 0.0):.3f} |")
    lines += ["", f"Top operators by self time (share of the step's {total:.3f} s):", "",
              "| operator | self time (s) | share | calls |", "|---|---|---|---|"]
    for op in r["top_ops"]:
        lines.append(f"| `{op['op']}` | {op['self_s']:.3f} | {100 * op['self_s'] / total:.1f}% | {op['calls']} |")
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=common.DEFAULT_OUT)
    p.add_argument("--method", default="srft", choices=["srft", "grpo"])
    step_cost.add_args(p)
    args = p.parse_args(argv)
    if args.worker:
        common.emit(worker(json.loads(args.worker)))
        return
    if args.quick:
        p.set_defaults(**step_cost.QUICK)
        args = p.parse_args(argv)
    params = {k: v for k, v in step_cost.config_from_args(args).items() if k != "methods"}
    params["method"] = args.method
    command = "python -m benchmarks.perf.profile_step " + " ".join(argv if argv is not None else sys.argv[1:])
    result = common.run_worker("benchmarks.perf.profile_step", params, threads=args.threads or None)
    data = {"machine": common.machine_info(), "command": command, "result": result}
    name = "profile_step_quick" if args.quick else f"profile_{args.method}_step"
    args.out.mkdir(parents=True, exist_ok=True)
    common.write_json(args.out / f"{name}.json", data)
    (args.out / f"{name}.md").write_text(render(data))
    (args.out / f"{name}.txt").write_text(result["table"])
    print(render(data))


if __name__ == "__main__":
    main()
