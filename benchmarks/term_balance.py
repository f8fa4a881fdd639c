"""How hard each SRFT term pulls, and how far each method lowers the NLL of held-out demonstrations.

A measurement, not a tuning run: the protocol below is fixed before running, every run is reported.

Toy: a tiny Qwen2 (byte-level tokenizer, built locally) pre-trained here on *direct* answers
(`<think>\\n</think>\\n\\boxed{N}`) of the 1-2 operation "easy" arithmetic family, so it knows the answer
format but has never seen a worked solution nor a 3-operation chain. Training data: the shipped
`tiny_math` train split ("basic", 2-3 operations) whose demonstrations show one line per operation —
what the base cannot produce. Held out: the 100 demonstrations of `tiny_math/test`.

Methods, same learning rate, steps, prompts per step and seed: SRFT (`method="srft"`, per-term
normalisation), SRFT with the pre-0.2 shared normaliser (`term_normalization="shared"`), the public-code
preset (`method="srft_hpt"`), and plain SFT (TRL's `SFTTrainer`) on the same demonstrations. Reported:
held-out demonstration NLL per token before and after, and the mean over training of the logged term
sizes (`srft/loss_*`, `srft/grad_*`, `srft/w_sft`, `srft/w_rl`).

    python -m benchmarks.term_balance            # ~3 min on 2 CPU cores; results in benchmarks/results/term_balance/
    python -m benchmarks.term_balance --quick    # a smoke run (2 steps per method)

Runs resume: each finished run is written atomically and skipped when its settings are unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from srft_trl.data import load_tiny_math, to_sft_rows
from srft_trl.tasks.tiny_math import generate_arithmetic_problems
from srft_trl.files import atomic_write_json, atomic_write_text
from srft_trl.generation import render_prompt
from srft_trl.tiny import build_tiny_model, build_tiny_tokenizer

RESULTS = Path(__file__).resolve().parent / "results" / "term_balance"
WORK = Path(__file__).resolve().parents[1] / "runs" / "term_balance"  # base model and trainer outputs (git-ignored)
METHODS = {
    "srft": {"method": "srft"},
    "srft_shared": {"method": "srft", "term_normalization": "shared"},
    "srft_hpt": {"method": "srft_hpt"},
    "sft": None,  # TRL's SFTTrainer
}
LOGGED = ("srft/loss_sft", "srft/loss_demo_rl", "srft/loss_rollout", "srft/grad_sft", "srft/grad_demo_rl",
          "srft/grad_rollout", "srft/w_sft", "srft/w_rl", "srft/entropy_demo", "srft/reward_rollout")


@dataclass(frozen=True)
class Protocol:
    seed: int = 0
    base_steps: int = 400  # pre-training on direct answers of the easy family
    base_batch: int = 32
    base_lr: float = 3e-3
    steps: int = 40  # optimiser steps per method
    prompts_per_step: int = 8
    num_generations: int = 8  # 7 rollouts + 1 demonstration per prompt
    learning_rate: float = 1e-3
    max_completion_length: int = 64  # every tiny_math demo (<= 58 characters + EOS) fits

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


QUICK = Protocol(base_steps=20, steps=2, prompts_per_step=2)


def messages(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


def pretrain_base(tokenizer, protocol: Protocol):
    """Plain causal-LM training on direct answers; hand-written because it is 20 lines of torch and a study fixture."""
    torch.manual_seed(protocol.seed)
    held_out = {row["prompt"][-1]["content"] for split in ("train", "test", "ood") for row in load_tiny_math(split)}
    problems = generate_arithmetic_problems(3000, seed=10_000, difficulty="easy", exclude=held_out)
    model = build_tiny_model(tokenizer, seed=protocol.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=protocol.base_lr)
    rng = random.Random(protocol.seed)
    model.train()
    for _ in range(protocol.base_steps):
        batch = rng.sample(problems, protocol.base_batch)
        prompts = [tokenizer(render_prompt(tokenizer, messages(p["question"])), add_special_tokens=False)["input_ids"]
                   for p in batch]
        answers = [tokenizer("<think>\n</think>\n\\boxed{" + p["answer"] + "}", add_special_tokens=False)["input_ids"]
                   + [tokenizer.eos_token_id] for p in batch]
        length = max(len(p) + len(a) for p, a in zip(prompts, answers))
        ids = torch.full((len(batch), length), tokenizer.pad_token_id)
        labels = torch.full((len(batch), length), -100)
        for i, (p, a) in enumerate(zip(prompts, answers)):
            ids[i, : len(p) + len(a)] = torch.tensor(p + a)
            labels[i, len(p) : len(p) + len(a)] = torch.tensor(a)
        loss = model(input_ids=ids, attention_mask=(labels != -100) | (ids != tokenizer.pad_token_id), labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return model


def heldout_demo_nll(model, tokenizer) -> float:
    """Mean NLL per token of the held-out demonstrations (tiny_math/test) given their prompts."""
    from srft_trl.analysis.scoring import Example, score_examples

    rows = load_tiny_math("test")
    examples = [Example(prompt=row["prompt"], response=row["target"][-1]["content"]) for row in rows]
    _, scores = score_examples(model, tokenizer, examples)
    total = sum(-float(s.logprobs.sum()) for s in scores)
    return total / sum(len(s) for s in scores)


def train_dataset():
    """The shipped train split as the product loads it: prompt, demo, solution."""
    return load_tiny_math("train")


def exact_reward(completions, solution, **kwargs):
    """1 when the completion ends its answer as `\\boxed{gold}`: exact and process-free on this integer task."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [1.0 if f"\\boxed{{{gold}}}" in text else 0.0 for text, gold in zip(texts, solution)]


