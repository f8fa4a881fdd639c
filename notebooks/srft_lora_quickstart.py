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
# # SRFT with LoRA: a quickstart
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/srft-trl/srft-trl/blob/main/notebooks/srft_lora_quickstart.ipynb)
#
# **SRFT** (Supervised Reinforcement Fine-Tuning, [Fu et al. 2025, arXiv 2506.19767](https://arxiv.org/abs/2506.19767))
# trains a reasoning model in a single stage from two sources at once: expert demonstrations (supervised
# and off-policy RL on them) and the model's own rollouts (on-policy RL), balanced by weights that follow
# the policy's entropy. [srft-trl](https://github.com/srft-trl/srft-trl) implements it as `SRFTTrainer`, a
# drop-in subclass of TRL's `GRPOTrainer`.
#
# This notebook fine-tunes a small instruct model with SRFT and a LoRA adapter on a slice of the paper's
# OpenR1-Math data, plots the training signals, compares held-out accuracy before and after, and saves
# (optionally pushes) the adapter with its model card. On Colab choose a GPU runtime
# (*Runtime → Change runtime type → T4 GPU*) and press *Run all*.

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
#   `MAX_COMPLETION_LENGTH = 80`, `EVAL_SIZE = 500`, `EVAL_BATCH_SIZE = 128`: held-out accuracy (greedy, 500 problems)
#   0.290 -> 0.588 in about 3 minutes on 2 CPU cores.

# %% tags=["parameters"]
MODEL_ID = "Qwen/Qwen2.5-0.5B-Instruct"      # or "Qwen/Qwen2.5-Math-1.5B" (the paper's smallest model)
DATASET = "Elliott/Openr1-Math-46k-8192"     # OpenR1-schema Hub id / local file, or "tiny_math"
DATASET_SLICE = 10000                        # rows read (held-out rows included); most R1 demos are long
EVAL_SIZE = 64                               # held-out problems, evaluated before and after training
EVAL_BATCH_SIZE = 32                         # prompts per generate() call in the evaluation
MAX_STEPS = 100                              # optimizer steps
NUM_GENERATIONS = 4                          # group size: NUM_GENERATIONS - 1 rollouts + 1 demonstration
PER_DEVICE_BATCH = 8                         # completions per step (PER_DEVICE_BATCH / NUM_GENERATIONS prompts)
MAX_COMPLETION_LENGTH = 1024                 # tokens per rollout; longer demonstrations are filtered out
LEARNING_RATE = 5e-5                         # LoRA takes a ~10x larger step than full fine-tuning (paper: 1e-6)
LORA_R = 16                                  # LoRA rank (alpha = 2 * rank)
USE_VLLM = "auto"                            # "auto": vLLM colocate if installed and a GPU is present
VLLM_GPU_MEMORY = 0.3                        # share of GPU memory vLLM reserves in colocate mode
SEED = 42
OUTPUT_DIR = "srft-lora-quickstart"          # adapter, model card and plots are written here
MERGE_ADAPTER = False                        # also save the base model with the adapter merged in
PUSH_TO_HUB = False                          # push the adapter (or the merged model) to HUB_MODEL_ID
HUB_MODEL_ID = None                          # e.g. "your-name/Qwen2.5-0.5B-Instruct-SRFT-LoRA"
TINY = False                                 # CI: the tiny local model on CPU (pair with DATASET = "tiny_math")

