#!/usr/bin/env bash
# The package as users install it: build the wheel, install it into a fresh virtual environment that
# cannot see the checkout, and train the shipped tiny recipe (by name) from a directory outside the
# checkout, for a few steps. Run by .ci/run after the tests.
#
#   bash scripts/check_wheel.sh            # keeps nothing; SRFT_KEEP_WHEEL_CHECK=1 keeps the temp folder
#
# torch is installed first with the same spec as scripts/setup_env.sh (a bare `torch` requirement
# would pull a multi-GB CUDA build on a CPU machine); everything else comes from the wheel's metadata.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/srft-wheel-check.XXXXXX")"
if [ -z "${SRFT_KEEP_WHEEL_CHECK:-}" ]; then
  trap 'rm -rf "$WORK"' EXIT
fi
step() { printf '\n== check_wheel: %s\n' "$*"; }

step "build the wheel from a copy of the sources (the checkout gets no build/ folder)"
mkdir -p "$WORK/src"
cp "$ROOT/setup.cfg" "$ROOT/pyproject.toml" "$ROOT/README.md" "$ROOT/LICENSE" "$WORK/src/"
# -L: recipes may be reached through links; the wheel must hold the files themselves.
cp -RL "$ROOT/srft_trl" "$WORK/src/srft_trl"
find "$WORK/src" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
"$PYTHON" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install -q --upgrade pip "setuptools>=77" wheel
"$VPY" -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/dist" "$WORK/src"
WHEEL="$(ls "$WORK"/dist/srft_trl-*.whl)"
echo "$WHEEL"

step "install it into the fresh environment"
# shellcheck disable=SC2086
"$VPY" -m pip install -q ${SRFT_TORCH_SPEC:-torch==2.13.0}
"$VPY" -m pip install -q "$WHEEL"

step "train the shipped tiny recipe from outside the checkout"
mkdir -p "$WORK/run"
cd "$WORK/run"
# The installed package, not the checkout, must be what runs.
"$VPY" - "$ROOT" <<'EOF'
import sys
from pathlib import Path
import srft_trl
root = Path(sys.argv[1]).resolve()
here = Path(srft_trl.__file__).resolve()
assert root not in here.parents, f"srft_trl imported from the checkout: {here}"
print("srft_trl from", here.parent)
EOF
export OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
# The tiny model is built in $XDG_CACHE_HOME/srft_trl: keep it inside the temporary folder.
XDG_CACHE_HOME="$WORK/cache" "$WORK/venv/bin/srft-trl" train --config srft_tiny_cpu --max_steps 2 --eval_limit 4 \
  --output_dir "$WORK/run/out"
test -f "$WORK/run/out/recipe.yaml"
ls "$WORK/run/out"/*.safetensors >/dev/null
# The quickstart's recipe, data and pre-trained base (checked by sha256) ship in the wheel too.
"$WORK/venv/bin/srft-trl" train --config srft_quickstart --max_steps 2 --eval_limit 8 --output_dir "$WORK/run/quick"
ls "$WORK/run/quick"/*.safetensors >/dev/null
# The accelerate config names resolve to the files inside the installed package.
"$VPY" -c "
from srft_trl.shipped import accelerate_config_path, recipe_path
for name in ('fsdp2', 'zero3', 'ddp'):
    path = accelerate_config_path(name)
    assert 'site-packages' in str(path) and path.is_file(), path
assert recipe_path('recipes/srft_qwen7b.yaml').is_file()
print('shipped configs:', accelerate_config_path('fsdp2').parent)
"
step "ok: the wheel installs and trains outside the checkout"
