"""The testbed's base model: a small Qwen2 pre-trained here on a SLOPPY teacher's running sums.

Pre-training text (chat-formatted problems, loss on the answer only):

* every line a running-sum procedure can contain (`n+d` for n up to 72, d a digit), answered directly,
  so the arithmetic of every demonstration line is known;
* running-sum solutions to chains of 2 to `max_terms` digits, from the half of the problem space the study
  never uses (`srft_trl.tasks.digit_chains.in_study_pool`), written by a teacher who drops a line's carry with probability
  `carry_slip` (`srft_trl.tasks.digit_chains.Problem.procedure`).

So the base solves some in-distribution chains (its carries are a coin flip), nearly no chain one term
longer than pre-training covered, and has never seen a correct long solution: the paper's Fig. 1(a)
set-up, where RL refines what the base already samples and demonstrations carry more.
Cached on disk keyed by a hash of its settings, written atomically (temporary sibling directory
renamed into place), so reruns and parallel workers reuse the same base.
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

from srft_trl.tasks.digit_chains import Problem, draw, in_study_pool, step_facts


@dataclass(frozen=True)
class ModelShape:
    hidden_size: int = 128
    num_hidden_layers: int = 3
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 384


@dataclass(frozen=True)
class BaseSettings:
    shape: ModelShape = ModelShape()
    min_terms: int = 2
    max_terms: int = 5  # sloppy running-sum solutions for chains of min_terms..max_terms digits
    carry_slip: float = 0.5  # the sloppy teacher drops a line's carry with this probability
    step_share: float = 0.3  # share of procedure-line facts (n+d, answered directly) in the text
    steps: int = 500
    batch_size: int = 64
    learning_rate: float = 3e-3
    seed: int = 0

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def build_model(tokenizer, shape: ModelShape, seed: int):
    from srft_trl.tiny import build_tiny_model

    return build_tiny_model(tokenizer, seed=seed, max_position_embeddings=256, **asdict(shape))


def _render(tokenizer, question: str, answer_text: str) -> tuple[str, str]:
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                           add_generation_prompt=True)
    return prompt, answer_text + tokenizer.eos_token


def pretrain_texts(tokenizer, settings: BaseSettings, n: int) -> list[tuple[str, str]]:
    rng = random.Random(settings.seed)
    facts = step_facts(9 * 8)  # every line of a chain up to 9 terms
    texts = []
    for _ in range(n):
        if rng.random() < settings.step_share:
            fact = Problem(rng.choice(facts))
            texts.append(_render(tokenizer, fact.question, fact.direct()))
            continue
        # Repeats are fine in pre-training (short chains are few); the study's half never appears.
        p = draw(rng, rng.randint(settings.min_terms, settings.max_terms))
        while in_study_pool(p.question):
            p = draw(rng, rng.randint(settings.min_terms, settings.max_terms))
        texts.append(_render(tokenizer, p.question, p.procedure(settings.carry_slip, rng)))
    return texts


def pretrain(settings: BaseSettings, out_dir: Path, log=print) -> dict:
    import torch

    from srft_trl.tiny import build_tiny_tokenizer

    torch.manual_seed(settings.seed)
    tokenizer = build_tiny_tokenizer()
    model = build_model(tokenizer, settings.shape, settings.seed)
    texts = pretrain_texts(tokenizer, settings, settings.steps * settings.batch_size)
    # (prompt ids, answer ids): the loss is on the answer only, as in instruction tuning; the question's random
    # digits are unpredictable and would otherwise dominate the loss.
    encoded = [(tokenizer(p, add_special_tokens=False)["input_ids"], tokenizer(a, add_special_tokens=False)["input_ids"])
               for p, a in texts]
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.01)
    warmup = max(1, settings.steps // 20)

    def lr_at(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, settings.steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    model.train()
    start, losses = time.time(), []
    for step in range(settings.steps):
        batch = encoded[step * settings.batch_size:(step + 1) * settings.batch_size]
        width = max(len(p) + len(a) for p, a in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100)
        for i, (p, a) in enumerate(batch):
            ids[i, : len(p) + len(a)] = torch.tensor(p + a)
            mask[i, : len(p) + len(a)] = 1
            labels[i, len(p) : len(p) + len(a)] = torch.tensor(a)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        if (step + 1) % max(1, settings.steps // 5) == 0:
            log(f"[base] step {step + 1}/{settings.steps} answer loss {sum(losses[-20:]) / len(losses[-20:]):.3f}")
    model.eval()
    info = {"settings": asdict(settings), "final_loss": sum(losses[-20:]) / len(losses[-20:]),
            "seconds": time.time() - start, "num_parameters": sum(p.numel() for p in model.parameters())}
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "pretrain_info.json").write_text(json.dumps(info, indent=2))
        if not out_dir.exists():  # another process may have finished first: keep theirs
            os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return info


WEIGHTS = "model.safetensors"
HASH_FILE = "weights.sha256"
_KEPT_FILES = ("config.json", "generation_config.json", WEIGHTS, "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "chat_template.jinja", "pretrain_info.json")


def weights_sha256(path) -> str:
    """sha256 of a checkpoint's weights file: the identity of a base, recorded in every result."""
    digest = hashlib.sha256()
    with open(Path(path) / WEIGHTS, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def keep_base(source: Path, kept_dir: Path) -> Path:
    """Copy a base checkpoint into `kept_dir` (committed with the results, a few MB) with its weights' hash."""
    target = Path(kept_dir) / Path(source).name
    if (target / HASH_FILE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name in _KEPT_FILES:
            if (Path(source) / name).is_file():
                shutil.copy2(Path(source) / name, tmp / name)
        (tmp / HASH_FILE).write_text(weights_sha256(tmp) + "\n")
        if not target.exists():
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_base(settings: BaseSettings, cache_dir: Path, log=print, kept_dir: Path | None = None) -> Path:
    """Path of the base model for `settings`.

    With `kept_dir` (the study's `bases/` folder): a kept base is reused as it is, after checking its weights against
    the hash kept with it (a mismatch is an error, never a silent rebuild); otherwise the base is pre-trained (or taken
    from the cache) and kept. Without `kept_dir`: the cache only, pre-training first if needed.
    """
    name = f"base-{settings.key()}"
    if kept_dir is not None and (Path(kept_dir) / name / HASH_FILE).is_file():
        kept = Path(kept_dir) / name
        recorded = (kept / HASH_FILE).read_text().strip()
        actual = weights_sha256(kept)
        if actual != recorded:
            raise RuntimeError(f"kept base {kept} has weights sha256 {actual[:12]}..., not the recorded "
                               f"{recorded[:12]}...: restore it from git (it is never rebuilt over)")
        log(f"[base] reusing kept {name} (sha256 {actual[:12]})")
        return kept
    path = Path(cache_dir) / name
    if not (path / "config.json").is_file():
        log(f"[base] pre-training {path.name}")
        pretrain(settings, path, log=log)
    return keep_base(path, kept_dir) if kept_dir is not None else path
