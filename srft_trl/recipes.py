"""Recipes: one flat YAML file of settings, read by TRL's `TrlParser`, command-line flags on top.

A recipe mixes three groups of settings:

* `ScriptArguments` (below): data, rewards, model building, held-out evaluation;
* the trainer's config: `SRFTConfig` (`trainer: srft`, every method preset), TRL's `SFTConfig`
  (`trainer: sft`) or `SFTKLConfig` (`trainer: sft_kl`, SFT plus a KL penalty to the base model);
* TRL's `ModelConfig`: model id, dtype, attention, LoRA (`use_peft`, `lora_r`, ...), quantisation.

Keys used by the launcher (`accelerate_config`, `num_processes` and the other `accelerate launch`
options) may also sit in the recipe: `srft-trl train` hands them to `accelerate launch`. Any other
unknown key fails before anything is loaded, with an error naming it (TrlParser would pass it on
as a "remaining string", to fail late in `accelerate launch` without its origin).
"""

from __future__ import annotations

import difflib
import enum
import functools
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml
from trl import ModelConfig, SFTConfig, TrlParser

from .config import SRFTConfig
from .script_args import NOT_RUN_IDENTITY, TRAINERS, ScriptArguments, short_help  # noqa: F401  (re-exported)
from .models import check_model_reference
from .sft_kl import SFTKLConfig
from .shipped import recipe_path

CONFIG_CLASSES: dict[str, type] = {"srft": SRFTConfig, "sft": SFTConfig, "sft_kl": SFTKLConfig}


class RecipeError(ValueError):
    """A user error in a recipe, the command line or the files they name: printed as one line
    (`srft-trl: error: ...`, exit status 2) by the command line, never as a traceback."""


class RecipeParser(TrlParser):
    """`TrlParser` whose errors raise `RecipeError` (one line) instead of printing argparse's usage."""

    def error(self, message: str):
        raise RecipeError(message)


@functools.lru_cache(maxsize=1)
def launcher_keys() -> frozenset[str]:
    """Options of `accelerate launch` (plus `accelerate_config`), allowed in a recipe for `srft-trl train`."""
    from accelerate.commands.launch import launch_command_parser

    dests = {action.dest for action in launch_command_parser()._actions}
    return frozenset(dests - {"help", "training_script", "training_script_args"} | {"accelerate_config"})


def make_parser(trainer: str = "srft") -> TrlParser:
    """The `TrlParser` for a recipe run by `trainer` (`srft`, `sft` or `sft_kl`)."""
    if trainer not in CONFIG_CLASSES:
        raise RecipeError(f"trainer={trainer!r} must be one of {list(TRAINERS)}.")
    # allow_abbrev=False: a typo such as `--max_step` must not silently match `--max_steps`.
    return RecipeParser(
        (ScriptArguments, CONFIG_CLASSES[trainer], ModelConfig), prog="srft-trl train", allow_abbrev=False
    )


def flag_value(argv: Sequence[str], flag: str) -> str | None:
    """The value given to `flag` on a command line (`--flag value` or `--flag=value`), or None."""
    for i, token in enumerate(argv):
        if token == flag and i + 1 < len(argv):
            return argv[i + 1]
        if token.startswith(flag + "="):
            return token.split("=", 1)[1]
    return None


def resolve_recipe_path(value: str) -> Path:
    """A recipe path, or the name of a recipe shipped with the package (`srft_trl.shipped.recipe_path`)."""
    try:
        return recipe_path(value)
    except ValueError as error:
        raise RecipeError(str(error)) from None


def read_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """The recipe's YAML mapping; a syntax error names the file and line, an empty file says so."""
    with open(path) as handle:
        try:
            recipe = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise RecipeError(f"recipe {path}:{where}: YAML syntax error: {problem}") from None
    if recipe is None:
        raise RecipeError(f"recipe {path} is empty: it needs at least a model (model_name_or_path: ... or "
                          "tiny_model: true); start from a shipped recipe, e.g. srft_quickstart or srft_tiny_cpu.")
    if not isinstance(recipe, dict):
        raise RecipeError(f"recipe {path} must be a YAML mapping of settings, got {type(recipe).__name__}.")
    return recipe


def check_value_shapes(recipe: dict[str, Any], parser: TrlParser, source: str = "recipe") -> None:
    """A list where one value is expected (`num_generations: [4]`), or a mapping for a number, fails
    naming the key (TrlParser would pass it on, to fail later without the key's name)."""
    annotations: dict[str, str] = {}  # as declared (HfArgumentParser narrows `field.type` of a Union in place)
    for cls in parser.dataclass_types:
        for base in cls.__mro__:
            for name, annotation in vars(base).get("__annotations__", {}).items():
                annotations.setdefault(name, str(annotation).lower())
    for key, value in recipe.items():
        annotation = annotations.get(key)
        if annotation is None:
            continue
        takes_list = any(word in annotation for word in ("list", "tuple", "sequence"))
        takes_dict = "dict" in annotation
        if (isinstance(value, (list, tuple)) and not takes_list) or (isinstance(value, dict) and not takes_dict):
            raise RecipeError(f"{source}: {key}: expected a single value, got a {type(value).__name__} ({value!r}).")


