"""The README's analysis pictures: `srft-trl analyze` on toy-study models.

    python -m benchmarks.analysis_figures            # ~5 min on 2 CPU cores

Trains SFT, GRPO and SRFT from the toy study's pre-trained base model (seed 0, the study's settings,
checkpoints every 10 steps), then runs the three analysis commands exactly as a user would:

    srft-trl analyze token-shift --base BASE --tuned SFT GRPO SRFT --prompts PROMPTS ...
    srft-trl analyze trajectory --checkpoints BASE SFT --checkpoints BASE GRPO --checkpoints BASE SRFT
                                --references BASE SFT-final GRPO-final --reference-labels ... --prompts PROMPTS
    srft-trl analyze dynamics --runs GRPO SRFT ...

Models go to `--work` (not committed); figures and their JSON to `--out` (committed under
docs/images/analysis).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.toy_study.__main__ import DEFAULT_CACHE
from benchmarks.toy_study.base import ensure_base
from benchmarks.toy_study.runs import get_reward, train_rl, train_sft
from benchmarks.toy_study.settings import FULL


def train_models(work: Path, steps: int, seed: int = 0) -> dict[str, Path]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    base = ensure_base(FULL.base, DEFAULT_CACHE)
    tokenizer = AutoTokenizer.from_pretrained(base)
    runs = {"base": base}
    for name in ("sft", "grpo", "srft"):
        out = work / name
        runs[name] = out
        if (out / "config.json").is_file():
            continue
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        if name == "sft":
            model, _ = train_sft(model, tokenizer, FULL, seed, steps, str(work / "sft-tmp"))
        else:
            save = {"save_strategy": "steps", "save_steps": max(1, steps // 4)}
            model, _ = train_rl(model, tokenizer, FULL, seed, steps, str(out), name, save, get_reward(FULL.reward))
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    return runs


def write_prompts(path: Path, count: int) -> Path:
    from srft_trl.data import load_tiny_math

    rows = load_tiny_math("test").select(range(count))
    path.write_text("".join(json.dumps({"prompt": row["prompt"]}) + "\n" for row in rows))
    return path


def main(argv=None) -> int:
    from srft_trl.analysis.cli import main as analyze

    parser = argparse.ArgumentParser(prog="python -m benchmarks.analysis_figures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/images/analysis"))
    parser.add_argument("--work", type=Path, default=Path("outputs/analysis_figures"))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--prompts", type=int, default=16)
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    runs = train_models(args.work, args.steps)
    prompts = write_prompts(args.work / "prompts.jsonl", args.prompts)
    common = ["--threads", "1", "--max-new-tokens", "64", "--no-progress"]
    status = analyze(["token-shift", "--base", str(runs["base"]), "--tuned", str(runs["sft"]), str(runs["grpo"]),
                      str(runs["srft"]), "--labels", "SFT,GRPO,SRFT", "--prompts", str(prompts),
                      "--num-heatmaps", "2", "-o", str(args.out / "token_shift"), *common])
    status |= analyze(["trajectory", "--checkpoints", str(runs["base"]), str(runs["sft"]),
                       "--checkpoints", str(runs["base"]), str(runs["grpo"]),
                       "--checkpoints", str(runs["base"]), str(runs["srft"]),
                       "--series-labels", "SFT,GRPO,SRFT", "--references", str(runs["base"]), str(runs["sft"]),
                       str(runs["grpo"]), "--reference-labels", "base,SFT-final,GRPO-final", "--prompts", str(prompts),
                       "-o", str(args.out / "trajectory"), *common])
    status |= analyze(["dynamics", "--runs", str(runs["grpo"]), str(runs["srft"]), "--labels", "GRPO,SRFT",
                       "-o", str(args.out / "dynamics"), "--no-progress"])
    return status


if __name__ == "__main__":
    raise SystemExit(main())
