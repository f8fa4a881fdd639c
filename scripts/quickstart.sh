#!/usr/bin/env bash
# The main job on the embedded default, from a clean checkout: SRFT on a tiny local model and the
# shipped tiny arithmetic data, on CPU, printing held-out accuracy before and after training.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
# The quickstart retrains from step 0 each time it is run: outputs/srft-tiny-cpu is its own folder.
# (`srft-trl train` itself never overwrites a finished run unless asked, as here.)
srft-trl train --config recipes/srft_tiny_cpu.yaml --overwrite_output_dir true "$@"
