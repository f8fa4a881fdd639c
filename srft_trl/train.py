"""`python -m srft_trl.train --config recipes/x.yaml [--flag value ...]`: a recipe to a trained model.

Read top to bottom: parse the recipe (`srft_trl.recipes`) -> the model (`srft_trl.models`) ->
the data (`srft_trl.data`) -> the trainer (`SRFTTrainer`, or TRL's `SFTTrainer` as `SFTBaselineTrainer` /
`SFTKLTrainer`, `srft_trl.sft_kl`) -> held-out accuracy before -> train -> held-out accuracy after -> save the model, its
`recipe.yaml` and a model card (`srft_trl.model_card`); push to the Hub only if `push_to_hub`.

`srft-trl train` (`srft_trl.cli`) runs this in its own process, or through `accelerate launch`
when the recipe or the command line names launcher options.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers import AutoTokenizer
from trl import get_peft_config, get_quantization_config

from . import cpu_fsdp, data
from .callbacks import CompleteCheckpointCallback, ModelCardInCheckpointCallback
from .checkpoints import (RUN_RECIPE, OutputDirConflict, RunFinished, checkpoint_step, last_complete_checkpoint,
                          remove_checkpoints, resume_point)
from .console import quiet_on_closed_pipe
from .files import atomic_write_text
from .generation import heldout_accuracy
from .launch import check_optional_dependencies
from .model_card import final_metrics, install_model_card
from .models import model_init_kwargs, prepare_model_path
from .recipes import NOT_RUN_IDENTITY, ParsedArgs, RecipeError, ScriptArguments, parse_args, recipe_text, short_help
from .rewards import get_reward_funcs
from .run_summary import accuracy_lines, plot_training

logger = logging.getLogger(__name__)


def dataset_reference(script: ScriptArguments) -> str:
    """The data set as the model card names it: a Hub id, a local path, or the shipped tiny set."""
    if script.dataset_name in data.SHIPPED_DATASETS:
        return f"{script.dataset_name} (a set shipped with srft-trl)"
    path = Path(script.dataset_name).expanduser()
    return str(path.resolve()) if path.exists() else hub_dataset_name(script) or script.dataset_name


def hub_dataset_name(script: ScriptArguments) -> str | None:
    """The dataset's Hub id for the model card (None for the shipped tiny set and local files)."""
    if script.dataset_name == "openr1":
        return data.OPENR1_HUB_ID
    if script.dataset_name in data.SHIPPED_DATASETS or Path(script.dataset_name).exists():
        return None
    return script.dataset_name


def start_point(args: ParsedArgs) -> str | None:
    """The checkpoint this run resumes from, or None to start at step 0.

    `resume_from_checkpoint` (a path, or true for the newest complete checkpoint) is obeyed as
    given. Otherwise a re-run into an `output_dir` holding the same run (same effective settings)
    resumes from its newest complete checkpoint, one holding the finished run raises `RunFinished`
    (nothing to do) unless a larger `max_steps` asks for more, and one holding another run is refused
    (`RecipeError` naming the fix) unless `overwrite_output_dir` is set. Nothing is overwritten silently.
    """
    training = args.training
    value = training.resume_from_checkpoint
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true" or None
    if value is True:
        value = last_complete_checkpoint(training.output_dir)
        if value is None:
            raise RecipeError(f"resume_from_checkpoint: no complete checkpoint in {training.output_dir}")
    if value or args.script.overwrite_output_dir:
        return value or None
    try:
        return resume_point(training.output_dir, args.effective, ignore=NOT_RUN_IDENTITY)
    except OutputDirConflict as error:
        raise RecipeError(str(error)) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def push_later_command(training) -> str:
    """The command that pushes a saved run to the Hub (the model, tokenizer, card and recipe; no checkpoints)."""
    repo = training.hub_model_id or f"YOUR_NAME/{Path(training.output_dir).name}"
    return f'hf upload {repo} {training.output_dir} --exclude "checkpoint-*/*"'


def check_hub(training) -> None:
    """With `push_to_hub`, fail before any work when the Hub is offline, unreachable or we are not logged in."""
    from huggingface_hub import HfApi, constants

    later = f"or train with --push_to_hub false and push the saved run later: {push_later_command(training)}"
    if constants.HF_HUB_OFFLINE:
        raise RecipeError(f"push_to_hub: true, but the Hub is switched off here (HF_HUB_OFFLINE=1); unset it, {later}")
    try:
        HfApi(token=training.hub_token).whoami()
    except Exception as error:  # no token, a refused token, no network: one line, before anything is trained
        why = "no valid Hub token: run `hf auth login` (or set HF_TOKEN)" if "token" in str(error).lower() else (
            f"the Hub cannot be reached ({_first_line(error)})")
        raise RecipeError(f"push_to_hub: true, but {why}; {later}") from None


