"""One training run of the study: (method, seed) from the shared base model, then held-out evaluation.

Each run is a separate process (one torch thread), writes its result JSON atomically and is
skipped on a rerun if that file exists, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

from .methods import METHODS
from .settings import StudySettings


def atomic_write_json(path: Path, data) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def exact_match_reward(completions, solution, **kwargs):
    """Fallback reward (``--reward exact``): 1.0 iff `</think>` is present and the last
    `\\boxed{}` after it holds exactly the gold integer. Equivalent to Math-Verify on this data
    (integer golds), without worker processes."""
    from srft_trl.grading import answer_after_think, extract_boxed
    from srft_trl.rewards import completion_text

    scores = []
    for completion, gold in zip(completions, solution):
        answer = answer_after_think(completion_text(completion), require_think=True)
        boxed = extract_boxed(answer) if answer is not None else None
        scores.append(1.0 if boxed is not None and boxed.strip() == str(gold).strip() else 0.0)
    return scores


def get_reward(name: str):
    if name == "exact":
        return exact_match_reward
    from srft_trl.rewards import math_accuracy_reward

    return math_accuracy_reward


def worker_init():
    """Pool initializer: one OpenMP / MKL thread per run process (tiny matmuls are far faster so)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"


def _quiet():
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("WANDB_DISABLED", "true")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    logging.getLogger("trl").setLevel(logging.ERROR)


