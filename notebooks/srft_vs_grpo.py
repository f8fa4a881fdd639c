# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # SRFT vs GRPO vs LUFFY, same budget
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/srft-trl/srft-trl/blob/main/notebooks/srft_vs_grpo.ipynb)
#
# Three methods, one `SRFTTrainer`, one training budget (model, LoRA adapter, data, steps, group size,
# learning rate, seed); only the `method` preset changes:
#
# | `method` | rollouts per group | demonstration | loss |
# |---|---|---|---|
# | `"grpo"` | `NUM_GENERATIONS` | none | TRL's GRPO loss: exactly `GRPOTrainer` |
# | `"luffy"` | `NUM_GENERATIONS - 1` | 1, off-policy RL with LUFFY's shaped ratio $p/(p+\gamma)$ | GRPO loss on rollouts, no SFT term |
# | `"srft"` | `NUM_GENERATIONS - 1` | 1, entropy-weighted SFT (Eq. 8) + off-policy RL (Eq. 9-10) | Eq. 12 on rollouts, $w_{RL} = 0.1\,\mathrm{sg}(e^{H})$ |
#
# Every group has the same size, so each method trains on the same number of completions per step;
# GRPO generates one more rollout per prompt where the others read a demonstration. The quickstart
# notebook (`srft_lora_quickstart.ipynb`) explains each SRFT setting next to its equation.
#
# On Colab choose a GPU runtime (*Runtime → Change runtime type → T4 GPU*) and press *Run all*; the
# three runs take about three times as long as the quickstart.

# %%
# Dependencies. srft-trl is not on PyPI: it installs from a clone of its repository (the folder holding
# setup.cfg; this notebook sits in its notebooks/ folder) or from the wheel built there
# (`pip wheel --no-deps -w dist .`; on Colab, upload it and set SRFT_TRL_SOURCE to its file name).
# On Colab INSTALL is on (with vLLM when a GPU is attached); elsewhere install as the README says
# (`pip install -e ".[plots]"` in the clone) or set INSTALL = True.
import importlib.util
import shutil
import subprocess
import sys

SRFT_TRL_SOURCE = ".."  # a clone of srft-trl, or e.g. "srft_trl-0.1.0-py3-none-any.whl"
INSTALL = "google.colab" in sys.modules

if INSTALL and importlib.util.find_spec("srft_trl") is None:  # skipped after a session restart
    extras = "vllm,plots" if shutil.which("nvidia-smi") else "plots"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"{SRFT_TRL_SOURCE}[{extras}]"], check=True)
    print("Installed srft-trl. If Colab asks to restart the session, restart it and press 'Run all' again.")

# %% [markdown]
# ## Parameters
#
# Everything you may want to change is in the next cell (tagged `parameters`, so
# [papermill](https://papermill.readthedocs.io) can set it with `-p NAME VALUE`). The defaults fit a
# free Colab T4; on a larger GPU try `MODEL_ID = "Qwen/Qwen2.5-Math-1.5B"` (the paper's smallest model),
# more steps and `MAX_COMPLETION_LENGTH = 2048`.
#
# * `DATASET`: a Hub id or local file of the OpenR1 schema (the paper's training set by default), or
#   `"tiny_math"`, the arithmetic set shipped with srft-trl. `DATASET_SLICE` rows are read; `EVAL_SIZE`
#   of them are held out for the before/after evaluation, and training uses the rest whose
#   demonstration fits in `MAX_COMPLETION_LENGTH` tokens.
# * `NUM_GENERATIONS` is the group size: `NUM_GENERATIONS - 1` rollouts plus one demonstration per prompt.
#   `PER_DEVICE_BATCH` completions are trained on per step (a multiple of `NUM_GENERATIONS`).
# * `USE_VLLM = "auto"` generates the rollouts with vLLM colocated on the training GPU when vLLM is
#   installed and a GPU is present, and with transformers' `generate` otherwise.
# * `TINY = True` swaps in a ~0.3M-parameter random model built locally (nothing downloaded) and one
#   CPU thread: that is how CI runs this notebook, with `DATASET = "tiny_math"` (plumbing: a random model
#   shows no learning).
# * On a CPU, without downloads, to see SRFT teach: `MODEL_ID = "digit_chains_base"` (the quickstart's
#   pre-trained 0.62M-parameter model, shipped with srft-trl) with `DATASET = "digit_chains"`,
#   `MAX_STEPS = 300`, `LEARNING_RATE = 1e-3`, `LORA_R = 32`, `PER_DEVICE_BATCH = 32`,
#   `MAX_COMPLETION_LENGTH = 80`, `EVAL_SIZE = 500`, `EVAL_BATCH_SIZE = 128`: each method trains from the same
#   pre-trained base (see notebooks/README.md for the measured numbers and time).