# %% [markdown]
# ## Setup
#
# Picks the device, the weight precision (bf16 where the GPU supports it, else fp32 weights with fp16
# autocast) and the rollout generator: vLLM colocated on the training GPU when available, transformers'
# `generate` otherwise (slower, but it runs anywhere, including CPU).

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
# ## The SRFT settings, term by term
#
# For a prompt $x$, SRFT builds an *augmented group* (Eq. 6): `num_generations - num_demos` rollouts
# $y \sim \pi_\theta(\cdot\mid x)$ plus `num_demos` demonstrations $y^{demo}$. Every completion, the
# demonstration included, is scored by the same reward, and advantages are normalised within the group
# (Eq. 7): $\hat A_i = \big(r_i - \mathrm{mean}(r)\big) / \mathrm{std}(r)$ (`demo_in_baseline=True`).
# The loss is the sum of three terms (Eq. 13), each configured by a few `SRFTConfig` fields:
#
# **1. Supervised learning on demonstrations, weighted by entropy (Eq. 8)** — `sft_weighting="entropy"`, `sft_coef=0.5`
#
# $$\mathcal{L}_{SFT} = w_{SFT}\cdot\Big(-\sum_t \log \pi_\theta(y^{demo}_t \mid x, y^{demo}_{<t})\Big),
# \qquad w_{SFT} = 0.5\cdot \mathrm{sg}\big(e^{-H(\pi_\theta)}\big)$$
#
# Imitating a demonstration moves the policy far from where it is; when the policy is uncertain (high
# entropy $H$) that shift is largest, so SRFT *weakens* the SFT pull exactly then. `sg` is stop-gradient:
# the weight scales the loss but is not optimised. `entropy_granularity="sequence"` averages $H$ over
# each sequence's tokens. Logged as `srft/w_sft`.
#
# **2. Off-policy RL on demonstrations (Eq. 9-10)** — `demo_rl="prob"`
#
# $$\mathcal{L}^{demo}_{RL} = -\hat A_{demo}\sum_t \pi_\theta(y^{demo}_t \mid x, y^{demo}_{<t})$$
#
# The demonstration is treated as an off-policy sample with behaviour policy $\pi_\beta = 1$ and no
# clipping, so its token *probabilities* (not log-probabilities) are pushed up in proportion to its
# group advantage: a demonstration that beats the rollouts of its group has a large $\hat A_{demo}$.
# (`demo_rl="shaped"` is LUFFY's $p/(p+\gamma)$ instead.)
#
# **3. On-policy RL on the model's own rollouts (Eq. 12)** — `rollout_loss="srft"`, `rl_weighting="entropy"`, `rl_coef=0.1`
#
# $$\mathcal{L}^{self}_{RL} = w_{RL}\cdot\Big(-\sum_t \log\pi_\theta(y^{+}_t)\Big) + \sum_t \log\pi_\theta(y^{-}_t),
# \qquad w_{RL} = 0.1\cdot \mathrm{sg}\big(e^{H(\pi_\theta)}\big)$$
#
# Correct rollouts $y^+$ (reward $\ge$ `correct_reward_threshold`, 1.0 by default) have their likelihood
# raised, incorrect ones $y^-$ lowered. The positive pull is weighted by $e^{H}$: as the policy becomes
# certain (entropy falls) the pull on already-likely answers weakens, which keeps entropy from collapsing.
# $w_{RL}$ is only defined when a group has a correct rollout, so `srft/w_rl` is logged from the first
# correct rollout on. `max_entropy_weight` can clamp both weights.
#
# `method="srft"` sets all of the above at once (they are spelled out below for reading); other presets
# are `"luffy"`, `"grpo"`, `"grpo_sft"` and the ablations `"srft_no_wsft"`, `"srft_no_wrl"` (Table 3).
# Every other field is TRL's `GRPOConfig`.

# %%
from peft import LoraConfig

# LoRA on every linear layer of the transformer blocks; only the adapter (a few MB) is trained and saved.
peft_config = LoraConfig(r=LORA_R, lora_alpha=2 * LORA_R, lora_dropout=0.0, target_modules="all-linear",
                         task_type="CAUSAL_LM")

# %%
from srft_trl import SRFTConfig, SRFTTrainer
from srft_trl.rewards import math_accuracy_reward