def run_method(name: str, base_dir: Path, tokenizer, protocol: Protocol, workdir: Path) -> dict:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    common = dict(output_dir=str(workdir / name), max_steps=protocol.steps, learning_rate=protocol.learning_rate,
                  lr_scheduler_type="constant", logging_steps=1, report_to=[], use_cpu=True, save_strategy="no",
                  seed=protocol.seed, disable_tqdm=True)
    dataset = train_dataset()
    started = time.time()
    if METHODS[name] is None:
        from trl import SFTConfig, SFTTrainer

        trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=to_sft_rows(dataset),
                             args=SFTConfig(per_device_train_batch_size=protocol.prompts_per_step, **common))
    else:
        from srft_trl import SRFTConfig, SRFTTrainer

        args = SRFTConfig(per_device_train_batch_size=protocol.prompts_per_step * protocol.num_generations,
                          num_generations=protocol.num_generations, max_completion_length=protocol.max_completion_length,
                          temperature=1.0, log_completions=False, **common, **METHODS[name])
        trainer = SRFTTrainer(model=model, reward_funcs=exact_reward, args=args, train_dataset=dataset,
                              processing_class=tokenizer)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    logged = {key: sum(h[key] for h in logs if key in h) / max(1, sum(key in h for h in logs)) for key in LOGGED
              if any(key in h for h in logs)}
    trainer.model.eval()
    return {"method": name, "overrides": METHODS[name], "nll_after": heldout_demo_nll(trainer.model, tokenizer),
            "logged_mean": logged, "curve": [{k: h[k] for k in ("step", *LOGGED) if k in h} for h in logs],
            "seconds": round(time.time() - started, 1)}


def report(results: dict, protocol: Protocol) -> str:
    lines = [
        "# Term balance and held-out demonstration NLL",
        "",
        f"Command: `python -m benchmarks.term_balance` (protocol `{protocol.key()}`: {asdict(protocol)}).",
        f"Base model held-out demonstration NLL: **{results['base_nll']:.3f}** nats/token.",
        "",
        "| method | NLL after | lowered by | loss_sft | loss_demo_rl | loss_rollout | grad_sft | grad_demo_rl | grad_rollout | w_sft | w_rl |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in METHODS:
        run = results["runs"].get(name)
        if run is None:
            continue
        m = run["logged_mean"]
        cells = [f"{m[k]:.4g}" if k in m else "-" for k in (
            "srft/loss_sft", "srft/loss_demo_rl", "srft/loss_rollout", "srft/grad_sft", "srft/grad_demo_rl",
            "srft/grad_rollout", "srft/w_sft", "srft/w_rl")]
        lines.append(f"| {name} | {run['nll_after']:.3f} | {results['base_nll'] - run['nll_after']:.3f} | "
                     + " | ".join(cells) + " |")
    lines += ["", "Term sizes are means over the training steps of the logged values (one optimiser step's scale).",
              "`grad_*` is the norm of a term's gradient with respect to the per-token log-probabilities.",
              f"`srft_hpt` is scaled per micro-batch as HPT's code (`term_normalization=\"verl\"`, since issue 21); "
              f"each step's {protocol.prompts_per_step * protocol.num_generations} rows are one micro-batch.", ""]
    if results.get("versions"):
        lines += ["Versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()) + ".", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 steps per method, a barely trained base")
    parser.add_argument("--out", type=Path, default=None, help=f"results folder (default {RESULTS})")
    parser.add_argument("--work", type=Path, default=WORK, help=f"base model and trainer outputs (default {WORK})")
    cli = parser.parse_args(argv)
    torch.set_num_threads(1)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    protocol = QUICK if cli.quick else Protocol()
    out = cli.out or (RESULTS / "quick" if cli.quick else RESULTS)
    tokenizer = build_tiny_tokenizer()
    base_dir = cli.work / f"base-{protocol.key()}"
    if not (base_dir / "config.json").exists():
        pretrain_base(tokenizer, protocol).save_pretrained(base_dir)
    from transformers import AutoModelForCausalLM

    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    if results.get("protocol") != asdict(protocol):
        results = {"protocol": asdict(protocol), "runs": {}}
    from benchmarks.testbed.runs import versions

    results["versions"] = versions()
    if "base_nll" not in results:
        results["base_nll"] = heldout_demo_nll(AutoModelForCausalLM.from_pretrained(base_dir), tokenizer)
    for name in METHODS:
        if name in results["runs"]:
            print(f"{name}: done earlier, skipped")
            continue
        results["runs"][name] = run_method(name, base_dir, tokenizer, protocol, cli.work / protocol.key())
        atomic_write_json(results_path, results)
        print(f"{name}: held-out demo NLL {results['base_nll']:.3f} -> {results['runs'][name]['nll_after']:.3f}")
    atomic_write_json(results_path, results)
    atomic_write_text(out / "README.md", report(results, protocol))
    print(report(results, protocol))
    return 0 if all(math.isfinite(r["nll_after"]) for r in results["runs"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
