"""Recipes: every YAML in recipes/ parses, the paper recipe carries the paper's numbers, typos fail
naming the key, and the model card names SRFT, the paper, the recipe and the final metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from srft_trl import SRFTConfig
from srft_trl.data import build_datasets
from srft_trl.model_card import install_model_card
from srft_trl.models import extend_context
from srft_trl.recipes import RecipeError, parse_args
from srft_trl.sft_kl import SFTKLConfig
from srft_trl.train import build_trainer
from trl import SFTConfig

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
TINY = ROOT / "recipes" / "srft_tiny_cpu.yaml"
GPUS = 8  # the 7B recipes' batch arithmetic is written for one machine with 8 GPUs


@pytest.fixture(autouse=True)
def _bf16_allowed(monkeypatch):
    # The 7B recipes ask for bf16, which TrainingArguments refuses on a machine without a GPU. Parse
    # them as a GPU machine would, so the parsed values are the recipe's own.
    import transformers.training_args

    monkeypatch.setattr(transformers.training_args, "is_torch_bf16_gpu_available", lambda *a, **k: True)


def parse(path, *overrides):
    return parse_args(["--config", str(path), *overrides])


@pytest.fixture(autouse=True)
def _fresh_working_directory(tmp_path, monkeypatch):
    """Run where a user of a fresh clone would: stage 2 names stage 1's output (`outputs/...`), which is
    taken for a local path (and found missing) when an `outputs/` folder exists, e.g. after the quickstart."""
    monkeypatch.chdir(tmp_path)


def test_recipes_exist():
    names = {path.name for path in RECIPES}
    assert {
        "srft_qwen7b.yaml", "grpo_qwen7b.yaml", "luffy_qwen7b.yaml", "sft_qwen7b.yaml", "sft_kl_qwen7b.yaml",
        "sft_then_rl_stage1_sft_qwen7b.yaml", "sft_then_rl_stage2_grpo_qwen7b.yaml", "srft_qwen0.5b_lora.yaml",
        "srft_tiny_cpu.yaml",
    } <= names
    accelerate = {path.name for path in (ROOT / "recipes" / "accelerate").glob("*.yaml")}
    assert {"ddp.yaml", "fsdp2.yaml", "zero3.yaml", "multinode.yaml", "cpu_2proc.yaml"} <= accelerate


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_parses(path):
    args = parse(path)
    expected = {"srft": SRFTConfig, "sft": SFTConfig, "sft_kl": SFTKLConfig}[args.script.trainer]
    assert type(args.training) is expected
    recipe = yaml.safe_load(path.read_text())
    for key, value in recipe.items():  # every value in the file reached the dataclasses unchanged
        for group in (args.script, args.training, args.model):
            if hasattr(group, key):
                parsed = getattr(group, key)
                parsed = getattr(parsed, "value", parsed)  # enums
                if isinstance(parsed, list) and not isinstance(value, list):
                    value = [] if key == "report_to" and value == "none" else [value]
                assert parsed == value or str(parsed) == str(value), (key, parsed, value)
                break
        else:
            pytest.fail(f"{path.name}: key {key!r} reached no dataclass")
    assert args.training.push_to_hub is False
    assert not args.training.trust_remote_code


@pytest.mark.parametrize("path", [p for p in RECIPES if "qwen7b" in p.name], ids=lambda p: p.stem)
def test_accelerate_configs_match_the_batch_arithmetic(path):
    for config in ("ddp", "fsdp2", "zero3"):
        accelerate = yaml.safe_load((ROOT / "recipes" / "accelerate" / f"{config}.yaml").read_text())
        assert accelerate["num_processes"] == GPUS


def _rl_batches(training):
    completions_per_step = training.per_device_train_batch_size * GPUS * training.gradient_accumulation_steps
    completions_per_generation = training.per_device_train_batch_size * GPUS * training.steps_per_generation
    return (
        completions_per_generation // training.num_generations,  # prompts per generation batch
        completions_per_step // training.num_generations,  # prompts per optimiser step (mini-batch)
        training.max_steps * completions_per_step // completions_per_generation,  # the paper's steps
    )


def test_paper_recipe_matches_the_paper():
    args = parse(ROOT / "recipes" / "srft_qwen7b.yaml")
    script, training, model = args.script, args.training, args.model
    # App. B: Qwen2.5-Math-7B, RoPE theta 10,000 -> 40,000, window 16,384
    assert model.model_name_or_path == "Qwen/Qwen2.5-Math-7B"
    assert script.rope_theta == 40000 and script.max_position_embeddings == 16384
    # Data (reference section 4) and the binary reward (Eq. A2)
    assert script.dataset_name == "openr1" and script.system_prompt == "srft"
    assert script.reward_funcs == ["math_accuracy"]
    assert script.max_demo_tokens == 8192 and script.max_prompt_tokens == 1024
    # The SRFT objective (Eq. 13) with the paper's coefficients
    assert training.method == "srft"
    weights = (training.sft_weighting, training.sft_coef, training.rl_weighting, training.rl_coef)
    assert weights == ("entropy", 0.5, "entropy", 0.1)
    assert (training.demo_rl, training.rollout_loss, training.demo_in_baseline) == ("prob", "srft", True)
    assert training.scale_rewards == "group" and training.beta == 0.0
    # 8 per group (7 rollouts + 1 demo), batch 128 prompts, mini-batch 64, 500 steps
    assert training.num_generations == 8 and training.num_demos == 1
    assert _rl_batches(training) == (128, 64, 500)
    assert training.num_iterations == 1
    # Optimisation: constant lr 1e-6, AdamW, clip 1.0
    assert training.learning_rate == 1e-6
    assert str(training.lr_scheduler_type.value) == "constant" and training.warmup_steps == 0
    assert "adamw" in str(training.optim.value) and training.max_grad_norm == 1.0
    # Generation: temperature 1.0, 8,192 completion tokens, vLLM (colocate)
    assert training.temperature == 1.0 and training.top_p == 1.0
    assert training.max_completion_length == 8192
    assert training.use_vllm and training.vllm_mode == "colocate"
    assert training.vllm_max_model_length == 1024 + 8192
    # Runtime
    assert training.bf16 and training.activation_checkpointing
    assert training.logging_steps == 1 and str(training.save_strategy.value) == "steps"
    assert training.push_to_hub is False


@pytest.mark.parametrize("name", ["grpo_qwen7b", "luffy_qwen7b", "sft_then_rl_stage2_grpo_qwen7b"])
def test_rl_baselines_share_data_and_budget(name):
    paper = parse(ROOT / "recipes" / "srft_qwen7b.yaml")
    args = parse(ROOT / "recipes" / f"{name}.yaml")
    assert _rl_batches(args.training) == (128, 64, 500)
    for field in ("learning_rate", "max_completion_length", "temperature", "num_generations", "max_grad_norm", "beta"):
        assert getattr(args.training, field) == getattr(paper.training, field), field
    for field in ("dataset_name", "system_prompt", "max_demo_tokens", "max_prompt_tokens", "reward_funcs"):
        assert getattr(args.script, field) == getattr(paper.script, field), field


def test_baseline_specifics():
    grpo = parse(ROOT / "recipes" / "grpo_qwen7b.yaml").training
    assert grpo.method == "grpo" and grpo.num_demos == 0
    luffy = parse(ROOT / "recipes" / "luffy_qwen7b.yaml").training
    assert luffy.method == "luffy" and luffy.demo_rl == "shaped" and luffy.sft_weighting == "off"
    assert luffy.loss_type == "dr_grpo" and luffy.scale_rewards == "none"
    stage1 = parse(ROOT / "recipes" / "sft_then_rl_stage1_sft_qwen7b.yaml")
    stage2 = parse(ROOT / "recipes" / "sft_then_rl_stage2_grpo_qwen7b.yaml")
    assert stage2.model.model_name_or_path == stage1.training.output_dir
    assert stage2.training.method == "grpo"


@pytest.mark.parametrize("name", ["sft_qwen7b", "sft_kl_qwen7b", "sft_then_rl_stage1_sft_qwen7b"])
def test_sft_recipes_match_the_paper(name):
    args = parse(ROOT / "recipes" / f"{name}.yaml")
    training = args.training
    assert isinstance(training, SFTConfig)
    assert training.per_device_train_batch_size * GPUS * training.gradient_accumulation_steps == 128
    assert training.learning_rate == 5e-6
    assert str(training.lr_scheduler_type.value) == "linear" and training.warmup_steps == 0.1
    assert training.num_train_epochs == 3
    assert args.script.rope_theta == 40000 and args.script.max_position_embeddings == 16384
    assert training.max_length >= 1024 + 8192  # no demonstration is truncated
    if name == "sft_kl_qwen7b":
        assert isinstance(training, SFTKLConfig) and training.beta == 0.2


def test_tiny_recipe_is_local_and_cpu():
    args = parse(TINY)
    assert args.script.tiny_model and args.script.dataset_name == "tiny_math"
    assert args.script.eval_split == "test" and args.script.torch_num_threads == 1
    assert args.training.use_cpu and not args.training.bf16 and not args.training.use_vllm


def test_command_line_overrides_the_recipe():
    args = parse(TINY, "--max_steps", "3", "--learning_rate", "0.5")
    assert args.training.max_steps == 3 and args.training.learning_rate == 0.5
    assert args.overrides == ["--max_steps", "3", "--learning_rate", "0.5"]


def test_typo_in_recipe_fails_naming_the_key(tmp_path):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text(TINY.read_text() + "\nlerning_rate: 1.0e-3\n")
    with pytest.raises(RecipeError, match="lerning_rate.*did you mean 'learning_rate'"):
        parse(recipe)


def test_typo_on_the_command_line_fails_naming_it():
    with pytest.raises(RecipeError, match="--max_step"):
        parse(TINY, "--max_step", "3")


def test_key_of_another_trainer_fails(tmp_path):
    recipe = tmp_path / "sft_with_grpo_key.yaml"
    recipe.write_text("trainer: sft\nnum_generations: 8\nuse_cpu: true\nbf16: false\n")
    with pytest.raises(RecipeError, match="num_generations"):
        parse(recipe)


def test_launcher_keys_are_allowed(tmp_path):
    recipe = tmp_path / "launch.yaml"
    recipe.write_text(TINY.read_text() + "\naccelerate_config: cpu_2proc\nnum_processes: 2\n")
    args = parse(recipe)
    assert args.launch == ["--accelerate_config", "cpu_2proc", "--num_processes", "2"]
    # a key known to both sides belongs to the training settings, as in TRL's CLI
    assert "--gradient_accumulation_steps" not in args.launch


def test_extend_context_rewrites_only_the_config(tiny_model_dir, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    target = extend_context(str(tiny_model_dir), tmp_path / "extended", rope_theta=40000, max_position_embeddings=16384)
    config = AutoConfig.from_pretrained(target)
    theta = config.rope_parameters["rope_theta"] if getattr(config, "rope_parameters", None) else config.rope_theta
    assert theta == 40000 and config.max_position_embeddings == 16384
    weights = [p for p in target.iterdir() if p.suffix == ".safetensors"]
    assert weights and all(p.is_symlink() for p in weights)
    AutoModelForCausalLM.from_pretrained(target)
    assert extend_context(str(tiny_model_dir), target, rope_theta=40000, max_position_embeddings=16384) == target


def _tiny_trainer(tiny_model_dir, tmp_path, recipe=TINY, *overrides):
    from transformers import AutoTokenizer

    args = parse(recipe, "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(tmp_path / "out"),
                 "--max_steps", "2", *overrides)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    train, _ = build_datasets(args.script, args.training, tokenizer, log=lambda *a: None)
    return args, build_trainer(args, str(tiny_model_dir), tokenizer, train.select(range(8)))


def test_model_card_names_srft_the_paper_the_recipe_and_metrics(tiny_model_dir, tmp_path):
    args, trainer = _tiny_trainer(tiny_model_dir, tmp_path)
    recipe_text = TINY.read_text()
    extra = {"heldout_accuracy_before": 0.0}
    install_model_card(trainer, recipe_text=recipe_text, overrides=["--max_steps", "2"], base_model=None,
                       extra_metrics=extra)
    trainer.state.log_history.append({"loss": 0.125, "reward": 0.5, "srft/w_sft": 0.25, "step": 2})
    extra["heldout_accuracy_after"] = 0.75
    trainer.create_model_card(model_name="srft-tiny")
    card = (Path(args.training.output_dir) / "README.md").read_text()
    assert "SRFT" in card and "2506.19767" in card
    assert recipe_text.strip() in card and "--max_steps 2" in card
    for name, value in [("reward", "0.5"), ("srft/w_sft", "0.25"), ("heldout_accuracy_after", "0.75")]:
        assert f"| {name} | {value} |" in card
    trainer.create_model_card(model_name="srft-tiny")  # a second card replaces the section, not appends
    assert (Path(args.training.output_dir) / "README.md").read_text().count("## Training recipe") == 1


def test_sft_kl_trainer_adds_the_kl_to_the_base_model(tiny_model_dir, tmp_path):
    from srft_trl.sft_kl import SFTKLTrainer

    recipe = tmp_path / "sft_kl_tiny.yaml"
    recipe.write_text(yaml.safe_dump({
        "trainer": "sft_kl", "beta": 0.2, "dataset_name": "tiny_math", "system_prompt": "none",
        "per_device_train_batch_size": 4, "learning_rate": 0.01, "logging_steps": 1, "use_cpu": True,
        "bf16": False, "activation_checkpointing": False, "report_to": "none", "save_strategy": "no",
    }))
    args, trainer = _tiny_trainer(tiny_model_dir, tmp_path, recipe)
    assert isinstance(trainer, SFTKLTrainer) and trainer.ref_model is not None
    trainer.train()
    kls = [entry["kl"] for entry in trainer.state.log_history if "kl" in entry]
    assert len(kls) == 2
    assert abs(kls[0]) < 1e-5  # the first step's policy is the base model
    assert kls[1] > 1e-4  # one step of lr 1e-2 moved it away from the frozen reference
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert all(loss == loss for loss in losses)  # finite


@pytest.mark.parametrize("flag, limit", [("--max_demo_tokens", 44), ("--max_prompt_tokens", 40)])
def test_length_filters_drop_rows_once_and_count_them(tiny_model_dir, flag, limit):
    from transformers import AutoTokenizer

    # tiny_math training rows: demonstrations of 39-51 tokens (+ EOS), prompts of 37 or 41 tokens
    args = parse(TINY, flag, str(limit))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = []
    train, heldout = build_datasets(args.script, args.training, tokenizer, log=messages.append)
    assert len(messages) == 1 and messages[0].startswith(f"{flag[2:]}={limit}: dropped ")
    dropped = int(messages[0].split("dropped ")[1].split(" of ")[0])
    assert 0 < dropped < 400 and len(train) == 400 - dropped
    if flag == "--max_demo_tokens":
        assert all(len(tokenizer(demo, add_special_tokens=False)["input_ids"]) + 1 <= limit for demo in train["demo"])
    assert heldout is not None and len(heldout) == 100  # the held-out split is not filtered


@pytest.mark.parametrize("trainer_name", ["sft", "sft_kl"])
def test_every_cli_trainer_marks_its_checkpoints_complete(tiny_model_dir, tmp_path, trainer_name):
    from srft_trl.checkpoints import COMPLETE_MARKER, last_complete_checkpoint

    recipe = tmp_path / f"{trainer_name}_tiny.yaml"
    recipe.write_text(yaml.safe_dump({
        "trainer": trainer_name, "dataset_name": "tiny_math", "system_prompt": "none", "per_device_train_batch_size": 4,
        "use_cpu": True, "bf16": False, "activation_checkpointing": False, "report_to": "none",
        "save_strategy": "steps", "save_steps": 1,
    }))
    args, trainer = _tiny_trainer(tiny_model_dir, tmp_path, recipe, "--max_steps", "1")
    trainer.train()
    checkpoint = Path(args.training.output_dir) / "checkpoint-1"
    assert (checkpoint / COMPLETE_MARKER).is_file() and last_complete_checkpoint(args.training.output_dir) == str(checkpoint)