def _silence(trainer) -> None:
    """No per-step log dicts on stdout (they stay in `trainer.state.log_history`)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


def _train_rows(settings: StudySettings):
    from srft_trl.data import load_tiny_math

    ds = load_tiny_math("train")
    if settings.train_limit:
        ds = ds.select(range(min(settings.train_limit, len(ds))))
    return ds.select_columns(["prompt", "demo", "solution"])


def _common_args(settings: StudySettings, seed: int, out: str, steps: int) -> dict:
    return dict(
        output_dir=out,
        max_steps=steps,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_grad_norm=1.0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        optim="adamw_torch",
    )


def train_sft(model, tokenizer, settings: StudySettings, seed: int, steps: int, workdir: str):
    from trl import SFTConfig, SFTTrainer

    ds = _train_rows(settings)
    ds = ds.map(lambda r: {"completion": [{"role": "assistant", "content": r["demo"]}]})
    ds = ds.select_columns(["prompt", "completion"])
    args = SFTConfig(
        **_common_args(settings, seed, workdir, steps),
        per_device_train_batch_size=settings.prompts_per_step,
        max_length=256,
        completion_only_loss=True,
        dataset_num_proc=None,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer)
    _silence(trainer)
    trainer.train()
    return trainer.model, trainer.state.log_history


def train_rl(model, tokenizer, settings: StudySettings, seed: int, steps: int, workdir: str, preset: str,
             overrides: dict, reward_fn):
    from srft_trl import SRFTConfig, SRFTTrainer

    ds = _train_rows(settings)
    g = settings.num_generations
    kwargs = dict(
        **_common_args(settings, seed, workdir, steps),
        method=preset,
        per_device_train_batch_size=settings.prompts_per_step * g,
        num_generations=g,
        max_completion_length=settings.max_completion_length,
        temperature=1.0,
        beta=0.0,
        remove_unused_columns=False,
        max_entropy_weight=settings.max_entropy_weight,
        mask_truncated_completions=False,
    )
    kwargs.update(overrides)
    args = SRFTConfig(**kwargs)
    trainer = SRFTTrainer(model=model, reward_funcs=reward_fn, args=args, train_dataset=ds, processing_class=tokenizer)
    _silence(trainer)
    trainer.train()
    return trainer.model, trainer.state.log_history


def curves(history: list[dict], offset: int = 0) -> dict:
    """Per-step training curves (Fig. 6): on-policy reward, response length, rollout entropy."""
    keep = {}
    for entry in history:
        if "step" not in entry or ("loss" not in entry and "reward" not in entry):  # skip the end-of-train summary
            continue
        step = entry["step"] + offset
        row = {k: v for k, v in entry.items() if isinstance(v, (int, float))}
        row["step"] = step
        keep[step] = row
    return {"steps": [keep[s] for s in sorted(keep)]}


def run_one(method_name: str, seed: int, settings: StudySettings, base_path: str, result_path: str) -> dict:
    """Train one method from the base model, evaluate it, write `result_path`. Returns the result."""
    import torch

    torch.set_num_threads(1)
    _quiet()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .evaluation import accuracy, load_split

    method = METHODS[method_name]
    reward_fn = get_reward(settings.reward)
    start, cpu_start = time.time(), time.process_time()
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    history: list[dict] = []
    with tempfile.TemporaryDirectory(prefix=f"toy-{method_name}-{seed}-") as workdir:
        if method.kind == "sft":
            model, hist = train_sft(model, tokenizer, settings, seed, settings.steps, workdir)
            history = curves(hist)["steps"]
        elif method.kind == "rl":
            model, hist = train_rl(model, tokenizer, settings, seed, settings.steps, workdir, method.preset,
                                   method.overrides, reward_fn)
            history = curves(hist)["steps"]
        elif method.kind == "sft_rl":
            sft_steps = settings.steps // 2
            model, hist = train_sft(model, tokenizer, settings, seed, sft_steps, workdir + "/sft")
            history = [dict(h, stage="sft") for h in curves(hist)["steps"]]
            model, hist = train_rl(model, tokenizer, settings, seed, settings.steps - sft_steps, workdir + "/rl",
                                   method.preset, method.overrides, reward_fn)
            history += [dict(h, stage="rl") for h in curves(hist, offset=sft_steps)["steps"]]
        else:
            raise ValueError(method.kind)
    train_seconds = time.time() - start
    model.eval()
    evals = {}
    for split in ("test", "ood"):
        rows = load_split(split, settings.eval_limit)
        evals[split] = accuracy(model, tokenizer, rows, reward_fn, settings.eval_max_new_tokens)
    result = {
        "method": method_name,
        "seed": seed,
        "test_accuracy": evals["test"]["accuracy"],
        "ood_accuracy": evals["ood"]["accuracy"],
        "eval": evals,
        "history": history,
        "train_seconds": train_seconds,
        "total_seconds": time.time() - start,
        "cpu_seconds": time.process_time() - cpu_start,
    }
    atomic_write_json(Path(result_path), result)
    return result


def evaluate_base(settings: StudySettings, base_path: str, result_path: str) -> dict:
    import torch

    torch.set_num_threads(1)
    _quiet()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .evaluation import accuracy, load_split

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    reward_fn = get_reward(settings.reward)
    evals = {s: accuracy(model, tokenizer, load_split(s, settings.eval_limit), reward_fn,
                         settings.eval_max_new_tokens) for s in ("test", "ood")}
    # Entropy scale of the base (what exp(H) and exp(-H) see): mean next-token entropy on the demos.
    rows = load_split("train", 64)
    ents = []
    with torch.no_grad():
        for r in rows:
            prompt = tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
            p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            d_ids = tokenizer(r["demo"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            logits = model(input_ids=torch.tensor([p_ids + d_ids])).logits[0, len(p_ids) - 1 : -1]
            logp = torch.log_softmax(logits.float(), -1)
            ents.append(-(logp.exp() * logp).sum(-1))
    ent = torch.cat(ents)
    result = {
        "method": "base",
        "test_accuracy": evals["test"]["accuracy"],
        "ood_accuracy": evals["ood"]["accuracy"],
        "eval": evals,
        "demo_token_entropy": {"mean": ent.mean().item(), "max": ent.max().item(),
                               "p90": ent.quantile(0.9).item()},
    }
    atomic_write_json(Path(result_path), result)
    return result
