"""One run of the testbed: (method, seed, learning rate) from the cached base, then held-out evaluation.

Each run is a separate process (one torch thread) that writes its result JSON atomically; a run
whose file exists is never redone, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

from .evaluation import accuracy, chat_prompt, exact_answer_reward
from .methods import METHODS
from .settings import TestbedSettings, heldout_sets, train_problems


def atomic_write_json(path: Path, data) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def versions() -> dict:
    """The library versions a result was produced with (issue 21: every result records them)."""
    import importlib.metadata
    import platform

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "trl", "accelerate", "peft", "datasets"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance(settings: TestbedSettings, base_path: str) -> dict:
    """What a result needs to be reproduced: the base it started from (seed, weights hash) and the versions."""
    from .base import weights_sha256

    return {"base_seed": settings.base.seed, "base_key": settings.base.key(), "base_sha256": weights_sha256(base_path),
            "versions": versions()}


def worker_init():
    """One OpenMP / MKL thread per run process: a tiny model's matmuls are far faster so."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("WANDB_DISABLED", "true")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _quiet():
    import datasets
    import torch
    import transformers

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    logging.getLogger("trl").setLevel(logging.ERROR)


def _silence(trainer) -> None:
    """No per-step log lines on stdout (they stay in `trainer.state.log_history`)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


def _dataset(problems, demos: bool):
    from datasets import Dataset

    rows = {"prompt": [chat_prompt(p.question) for p in problems], "solution": [p.answer for p in problems]}
    if demos:
        rows["demo"] = [p.procedure() for p in problems]
    else:
        rows["completion"] = [[{"role": "assistant", "content": p.procedure()}] for p in problems]
    return Dataset.from_dict(rows)


def _common_args(out: str, steps: int, lr: float, seed: int) -> dict:
    return dict(output_dir=out, max_steps=steps, learning_rate=lr, lr_scheduler_type="constant", warmup_steps=0,
                max_grad_norm=1.0, logging_steps=1, save_strategy="no", report_to=[], seed=seed, data_seed=seed,
                use_cpu=True, bf16=False, disable_tqdm=True, dataloader_num_workers=0, optim="adamw_torch")


def _sft_curve_callback(settings: TestbedSettings, tokenizer, steps: int, curve: list, offset: int = 0):
    """Validation accuracy (both trained families) every `steps / sft_curve_points` steps: the SFT learning curve."""
    from transformers import TrainerCallback

    every = max(1, steps // max(1, settings.sft_curve_points))
    val = heldout_sets(settings)["val"]

    class Curve(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % every == 0 or state.global_step == steps:
                point = {"step": state.global_step + offset}
                for fam, problems in val.items():
                    point[f"val_{fam}"] = accuracy(model, tokenizer, problems, settings.eval_max_new_tokens,
                                                   settings.eval_temperature, examples=0)["accuracy"]
                curve.append(point)
                model.train()

    return Curve()


def train_sft(model, tokenizer, problems, settings, seed, lr, workdir, curve: list, offset: int = 0,
              extra: dict | None = None):
    from trl import SFTConfig, SFTTrainer

    steps = len(problems) // settings.prompts_per_step
    kwargs = dict(**_common_args(workdir, steps, lr, seed), per_device_train_batch_size=settings.prompts_per_step,
                  max_length=256, completion_only_loss=True, dataset_num_proc=None)
    kwargs.update(extra or {})
    args = SFTConfig(**kwargs)
    trainer = SFTTrainer(model=model, args=args, train_dataset=_dataset(problems, demos=False),
                         processing_class=tokenizer,
                         callbacks=[_sft_curve_callback(settings, tokenizer, steps, curve, offset)])
    _silence(trainer)
    trainer.train()
    return trainer.model, trainer.state.log_history


def train_rl(model, tokenizer, problems, settings, seed, lr, workdir, preset: str, overrides: dict):
    from srft_trl import SRFTConfig, SRFTTrainer

    g = settings.num_generations
    kwargs = dict(**_common_args(workdir, len(problems) // settings.prompts_per_step, lr, seed), method=preset,
                  per_device_train_batch_size=settings.prompts_per_step * g, num_generations=g,
                  max_completion_length=settings.max_completion_length, temperature=1.0, beta=0.0,
                  remove_unused_columns=False, mask_truncated_completions=False)
    kwargs.update(overrides)
    trainer = SRFTTrainer(model=model, reward_funcs=exact_answer_reward, args=SRFTConfig(**kwargs),
                          train_dataset=_dataset(problems, demos=preset != "grpo"), processing_class=tokenizer)
    _silence(trainer)
    trainer.train()
    return trainer.model, trainer.state.log_history


def history_rows(log_history: list[dict], offset: int = 0, stage: str | None = None) -> list[dict]:
    """Per-step numeric metrics (the end-of-training summary row dropped)."""
    rows = []
    for entry in log_history:
        if "step" not in entry or "train_runtime" in entry:
            continue
        row = {k: v for k, v in entry.items() if isinstance(v, (int, float))}
        row["step"] = entry["step"] + offset
        if stage:
            row["stage"] = stage
        rows.append(row)
    return rows


def evaluate(model, tokenizer, settings: TestbedSettings) -> dict:
    sets = heldout_sets(settings)
    return {split: {fam: accuracy(model, tokenizer, problems, settings.eval_max_new_tokens,
                                      settings.eval_temperature)
                    for fam, problems in fams.items()} for split, fams in sets.items()}


def run_one(method_name: str, seed: int, lrs: dict[str, float], settings: TestbedSettings, base_path: str,
            result_path: str) -> dict:
    """Train `method_name` from the base with learning rate(s) `lrs`, evaluate, write `result_path`."""
    worker_init()
    _quiet()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    method = METHODS[method_name]
    start, cpu_start = time.time(), time.process_time()
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    steps = int(method.budget * settings.steps)
    problems = train_problems(settings, seed, steps * settings.prompts_per_step)
    own_rate = lrs[method.lr_from[0] if method.lr_from else method_name]
    history, sft_curve = [], []
    with tempfile.TemporaryDirectory(prefix=f"testbed-{method_name}-{seed}-") as workdir:
        if method.kind == "sft":
            points = max(1, round(settings.sft_curve_points * method.budget))
            curve_settings = replace(settings, sft_curve_points=points)
            model, log = train_sft(model, tokenizer, problems, curve_settings, seed, own_rate, workdir, sft_curve)
            history = history_rows(log)
        elif method.kind == "rl":
            model, log = train_rl(model, tokenizer, problems, settings, seed, own_rate, workdir, method.preset,
                                  method.overrides)
            history = history_rows(log)
        else:  # SFT on the first half of the problems (its own swept stage), then GRPO on the second half
            (stage,) = method.stage_from
            half = (settings.steps // 2) * settings.prompts_per_step
            model, log = train_sft(model, tokenizer, problems[:half], settings, seed, lrs[stage], workdir + "/sft",
                                   sft_curve)
            history = history_rows(log, stage="sft")
            model, log = train_rl(model, tokenizer, problems[half:], settings, seed, own_rate, workdir + "/rl",
                                  method.preset, method.overrides)
            history += history_rows(log, offset=settings.steps // 2, stage="rl")
    train_seconds = time.time() - start
    model.eval()
    result = {
        "method": method_name, "seed": seed, "learning_rates": lrs, "settings_key": settings.run_key(),
        "regime": settings.regime, **provenance(settings, base_path),
        "problems_seen": len(problems), "optimizer_steps": max((h["step"] for h in history), default=0),
        "eval": evaluate(model, tokenizer, settings), "history": history, "sft_curve": sft_curve,
        "train_seconds": train_seconds, "total_seconds": time.time() - start,
        "cpu_seconds": time.process_time() - cpu_start,
    }
    atomic_write_json(Path(result_path), result)
    return result


def evaluate_base(settings: TestbedSettings, base_path: str, result_path: str) -> dict:
    """The base row: held-out accuracy, plus its entropy scale on the demonstrations (what exp(+-H) sees)."""
    worker_init()
    _quiet()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    model.eval()
    entropies = []
    with torch.no_grad():
        for p in train_problems(settings, 0, 32):
            prompt = tokenizer.apply_chat_template(chat_prompt(p.question), tokenize=False, add_generation_prompt=True)
            p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            d_ids = tokenizer(p.procedure(), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            logits = model(input_ids=torch.tensor([p_ids + d_ids])).logits[0, len(p_ids) - 1 : -1]
            logp = torch.log_softmax(logits.float(), -1)
            entropies.append(-(logp.exp() * logp).sum(-1))
    ent = torch.cat(entropies)
    result = {"method": "base", "settings_key": settings.run_key(), "regime": settings.regime,
              **provenance(settings, base_path), "eval": evaluate(model, tokenizer, settings),
              "demo_token_entropy": {"mean": ent.mean().item(), "p90": ent.quantile(0.9).item(),
                                     "max": ent.max().item()}}
    atomic_write_json(Path(result_path), result)
    return result
