#!/usr/bin/env bash
# A short soak: 2,000 prompts through one running pipeline, resident memory
# flat within 5 % after the warm-up (the 10,000-prompt run is in
# docs/benchmarks.md).
set -eu
BUILD=${LLMASOS_BUILD_DIR:?}
MODEL=${LLMASOS_MODELS:-../shared/models}/stories260K
[ -d "$MODEL" ] || { echo "MODEL MISSING: $MODEL" >&2; exit 1; }
"$BUILD/tools/llmasos-soak" -m "$MODEL" --prompts 2000 --every 200