# %% tags=["parameters"]
MODEL_ID = "Qwen/Qwen2.5-0.5B-Instruct"      # or "Qwen/Qwen2.5-Math-1.5B" (the paper's smallest model)
DATASET = "Elliott/Openr1-Math-46k-8192"     # OpenR1-schema Hub id / local file, or "tiny_math"
DATASET_SLICE = 10000                        # rows read (held-out rows included); most R1 demos are long
EVAL_SIZE = 64                               # held-out problems, evaluated before and after training
EVAL_BATCH_SIZE = 32                         # prompts per generate() call in the evaluation
METHODS = ["grpo", "luffy", "srft"]          # SRFTConfig.method presets to compare
MAX_STEPS = 60                               # optimizer steps per method (the shared budget)
NUM_GENERATIONS = 4                          # group size, the same for every method
PER_DEVICE_BATCH = 8                         # completions per step (PER_DEVICE_BATCH / NUM_GENERATIONS prompts)
MAX_COMPLETION_LENGTH = 1024                 # tokens per rollout; longer demonstrations are filtered out
LEARNING_RATE = 5e-5                         # LoRA takes a ~10x larger step than full fine-tuning (paper: 1e-6)
LORA_R = 16                                  # LoRA rank (alpha = 2 * rank)
USE_VLLM = "auto"                            # "auto": vLLM colocate if installed and a GPU is present
VLLM_GPU_MEMORY = 0.25                       # share of GPU memory vLLM reserves in colocate mode
SEED = 42
OUTPUT_DIR = "srft-vs-grpo"                  # one adapter per method, and the comparison plot
TINY = False                                 # CI: the tiny local model on CPU (pair with DATASET = "tiny_math")

# %%
import importlib.util
import os
from pathlib import Path

import torch
from transformers import set_seed

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
Path(OUTPUT_DIR).mkdir(parents=True, exist_ok=True)
set_seed(SEED)

if TINY:
    # The project's tiny random Qwen2 (byte-level tokenizer, Qwen chat template), built locally.
    from srft_trl.tiny import ensure_tiny_model

    torch.set_num_threads(1)  # on small CPUs, one thread is ~100x faster for the tiny matmuls
    MODEL_ID = str(ensure_tiny_model(Path(OUTPUT_DIR) / "tiny-model"))

if MODEL_ID == "digit_chains_base":
    # The quickstart's pre-trained 0.62M-parameter base, shipped with srft-trl (checked by sha256): CPU-sized.
    from srft_trl.tasks.digit_chains import shipped_base

    torch.set_num_threads(1)
    MODEL_ID = str(shipped_base())

ON_GPU = torch.cuda.is_available()
if USE_VLLM == "auto":
    use_vllm = ON_GPU and importlib.util.find_spec("vllm") is not None
else:
    use_vllm = bool(USE_VLLM)
bf16 = ON_GPU and torch.cuda.is_bf16_supported(including_emulation=False)  # native (Ampere+), not emulated
fp16 = ON_GPU and not bf16  # e.g. a T4: fp32 weights, fp16 autocast
dtype = torch.bfloat16 if bf16 else torch.float32

print(f"model: {MODEL_ID}")
print(f"device: {torch.cuda.get_device_name() if ON_GPU else 'CPU'}, weights {dtype}, "
      f"generation: {'vLLM (colocate)' if use_vllm else 'transformers'}")

# %% [markdown]
# ## Data: prompts, demonstrations, answers
#
# SRFT needs three columns per row: the `prompt` (chat messages), a demonstration `demo` (an expert
# solution, here DeepSeek-R1's from OpenR1-Math) and the verifiable `solution`. `load_openr1` turns the
# paper's dataset (or any file of its schema) into these columns and puts the paper's system prompt in
# front (it asks for `<think> ... </think>` then a `\boxed{}` answer). Demonstrations longer than the
# completion budget are filtered out up front, so none is truncated.

# %%
from transformers import AutoTokenizer

from srft_trl.data import SRFT_SYSTEM_PROMPT, filter_by_demo_length, load_digit_chains, load_openr1, load_tiny_math

tokenizer = AutoTokenizer.from_pretrained(MODEL_ID)
if DATASET == "tiny_math":
    # Shipped with the package: 400 training problems, 100 held-out test problems. The paper's
    # ~700-character instruction would dwarf these 28-character prompts, so no system prompt.
    train_dataset = load_tiny_math("train")
    eval_dataset = load_tiny_math("test").select(range(min(EVAL_SIZE, 100)))
