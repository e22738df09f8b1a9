#!/usr/bin/env bash
# One GPU lease of the ufvc-s training campaign (issue 13), as one command for the device
# tool: train from the campaign's latest committed weights (the committed
# campaign state, or the shipped weights where there is none) for at most MINUTES (default 8)
# on the self-contained pack, then write the float16 weights (about 18 MB) to $OUT in parts
# of at most 15 MiB (the device returns files of at most 16 MiB), with their SHA-256 and
# the log. Rejoin them here:
#   cat <files_at>/ufvc-s-campaign.ufvm.part* > results/training/campaign/ufvc-s-campaign.ufvm
#   (cd results/training/campaign && sha256sum -c <files_at>/ufvc-s-campaign.ufvm.sha256)
#
#   here:   ufvc gather-photos && python benchmarks/make_gpu_pack.py
#   device: run(command="bash benchmarks/gpu_train.sh", carry=["gpu-pack"], timeout_s=600)
#   dry run on a CPU:  DEVICE=cpu MINUTES=1 OUT=/tmp/gpu bash benchmarks/gpu_train.sh \
#                          stages.0.batch_size=2
set -euo pipefail
cd "$(dirname "$0")/.."
campaign=results/training/campaign/ufvc-s-campaign.ufvm
# The campaign's latest state; when the shipped weights are that state, only they are kept.
[ -f "$campaign" ] || campaign=src/ufvc/weights/ufvc-s.ufvm
init=${INIT:-$campaign}
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
    --to "$run/ufvc-s-campaign.ufvm"
mkdir -p "$out"
split -b 15M -d "$run/ufvc-s-campaign.ufvm" "$out/ufvc-s-campaign.ufvm.part"
(cd "$run" && sha256sum ufvc-s-campaign.ufvm) > "$out/ufvc-s-campaign.ufvm.sha256"
cp "$run/train_log.csv" "$out/gpu_train_log.csv"
ls -l "$out"
