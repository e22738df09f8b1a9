#!/usr/bin/env bash
# Portable streams between CPU and CUDA (issue 14), and the portable path's GPU speed, as
# one command for the device tool. Writes logs and a summary to $OUT.
#
#   here:   python -m pip download constriction tqdm --only-binary=:all: --no-deps \
#               --python-version 3.10 -d gpu-wheels   (and 3.11, 3.12: the device's python
#               may be any of them; skipped there when constriction is importable)
#   device: run(command="OUT=$OUT bash benchmarks/gpu_portable.sh", carry=["gpu-wheels"],
#               timeout_s=600)
#   dry run on a CPU:  DEVICE=cpu SIZE=256x144 MODELS=ufvc-s OUT=/tmp/gpu \
#                          bash benchmarks/gpu_portable.sh
#
# Checks, each a line "PASS ..." or "FAIL ..." in $OUT/summary.txt:
#   1. the golden stream decodes on the device to its recorded digest;
#   2. a clip encoded on the CPU decodes on the device to the CPU's reconstruction;
#   3. a clip encoded on the device decodes on the CPU to the device's reconstruction;
# then times ufvc-s and HT-S (recipe weights) at $SIZE (default 1080p): portable, and fp16
# with CUDA graphs as the float reference (the paper's setting).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:?set OUT to the folder that receives the logs}
device=${DEVICE:-cuda}
size=${SIZE:-1080p}
python=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
if ! "$python" -c "import constriction" 2>/dev/null; then
    [ -d gpu-wheels ] || { echo "constriction is missing and gpu-wheels/ was not carried" >&2; exit 2; }
    deps=$(mktemp -d)
    "$python" -m pip install -q --no-index --find-links gpu-wheels --target "$deps" \
        constriction tqdm || exit 2
    export PYTHONPATH=$PYTHONPATH:$deps
fi
summary=$out/summary.txt
: > "$summary"
ufvc() { "$python" -m ufvc "$@"; }
check() {  # check NAME FILE_A FILE_B: the two decoded files must be byte-identical
    if cmp -s "$2" "$3"; then echo "PASS $1" | tee -a "$summary"
    else echo "FAIL $1 ($(md5sum "$2" "$3" | tr '\n' ' '))" | tee -a "$summary"; fi
}
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee -a "$summary"
work=$(mktemp -d)

# 1. golden stream
ufvc decode tests/fixtures/golden/ufvc-s-portable.ufv -o "$work/golden.y4m" --device "$device" \
    2>>"$out/log.txt"
"$python" - "$work/golden.y4m" >>"$summary" <<'PY'
import json, sys
from ufvc.io import open_reader
from ufvc.io.types import frames_sha256
record = json.load(open("tests/fixtures/golden/ufvc-s-portable.json"))
with open_reader(sys.argv[1]) as reader:
    digest = frames_sha256(reader)
print(("PASS" if digest == record["decoded_sha256"] else "FAIL") + " golden stream digest")
PY

# 2 and 3. CPU -> device and device -> CPU
"$python" - "$work/clip.y4m" <<'PY'
import sys
from fractions import Fraction
from ufvc.io import open_writer
from ufvc.io.types import VideoInfo
from ufvc.samples import synthetic_video
with open_writer(sys.argv[1], VideoInfo(320, 192, Fraction(25), 17)) as writer:
    for frame in synthetic_video(320, 192, 17, seed=9, motion="zoom"):
        writer.write(frame)
PY
ufvc encode "$work/clip.y4m" -o "$work/cpu.ufv" --recon "$work/cpu_recon.y4m" -q 40 \
    --device cpu 2>>"$out/log.txt"
ufvc decode "$work/cpu.ufv" -o "$work/cpu_on_dev.y4m" --device "$device" 2>>"$out/log.txt"
check "encoded on cpu, decoded on $device" "$work/cpu_recon.y4m" "$work/cpu_on_dev.y4m"
ufvc encode "$work/clip.y4m" -o "$work/dev.ufv" --recon "$work/dev_recon.y4m" -q 40 \
    --device "$device" 2>>"$out/log.txt"
ufvc decode "$work/dev.ufv" -o "$work/dev_on_cpu.y4m" --device cpu 2>>"$out/log.txt"
check "encoded on $device, decoded on cpu" "$work/dev_recon.y4m" "$work/dev_on_cpu.y4m"
cp "$work/cpu.ufv" "$work/dev.ufv" "$out/"

# Speed at $size: portable against the float reference, alternating.
float_flags="--fp32"
[ "$device" = cuda ] && float_flags="--fp16 --cuda-graphs"
for model in ${MODELS:-ufvc-s dcvc-uf-hts}; do
    for flags in "" "$float_flags" ""; do
        name=$model-$( [ -z "$flags" ] && echo portable || echo float )
        # shellcheck disable=SC2086
        ufvc bench --model "$model" --device "$device" --sizes "$size" --frames 16 \
            --warmup-chunks 1 $flags --json "$out/bench-$name.json" >>"$out/bench.txt" \
            2>>"$out/log.txt" || echo "FAIL bench $name" | tee -a "$summary"
        grep -h "$size" "$out/bench.txt" | tail -2 | sed "s/^/$name /" >>"$summary"
    done
done
cat "$summary"
