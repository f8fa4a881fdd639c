"""Files shipped inside the package: the recipes and the accelerate configs.

They live in `srft_trl/resources/recipes/` (and its `accelerate/` folder) so that an installed wheel
carries them; in a source checkout the top-level `recipes/` is a link to the same folder, so
`recipes/srft_qwen7b.yaml` works there too. Both lookups accept, in this order:

1. an existing file on disk (a path the user wrote: `my_recipe.yaml`, `recipes/srft_qwen7b.yaml`);
2. a shipped name, with or without `.yaml` and with or without a leading `recipes/`
   (`srft_tiny_cpu`, `srft_tiny_cpu.yaml`, `recipes/srft_tiny_cpu.yaml`; for accelerate configs
   also `accelerate/fsdp2` and `recipes/accelerate/fsdp2.yaml`).

Anything else raises `ValueError` naming the shipped files. A shipped accelerate name (`fsdp2`)
always means this project's file, never the config of the same name TRL ships.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

__all__ = [
    "recipe_path",
    "accelerate_config_path",
    "shipped_recipes",
    "shipped_accelerate_configs",
]

_SUFFIX = ".yaml"


def _recipes_root():
    return importlib.resources.files("srft_trl") / "resources" / "recipes"


def _names(folder) -> list[str]:
    return sorted(entry.name[: -len(_SUFFIX)] for entry in folder.iterdir()
                  if entry.is_file() and entry.name.endswith(_SUFFIX))


def shipped_recipes() -> list[str]:
    """Names of the recipes shipped with the package (`srft_qwen7b`, `srft_tiny_cpu`, ...)."""
    return _names(_recipes_root())


def shipped_accelerate_configs() -> list[str]:
    """Names of the accelerate configs shipped with the package (`ddp`, `fsdp2`, `zero3`, ...)."""
    return _names(_recipes_root() / "accelerate")


def _strip(value: str, prefixes: tuple[str, ...]) -> str:
    name = value.replace(os.sep, "/")
    for prefix in prefixes:
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return name[: -len(_SUFFIX)] if name.endswith(_SUFFIX) else name


def _resolve(value: str | os.PathLike, folder, names: list[str], kind: str, prefixes: tuple[str, ...]) -> Path:
    path = Path(value)
    if path.is_file():
        return path
    name = _strip(str(value), prefixes)
    if name in names:
        # The package is installed as plain files (wheel or editable), so the resource is a real path.
        return Path(str(folder / f"{name}{_SUFFIX}"))
    raise ValueError(
        f"{kind} {str(value)!r} not found: no such file, and not a shipped {kind} "
        f"(shipped: {', '.join(names)})."
    )


def recipe_path(name_or_path: str | os.PathLike) -> Path:
    """The recipe file for a path on disk or a shipped recipe name (see the module docstring)."""
    return _resolve(name_or_path, _recipes_root(), shipped_recipes(), "recipe", ("recipes/",))


def accelerate_config_path(name_or_path: str | os.PathLike) -> Path:
    """The accelerate config file for a path on disk or a shipped config name (`fsdp2`, `zero3`, ...)."""
    return _resolve(name_or_path, _recipes_root() / "accelerate", shipped_accelerate_configs(),
                    "accelerate config", ("recipes/accelerate/", "accelerate/"))
