"""Shared pieces of the performance benchmarks: model shapes, trainers, fixed batches, timers, memory.

Everything runs on CPU or on one CUDA GPU with the same code. On CUDA the timers synchronise the device and
peak memory is `torch.cuda.max_memory_allocated`; on CPU peak memory is the resident-set high-water mark
(`VmHWM`, reset through `/proc/self/clear_refs` just before the measured region), which sees torch's CPU
allocations (tracemalloc does not). Each measurement runs in a fresh subprocess (see `run_worker`), so one
measurement's allocator state never leaks into the next and repeats give an honest spread.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Models are random-initialised from a config: nothing is downloaded.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("WANDB_DISABLED", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "perf"

# Shapes of random-initialised Qwen2 models. `vocab_size=None` means the tiny byte-level tokenizer's vocabulary.
# The Qwen2.5 rows copy the published configs (hidden, MLP, layers, heads, KV heads, vocabulary, tied embeddings).
SHAPES: dict[str, dict] = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=None),
    "cpu-small": dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=8192),
    "large-vocab": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, vocab_size=151936),
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936),
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, vocab_size=151936),
}


# ---------------------------------------------------------------------------------------------- environment


def device_name() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def setup_torch(threads: int | None) -> None:
    """Set torch's intra-op threads (on small CPUs one thread is far faster for small matmuls)."""
    import torch

    if threads:
        torch.set_num_threads(threads)


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def machine_info() -> dict:
    import accelerate
    import torch
    import transformers
    import trl

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "ram_gb": round(_mem_total_kb() / 2**20, 1) if _mem_total_kb() else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "accelerate": accelerate.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device_name(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        info["cuda"] = torch.version.cuda
    try:
        import srft_trl

        info["srft_trl_commit"] = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        info["srft_trl_dirty"] = bool(
            subprocess.run(
                ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no", "srft_trl"], capture_output=True, text=True
            ).stdout.strip()
        )
        del srft_trl
    except Exception:  # noqa: BLE001 - informational only
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _mem_total_kb() -> int | None:
    try:
        return int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
    except (OSError, AttributeError):
        return None


# ---------------------------------------------------------------------------------------------- memory


def _status_mb(field: str) -> float:
    return int(re.search(rf"{field}:\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024


class PeakMemory:
    """Peak memory of a region, in MiB, above what was live when it started.

    CUDA: `max_memory_allocated` after `reset_peak_memory_stats`. CPU: the RSS high-water mark after resetting
    it with `/proc/self/clear_refs` (Linux), so pages torch allocates and frees inside the region are counted.
    """

    def __init__(self):
        import torch

        self.cuda = torch.cuda.is_available()
        self.base = self.peak = 0.0

    def __enter__(self):
        import torch

        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated() / 2**20
        else:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # reset VmHWM to the current RSS
                self.base = _status_mb("VmRSS")
            except OSError:  # not Linux: the process-lifetime high-water mark (not reset per region)
                import resource

                self.base = 0.0
                self._rusage = resource
        return self

    def __exit__(self, *exc):
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() / 2**20
        elif hasattr(self, "_rusage"):
            scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 1024  # bytes on macOS, KiB on Linux
            self.peak = self._rusage.getrusage(self._rusage.RUSAGE_SELF).ru_maxrss * scale
        else:
            self.peak = _status_mb("VmHWM")
        return False

    @property
    def delta(self) -> float:
        return self.peak - self.base


# ---------------------------------------------------------------------------------------------- models


def make_model(shape: str, *, seed: int = 0, dtype=None, max_positions: int = 32768, attn: str | None = None):
    """A random-initialised `Qwen2ForCausalLM` of the named shape (nothing downloaded)."""
    import torch
    from transformers import Qwen2ForCausalLM

    from srft_trl.tiny import build_tiny_tokenizer, tiny_config, tiny_generation_config

    tokenizer = build_tiny_tokenizer()
    spec = dict(SHAPES[shape])
    vocab = spec.pop("vocab_size") or len(tokenizer)
    config = tiny_config(tokenizer, vocab_size=vocab, max_position_embeddings=max_positions, rope_theta=1_000_000.0, **spec)
    if attn:
        config._attn_implementation = attn
    torch.manual_seed(seed)
    device = device_name()
    dtype = dtype or torch.float32
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(dtype)
    model.generation_config = tiny_generation_config(tokenizer)
    return model, tokenizer


def param_counts(model) -> dict:
    """Parameters in matmuls per token: the backbone's linear layers and the LM head (embedding lookup excluded)."""
    cfg = model.config
    total = sum(p.numel() for p in model.parameters())
    embed = cfg.vocab_size * cfg.hidden_size
    body = total - embed - (0 if cfg.tie_word_embeddings else embed)
    # norms are negligible; count them in the body anyway
    return {"total": total, "body": body, "lm_head": embed}


def train_flops(model, rows: int, prompt_len: int, completion_len: int) -> float:
    """Model FLOPs of one training step (forward + backward = 3x forward) on `rows` sequences.

    Forward per token: `2 * body_params` for the linear layers; causal attention `2 * 2 * L_ctx/2 * hidden` per
    layer (QK^T and AV, half the square on average); the LM head `2 * hidden * vocab` only for the completion
    tokens (the ones scored). Recomputation, padding and positions the kernel scores without need are not
    counted: this is the 'model FLOPs' of MFU, not the hardware FLOPs.
    """
    cfg = model.config
    counts = param_counts(model)
    seq = prompt_len + completion_len
    tokens = rows * seq
    linear = 2 * counts["body"] * tokens
    attention = rows * cfg.num_hidden_layers * 2 * 2 * cfg.hidden_size * (seq * (seq + 1) / 2)
    head = 2 * cfg.hidden_size * cfg.vocab_size * rows * completion_len
    return 3 * (linear + attention + head)


def matmul_peak_flops(dtype_name: str, n: int | None = None, repeats: int = 5) -> float:
    """Measured dense-matmul throughput (FLOP/s) of this device: the MFU denominator.

    CUDA: wall time with synchronisation. CPU: process CPU time divided by the torch threads in use, so that a
    machine shared with other work (preemption) does not lower the peak; compare it with CPU-time step costs.
    """
    import torch

    dtype = getattr(torch, dtype_name)
    device = device_name()
    n = n or (8192 if device == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync()
    clock = time.perf_counter if device == "cuda" else time.process_time
    threads = 1 if device == "cuda" else torch.get_num_threads()
    best = math.inf
    for _ in range(repeats):
        t = clock()
        for _ in range(4):
            a @ b
        sync()
        best = min(best, (clock() - t) / 4 / threads)
    return 2 * n**3 / best


# ---------------------------------------------------------------------------------------------- trainers


def _reward(completions, **kwargs):
    """A cheap deterministic 0/1 reward (half of the completions 'correct'), so groups have non-zero advantages."""
    return [float(hash(str(c)) % 2) if not isinstance(c, str) else float(len(c) % 2) for c in completions]


def make_dataset(num_prompts: int, prompt_len: int, demo_len: int):
    from datasets import Dataset

    # Byte-level tokenizer: one character is one token, so lengths are exact.
    rows = []
    for i in range(num_prompts):
        prompt = (f"Problem {i}: " + "x" * prompt_len)[:prompt_len]
        demo = (f"Solution {i}: " + "y" * demo_len)[: max(demo_len - 1, 1)]  # + EOS appended by the trainer
        rows.append({"prompt": prompt, "demo": demo, "solution": "1"})
    return Dataset.from_list(rows)


def make_trainer(method: str, model, tokenizer, *, num_prompts: int, num_generations: int, num_demos: int,
                 prompt_len: int, completion_len: int, output_dir: str, bf16: bool = False, **extra):
    """`GRPOTrainer` (method="grpo") or `SRFTTrainer` (method="srft", the paper's preset) on the same settings."""
    from trl import GRPOConfig, GRPOTrainer

    from srft_trl import SRFTConfig, SRFTTrainer

    common = dict(
        output_dir=output_dir,
        per_device_train_batch_size=num_prompts * num_generations,
        num_generations=num_generations,
        max_completion_length=completion_len,
        # every row generates exactly `completion_len` tokens, so both methods see the same shapes
        generation_kwargs={"min_new_tokens": completion_len},
        learning_rate=1e-6,
        report_to=[],
        logging_steps=10**9,
        save_strategy="no",
        bf16=bf16,
        use_cpu=device_name() == "cpu",
        dataloader_num_workers=0,
        seed=0,
        remove_unused_columns=False,
        **extra,
    )
    dataset = make_dataset(num_prompts, prompt_len, completion_len)
    if method == "grpo":
        args = GRPOConfig(**common)
        trainer = GRPOTrainer(model=model, reward_funcs=_reward, args=args, train_dataset=dataset,
                              processing_class=tokenizer)
    elif method == "srft":
        args = SRFTConfig(method="srft", num_demos=num_demos, **common)
        trainer = SRFTTrainer(model=model, reward_funcs=_reward, args=args, train_dataset=dataset,
                              processing_class=tokenizer)
    else:
        raise ValueError(method)
    trainer.current_gradient_accumulation_steps = 1
    trainer.model.train()
    return trainer, dataset


def fixed_batch(model, *, num_prompts: int, num_generations: int, num_demos: int, prompt_len: int,
                completion_len: int, seed: int = 0) -> dict:
    """One generation batch of fixed tensors, identical for GRPO and SRFT (SRFT also reads its two row flags).

    Every row has `prompt_len` prompt tokens and `completion_len` completion tokens (no padding), so both
    trainers train on exactly the same tokens. Advantages are group-normalised random rewards.
    """
    import torch

    from srft_trl.demos import demo_slot_mask

    g = torch.Generator().manual_seed(seed)
    rows = num_prompts * num_generations
    vocab = model.config.vocab_size
    device = model.device
    rewards = torch.randint(0, 2, (num_prompts, num_generations), generator=g).float()
    advantages = ((rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-4)).flatten()
    is_demo = torch.tensor(demo_slot_mask(rows, 0, num_generations, num_demos))
    batch = {
        "prompt_ids": torch.randint(4, vocab, (rows, prompt_len), generator=g),
        "prompt_mask": torch.ones(rows, prompt_len, dtype=torch.long),
        "completion_ids": torch.randint(4, vocab, (rows, completion_len), generator=g),
        "completion_mask": torch.ones(rows, completion_len, dtype=torch.long),
        "advantages": advantages,
        "num_items_in_batch": torch.tensor(float(rows * completion_len)),
        "srft_row_kind": is_demo.long(),  # 0 rollout, 1 demo
        "srft_correct": rewards.flatten().bool() & ~is_demo,
        # The per-term sample counts SRFTTrainer adds to a generation batch (`_count_samples`); no padding here.
        "srft_demo_rows": is_demo.sum().float(),
        "srft_demo_tokens": is_demo.sum().float() * completion_len,
        "srft_rollout_rows": (~is_demo).sum().float(),
        "srft_rollout_tokens": (~is_demo).sum().float() * completion_len,
    }
    return {k: v.to(device) for k, v in batch.items()}


def batch_for(method: str, batch: dict) -> dict:
    return batch if method == "srft" else {k: v for k, v in batch.items() if not k.startswith("srft_")}


def generation_inputs(dataset, num_generations: int) -> list[dict]:
    """The generation batch the GRPO sampler yields: each prompt repeated `num_generations` times in a row."""
    return [dict(row) for row in dataset for _ in range(num_generations)]


# ---------------------------------------------------------------------------------------------- timed step


class ForwardTimer:
    """Wraps `model.forward` (TRL's fused-LM-head forward) to time the training forward on its own."""

    def __init__(self, model):
        self.model = model
        self.inner = model.forward
        self.seconds = self.cpu_seconds = 0.0
        model.forward = self._forward

    def _forward(self, *args, **kwargs):
        sync()
        t, c = time.perf_counter(), time.process_time()
        out = self.inner(*args, **kwargs)
        sync()
        self.seconds += time.perf_counter() - t
        self.cpu_seconds += time.process_time() - c
        return out


def split_rows(batch: dict, micro_batches: int) -> list[dict]:
    """Split a batch into `micro_batches` row chunks (gradient accumulation), scalars shared."""
    if micro_batches <= 1:
        return [batch]
    rows = batch["completion_ids"].size(0)
    size = math.ceil(rows / micro_batches)
    return [
        {k: (v[i : i + size] if getattr(v, "dim", lambda: 0)() >= 1 else v) for k, v in batch.items()}
        for i in range(0, rows, size)
    ]


def train_step(trainer, optimizer, inputs, fwd_timer: ForwardTimer, micro_batches: int = 1) -> dict:
    """One optimizer step on a fixed batch: loss (forward inside), backward, optimizer. Seconds per part.

    With `micro_batches > 1` the rows are split and the gradients accumulated, as `gradient_accumulation_steps`
    does (the trainers divide each micro-batch's loss by `current_gradient_accumulation_steps`). Besides wall
    time, the process CPU time of each part is recorded (`cpu_*`): on a shared CPU machine it is not inflated by
    waiting for a core, so CPU ratios are far less noisy than wall-clock ones.
    """
    model = trainer.model
    chunks = split_rows(inputs, micro_batches)
    trainer.current_gradient_accumulation_steps = len(chunks)
    fwd_timer.seconds = fwd_timer.cpu_seconds = 0.0
    loss_s = backward_s = cpu_loss = cpu_backward = 0.0
    total = 0.0
    sync()
    start, cpu_start = time.perf_counter(), time.process_time()
    for chunk in chunks:
        t0, c0 = time.perf_counter(), time.process_time()
        loss = trainer.compute_loss(model, chunk)
        sync()
        t1, c1 = time.perf_counter(), time.process_time()
        loss.backward()
        sync()
        t2, c2 = time.perf_counter(), time.process_time()
        loss_s += t1 - t0
        backward_s += t2 - t1
        cpu_loss += c1 - c0
        cpu_backward += c2 - c1
        total += float(loss.detach())
    t2, c2 = time.perf_counter(), time.process_time()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    sync()
    t3, c3 = time.perf_counter(), time.process_time()
    forward = fwd_timer.seconds
    return {
        "forward": forward,
        "loss": loss_s - forward,
        "backward": backward_s,
        "optimizer": t3 - t2,
        "train": t3 - start,
        "forward_loss_backward": t2 - start,
        "cpu_forward": fwd_timer.cpu_seconds,
        "cpu_loss": cpu_loss - fwd_timer.cpu_seconds,
        "cpu_backward": cpu_backward,
        "cpu_forward_loss_backward": c2 - cpu_start,
        "cpu_train": c3 - cpu_start,
        "loss_value": total,
    }


def make_optimizer(trainer):
    trainer.create_optimizer()
    return trainer.optimizer


# ---------------------------------------------------------------------------------------------- subprocesses


def run_worker(module: str, params: dict, *, threads: int | None, nice: int = 5, timeout: int = 3600) -> dict:
    """Run `python -m <module> --worker '<json>'` in a fresh process and return the JSON it prints last."""
    env = dict(os.environ)
    # Return freed blocks to the OS at once so the RSS high-water mark tracks live tensors (CPU memory).
    env.setdefault("MALLOC_MMAP_THRESHOLD_", "131072")
    env.setdefault("MALLOC_TRIM_THRESHOLD_", "131072")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", module, "--worker", json.dumps({**params, "threads": threads})]
    nice = int(os.environ.get("SRFT_PERF_NICE", nice))
    if nice and hasattr(os, "nice"):
        cmd = ["nice", "-n", str(nice)] + cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {module} {params} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"worker {module} printed no RESULT line:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def emit(result: dict) -> None:
    print("RESULT " + json.dumps(result), flush=True)


def summarize(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt(stat: dict, scale: float = 1.0, digits: int = 3) -> str:
    """`median [min-max]` of a summary."""
    if not stat or stat.get("median") is None:
        return "n/a"
    m, lo, hi = (stat[k] * scale for k in ("median", "min", "max"))
    if stat["n"] == 1:
        return f"{m:.{digits}g}"
    return f"{m:.{digits}g} [{lo:.{digits}g}-{hi:.{digits}g}]"


def spread_pct(stat: dict) -> float | None:
    if not stat or not stat.get("median"):
        return None
    return 100 * (stat["max"] - stat["min"]) / stat["median"]


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


@contextlib.contextmanager
def timer():
    out = {}
    sync()
    t = time.perf_counter()
    yield out
    sync()
    out["seconds"] = time.perf_counter() - t
