#!/usr/bin/env bash
# The GPU checks of issue 32 as one command, for a session lent a GPU machine whose python3
# holds a CUDA build of torch (cimtest's other dependencies travel as wheels in .whl/).
#
#   bash benchmarks/gpu_session.sh --wheels   # here, once: download those wheels into .whl/
#   bash benchmarks/gpu_session.sh            # there, with .whl carried: results under $OUT
#
# There: the device and its torch, a campaign on the GPU through the CLI (its summary beside
# the CPU's for the same chips: the same distribution, not the same bits), the device tests,
# then `benchmarks/gpu.py --quick` and the full `benchmarks/gpu.py` (rooflines, a vgg16-8
# learned fit, EGIS compaction at the paper's sizes). Prepared on the CPU; not yet run on a
# device.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(lightgbm==4.7.0 mnist1d==0.0.2.post1 mlxtend==0.25.0 platformdirs==4.14.9)

if [[ "${1:-}" == "--wheels" ]]; then
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"
  exit 0
fi

out="${OUT:-gpu-session}"
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl
export PYTHONPATH="$PWD/src:$PWD/benchmarks:/tmp/site" PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA'; \
print(torch.__version__, torch.cuda.get_device_name(0))" | tee "$out/device.txt"
for device in cpu cuda; do
  python3 -m cimtest campaign resnet20-8 --fault egis-typical:sigma=0.05425 --chips 256 \
    --device "$device" --json > "$out/campaign-$device.json"
done
python3 -m pytest -q -p no:cacheprovider tests/engine/test_device.py \
  tests/methods/test_methods_device.py > "$out/tests.log" 2>&1 || tail -20 "$out/tests.log"
python3 benchmarks/gpu.py --device cuda --quick --json > "$out/gpu-quick.json"
python3 benchmarks/gpu.py --device cuda --json > "$out/gpu.json"