def save_training_plot(trainer, extra: dict, n: int, output_dir) -> Path | None:
    """`training.png` in `output_dir` (`srft_trl.run_summary.plot_training`); None without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        logger.info("matplotlib is not installed: no training.png (pip install matplotlib)")
        return None
    return plot_training(trainer.state.log_history, Path(output_dir) / "training.png",
                         before=extra.get("heldout_accuracy_before"), after=extra.get("heldout_accuracy_after"), n=n,
                         title=Path(output_dir).name)


def interrupted_message(args: ParsedArgs | None, command: str) -> str:
    """What Ctrl-C kept and the command that continues (the same one: a re-run resumes)."""
    if args is None:
        return "interrupted before training started; nothing was written."
    training = args.training
    last = last_complete_checkpoint(training.output_dir)
    if last is not None:
        kept = f"kept {last} (step {checkpoint_step(last)})"
    elif getattr(training.save_strategy, "value", training.save_strategy) == "no":
        kept = "no checkpoint kept (save_strategy: no); the same command starts over"
    else:
        kept = "no checkpoint yet (none complete); the same command starts over"
    return f"interrupted: {kept}; continue with: {command}"


def build_trainer(args: ParsedArgs, model_path: str, tokenizer, train_dataset):
    """The trainer for `args.script.trainer`, set up as TRL's own scripts set theirs up."""
    script, training, model_args = args.script, args.training, args.model
    training.model_init_kwargs = model_init_kwargs(training, model_args)
    common = dict(
        model=model_path,
        args=training,
        processing_class=tokenizer,
        quantization_config=get_quantization_config(model_args),
        peft_config=get_peft_config(model_args),
        callbacks=[ModelCardInCheckpointCallback(), CompleteCheckpointCallback()],
    )
    if script.trainer == "srft":
        from .trainer import SRFTTrainer

        return SRFTTrainer(reward_funcs=get_reward_funcs(script.reward_funcs), train_dataset=train_dataset, **common)
    from .sft_kl import SFTBaselineTrainer, SFTKLTrainer

    trainer_class = SFTKLTrainer if script.trainer == "sft_kl" else SFTBaselineTrainer
    return trainer_class(train_dataset=data.to_sft_rows(train_dataset), **common)


@contextlib.contextmanager
def model_for_generation(trainer):
    """The model being trained, ready for `generate` under any sharding: ZeRO-3's partitioned parameters gathered
    (TRL's `unwrap_model_for_generation`, the ecosystem's way); FSDP2's are gathered layer by layer by its hooks."""
    from trl.models import unwrap_model_for_generation

    with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                     gather_deepspeed3_params=True) as model:
        yield model


def sharded_generation(trainer) -> bool:
    """Whether generating needs every process in step (`synced_gpus`): a sharded model's forward is collective."""
    kind = getattr(trainer.accelerator.distributed_type, "name", "")
    return trainer.accelerator.num_processes > 1 and kind in ("FSDP", "DEEPSPEED")