config = SRFTConfig(
    output_dir=OUTPUT_DIR,
    method="srft",
    num_demos=1,                    # Eq. 6: one demonstration per group
    demo_in_baseline=True,          # Eq. 7: the demonstration counts in the group mean / std
    sft_weighting="entropy",        # Eq. 8: w_SFT = sft_coef * sg(exp(-H))
    sft_coef=0.5,
    demo_rl="prob",                 # Eq. 9-10: -A_demo * pi_theta(y_t), pi_beta = 1, no clipping
    rollout_loss="srft",            # Eq. 12: w_RL * NLL(y+) + log pi(y-)
    rl_weighting="entropy",         # Eq. 12: w_RL = rl_coef * sg(exp(H))
    rl_coef=0.1,
    entropy_granularity="sequence", # H is the mean token entropy of each sequence
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
    hub_model_id=HUB_MODEL_ID,
)
trainer = SRFTTrainer(
    model=MODEL_ID,
    reward_funcs=math_accuracy_reward,  # 1 if the answer after </think> verifies, else 0
    args=config,
    train_dataset=train_dataset,
    processing_class=tokenizer,
    peft_config=peft_config,
)
trainer.model.print_trainable_parameters()

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


# The LoRA adapter starts as a no-op (B = 0), so this is the base model's accuracy.
accuracy_before, _ = heldout_accuracy(trainer.model, eval_dataset)
print(f"held-out accuracy before training: {accuracy_before:.3f} ({len(eval_dataset)} problems)")

# %% [markdown]
# ## Train
#
# Each step generates the rollouts, splices in the demonstrations, scores every completion and takes one
# optimizer step on the SRFT loss. The log shows TRL's metrics (`reward`, `entropy`, ...) and SRFT's
# (`srft/w_sft`, `srft/w_rl`, `srft/reward_rollout`, `srft/entropy_rollout`, ...).

# %%
train_result = trainer.train()

# %% [markdown]
# ## Training curves
#
# * **reward**: TRL's `reward` averages the whole augmented group, demonstrations included (they are
#   usually correct); `srft/reward_rollout` is the model's own rollouts only — the one to watch.
# * **entropy** of the rollouts (`srft/entropy_rollout`): SRFT's weights are designed to keep it from collapsing.
# * **`w_sft`** rises as the policy grows confident on the demonstrations (low entropy → $e^{-H}$ near 1).
# * **`w_rl`** follows $e^{H}$ on correct rollouts; it appears once the model produces a correct answer.

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


history = trainer.state.log_history
panels = [
    ("reward", [("srft/reward_rollout", "rollouts (srft/reward_rollout)"), ("reward", "group incl. demos (reward)")]),
    ("entropy", [("srft/entropy_rollout", "rollouts (srft/entropy_rollout)"), ("srft/entropy_demo", "demonstrations")]),
    ("w_sft = 0.5 sg(exp(-H))  (Eq. 8)", [("srft/w_sft", "srft/w_sft")]),
    ("w_rl = 0.1 sg(exp(H))  (Eq. 12)", [("srft/w_rl", "srft/w_rl")]),
]
fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
for ax, (title, curves) in zip(axes.flat, panels):
    for key, label in curves:
        steps, values = series(history, key)
        print(f"{key}: {len(steps)} logged steps" + (f", last {values[-1]:.4g}" if values else ""))
        if steps:
            ax.plot(steps, values, alpha=0.3)
            ax.plot(steps, smooth(values, SMOOTH), label=label, color=ax.lines[-1].get_color())
    if ax.lines:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "not logged yet:\nno correct rollout so far", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
for ax in axes[1]:
    ax.set_xlabel("step")
fig.suptitle(f"SRFT + LoRA on {Path(MODEL_ID).name}")
fig.tight_layout()
fig.savefig(Path(OUTPUT_DIR) / "training_curves.png", dpi=100)
plt.show()

# %% [markdown]
# ## Held-out accuracy after training

# %%
accuracy_after, completions = heldout_accuracy(trainer.model, eval_dataset)
print(f"held-out accuracy before: {accuracy_before:.3f} / after: {accuracy_after:.3f} ({len(eval_dataset)} problems)")

fig, ax = plt.subplots(figsize=(4, 3))
bars = ax.bar(["before", "after"], [accuracy_before, accuracy_after], color=["tab:gray", "tab:blue"])
ax.bar_label(bars, fmt="%.3f")
ax.set_ylim(0, 1)
ax.set_ylabel("held-out accuracy")
fig.tight_layout()
fig.savefig(Path(OUTPUT_DIR) / "heldout_accuracy.png", dpi=100)
plt.show()