def _suggest(key: str, known: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_recipe_keys(recipe: dict[str, Any], parser: TrlParser, source: str = "recipe") -> None:
    """Fail on keys that no dataclass of `parser` and no launcher option knows, naming them.

    TrlParser would pass such keys on as "remaining strings" (to `accelerate launch` in TRL's CLI,
    which fails late and without the key's origin), so they are checked here, up front.
    """
    known = {action.dest for action in parser._actions} | {"env"}
    unknown = [key for key in recipe if key not in known and key not in launcher_keys()]
    if unknown:
        details = "; ".join(f"{key!r}{_suggest(key, known)}" for key in unknown)
        raise RecipeError(f"unknown key(s) in {source}: {details}.")


def _check_remaining(tokens: Sequence[str]) -> list[str]:
    """Command-line leftovers must be launcher options; returns them, raises naming any other."""
    unknown = [t for t in tokens if t.startswith("--") and t[2:].split("=", 1)[0] not in launcher_keys()]
    if unknown or (tokens and not tokens[0].startswith("--")):
        raise RecipeError(f"unrecognised command-line argument(s): {' '.join(unknown or tokens)}")
    return list(tokens)


def remove_subsequence(tokens: Sequence[str], removed: Sequence[str]) -> list[str]:
    """`tokens` without the ordered subsequence `removed` (the command-line launcher options)."""
    pending = iter(removed)
    current = next(pending, None)
    kept = []
    for token in tokens:
        if current is not None and token == current:
            current = next(pending, None)
        else:
            kept.append(token)
    return kept


def launcher_args(recipe: dict[str, Any], parser: TrlParser) -> list[str]:
    """The recipe's launcher-only keys as `accelerate launch` flags (booleans as bare flags).

    A key both sides know (`gradient_accumulation_steps`, `debug`) belongs to the training
    settings, as in TRL's CLI.
    """
    known = {action.dest for action in parser._actions} | {"env"}
    args = []
    for key, value in recipe.items():
        if key in launcher_keys() and key not in known:
            if value is True:
                args.append(f"--{key}")
            elif value not in (False, None):
                args += [f"--{key}", str(value)]
    return args


@dataclass
class ParsedArgs:
    """Everything a run needs, from the recipe and the command line."""

    script: ScriptArguments
    training: SRFTConfig | SFTConfig
    model: ModelConfig
    recipe_path: Path | None
    recipe: dict[str, Any]
    overrides: list[str]  # command-line tokens other than --config
    launch: list[str]  # launcher options (recipe first, then command line)
    argv: list[str]  # the command line, with `--config` resolved
    cli_launch: list[str]  # the launcher options given on the command line
    effective: dict[str, Any]  # the recipe's and the command line's settings, as parsed (`recipe.yaml`)


def _split_config_flag(argv: Sequence[str]) -> list[str]:
    return [part for token in argv for part in (token.split("=", 1) if token.startswith("--config=") else [token])]


def _option_dest(parser: TrlParser, token: str) -> str | None:
    action = parser._option_string_actions.get(token.split("=", 1)[0])
    return action.dest if action is not None else None


def _locate(message: str, parser: TrlParser, recipe: dict[str, Any], argv: Sequence[str], recipe_path) -> str:
    """An argparse or config error, prefixed with where the setting came from: `RECIPE: key: ...`
    when the recipe set it (and the command line did not), `--key: ...` for the command line."""
    on_command_line = {_option_dest(parser, t) for t in argv if t.startswith("--")}
    argparse_error = re.match(r"argument (--[\w.-]+)(?:/--[\w.-]+)*: (.*)", message, re.S)
    if argparse_error:
        dest, detail = _option_dest(parser, argparse_error.group(1)), argparse_error.group(2)
        if recipe_path is not None and dest in recipe and dest not in on_command_line:
            return f"{recipe_path}: {dest}: {detail}"
        return f"--{dest}: {detail}"
    # A config's own check (`__post_init__`): name the recipe if it sets a key the message names.
    mentioned = [key for key in recipe if re.search(rf"\b{re.escape(key)}\b", message)]
    if recipe_path is not None and len(on_command_line - {None, "config"}) == 0 and mentioned:
        return f"{recipe_path}: {message}"
    return message


def _blame(message: str, parser: TrlParser, recipe: dict[str, Any], argv: Sequence[str], recipe_path) -> str:
    """`_locate`, and for a config's own check that names no key of the recipe: the command line when the
    recipe alone parses (`command line (--num_generations 1): ...`), else the recipe file."""
    located = _locate(message, parser, recipe, argv, recipe_path)
    if located != message or argparse_message(message):
        return located
    overrides = [t for i, t in enumerate(argv) if t != "--config" and (i == 0 or argv[i - 1] != "--config")]
    if not overrides:
        return f"{recipe_path}: {message}" if recipe_path else message
    try:
        parser.parse_args_and_config(["--config", str(recipe_path)] if recipe_path else [],
                                     return_remaining_strings=True, separate_remaining_strings=True)
    except (RecipeError, ValueError, TypeError):
        return f"{recipe_path}: {message}" if recipe_path else message
    return f"command line ({' '.join(overrides)}): {message}"


def argparse_message(message: str) -> bool:
    return re.match(r"argument --", message) is not None


def parse_args(argv: Sequence[str] | None = None) -> ParsedArgs:
    """Parse a recipe and command-line overrides; unknown keys and bad values fail (`RecipeError`,
    naming the recipe and the key) before any expensive work.

    Without `--config`, the settings are the dataclasses' defaults plus the command line (no recipe
    is implied); `model_name_or_path` or `tiny_model` must then be given.
    """
    argv = _split_config_flag(sys.argv[1:] if argv is None else argv)
    recipe_path = None
    if "--config" in argv:
        index = argv.index("--config")
        if index + 1 >= len(argv):
            raise RecipeError("--config needs a recipe path or the name of a shipped recipe.")
        recipe_path = resolve_recipe_path(argv[index + 1])
        argv[index + 1] = str(recipe_path)
    recipe = read_recipe(recipe_path) if recipe_path else {}
    trainer = flag_value(argv, "--trainer") or recipe.get("trainer", "srft")
    parser = make_parser(trainer)
    check_recipe_keys(recipe, parser, str(recipe_path or "recipe"))
    check_value_shapes(recipe, parser, str(recipe_path or "recipe"))
    given = set(recipe) | {_option_dest(parser, t) for t in argv if t.startswith("--")}
    if not given & {"model_name_or_path", "tiny_model"}:
        raise RecipeError(
            "no model: pass --config RECIPE (a path, or a shipped recipe such as srft_tiny_cpu) or "
            "--model_name_or_path PATH_OR_HUB_ID (or --tiny_model true for the tiny local model)."
        )
    # The model reference before the configs: a mistyped path is named before anything else is checked.
    model_ref = flag_value(argv, "--model_name_or_path") or flag_value(argv, "--model-name-or-path")
    tiny = flag_value(argv, "--tiny_model") or flag_value(argv, "--tiny-model") or recipe.get("tiny_model")
    try:
        check_model_reference(model_ref or recipe.get("model_name_or_path"), tiny_model=str(tiny).lower() == "true")
    except FileNotFoundError as error:
        raise RecipeError(str(error)) from None
    try:
        script, training, model, _, cli_rest = parser.parse_args_and_config(
            argv, return_remaining_strings=True, separate_remaining_strings=True
        )
    except (RecipeError, ValueError, TypeError) as error:  # argparse and the configs' __post_init__ checks
        raise RecipeError(_blame(str(error), parser, recipe, argv, recipe_path)) from None
    try:
        from .rewards import get_reward_funcs

        get_reward_funcs(script.reward_funcs)  # an unknown name or import path fails here, not after the model loads
    except (ValueError, ImportError, AttributeError) as error:
        source = "--reward_funcs" if flag_value(argv, "--reward_funcs") else f"{recipe_path or 'recipe'}: reward_funcs"
        raise RecipeError(f"{source}: {error}") from None
    if not (model.model_name_or_path or script.tiny_model):
        raise RecipeError("model_name_or_path is empty: name a local path or a Hub id (or set tiny_model: true).")
    cli_launch = _check_remaining(cli_rest)
    overrides = [t for i, t in enumerate(argv) if t != "--config" and (i == 0 or argv[i - 1] != "--config")]
    overrides = remove_subsequence(overrides, cli_launch)
    launch = launcher_args(recipe, parser) + cli_launch
    override_keys = [d for t in overrides if t.startswith("--") and (d := _option_dest(parser, t)) is not None]
    effective = effective_settings((script, training, model), [*recipe, *override_keys], parser)
    return ParsedArgs(script, training, model, recipe_path, recipe, overrides, launch, argv, cli_launch, effective)


def _plain(value):
    """A setting as YAML can write it (enums by value, paths and other objects as text)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def effective_settings(parsed: Sequence[Any], keys: Sequence[str], parser: TrlParser) -> dict[str, Any]:
    """The value each of `keys` (the recipe's, then the command line's) has after parsing, in that
    order: the recipe with the command-line overrides applied. Launcher-only keys are left out."""
    known = {action.dest for action in parser._actions}
    settings: dict[str, Any] = {}
    for key in dict.fromkeys(keys):
        if key not in known:
            continue
        for obj in parsed:
            if hasattr(obj, key):
                settings[key] = _plain(getattr(obj, key))
                break
    return settings


def recipe_text(args: ParsedArgs) -> str:
    """`recipe.yaml` of a run: the effective settings (recipe plus command line), replayable as is."""
    source = f"--config {args.recipe_path}" if args.recipe_path else "(no recipe)"
    command = " ".join(["srft-trl train", source, *args.overrides])
    header = f"# Effective settings of this run (the recipe with the command line applied):\n#   {command}\n"
    return header + yaml.safe_dump(args.effective, sort_keys=False, allow_unicode=True)