elif DATASET == "digit_chains":
    # Shipped with the package (the quickstart's task, for MODEL_ID = "digit_chains_base"): 2,400 training
    # problems with worked demonstrations, 500 held out; bare prompts, as that base was pre-trained.
    train_dataset = load_digit_chains("train")
    eval_dataset = load_digit_chains("test").select(range(min(EVAL_SIZE, 500)))
else:
    rows = load_openr1(DATASET, split=f"train[:{DATASET_SLICE}]", system_prompt=SRFT_SYSTEM_PROMPT,
                       tokenizer=tokenizer)
    held_out = rows.train_test_split(test_size=EVAL_SIZE, seed=SEED)
    eval_dataset = held_out["test"]
    train_dataset, dropped = filter_by_demo_length(held_out["train"], tokenizer, MAX_COMPLETION_LENGTH)
    print(f"{dropped} rows dropped: demonstration longer than {MAX_COMPLETION_LENGTH} tokens")
    if len(train_dataset) == 0:
        raise ValueError("no demonstration fits: raise MAX_COMPLETION_LENGTH or DATASET_SLICE")

print(f"train: {len(train_dataset)} rows, held out: {len(eval_dataset)} rows")
example = train_dataset[0]
print("prompt:", example["prompt"][-1]["content"][:300])
print("demo:  ", example["demo"][:300])
print("answer:", example["solution"])

# %% [markdown]
# ## Held-out accuracy
#
# A quick check, not the paper's benchmark protocol (`srft-trl eval` does that): one greedy answer per
# held-out problem, graded by Math-Verify like the training reward (1 when the answer after `</think>`
# is mathematically equivalent to the reference). Generation and grading are srft-trl's own
# (`srft_trl.generation`), as in `srft-trl train`.

# %%
from srft_trl.generation import accuracy_of, heldout_responses


def heldout_accuracy(model, dataset, batch_size=EVAL_BATCH_SIZE):
    """Fraction of `dataset` answered correctly (one greedy completion per prompt, graded by Math-Verify), and the completions."""
    completions = heldout_responses(model, tokenizer, dataset, max_new_tokens=MAX_COMPLETION_LENGTH, temperature=0.0,
                                    batch_size=batch_size)
    return accuracy_of(completions, dataset["solution"], grader="math_verify"), completions


# %%
from peft import LoraConfig

# LoRA on every linear layer of the transformer blocks; only the adapter (a few MB) is trained and saved.
peft_config = LoraConfig(r=LORA_R, lora_alpha=2 * LORA_R, lora_dropout=0.0, target_modules="all-linear",
                         task_type="CAUSAL_LM")

# %% [markdown]
# ## Three runs
#
# Each method gets a fresh LoRA adapter on the same base model, the same seed and the same data order.
# After training, its adapter and model card are saved to `OUTPUT_DIR/<method>` and its held-out accuracy
# is measured. Between runs the trainer (and, with vLLM, its engine) is released so that GPU memory is
# free for the next one.

# %%
import copy
import gc

from srft_trl import SRFTConfig, SRFTTrainer
from srft_trl.rewards import math_accuracy_reward


def release(trainer):
    """Free the trainer's GPU memory, including a colocated vLLM engine, before the next run."""
    generation = getattr(trainer, "vllm_generation", None)
    if generation is not None and getattr(generation, "llm", None) is not None:
        try:
            from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

            destroy_model_parallel()
            destroy_distributed_environment()
        except Exception as error:  # best effort: the next engine still starts if memory allows
            print(f"vLLM cleanup: {error}")
        generation.llm = None
    trainer.accelerator.free_memory()  # drops the accelerator's references to the model and optimizer
    trainer.model = trainer.model_wrapped = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


results = {}
accuracy_before = None
from srft_trl.model_card import install_model_card, settings_recipe

