#!/usr/bin/env bash
# Set up the engine and capture the bundled sample clip; results land in output/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p output/demo
.venv/bin/python -m engine capture demo/human_hand_video.mp4 \
    --out output/demo/result.npz --preview output/demo/preview.mp4 "$@"
echo "Demo done: output/demo/result.npz and output/demo/preview.mp4"
