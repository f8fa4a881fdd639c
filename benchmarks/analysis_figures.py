"""The README's analysis pictures: `srft-trl analyze` on the testbed's models.

    python -m benchmarks.analysis_figures            # ~10 min on 2 CPU cores

Trains SFT, GRPO and SRFT (paper preset) from the testbed's cached base model with the testbed's
settings, seed 0 and the learning rates its study chose (read from
`benchmarks/results/testbed/results.json`), saving checkpoints every quarter of the run, then
runs the three analysis commands exactly as a user would:

    srft-trl analyze token-shift --base BASE --tuned SFT GRPO SRFT --prompts PROMPTS ...
    srft-trl analyze trajectory --checkpoints BASE SFT... --checkpoints BASE GRPO... --checkpoints BASE SRFT...
                                --references BASE SFT-final GRPO-final --prompts PROMPTS
    srft-trl analyze dynamics --runs GRPO SRFT ...

Models go to `--work` (not committed); figures and their JSON to `--out` (committed under
docs/images/analysis). Prompts: held-out test problems of the ID and ~0% families.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.testbed.__main__ import DEFAULT_CACHE, parse_lrs
from benchmarks.testbed.base import ensure_base
from benchmarks.testbed.evaluation import chat_prompt
from benchmarks.testbed.settings import FULL, heldout_sets, train_problems


# The study whose rates the committed figures used (v2); the v3 study writes benchmarks/results/testbed/v3/<regime>/.
V2_RESULTS = Path("benchmarks/results/testbed/results.json")


def study_learning_rates(results: Path) -> dict[str, float]:
    if not results.is_file():
        raise SystemExit(f"{results}: no testbed study found; run `python -m benchmarks.testbed` first "
                         "(the pictures use the learning rates it chose)")
    return json.loads(results.read_text())["learning_rates"]


def train_models(work: Path, lrs: dict[str, float], seed: int = 0) -> dict[str, Path]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from benchmarks.testbed.runs import _quiet, train_rl, train_sft, worker_init

    worker_init()
    _quiet()
    base = ensure_base(FULL.base, DEFAULT_CACHE)
    tokenizer = AutoTokenizer.from_pretrained(base)
    problems = train_problems(FULL, seed, FULL.steps * FULL.prompts_per_step)
    save = {"save_strategy": "steps", "save_steps": max(1, FULL.steps // 4)}
    runs = {"base": base}
    for name in ("sft", "grpo", "srft"):
        out = work / name
        runs[name] = out
        if (out / "config.json").is_file():
            continue
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        if name == "sft":
            model, _ = train_sft(model, tokenizer, problems, FULL, seed, lrs["sft"], str(out), [], extra=save)
        else:
            model, _ = train_rl(model, tokenizer, problems, FULL, seed, lrs[name], str(out), name, save)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    return runs


def write_prompts(path: Path, count: int) -> Path:
    test = heldout_sets(FULL)["test"]
    problems = test["id"][: count // 2] + test["zero"][: count - count // 2]
    path.write_text("".join(json.dumps({"prompt": chat_prompt(p.question)}) + "\n" for p in problems))
    return path


def main(argv=None) -> int:
    from srft_trl.analysis.cli import main as analyze

    parser = argparse.ArgumentParser(prog="python -m benchmarks.analysis_figures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/images/analysis"))
    parser.add_argument("--work", type=Path, default=Path("outputs/analysis_figures"))
    parser.add_argument("--results", type=Path, default=V2_RESULTS,
                        help="the testbed study whose learning rates to use")
    parser.add_argument("--lr", nargs="+", default=[], metavar="METHOD=RATE",
                        help="the rates of sft, grpo and srft (default: those the study in --results chose)")
    parser.add_argument("--prompts", type=int, default=16)
    args = parser.parse_args(argv)
    try:
        lrs = parse_lrs(args.lr) if args.lr else study_learning_rates(args.results)
    except ValueError as exc:
        parser.error(str(exc))
    if any(m not in lrs for m in ("sft", "grpo", "srft")):
        parser.error("--lr needs sft=RATE grpo=RATE srft=RATE")
    args.work.mkdir(parents=True, exist_ok=True)
    runs = train_models(args.work, lrs)
    prompts = write_prompts(args.work / "prompts.jsonl", args.prompts)
    common = ["--threads", "1", "--max-new-tokens", str(FULL.eval_max_new_tokens), "--no-progress"]
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
