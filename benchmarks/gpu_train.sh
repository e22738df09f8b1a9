#!/usr/bin/env bash
# One GPU lease of the ufvc-s training campaign (issue 13), as one command for the device
# tool: train from the campaign's latest committed weights for at most MINUTES (default 8)
# on the self-contained pack, then write float16 weights (about 16 MB) and the log to $OUT.
#
#   here:   ufvc gather-photos && python benchmarks/make_gpu_pack.py
#   device: run(command="bash benchmarks/gpu_train.sh", carry=["gpu-pack"], timeout_s=600)
#   dry run on a CPU:  DEVICE=cpu MINUTES=1 OUT=/tmp/gpu bash benchmarks/gpu_train.sh \
#                          stages.0.batch_size=2
set -euo pipefail
cd "$(dirname "$0")/.."
init=${INIT:-results/training/campaign/ufvc-s-campaign.ufvm}
config=${CONFIG:-configs/ufvc-s-gpu.toml}
out=${OUT:?set OUT to the folder that receives the weights}
run=${RUN:-runs/gpu}
python=${PYTHON:-python3}
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
[ -f gpu-pack/stills.json ] || { echo "gpu-pack/ is missing: carry it" >&2; exit 2; }
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
"$python" -m ufvc train --config "$config" --out "$run" --quiet \
    --max-minutes "${MINUTES:-8}" device="${DEVICE:-cuda}" model.init="$init" "$@"
"$python" benchmarks/ship_weights.py "$run/ufvc-s.ufvm" --levels 0 8 16 24 32 40 48 56 63 \
    --to "$out/ufvc-s-campaign.ufvm"
cp "$run/train_log.csv" "$out/gpu_train_log.csv"
ls -l "$out"
