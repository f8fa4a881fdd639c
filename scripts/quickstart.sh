#!/usr/bin/env bash
# The quickstart, from a clean checkout: SRFT on a small pre-trained model shipped with the package
# (digit_chains_base) and its shipped demonstrations, on CPU, no network, 2-3 minutes on 2 cores.
# It prints held-out accuracy before and after training with 95% intervals and writes
# outputs/srft-quickstart/training.png.
#
# Run it again and it says the run is finished (nothing changes); after Ctrl-C the same command
# continues from the last checkpoint. Extra flags go to `srft-trl train` (e.g. --max_steps 150 to
# continue a finished run, --overwrite_output_dir true to train again from step 0).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec srft-trl train --config srft_quickstart "$@"
