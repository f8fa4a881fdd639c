"""`srft-trl`: the command line of srft-trl.

    srft-trl train --config recipes/srft_tiny_cpu.yaml [--accelerate_config fsdp2|zero3|ddp|PATH]
                   [--num_processes N] [any recipe setting as --key value]
    srft-trl eval --model PATH [...]        (srft_trl.eval.cli)
    srft-trl analyze ...                    (srft_trl.analysis.cli, when installed)

`train` works the way TRL's `trl grpo` does: the recipe and the command line are parsed first
(unknown keys fail here, before anything is launched); options that belong to `accelerate launch`
(`accelerate_config`, `num_processes`, ... in the recipe or on the command line) are handed to
accelerate's launcher, which starts `python -m srft_trl.train` in every process. Without any
launcher option the run happens in this process, so a YAML file alone is enough.

`--accelerate_config` takes a path, a name from the repository's `recipes/accelerate/` (`ddp`,
`fsdp2`, `zero3`, `multinode`, `cpu_2proc`), or a name TRL ships (`multi_gpu`, `zero2`, ...).
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import subprocess
import sys
from typing import Callable, Sequence

from .console import quiet_on_closed_pipe


COMMANDS = {
    "train": "train from a recipe (YAML): SRFT, GRPO, LUFFY, SFT, SFT-KL, ...",
    "eval": "evaluate a model on the paper's benchmarks",
    "analyze": "analyse checkpoints and training runs (srft_trl.analysis)",
}

EPILOG = """examples:
  srft-trl train --config srft_quickstart
  srft-trl train --config recipes/srft_tiny_cpu.yaml
  srft-trl train --config recipes/srft_qwen7b.yaml --accelerate_config fsdp2 --num_processes 8
  srft-trl eval --model outputs/srft-qwen2.5-math-7b --benchmarks math500,aime24
run `srft-trl COMMAND --help` for the options of a command."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each command parses its own arguments."""
    parser = argparse.ArgumentParser(
        prog="srft-trl",
        usage="srft-trl [-h] [--version] COMMAND ...",
        description="SRFT (Supervised Reinforcement Fine-Tuning, arXiv 2506.19767) on TRL.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, help_text in COMMANDS.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------


def train(argv: Sequence[str]) -> int:
    """`srft-trl train`: in this process, or through `accelerate launch -m srft_trl.train`.

    A user error (recipe, command line, data, output folder) ends with one line on stderr and exit
    status 2, before anything expensive where it can be known up front.
    """
    argv = list(argv)
    if "-h" in argv or "--help" in argv:  # answered without importing torch / TRL (seconds)
        from .script_args import short_help

        print(short_help())
        return 0
    from . import recipes
    from . import train as train_module
    from .launch import launch_arguments
    from .checkpoints import RunFinished

    if "--help-all" in argv:
        return train_module.main(argv)
    args = None
    try:
        args = recipes.parse_args(argv)
        if not args.launch:
            train_module.run(args)
            return 0
        train_module.start_point(args)  # an output_dir that holds another run fails here, not in N processes
        launch = launch_arguments(args)  # config, processes, precision, port, optional dependencies: checked here
    except RunFinished as finished:  # the same command again: nothing to do, nothing changed
        print(f"srft-trl train: {finished}")
        return 0
    except KeyboardInterrupt:  # Ctrl-C: what was kept and the command that continues, no traceback
        print(f"\nsrft-trl train: {train_module.interrupted_message(args, 'srft-trl train ' + shlex.join(argv))}",
              file=sys.stderr)
        return 130
    except recipes.RecipeError as error:
        print(f"srft-trl train: error: {error}", file=sys.stderr)
        return 2

    from accelerate.commands.launch import launch_command, launch_command_parser

    script_args = recipes.remove_subsequence(args.argv, args.cli_launch)
    command = launch + ["--module", "srft_trl.train", *script_args]
    print(f"srft-trl: accelerate launch {' '.join(command)}", flush=True)
    try:
        launch_command(launch_command_parser().parse_args(command))
    except subprocess.CalledProcessError as error:
        return error.returncode or 1
    except Exception as error:  # torch's elastic launcher raises ChildFailedError on a failed rank
        if type(error).__name__ != "ChildFailedError":
            raise
        print(f"srft-trl train: a training process failed:\n{error}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------------------------
# eval, analyze: dispatch to modules imported only when used
# --------------------------------------------------------------------------------------------


def evaluate(argv: Sequence[str]) -> int:
    from .eval.cli import main as eval_main

    return eval_main(list(argv))


def analyze(argv: Sequence[str]) -> int:
    try:
        module = importlib.import_module("srft_trl.analysis.cli")
    except ModuleNotFoundError as error:
        if error.name not in ("srft_trl.analysis", "srft_trl.analysis.cli"):
            raise
        print(
            "srft-trl analyze: the analysis toolkit (srft_trl.analysis) is not part of this installation.",
            file=sys.stderr,
        )
        return 2
    return module.main(list(argv)) or 0


HANDLERS: dict[str, Callable[[Sequence[str]], int]] = {
    "train": train,
    "eval": evaluate,
    "analyze": analyze,
}


@quiet_on_closed_pipe
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `srft-trl` console command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(f"srft-trl {__version__}")
        return 0
    if argv[0] not in HANDLERS:
        parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}")
    return HANDLERS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