print("\nA held-out problem:", eval_dataset[0]["prompt"][-1]["content"][:300])
print("Answer after training:", completions[0].strip()[:600] or "(empty)")

# %% [markdown]
# ## Save (and push) the adapter
#
# `save_model` writes the LoRA adapter (`adapter_config.json`, `adapter_model.safetensors`) and the
# tokenizer; `create_model_card` writes srft-trl's model card (base model, data, SRFT and its preset, the
# settings, the metrics, the paper's citation), to which the held-out accuracies are added. With `MERGE_ADAPTER = True` the adapter is also
# merged into the base weights and saved as a standalone model in `OUTPUT_DIR/merged`. With
# `PUSH_TO_HUB = True` the adapter folder (or the merged one, with the same card) is uploaded to
# `HUB_MODEL_ID`, using the `HF_TOKEN` environment variable or Colab secret if set, else a token you paste
# (it needs write access).

# %%
from huggingface_hub import ModelCard

from srft_trl.model_card import install_model_card, settings_recipe

trainer.save_model(OUTPUT_DIR)
dataset_name = DATASET if DATASET != "tiny_math" and not Path(DATASET).exists() else None
# srft-trl's card (base model, data, method and preset, settings, metrics, the paper), not TRL's generic one.
install_model_card(
    trainer, recipe_text=settings_recipe(trainer, MODEL_ID, DATASET, peft_config=peft_config,
                                         source="notebooks/srft_lora_quickstart.ipynb"),
    overrides=(), base_model=MODEL_ID, dataset=DATASET,
    extra_metrics={"heldout_accuracy_before": accuracy_before, "heldout_accuracy_after": accuracy_after},
)
trainer.create_model_card(model_name=f"{Path(MODEL_ID).name}-SRFT-LoRA", dataset_name=dataset_name, tags=["lora"])

card_path = Path(OUTPUT_DIR) / "README.md"
card = ModelCard.load(card_path)
card.text += (
    f"\n## Held-out accuracy\n\nGreedy decoding on {len(eval_dataset)} held-out problems, graded by "
    f"`math_accuracy_reward`:\n\n| | accuracy |\n|---|---|\n"
    f"| base model | {accuracy_before:.3f} |\n| after SRFT ({MAX_STEPS} steps, LoRA r={LORA_R}) | {accuracy_after:.3f} |\n"
)
card.save(card_path)

upload_dir = Path(OUTPUT_DIR)
if MERGE_ADAPTER:
    upload_dir = Path(OUTPUT_DIR) / "merged"
    merged = trainer.model.merge_and_unload()  # the base model with the LoRA update folded in
    merged.save_pretrained(upload_dir)
    tokenizer.save_pretrained(upload_dir)
    card.save(upload_dir / "README.md")

print(sorted(p.name for p in upload_dir.iterdir()))
print(card_path.read_text()[:1200])

# %%
if PUSH_TO_HUB:
    from huggingface_hub import HfApi, get_token, interpreter_login

    if HUB_MODEL_ID is None:
        raise ValueError("set HUB_MODEL_ID (e.g. 'your-name/Qwen2.5-0.5B-Instruct-SRFT-LoRA') to push")
    if get_token() is None:  # no HF_TOKEN variable or Colab secret: ask for a token with write access
        interpreter_login()
    api = HfApi()
    api.create_repo(HUB_MODEL_ID, exist_ok=True)
    api.upload_folder(repo_id=HUB_MODEL_ID, folder_path=str(upload_dir),
                      ignore_patterns=["tiny-model/*", "merged/*", "*.png"])
    print(f"pushed to https://huggingface.co/{HUB_MODEL_ID}")
else:
    print(f"not pushed (PUSH_TO_HUB = False); everything is in {OUTPUT_DIR}/")

# %% [markdown]
# ## Next steps
#
# * Compare SRFT with GRPO and LUFFY under the same budget: `notebooks/srft_vs_grpo.ipynb`.
# * Full-scale training from a recipe: `srft-trl train --config recipes/...` (see the README).
# * The paper's evaluation protocol (AIME, AMC, MATH-500, ...): `srft-trl eval`.
