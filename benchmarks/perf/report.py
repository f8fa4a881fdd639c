"""Assemble `report.md` from the JSON and Markdown the benchmark parts wrote into one folder.

`notes.md` in the same folder (hand-written findings and explanations) is included after the target table.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import common

# GPU runs of `python -m benchmarks.perf --gpu` (random-initialised Qwen2.5 shapes, bf16, nothing downloaded).
# 8k tokens per sequence: 512 prompt + 7,680 completion; one row per micro-batch, 8 rows per optimizer step.
GPU_RUNS = {
    "gpu_step_cost_qwen2.5-0.5b": ["--shape", "qwen2.5-0.5b", "--bf16", "--num-prompts", "1", "--num-generations",
                                   "8", "--prompt-len", "256", "--completion-len", "1024", "--micro-batches", "2",
                                   "--repeats", "3", "--threads", "0"],
    "gpu_mfu_qwen2.5-0.5b_8k": ["--shape", "qwen2.5-0.5b", "--bf16", "--skip-gen", "--num-prompts", "1",
                                "--num-generations", "8", "--prompt-len", "512", "--completion-len", "7680",
                                "--micro-batches", "8", "--repeats", "2", "--threads", "0"],
    "gpu_mfu_qwen2.5-1.5b_8k": ["--shape", "qwen2.5-1.5b", "--bf16", "--skip-gen", "--num-prompts", "1",
                                "--num-generations", "8", "--prompt-len", "512", "--completion-len", "7680",
                                "--micro-batches", "8", "--repeats", "2", "--threads", "0"],
}

SECTIONS = [
    "step_cost_quick.md",
    "step_cost.md",
    "step_cost_64rows.md",
    *[f"{name}.md" for name in GPU_RUNS],
    "large_vocab.md",
    "scaling.md",
    "profile_srft_step.md",
]


def _load(out: Path, name: str):
    path = out / name
    return json.loads(path.read_text()) if path.is_file() else None


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**not met**")


def _r(stat) -> str:
    """A ratio summary with three decimals: `median [min-max]`."""
    if not stat or stat.get("median") is None:
        return "n/a"
    if stat["n"] == 1:
        return f"{stat['median']:.3f}"
    return f"{stat['median']:.3f} [{stat['min']:.3f}-{stat['max']:.3f}]"


def targets(out: Path) -> list[str]:
    lines = ["## Targets", "",
             "Ratios are SRFT / GRPO, paired step by step in one process; median [min-max] over fresh processes. On CPU "
             "the process-CPU-time ratio is the evidence (the machine was shared), the wall-clock ratio is shown too.",
             "", "| target | measured | verdict |", "|---|---|---|"]
    sc = _load(out, "step_cost.json") or _load(out, "step_cost_quick.json")
    if sc:
        ratios, cfg = sc["summary"]["ratios"], sc["config"]
        cpu = sc["machine"].get("device") == "cpu" and ratios.get("cpu_forward_loss_backward")
        flb = ratios.get("cpu_forward_loss_backward") if cpu else ratios.get("forward_loss_backward")
        lines.append(
            f"| SRFT's training part (forward + loss + backward) within 3% of GRPO's on the same tokens "
            f"(`{cfg['shape']}`, {cfg['num_prompts']}x{cfg['num_generations']} rows) | "
            + (f"CPU time {_r(flb)}; wall {_r(ratios.get('forward_loss_backward'))}" if cpu else f"{_r(flb)}")
            + f" | {_verdict(abs(flb['median'] - 1) <= 0.03 if flb else None)} |"
        )
        expected = (cfg["num_generations"] - cfg["num_demos"]) / cfg["num_generations"]
        gen = ratios.get("gen_cpu_generate") if cpu else ratios.get("gen_generate")
        if gen:
            rows = cfg["num_prompts"] * cfg["num_generations"]
            ok_small = gen["median"] <= expected + 0.025
            extra, verdict = "", _verdict(ok_small)
            big = _load(out, "step_cost_64rows.json")
            big_gen = big and big["summary"]["ratios"].get("gen_cpu_generate" if cpu else "gen_generate")
            if big_gen:
                big_rows = big["config"]["num_prompts"] * big["config"]["num_generations"]
                ok_big = big_gen["median"] <= expected + 0.025
                extra = f"; with {big_rows} rows per step: {'CPU time ' if cpu else ''}{_r(big_gen)}"
                if ok_big and not ok_small:
                    verdict = f"met at {big_rows} rows per step, **not met** at {rows}"
            lines.append(
                f"| SRFT's generation time lower than GRPO's by about num_demos/num_generations (ratio "
                f"{expected:.3f}; SRFT generates {expected:.3f}x the rows) | model.generate, {rows} rows per step: "
                + (f"CPU time {_r(gen)} (wall {_r(ratios.get('gen_generate'))})" if cpu else _r(gen))
                + f"{extra} | {verdict}: the rows drop by exactly num_demos/num_generations, the time by less where "
                "`generate`'s per-step fixed cost weighs (Findings 3) |"
            )
        pk = ratios.get("peak_mb")
        g_pk, s_pk = (sc["summary"]["per_method"][m]["peak_mb_max"] for m in ("grpo", "srft"))
        lines.append(
            f"| Peak memory within 5% of GRPO's | training step, above the live state: {_r(pk)} "
            f"({s_pk:.0f} vs {g_pk:.0f} MiB) | {_verdict(abs(s_pk / g_pk - 1) <= 0.05 if g_pk else None)} |"
        )
    lv = _load(out, "large_vocab.json")
    if lv and lv.get("trainers"):
        longest = lv["trainers"][-1]
        g, s = (longest["summary"]["per_method"][m]["peak_mb_max"] for m in ("grpo", "srft"))
        lines.append(
            f"| Large vocabulary ({longest['config']['completion_len']:,}-token demonstrations, V = 151,936): the "
            f"entropy adds no full-vocabulary buffer beyond GRPO's | peak {s / g:.3f} ({s:.0f} vs {g:.0f} MiB; one fp32 "
            f"logits tensor would be {2 * longest['config']['completion_len'] * 151936 * 4 / 2**20:,.0f} MiB) | "
            f"{_verdict(s <= 1.05 * g)} |"
        )
    mfu = _load(out, "gpu_mfu_qwen2.5-1.5b_8k.json")
    if mfu:
        pm = mfu["summary"]["per_method"]
        lines.append(
            f"| Training-step MFU >= 40% for 1.5B at 8k tokens ({mfu['machine'].get('gpu')}) | GRPO "
            f"{100 * pm['grpo'].get('mfu', 0):.1f}%, SRFT {100 * pm['srft'].get('mfu', 0):.1f}% | "
            f"{_verdict(pm['srft'].get('mfu', 0) >= 0.40)} |"
        )
    else:
        lines.append("| Training-step MFU >= 40% for 1.5B at 8k tokens | not measured: no GPU was available to "
                     "this session (command at the end; obstacles in Findings 7) | n/a |")
    lines.append("")
    return lines


def rerender(out: Path) -> None:
    """Rebuild each part's Markdown from its JSON with the current code (summaries recomputed from raw runs)."""
    from . import large_vocab, profile_step, scaling, step_cost

    for path in out.glob("*.json"):
        if path.name.endswith(".partial.json"):
            continue
        data = json.loads(path.read_text())
        stem = path.stem
        if "runs" in data and "config" in data:  # a step_cost run
            data.setdefault("tag", stem)
            data["summary"] = step_cost.aggregate(data["runs"], data["machine"])
            md = step_cost.render(data)
        elif stem.startswith("large_vocab"):
            for tr in data.get("trainers", []):
                tr["summary"] = step_cost.aggregate([tr["run"]])
            md = large_vocab.render(data)
        elif stem.startswith("scaling"):
            for p in data.get("seq", []) + data.get("group", []):
                if "run" in p:
                    p["summary"] = step_cost.aggregate([p["run"]])
            md = scaling.render(data)
        elif stem.startswith("profile"):
            md = profile_step.render(data)
        else:
            continue
        common.write_json(path, data)
        (out / f"{stem}.md").write_text(md)