def run(args: ParsedArgs) -> dict[str, Any]:
    """Train as the recipe says; return the final metrics."""
    script, training, model_args = args.script, args.training, args.model
    check_optional_dependencies(args)
    if script.torch_num_threads:
        torch.set_num_threads(script.torch_num_threads)
    is_main = training.process_index == 0
    say = print if is_main else (lambda *a, **k: None)

    # The output folder: a new run, the same run resumed, or another run refused (before any work).
    resume = start_point(args)
    if training.push_to_hub:
        check_hub(training)

    # The model: a path or Hub id, the tiny local model when asked for, RoPE-extended when asked.
    model_path = prepare_model_path(script, training, model_args)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            model_path, revision=model_args.model_revision, trust_remote_code=training.trust_remote_code
        )
    except OSError as error:  # not a local folder, and the Hub cannot give it (offline, unknown id, no network)
        if Path(model_path).expanduser().exists():
            raise RecipeError(f"model_name_or_path {model_path}: its tokenizer cannot be loaded "
                              f"({_first_line(error)})") from None
        raise RecipeError(f"model_name_or_path {model_path}: no such local folder, and not loadable from the Hub "
                          f"({_first_line(error)})") from None

    # The data: the training split filtered once, and the held-out split.
    demo_column = training.demo_column if script.trainer == "srft" else "demo"
    try:
        train_dataset, heldout = data.build_datasets(script, training, tokenizer, demo_column, log=say)
    except (ValueError, FileNotFoundError) as error:  # the user's data: name the data set, no traceback
        named = str(script.dataset_name) in str(error)
        raise RecipeError(str(error) if named else f"dataset_name {script.dataset_name}: {error}") from None
    if heldout is not None and script.eval_limit is not None:
        heldout = heldout.select(range(min(script.eval_limit, len(heldout))))

    cpu_fsdp.enable_fsdp_on_cpu()  # a no-op unless FSDP was asked for on a machine without a GPU
    trainer = build_trainer(args, model_path, tokenizer, train_dataset)
    try:
        cpu_fsdp.check_distributed_type(trainer.accelerator)
    except cpu_fsdp.DistributedTypeMismatch as error:
        raise RecipeError(str(error)) from None
    print(
        f"[srft-trl] process {training.process_index} of {training.world_size}: trainer={script.trainer} "
        f"train_rows={len(train_dataset)} device={trainer.accelerator.device}",
        flush=True,
    )

    extra: dict[str, Any] = {}
    evaluate = None
    if heldout is not None:
        budget = script.eval_max_new_tokens or getattr(training, "max_completion_length", None) or 1024
        evaluate = functools.partial(
            heldout_accuracy, tokenizer=tokenizer, dataset=heldout, max_new_tokens=budget, grader="oat",
            temperature=script.eval_temperature, batch_size=script.eval_generation_batch_size, seed=training.seed,
            synced_gpus=sharded_generation(trainer),
        )
        # Every process evaluates (a sharded model needs all of them); the same seed gives the same samples.
        with model_for_generation(trainer) as model:
            extra["heldout_accuracy_before"] = evaluate(model)
        say(f"held-out accuracy before training: {extra['heldout_accuracy_before']:.3f} ({len(heldout)} problems)")

    # The recipe.yaml written above already holds the command-line overrides: replaying it needs no flags.
    install_model_card(trainer, recipe_text=recipe_text(args), overrides=(), settings=args.effective,
                       base_model=model_args.model_name_or_path or model_path,
                       dataset=dataset_reference(script), extra_metrics=extra)

    if is_main:  # from here on, output_dir holds this run (its effective settings in recipe.yaml)
        if args.script.overwrite_output_dir and not training.resume_from_checkpoint:
            remove_checkpoints(training.output_dir)
        atomic_write_text(Path(training.output_dir) / RUN_RECIPE, recipe_text(args))
    step = checkpoint_step(resume) if resume else None
    if step is not None and 0 < training.max_steps <= step:
        # The run reached max_steps and saved that step, but stopped before its end (the final save):
        # `Trainer.train` would train one step past max_steps from such a checkpoint, so it is loaded instead.
        from transformers import TrainerState

        say(f"finishing the run from {resume} (step {step} of max_steps {training.max_steps}): no step to train")
        trainer._load_from_checkpoint(resume)
        trainer.state = TrainerState.load_from_json(os.path.join(resume, "trainer_state.json"))
        trainer.save_metrics("train", {"global_step": trainer.state.global_step})
    else:
        if resume:
            say(f"resuming from {resume}")
        result = trainer.train(resume_from_checkpoint=resume)
        if training.world_size > 1 or cpu_fsdp.launcher_asked_for():
            print(f"[srft-trl] process {training.process_index}: {trainer.accelerator.distributed_type.name}, "
                  f"{cpu_fsdp.sharding_summary(trainer.model_wrapped)}", flush=True)
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
    trainer.save_state()

    if evaluate is not None:
        with model_for_generation(trainer) as model:
            extra["heldout_accuracy_after"] = evaluate(model)
        for line in accuracy_lines(extra["heldout_accuracy_before"], extra["heldout_accuracy_after"], len(heldout),
                                   f"{script.dataset_name}/{script.eval_split}"):
            say(line)

    # `_internal_call=True`: no push from inside `save_model` (transformers pushes there with `push_to_hub`);
    # the push comes last, below, once the model, card and picture are on disk, and its failure loses nothing.
    trainer.save_model(training.output_dir, _internal_call=True)
    trainer.create_model_card(model_name=Path(training.output_dir).name, dataset_name=hub_dataset_name(script))
    say(f"model, recipe.yaml and model card saved to {training.output_dir}")
    if is_main:
        picture = save_training_plot(trainer, extra, len(heldout) if heldout is not None else 0, training.output_dir)
        if picture:
            say(f"training curves: {picture}")
    if training.push_to_hub:
        try:
            trainer.push_to_hub(dataset_name=hub_dataset_name(script))
        except Exception as error:  # the Hub went away during training: the run is saved, say how to push it
            raise RecipeError(f"push_to_hub failed ({_first_line(error)}); the run is saved in {training.output_dir}; "
                              f"push it later with: {push_later_command(training)}") from None
        say(f"pushed to https://huggingface.co/{trainer.hub_model_id}")
    metrics = final_metrics(trainer, extra)
    if hasattr(trainer, "end"):  # transformers >= 5.18: finish the trackers, destroy the process group
        trainer.end()
    return metrics


@quiet_on_closed_pipe
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m srft_trl.train`; returns the exit status (2 and one line for a user error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(short_help())
        return 0
    args = None
    try:
        if "--help-all" in argv:  # every setting of the trainer the command line or the recipe names
            from .recipes import flag_value, make_parser, read_recipe, resolve_recipe_path

            config = flag_value(argv, "--config")
            recipe = read_recipe(resolve_recipe_path(config)) if config else {}
            make_parser(flag_value(argv, "--trainer") or recipe.get("trainer", "srft")).print_help()
            return 0
        args = parse_args(argv)
        launched = "ACCELERATE_MIXED_PRECISION" in os.environ  # set by `accelerate launch` in every process
        if args.launch and not launched:
            logger.warning("launcher options %s are used by `srft-trl train` only; ignored here.", args.launch)
        run(args)
    except RunFinished as finished:
        print(f"srft-trl: {finished}")
    except RecipeError as error:
        print(f"srft-trl: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nsrft-trl: {interrupted_message(args, 'python -m srft_trl.train ' + shlex.join(argv))}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
