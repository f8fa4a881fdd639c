"""Step cost of SRFT vs GRPO on identical shapes: generation, forward/loss/backward/optimizer, peak memory.

One worker process builds a `GRPOTrainer` and an `SRFTTrainer` on two copies of the same random-initialised
model (same seed), then alternates them step by step (GRPO, SRFT, SRFT, GRPO, ...), so both see the same machine
state and every step has a paired partner:

* training part: `compute_loss` (TRL's fused-LM-head forward timed on its own, plus the loss), `backward` and
  the optimizer step, on one fixed batch of tensors that is identical for both (same prompt and completion ids,
  masks and advantages; SRFT additionally reads its row-kind and correctness flags);
* generation part: `_generate_and_score_completions` on the same generation batch (each prompt repeated
  `num_generations` times). GRPO generates every row; SRFT generates `num_generations - num_demos` rows per
  prompt and splices the demonstrations into the others. Every generated row is forced to exactly
  `completion_len` tokens (`min_new_tokens`), so both produce the same shapes.

Peak memory is measured per step (CUDA: `max_memory_allocated`; CPU: RSS high-water mark) above what is live
before the step (model, optimizer state, the batch). Repeats are fresh processes.

    python -m benchmarks.perf.step_cost [--quick] [--out DIR] [--repeats N] [--shape NAME] ...
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from . import common


def config_from_args(args) -> dict:
    return dict(
        shape=args.shape,
        num_prompts=args.num_prompts,
        num_generations=args.num_generations,
        num_demos=args.num_demos,
        prompt_len=args.prompt_len,
        completion_len=args.completion_len,
        steps=args.steps,
        warmup=args.warmup,
        gen_steps=args.gen_steps,
        micro_batches=args.micro_batches,
        bf16=args.bf16,
        gradient_checkpointing=args.gradient_checkpointing,
        skip_gen=args.skip_gen,
        methods=["grpo", "srft"],
    )


# ---------------------------------------------------------------------------------------------- worker


def worker(params: dict) -> dict:
    common.setup_torch(params.get("threads"))
    import torch

    dtype = torch.bfloat16 if params["bf16"] else torch.float32
    shapes = {k: params[k] for k in ("num_prompts", "num_generations", "num_demos", "prompt_len", "completion_len")}
    methods = params.get("methods", ["grpo", "srft"])
    trainers, optimizers, timers = {}, {}, {}
    tmp = tempfile.mkdtemp(prefix="srft-perf-")
    for method in methods:
        model, tokenizer = common.make_model(
            params["shape"], seed=0, dtype=dtype, max_positions=max(4096, shapes["prompt_len"] + shapes["completion_len"])
        )
        if params.get("gradient_checkpointing"):
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        trainer, dataset = common.make_trainer(method, model, tokenizer, output_dir=tmp, bf16=params["bf16"], **shapes)
        trainers[method] = (trainer, dataset)
        optimizers[method] = common.make_optimizer(trainer)
        timers[method] = common.ForwardTimer(model)
    model0 = trainers[methods[0]][0].model
    batch = common.fixed_batch(model0, **shapes)
    counts = common.param_counts(model0)
    rows = shapes["num_prompts"] * shapes["num_generations"]
    flops = common.train_flops(model0, rows, shapes["prompt_len"], shapes["completion_len"])

    result = {"params": params, "param_counts": counts, "train_flops": flops, "train": {}, "gen": {}}

    def order(i):
        return methods if i % 2 == 0 else list(reversed(methods))

    # ---- training part, on the same tensors
    for i in range(params["warmup"]):
        for m in order(i):
            common.train_step(trainers[m][0], optimizers[m], common.batch_for(m, batch), timers[m], params["micro_batches"])
    for i in range(params["steps"]):
        for m in order(i):
            with common.PeakMemory() as mem:
                step = common.train_step(
                    trainers[m][0], optimizers[m], common.batch_for(m, batch), timers[m], params["micro_batches"]
                )
            step["peak_mb"] = mem.delta
            step["peak_abs_mb"] = mem.peak
            result["train"].setdefault(m, []).append(step)

    # ---- generation part, on the same prompts
    if not params.get("skip_gen"):
        gen_timers = {}
        for m in methods:
            trainer = trainers[m][0]
            gen_timers[m] = _wrap_generate(trainer)
        for i in range(params["gen_steps"] + 1):  # the first round is a warm-up
            for m in order(i):
                trainer, dataset = trainers[m]
                inputs = common.generation_inputs(dataset, shapes["num_generations"])
                gen_timers[m]["seconds"] = gen_timers[m]["cpu_seconds"] = 0.0
                gen_timers[m]["rows"] = 0
                with common.PeakMemory() as mem, common.timer() as t:
                    c0 = time.process_time()
                    out = trainer._generate_and_score_completions(inputs)
                    cpu_gs = time.process_time() - c0
                if i == 0:
                    continue
                result["gen"].setdefault(m, []).append(
                    {
                        "generate_and_score": t["seconds"],
                        "generate": gen_timers[m]["seconds"],
                        "cpu_generate_and_score": cpu_gs,
                        "cpu_generate": gen_timers[m]["cpu_seconds"],
                        "generated_rows": gen_timers[m]["rows"],
                        "completion_shape": list(out["completion_ids"].shape),
                        "peak_mb": mem.delta,
                    }
                )
    return result


def _wrap_generate(trainer) -> dict:
    """Time the backend call (`_generate_single_turn`: model.generate or vLLM) and count the rows it generates."""
    state = {"seconds": 0.0, "cpu_seconds": 0.0, "rows": 0}
    inner = trainer._generate_single_turn

    def timed(prompt_ids, *args, **kwargs):
        common.sync()
        t, c = time.perf_counter(), time.process_time()
        out = inner(prompt_ids, *args, **kwargs)
        common.sync()
        state["seconds"] += time.perf_counter() - t
        state["cpu_seconds"] += time.process_time() - c
        state["rows"] += len(prompt_ids)
        return out

    trainer._generate_single_turn = timed
    return state


# ---------------------------------------------------------------------------------------------- driver


PARTS = ["forward", "loss", "backward", "optimizer", "forward_loss_backward", "train"]
CPU_PARTS = ["cpu_forward", "cpu_loss", "cpu_backward", "cpu_forward_loss_backward", "cpu_train"]


def aggregate(runs: list[dict], info: dict | None = None) -> dict:
    """Per-method medians over repeats (each repeat's value is the median of its steps) and paired ratios."""
    import statistics

    methods = runs[0]["params"]["methods"]
    out = {"methods": methods, "per_method": {}, "ratios": {}}
    for m in methods:
        per = {}
        for part in PARTS + ["peak_mb"] + CPU_PARTS:
            if all(part in r["train"][m][0] for r in runs):
                per[part] = common.summarize([statistics.median(s[part] for s in r["train"][m]) for r in runs])
        per["peak_mb_max"] = max(s["peak_mb"] for r in runs for s in r["train"][m])
        if runs[0]["gen"]:
            for part in ("generate_and_score", "generate", "peak_mb", "cpu_generate_and_score", "cpu_generate"):
                if all(part in r["gen"][m][0] for r in runs):
                    per[f"gen_{part}"] = common.summarize(
                        [statistics.median(s[part] for s in r["gen"][m]) for r in runs]
                    )
            per["generated_rows"] = runs[0]["gen"][m][0]["generated_rows"]
            per["step_total"] = common.summarize(
                [
                    statistics.median(s["train"] for s in r["train"][m])
                    + statistics.median(s["generate_and_score"] for s in r["gen"][m])
                    for r in runs
                ]
            )
        out["per_method"][m] = per
    if set(methods) >= {"grpo", "srft"}:
        # paired ratios: SRFT step i / GRPO step i in the same process, median over steps, then over repeats
        def paired(section, part):
            values = []
            for r in runs:
                if not r[section] or part not in r[section]["srft"][0]:
                    continue
                pairs = zip(r[section]["srft"], r[section]["grpo"])
                ratios = [s[part] / g[part] for s, g in pairs if g[part]]
                if ratios:  # a part can measure 0 in a short run (e.g. no new peak memory in-process)
                    values.append(statistics.median(ratios))
            return common.summarize(values) if values else None

        for part in ("forward", "forward_loss_backward", "train", "backward", "peak_mb", "cpu_forward",
                     "cpu_forward_loss_backward", "cpu_train", "cpu_backward"):
            out["ratios"][part] = paired("train", part)
        if runs[0]["gen"]:
            for part in ("generate", "generate_and_score", "cpu_generate", "cpu_generate_and_score"):
                out["ratios"][f"gen_{part}"] = paired("gen", part)
    flops = runs[0]["train_flops"]
    out["train_flops"] = flops
    peak = (info or {}).get("matmul_peak_flops")
    for m in methods:
        t = out["per_method"][m]["train"]["median"]
        rows = runs[0]["params"]["num_prompts"] * runs[0]["params"]["num_generations"]
        tokens = rows * (runs[0]["params"]["prompt_len"] + runs[0]["params"]["completion_len"])
        out["per_method"][m]["tokens_per_s"] = tokens / t
        out["per_method"][m]["model_tflops"] = flops / t / 1e12
        cpu_t = out["per_method"][m].get("cpu_train", {}).get("median")
        if cpu_t and (info or {}).get("device", "cpu") == "cpu":
            out["per_method"][m]["tokens_per_cpu_s"] = tokens / cpu_t
        if peak and (info or {}).get("device") == "cuda":
            out["per_method"][m]["mfu"] = flops / t / peak
        elif peak:  # CPU: the peak is measured in process CPU time, so compare with the CPU time of the step
            cpu_t = out["per_method"][m].get("cpu_train", {}).get("median")
            if cpu_t:
                out["per_method"][m]["mfu_cpu_time"] = flops / cpu_t / peak
    return out


def run(config: dict, *, repeats: int, threads: int | None, out_dir: Path, tag: str = "step_cost",
        quick: bool = False, command: str = "", in_process: bool = False) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    common.setup_torch(threads)
    info = common.machine_info()
    info["torch_threads"] = threads
    if not quick:
        dtype = "bfloat16" if config["bf16"] else "float32"
        info["matmul_peak_flops"] = common.matmul_peak_flops(dtype)
        info["matmul_peak_dtype"] = dtype
        info["matmul_peak_clock"] = "wall" if info["device"] == "cuda" else "process CPU time"
    runs = []
    for r in range(repeats):
        t = time.perf_counter()
        if in_process:  # the quick CI check: no second interpreter start (peak memory is still per step)
            runs.append(worker({**config, "threads": threads}))
        else:
            runs.append(common.run_worker("benchmarks.perf.step_cost", config, threads=threads))
        print(f"[{tag}] repeat {r + 1}/{repeats}: {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)
        common.write_json(out_dir / f"{tag}.partial.json", {"config": config, "machine": info, "runs": runs})
    summary = aggregate(runs, info)
    data = {"tag": tag, "config": config, "machine": info, "command": command, "repeats": repeats,
            "summary": summary, "runs": runs}
    common.write_json(out_dir / f"{tag}.json", data)
    (out_dir / f"{tag}.md").write_text(render(data))
    (out_dir / f"{tag}.partial.json").unlink(missing_ok=True)
    return data


def render(data: dict) -> str:
    s, cfg, info = data["summary"], data["config"], data["machine"]
    lines = [f"### Step cost: GRPO vs SRFT (`{data.get('tag', 'step_cost')}`: `{cfg['shape']}`)", ""]
    lines.append(
        f"Shape `{cfg['shape']}` ({data['runs'][0]['param_counts']['total'] / 1e6:.2f} M parameters), "
        f"{cfg['num_prompts']} prompts x G={cfg['num_generations']} (SRFT: {cfg['num_demos']} demo per group), "
        f"prompt {cfg['prompt_len']} + completion {cfg['completion_len']} tokens, "
        f"{'bf16' if cfg['bf16'] else 'fp32'}, micro-batches {cfg['micro_batches']}, "
        f"device {info.get('gpu', info['device'] + ' ' + str(info.get('cpu')))}, torch threads {info.get('torch_threads')}. "
        f"{data['repeats']} fresh processes x {cfg['steps']} alternating steps; values are median [min-max] over "
        "processes of each process's median step."
    )
    lines.append("")
    lines.append(f"Command: `{data['command']}`")
    lines.append("")
    lines.append("| per optimizer step | GRPO | SRFT | SRFT / GRPO (paired) |")
    lines.append("|---|---|---|---|")
    g, r = s["per_method"]["grpo"], s["per_method"]["srft"]
    ratio = s["ratios"]

    def row(label, key, scale=1.0, unit="s", ratio_key=None):
        if key not in g or key not in r:
            return
        lines.append(
            f"| {label} ({unit}) | {common.fmt(g[key], scale)} | {common.fmt(r[key], scale)} | "
            f"{ratio_fmt(ratio.get(ratio_key)) if ratio_key else ''} |"
        )

    if "gen_generate_and_score" in g:
        lines.append(
            f"| rows generated | {g['generated_rows']} | {r['generated_rows']} | "
            f"{r['generated_rows'] / g['generated_rows']:.3f} |"
        )
        row("generation: model.generate", "gen_generate", ratio_key="gen_generate")
        row("generation + scoring (`_generate_and_score_completions`)", "gen_generate_and_score",
            ratio_key="gen_generate_and_score")
        row("generation: model.generate, process CPU time", "gen_cpu_generate", ratio_key="gen_cpu_generate")
        row("generation + scoring, process CPU time", "gen_cpu_generate_and_score",
            ratio_key="gen_cpu_generate_and_score")
    row("forward (fused LM head)", "forward", ratio_key="forward")
    row("loss (outside the forward)", "loss")
    row("backward", "backward", ratio_key="backward")
    row("forward + loss + backward", "forward_loss_backward", ratio_key="forward_loss_backward")
    row("optimizer step", "optimizer")
    row("training part total", "train", ratio_key="train")
    if info["device"] == "cpu":
        row("forward, process CPU time", "cpu_forward", ratio_key="cpu_forward")
        row("backward, process CPU time", "cpu_backward", ratio_key="cpu_backward")
        row("forward + loss + backward, process CPU time", "cpu_forward_loss_backward",
            ratio_key="cpu_forward_loss_backward")
        row("training part total, process CPU time", "cpu_train", ratio_key="cpu_train")
    if "step_total" in g:
        row("step total (generation + training)", "step_total")
    row("peak memory of the training step above live state", "peak_mb", scale=1.0, unit="MiB", ratio_key="peak_mb")
    if "gen_peak_mb" in g:
        row("peak memory of generation above live state", "gen_peak_mb", scale=1.0, unit="MiB")
    lines.append(
        f"| training tokens/s (wall) | {g['tokens_per_s']:.0f} | {r['tokens_per_s']:.0f} | |"
    )
    if "tokens_per_cpu_s" in g:
        lines.append(
            f"| training tokens per CPU-second (1 thread) | {g['tokens_per_cpu_s']:.0f} | {r['tokens_per_cpu_s']:.0f} | |"
        )
    if "mfu" in g:
        lines.append(
            f"| model FLOPs utilisation vs measured {info['matmul_peak_dtype']} matmul peak "
            f"({info['matmul_peak_flops'] / 1e12:.3g} TFLOP/s) | {100 * g['mfu']:.1f}% | {100 * r['mfu']:.1f}% | |"
        )
    if "mfu_cpu_time" in g:
        lines.append(
            f"| model FLOPs utilisation (process CPU time) vs measured {info['matmul_peak_dtype']} matmul peak "
            f"({info['matmul_peak_flops'] / 1e9:.3g} GFLOP/s per thread, {info.get('matmul_peak_clock', 'wall')}) "
            f"| {100 * g['mfu_cpu_time']:.1f}% | {100 * r['mfu_cpu_time']:.1f}% | |"
        )
    lines.append("")
    return "\n".join(lines)


def ratio_fmt(stat) -> str:
    if not stat or stat.get("median") is None:
        return "n/a"
    if stat["n"] == 1:
        return f"{stat['median']:.3f}"
    return f"{stat['median']:.3f} [{stat['min']:.3f}-{stat['max']:.3f}]"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shape", default="cpu-small", choices=list(common.SHAPES))
    p.add_argument("--num-prompts", type=int, default=2)
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--num-demos", type=int, default=1)
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--completion-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--gen-steps", type=int, default=2)
    p.add_argument("--micro-batches", type=int, default=1)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--skip-gen", action="store_true")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")


QUICK = dict(shape="tiny", num_prompts=1, num_generations=4, num_demos=1, prompt_len=16, completion_len=16, steps=2,
             warmup=1, gen_steps=1, repeats=1)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="tiny model, one repeat: checks that it runs (CI)")
    p.add_argument("--out", type=Path, default=common.DEFAULT_OUT)
    p.add_argument("--tag", default=None, help="name of the JSON/Markdown files (default step_cost)")
    p.add_argument("--measure-peak", action="store_true",
                   help="only (re)measure the matmul peak and store it in <tag>.json (the MFU denominator)")
    add_args(p)
    args = p.parse_args(argv)
    if args.worker:
        common.emit(worker(json.loads(args.worker)))
        return
    if args.quick:
        p.set_defaults(**QUICK)
        args = p.parse_args(argv)
    if args.measure_peak:
        common.setup_torch(args.threads or None)
        path = args.out / f"{args.tag or 'step_cost'}.json"
        data = json.loads(path.read_text())
        dtype = "bfloat16" if data["config"]["bf16"] else "float32"
        data["machine"]["matmul_peak_flops"] = common.matmul_peak_flops(dtype)
        data["machine"]["matmul_peak_dtype"] = dtype
        data["machine"]["matmul_peak_clock"] = "wall" if common.device_name() == "cuda" else "process CPU time"
        data["machine"]["matmul_peak_command"] = "python -m benchmarks.perf.step_cost " + " ".join(
            argv if argv is not None else sys.argv[1:])
        data["summary"] = aggregate(data["runs"], data["machine"])
        common.write_json(path, data)
        (args.out / f"{path.stem}.md").write_text(render(data))
        print(render(data))
        return
    config = config_from_args(args)
    command = "python -m benchmarks.perf.step_cost " + " ".join(argv if argv is not None else sys.argv[1:])
    data = run(config, repeats=args.repeats, threads=args.threads or None, out_dir=args.out,
               tag=args.tag or ("step_cost_quick" if args.quick else "step_cost"), quick=args.quick, command=command,
               in_process=args.quick)
    print(render(data))


if __name__ == "__main__":
    main()