def write_report(out: Path, *, quick: bool = False, command: str = "", render_parts: bool = True) -> Path:
    out = Path(out)
    if render_parts:
        rerender(out)
    info = None
    for name in ("step_cost.json", "step_cost_quick.json", "large_vocab.json", "scaling.json"):
        data = _load(out, name)
        if data:
            info = data.get("machine")
            break
    lines = ["# SRFT vs GRPO: step cost, memory and scaling", ""]
    if quick:
        lines += ["Quick smoke run (tiny model, one repeat): it checks that the benchmark runs, its numbers are "
                  "dominated by fixed overheads and are not evidence.", ""]
    if info:
        lines += [
            "## Machine and versions", "",
            f"- device: {info.get('gpu') or info.get('device')}; CPU: {info.get('cpu')} x {info.get('cpu_count')}, "
            f"RAM {info.get('ram_gb')} GB; torch threads {info.get('torch_threads')}",
            f"- torch {info.get('torch')}, transformers {info.get('transformers')}, trl {info.get('trl')}, "
            f"accelerate {info.get('accelerate')}, Python {info.get('python')}, {info.get('platform')}",
            f"- srft-trl commit {info.get('srft_trl_commit')}"
            + (" (the working tree had uncommitted or untracked files under srft_trl/)" if info.get("srft_trl_dirty")
               else ""),
            "",
        ]
    lines += ["## Commands", "",
              "Every number comes from the JSON next to this report, written by these commands (run from the repository "
              "root with the virtual environment active; on CPU each worker runs under `nice -n 5`, "
              "`SRFT_PERF_NICE` to change):", ""]
    for path in sorted(out.glob("*.json")):
        if path.name.endswith(".partial.json"):
            continue
        data = json.loads(path.read_text())
        if data.get("command"):
            lines.append(f"- `{path.name}`: `{data['command']}`")
        peak_cmd = (data.get("machine") or {}).get("matmul_peak_command")
        if peak_cmd:
            lines.append(f"  - matmul peak (MFU denominator) re-measured in CPU time: `{peak_cmd}`")
    lines.append(f"- this report: `{command or 'python -m benchmarks.perf --render'}`")
    lines.append("")
    lines += targets(out)
    notes = out / "notes.md"
    if notes.is_file() and not quick:
        lines += [notes.read_text().rstrip(), ""]
    lines += ["## Measurements", ""]
    for name in SECTIONS:
        path = out / name
        if path.is_file() and (quick or not name.endswith("_quick.md")):
            lines += [path.read_text().rstrip(), ""]
            data = _load(out, name.replace(".md", ".json")) or {}
            commit = (data.get("machine") or {}).get("srft_trl_commit")
            if commit:
                lines += [f"(srft-trl commit {commit}; raw data: `{name.replace('.md', '.json')}`)", ""]
    if not quick:
        lines += [
            "## GPU command", "",
            "On a CUDA machine the same scripts time with `torch.cuda.synchronize`, measure peak memory with "
            "`torch.cuda.max_memory_allocated`, train in bf16 and report MFU against a measured bf16 matmul peak:", "",
            "```bash",
            "python -m benchmarks.perf --gpu --out benchmarks/results/perf-gpu",
            "# or only the MFU run of the 1.5B shape at 8k tokens:",
            "python -m benchmarks.perf.step_cost --tag gpu_mfu_qwen2.5-1.5b_8k " + " ".join(GPU_RUNS["gpu_mfu_qwen2.5-1.5b_8k"]),
            "```", "",
        ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