for method in METHODS:
    set_seed(SEED)
    config = SRFTConfig(
        output_dir=f"{OUTPUT_DIR}/{method}",
        method=method,
        # the budget: group size, completions per step, steps, learning rate
        num_generations=NUM_GENERATIONS,
        per_device_train_batch_size=PER_DEVICE_BATCH,
        gradient_accumulation_steps=1,
        max_completion_length=MAX_COMPLETION_LENGTH,
        max_steps=MAX_STEPS,
        learning_rate=LEARNING_RATE,
        lr_scheduler_type="constant",
        temperature=1.0,
        # generation backend: vLLM shares the training GPU ("colocate"), else transformers' generate
        use_vllm=use_vllm,
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=VLLM_GPU_MEMORY,
        # runtime
        model_init_kwargs={"dtype": dtype},
        bf16=bf16,
        fp16=fp16,
        use_cpu=not ON_GPU,
        gradient_checkpointing=ON_GPU,  # recompute activations in the backward pass (GPU memory)
        logging_steps=1,
        log_completions=False,
        save_strategy="no",
        report_to="none",
        seed=SEED,
    )
    trainer = SRFTTrainer(
        model=MODEL_ID,
        reward_funcs=math_accuracy_reward,
        args=config,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=copy.deepcopy(peft_config),  # PEFT fills in the config it is given: one copy per run
    )
    if accuracy_before is None:  # the adapter starts as a no-op: this is the base model, shared by all
        accuracy_before, _ = heldout_accuracy(trainer.model, eval_dataset)
        print(f"held-out accuracy before training: {accuracy_before:.3f} ({len(eval_dataset)} problems)")
    print(f"--- {method}: {config.num_generations - config.num_demos} rollouts + {config.num_demos} demonstration(s) per group")
    trainer.train()
    accuracy, _ = heldout_accuracy(trainer.model, eval_dataset)
    print(f"{method}: held-out accuracy before: {accuracy_before:.3f} / after: {accuracy:.3f}")
    trainer.save_model(config.output_dir)
    install_model_card(  # srft-trl's card (base model, data, method and preset, settings, metrics), not TRL's
        trainer, recipe_text=settings_recipe(trainer, MODEL_ID, DATASET, peft_config=peft_config,
                                             source="notebooks/srft_vs_grpo.ipynb"),
        overrides=(), base_model=MODEL_ID, dataset=DATASET,
        extra_metrics={"heldout_accuracy_before": accuracy_before, "heldout_accuracy_after": accuracy},
    )
    trainer.create_model_card(model_name=f"{Path(MODEL_ID).name}-{method}-lora", tags=["lora", method])
    results[method] = {"history": trainer.state.log_history, "accuracy": accuracy}
    release(trainer)
    del trainer

# %% [markdown]
# ## Comparison
#
# * **reward of the on-policy rollouts**: `srft/reward_rollout` for the methods with demonstrations
#   (TRL's `reward` would average the demonstrations in), `reward` for GRPO (all rollouts).
# * **entropy of the rollouts**: in the paper, RL alone drives entropy down fastest; SRFT's
#   $w_{RL} = 0.1\,e^{H}$ weakens the positive pull as entropy falls, to slow the collapse. A short run on
#   a small model shows the direction at best, not the paper's numbers.
# * **held-out accuracy** before training (the shared base model) and after each method.

# %%
import matplotlib.pyplot as plt


def series(history, *keys):
    """(steps, values) of the first of `keys` logged in `history` (a trainer's `state.log_history`)."""
    for key in keys:
        points = [(entry["step"], entry[key]) for entry in history if key in entry]
        if points:
            return [p[0] for p in points], [p[1] for p in points]
    return [], []


def smooth(values, window):
    """Trailing moving average (the raw per-step values of a short run are noisy)."""
    return [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
            for i in range(len(values))]


SMOOTH = max(1, MAX_STEPS // 20)


fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for method, result in results.items():
    for ax, keys in zip(axes[:2], [("srft/reward_rollout", "reward"), ("srft/entropy_rollout", "entropy")]):
        steps, values = series(result["history"], *keys)
        if steps:
            ax.plot(steps, smooth(values, SMOOTH), label=method)
axes[0].set_title("reward of on-policy rollouts")
axes[1].set_title("entropy of on-policy rollouts")
for ax in axes[:2]:
    ax.set_xlabel("step")
    ax.legend()
names = ["base"] + list(results)
accuracies = [accuracy_before] + [result["accuracy"] for result in results.values()]
bars = axes[2].bar(names, accuracies, color=["tab:gray"] + [f"C{i}" for i in range(len(results))])
axes[2].bar_label(bars, fmt="%.3f")
axes[2].set_ylim(0, 1)
axes[2].set_title(f"held-out accuracy ({len(eval_dataset)} problems)")
fig.suptitle(f"{Path(MODEL_ID).name} + LoRA, {MAX_STEPS} steps, group of {NUM_GENERATIONS}")
fig.tight_layout()
fig.savefig(Path(OUTPUT_DIR) / "comparison.png", dpi=100)
plt.show()

print(f"{'method':<8} held-out accuracy")
print(f"{'base':<8} {accuracy_before:.3f}")
for method, result in results.items():
    print(f"{method:<8} {result['accuracy']:.3f}")
