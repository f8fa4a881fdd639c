"""Large vocabulary (Qwen2.5's 151,936) and long demonstrations (8,192 tokens): where logits dominate memory.

Three measurements, each in a fresh process:

1. `trainers`: GRPO vs SRFT training step (the `step_cost` worker) on a random model with hidden size 128 and
   Qwen2.5's vocabulary, one prompt, a group of 2 (SRFT: 1 rollout + 1 demonstration of 8,192 tokens).
   Peak memory above the live state and time, per method.
2. `head`: TRL's fused LM head (`trl.kernels.ChunkedLogProbFunction`, what `fused_lm_head=True` runs) alone,
   forward + backward over N tokens, with `outputs=("log_probs",)` vs `("log_probs", "entropy")` (what
   GRPOTrainer asks for, and so what SRFT reads), N = 2,048 ... 16,384: does the entropy add a buffer, and
   does the peak grow with N (a full `N x V` buffer) or stay flat (tiles)?
3. `naive`: the textbook computation (materialised logits, `log_softmax`, entropy `-(p log p).sum()`),
   forward + backward, at small N, to show the full-vocabulary buffers the fused head avoids.

    python -m benchmarks.perf.large_vocab [--out DIR] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import common, step_cost

VOCAB = 151936
HIDDEN = 128


def head_worker(params: dict) -> dict:
    common.setup_torch(params.get("threads"))
    import torch

    from trl.kernels import ChunkedLogProbFunction

    device = common.device_name()
    dtype = torch.bfloat16 if params.get("bf16") else torch.float32
    n, h, v = params["tokens"], params.get("hidden", HIDDEN), params.get("vocab", VOCAB)
    g = torch.Generator(device=device).manual_seed(0)
    weight = (torch.randn(v, h, generator=g, device=device) * 0.02).to(dtype).requires_grad_()
    hidden = torch.randn(n, h, generator=g, device=device).to(dtype).requires_grad_()
    targets = torch.randint(0, v, (n,), generator=g, device=device)
    mode = params["mode"]
    times = []
    peaks = []
    for _ in range(params.get("steps", 1)):
        weight.grad = hidden.grad = None
        with common.PeakMemory() as mem, common.timer() as t:
            if mode == "naive":
                logits = (hidden @ weight.t()).float()
                logp = torch.log_softmax(logits, dim=-1)
                lp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
                entropy = -(logp.exp() * logp).sum(-1)
                # the SRFT weight is a stop-gradient of the entropy: only the log-probs carry gradient
                loss = -(lp * torch.exp(-entropy.detach())).mean()
            else:
                outputs = ("log_probs", "entropy") if mode == "fused_entropy" else ("log_probs",)
                lp, entropy, *_ = ChunkedLogProbFunction.apply(
                    hidden, weight, None, targets, 1.0, 32768, None, 1.0, outputs
                )
                w = torch.exp(-entropy.detach()) if entropy is not None else 1.0
                loss = -(lp * w).mean()
            loss.backward()
        times.append(t["seconds"])
        peaks.append(mem.delta)
        del loss, lp, entropy
    return {"params": params, "seconds": times, "peak_mb": peaks,
            "full_logits_mb": n * v * torch.finfo(torch.float32).bits / 8 / 2**20}


def run(out_dir: Path, *, quick: bool, threads: int | None, command: str) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    info = common.machine_info()
    info["torch_threads"] = threads
    data = {"machine": info, "command": command, "trainers": None, "head": [], "naive": []}
    bf16 = common.device_name() == "cuda"
    # 1. trainers, at two demonstration lengths (the peak should not grow like N x V)
    data["trainers"] = []
    for demo_len in [256, 512] if quick else [2048, 8192]:
        config = dict(shape="large-vocab", num_prompts=1, num_generations=2, num_demos=1, prompt_len=64,
                      completion_len=demo_len, steps=1, warmup=0, gen_steps=0, micro_batches=1, bf16=bf16,
                      gradient_checkpointing=False, skip_gen=True, methods=["grpo", "srft"])
        t = time.perf_counter()
        run_ = common.run_worker("benchmarks.perf.step_cost", config, threads=threads)
        print(f"[large_vocab] trainers C={demo_len}: {time.perf_counter() - t:.0f}s", file=sys.stderr, flush=True)
        data["trainers"].append({"config": config, "summary": step_cost.aggregate([run_]), "run": run_})
        common.write_json(out_dir / ("large_vocab_quick.json" if quick else "large_vocab.json"), data)
    # 2. fused head alone, with and without entropy, at the token count where TRL's tiles are full (4,096)
    sizes = [512] if quick else [4096]
    for n in sizes:
        for mode in ("fused_logp", "fused_entropy"):
            t = time.perf_counter()
            data["head"].append(common.run_worker(
                "benchmarks.perf.large_vocab", {"mode": mode, "tokens": n, "bf16": bf16}, threads=threads))
            print(f"[large_vocab] head {mode} N={n}: {time.perf_counter() - t:.0f}s", file=sys.stderr, flush=True)
    # 3. naive reference
    for n in [256, 512] if quick else [1024, 2048]:
        t = time.perf_counter()
        data["naive"].append(common.run_worker(
            "benchmarks.perf.large_vocab", {"mode": "naive", "tokens": n, "bf16": bf16}, threads=threads))
        print(f"[large_vocab] naive N={n}: {time.perf_counter() - t:.0f}s", file=sys.stderr, flush=True)
    common.write_json(out_dir / ("large_vocab_quick.json" if quick else "large_vocab.json"), data)
    (out_dir / ("large_vocab_quick.md" if quick else "large_vocab.md")).write_text(render(data))
    return data


def render(data: dict) -> str:
    lines = [
        "### Large vocabulary: Qwen2.5 vocabulary (151,936), long demonstrations",
        "",
        f"Command: `{data['command']}`",
        "",
        f"**Trainers.** Random Qwen2 model, hidden {HIDDEN}, 2 layers, vocabulary {VOCAB:,}; one prompt, a group of "
        "2 rows (SRFT: 1 rollout + 1 demonstration of the same length), GRPO and SRFT alternated in one process "
        "on the same tensors. 'Full logits' is what one materialised fp32 `rows x completion x V` tensor would take.",
        "",
        "| completion tokens per row | full fp32 logits (MiB) | GRPO peak (MiB) | SRFT peak (MiB) | SRFT / GRPO peak "
        "| GRPO fwd+loss+bwd, wall (s) | SRFT fwd+loss+bwd, wall (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for tr in data["trainers"]:
        cfg, s = tr["config"], tr["summary"]
        g, r = s["per_method"]["grpo"], s["per_method"]["srft"]
        rows = cfg["num_prompts"] * cfg["num_generations"]
        full = rows * cfg["completion_len"] * VOCAB * 4 / 2**20
        lines.append(
            f"| {cfg['completion_len']:,} | {full:.0f} | {g['peak_mb_max']:.0f} | {r['peak_mb_max']:.0f} | "
            f"{r['peak_mb_max'] / g['peak_mb_max']:.3f} | {common.fmt(g['forward_loss_backward'])} | "
            f"{common.fmt(r['forward_loss_backward'])} |"
        )
    lines += [
        "",
        f"**TRL's fused LM head alone** (`ChunkedLogProbFunction`, hidden {HIDDEN}, vocabulary {VOCAB:,}), "
        "forward + backward of `-(logp * stop_grad(exp(-H))).mean()`; peak above the inputs:",
        "",
        "| tokens N | full fp32 logits N x V (MiB) | peak, log-probs only (MiB) | peak, log-probs + entropy (MiB) "
        "| time, log-probs only (s) | time, + entropy (s) |",
        "|---|---|---|---|---|---|",
    ]
    by = {}
    for h in data["head"]:
        by.setdefault(h["params"]["tokens"], {})[h["params"]["mode"]] = h
    for n, d in sorted(by.items()):
        a, b = d.get("fused_logp"), d.get("fused_entropy")
        lines.append(
            f"| {n:,} | {a['full_logits_mb']:.0f} | {max(a['peak_mb']):.0f} | {max(b['peak_mb']):.0f} | "
            f"{min(a['seconds']):.2f} | {min(b['seconds']):.2f} |"
        )
    lines += ["", "**Naive reference** (materialised logits, `log_softmax`, entropy), forward + backward:", "",
              "| tokens N | full fp32 logits N x V (MiB) | peak (MiB) | peak / logits buffer | time (s) |",
              "|---|---|---|---|---|"]
    for h in data["naive"]:
        lines.append(
            f"| {h['params']['tokens']:,} | {h['full_logits_mb']:.0f} | {max(h['peak_mb']):.0f} | "
            f"{max(h['peak_mb']) / h['full_logits_mb']:.1f} | {min(h['seconds']):.2f} |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=common.DEFAULT_OUT)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.worker:
        common.emit(head_worker(json.loads(args.worker)))
        return
    command = "python -m benchmarks.perf.large_vocab " + " ".join(argv if argv is not None else sys.argv[1:])
    data = run(args.out, quick=args.quick, threads=args.threads or None, command=command)
    print(render(data))


if __name__ == "__main__":
    main()
