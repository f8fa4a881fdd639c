"""The study's base model: a tiny Qwen2 pre-trained here to be weak but not useless.

It mirrors the paper's situation (Qwen2.5-Math-7B: knows the answer format, is sometimes right):
plain causal-LM training on chat-formatted worked solutions of the *easy* family (1-2
operations), never on the problems of the shipped train / test / ood splits. It therefore knows
the `<think>...</think>\\boxed{}` format and single arithmetic steps, but has never seen a
3-operation chain (half of the "basic" problems the study trains and evaluates on) nor brackets
(the OOD "hard" family).

The model is cached on disk, keyed by a hash of every setting that shapes it, and written
atomically (temporary sibling directory renamed into place), so reruns and parallel workers reuse
the same base.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from srft_trl.data import generate_arithmetic_problems, load_tiny_math


@dataclass(frozen=True)
class BaseSettings:
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 256
    num_problems: int = 3000  # distinct easy problems (the easy family has only ~5k)
    steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 3e-3
    seed: int = 0
    family: str = "easy"

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _held_out_questions() -> set[str]:
    questions = set()
    for split in ("train", "test", "ood"):
        for row in load_tiny_math(split):
            questions.add(row["prompt"][-1]["content"])
    return questions


def pretrain_texts(tokenizer, settings: BaseSettings) -> list[str]:
    problems = generate_arithmetic_problems(
        settings.num_problems, seed=10_000 + settings.seed, difficulty=settings.family, exclude=_held_out_questions()
    )
    texts = []
    for p in problems:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": p["question"]}], tokenize=False, add_generation_prompt=True
        )
        texts.append(prompt + p["demo"] + tokenizer.eos_token)
    return texts


def pretrain(settings: BaseSettings, out_dir: Path, log=print) -> dict:
    import torch

    from srft_trl.tiny import build_tiny_model, build_tiny_tokenizer

    torch.manual_seed(settings.seed)
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(
        tokenizer,
        seed=settings.seed,
        hidden_size=settings.hidden_size,
        num_hidden_layers=settings.num_hidden_layers,
        num_attention_heads=settings.num_attention_heads,
        num_key_value_heads=settings.num_key_value_heads,
        intermediate_size=settings.intermediate_size,
        max_position_embeddings=256,
    )
    texts = pretrain_texts(tokenizer, settings)
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    rng = random.Random(settings.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.01)
    warmup = max(1, settings.steps // 20)

    def lr_at(step):
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, settings.steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    model.train()
    start = time.time()
    losses = []
    for step in range(settings.steps):
        batch = rng.sample(encoded, settings.batch_size)
        width = max(len(x) for x in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, x in enumerate(batch):
            ids[i, : len(x)] = torch.tensor(x)
            mask[i, : len(x)] = 1
        labels = ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        if (step + 1) % max(1, settings.steps // 6) == 0:
            log(f"[base] step {step + 1}/{settings.steps} loss {sum(losses[-20:]) / len(losses[-20:]):.3f}")
    model.eval()
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    info = {"settings": asdict(settings), "final_loss": sum(losses[-20:]) / len(losses[-20:]),
            "seconds": time.time() - start, "num_parameters": sum(p.numel() for p in model.parameters())}
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "pretrain_info.json").write_text(json.dumps(info, indent=2))
        if out_dir.exists():  # another worker finished first: keep theirs
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return info


def ensure_base(settings: BaseSettings, cache_dir: Path, log=print) -> Path:
    """Path of the cached base model for `settings`, pre-training it first if needed."""
    path = Path(cache_dir) / f"base-{settings.key()}"
    if (path / "config.json").is_file():
        return path
    log(f"[base] pre-training base model {path.name} ({settings})")
    pretrain(settings, path, log=log)
    return path
