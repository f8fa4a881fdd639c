"""Shipped recipes and accelerate configs: the names a user types resolve to this package's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from srft_trl import cli, shipped
from srft_trl import launch as srft_launch

ROOT = Path(__file__).resolve().parents[1]
PACKAGED = ROOT / "srft_trl" / "resources" / "recipes"


def test_top_level_recipes_folder_is_the_packaged_one():
    # Users of a checkout type recipes/srft_qwen7b.yaml; the wheel ships srft_trl/resources/recipes.
    # One folder, reachable at both paths, so the two can never drift.
    assert (ROOT / "recipes").resolve() == PACKAGED.resolve()
    assert "srft_qwen7b" in shipped.shipped_recipes()
    assert "srft_tiny_cpu" in shipped.shipped_recipes()
    assert {"ddp", "fsdp2", "zero3", "multinode", "cpu_2proc"} <= set(shipped.shipped_accelerate_configs())


@pytest.mark.parametrize("typed", ["srft_tiny_cpu", "srft_tiny_cpu.yaml", "recipes/srft_tiny_cpu.yaml"])
def test_recipe_names_resolve_from_any_directory(typed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the checkout: only the shipped copy can answer
    path = shipped.recipe_path(typed)
    assert path.is_file() and path.resolve() == (PACKAGED / "srft_tiny_cpu.yaml").resolve()


def test_a_file_on_disk_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "srft_tiny_cpu.yaml").write_text("max_steps: 1\n")
    assert shipped.recipe_path("srft_tiny_cpu.yaml") == Path("srft_tiny_cpu.yaml")


def test_unknown_recipe_lists_the_shipped_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"'srft_tiny'.*shipped: .*srft_tiny_cpu"):
        shipped.recipe_path("srft_tiny")
    # What the user sees after a typo: one line naming the value and the shipped recipes, exit status 2.
    assert cli.main(["train", "--config", "recipes/srft_qwen8b.yaml"]) == 2
    err = capsys.readouterr().err
    assert "recipes/srft_qwen8b.yaml" in err and "srft_qwen7b" in err and "Traceback" not in err


@pytest.mark.parametrize("typed", ["fsdp2", "fsdp2.yaml", "accelerate/fsdp2", "recipes/accelerate/fsdp2.yaml"])
def test_accelerate_names_mean_this_projects_files(typed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = shipped.accelerate_config_path(typed)
    assert path.resolve() == (PACKAGED / "accelerate" / "fsdp2.yaml").resolve()
    # `srft-trl train --accelerate_config fsdp2`: ours, never TRL's file of the same name.
    launch = srft_launch.resolve_accelerate_config(["--accelerate_config", typed, "--num_processes", "8"])
    assert Path(launch[1]).resolve() == path.resolve() and "trl" not in Path(launch[1]).parts
    assert launch[2:] == ["--num_processes", "8"]


def test_unknown_accelerate_config_names_ours_and_trls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"shipped: cpu_2proc, ddp, fsdp2"):
        shipped.accelerate_config_path("fsdp")
    with pytest.raises(ValueError, match=r"fsdp.*This package ships: .*fsdp2"):
        srft_launch.resolve_accelerate_config(["--accelerate_config", "fsdp"])
    # Names only TRL ships still reach TRL's resolver.
    launch = srft_launch.resolve_accelerate_config(["--accelerate_config", "zero2"])
    assert Path(launch[1]).name == "zero2.yaml" and "trl" in Path(launch[1]).parts
