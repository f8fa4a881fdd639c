#!/usr/bin/env bash
# Create (or reuse) .venv and install srft-trl with its test extras. Sourced by the other scripts.
#
# torch goes in first, pinned: a bare `torch` requirement makes pip fetch a multi-GB CUDA build on a
# machine without a GPU. Set SRFT_TORCH_SPEC to choose another build, e.g.
#   SRFT_TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu" bash scripts/test.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SRFT_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
if ! python -c "import torch" >/dev/null 2>&1; then
  python -m pip install -q --upgrade pip
  # shellcheck disable=SC2086
  python -m pip install -q ${SRFT_TORCH_SPEC:-torch==2.13.0}
fi
if ! python -c "import srft_trl, pytest_socket, nbclient, jupytext" >/dev/null 2>&1 || [ "$ROOT/setup.cfg" -nt "$VENV/.srft-installed" ]; then
  # setuptools in the venv itself (not only in pip's isolated build env): tests/test_packaging.py builds the
  # wheel offline with --no-build-isolation, and Python 3.11's venv ships setuptools 65 (no SPDX licences).
  python -m pip install -q "setuptools>=77"
  python -m pip install -q -e "$ROOT[test]"
  touch "$VENV/.srft-installed"
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # tiny CPU models: one thread is far faster (see tests/conftest.py)
export TOKENIZERS_PARALLELISM=false
