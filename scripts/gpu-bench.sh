#!/usr/bin/env bash
# Benchmarks of both kernel sets (cpu: barrier-free, gpu: workgroup-memory tiles) on one adapter,
# written as JSON + a Markdown table (docs/PERFORMANCE.md explains the figures).
#
#   scripts/gpu-bench.sh --local [--full] [--out DIR] [--also BENCH]…
#       the local adapter as Dawn finds it (here: lavapipe). Quick shapes unless --full.
#   scripts/gpu-bench.sh [--debs DIR] [--quick] [--out DIR] [--also BENCH]…
#       a machine with an NVIDIA GPU and no internet: DIR (default $VULKAN_DEBS or shared/vulkan-debs)
#       holds Debian .deb files of the Vulkan loader (libvulkan1) and of the NVIDIA Vulkan driver
#       (e.g. nvidia-vulkan-icd and the libnvidia-*/libglx-nvidia0 packages it needs; its version must
#       match the loaded kernel module). They are unpacked with `dpkg-deb -x` into $OUT/vulkan-root (no
#       root, nothing installed system-wide), and Dawn (npm `webgpu`) runs on them through
#       VK_ICD_FILENAMES / VK_DRIVER_FILES and LD_LIBRARY_PATH. If the debs carry no ICD JSON but the
#       host already has libGLX_nvidia.so.0 (the CUDA driver install often does), a JSON naming it is
#       written. node_modules must already be installed (npm ci) — nothing is downloaded.
#
# Measured, each part in its own process (a part that fails or runs out of time is listed as skipped in
# summary.md; the others still run):
#   both/   bench/matmul.bench.ts (f32 matmul x·Wᵀ, both kernel sets, tfjs-backend-webgpu peer),
#           bench/linear.bench.ts (f32/f16/q8_0/q4_0 linear forward and dx, both kernel sets) and
#           bench/attention.bench.ts (packed attention forward + backward at packs of 512, 1024 and 2048
#           tokens of realistic function lengths, WizardCoder-1B heads 16×128 MQA, both kernel sets).
#   cpu/, gpu/  bench/train-step.bench.ts --shapes wizardcoder-1b, then -3b, with --kernels cpu / gpu:
#           the whole LoRA training step (q4_0 base, LoRA r 8, one pack of 2048 tokens) at WizardCoder-1B
#           and -3B shapes (src/io/presets.ts): tokens/s, the memory plan and the bytes allocated.
#   torch/  recipes/torch/bench_step.py on the same workloads (bench/train-step.bench.ts --workloads):
#           PyTorch fp32 (TF32 off) and bf16 autocast, tokens/s and torch.cuda.max_memory_allocated.
#           Needs a python with torch ($PYTHON, else python3, else /usr/bin/python3) and, without
#           --local, CUDA; otherwise skipped with the reason.
# --local (and --quick) run quick shapes: attention at a 256-token pack with 4×64 heads, and instead of
# the WizardCoder shapes one tiny stand-in of the same structure (2 layers, width 128, q4_0, r 8, a
# 2048-token pack); the 1B/3B steps are far too slow and large for lavapipe and run only without it.
# With --local the training-step parts always run the stand-in (--full enlarges the other benches only).
# Bounds, so that a full run stays under 8 minutes on an H100-class GPU: after one untimed step the
# training step times at most 5 steps, and no more once they have taken 15 s (none when the untimed
# step alone took longer: its time is the figure then), per workload and kernel set; bench_step.py
# likewise (10 s) per precision; and without --local each part has a time limit (TIMEOUTS below,
# 430 s together; a part cut off loses only its own JSON).
# `--also NAME` adds a bench run once per kernel set (`--kernels cpu`, `--kernels gpu`), e.g. --also
# scan; those runs have no limit and come on top of the 8 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

local=0 quick='' full=0 out='' debs="${VULKAN_DEBS:-shared/vulkan-debs}" also=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --local) local=1 ;;
    --full) full=1 ;;
    --quick) quick=--quick ;;
    --debs) debs="$2"; shift ;;
    --out) out="$2"; shift ;;
    --also) also+=("$2"); shift ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "gpu-bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $local == 1 && $full == 0 ]] && quick=--quick
out="${out:-bench/results/gpu-bench-$(hostname)-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

if [[ $local == 0 ]]; then
  shopt -s nullglob
  packages=("$debs"/*.deb)
  if [[ ${#packages[@]} == 0 ]]; then
    echo "gpu-bench: no .deb files in $debs (libvulkan1 and the NVIDIA Vulkan driver); use --debs DIR or --local" >&2
    exit 2
  fi
  root="$out/vulkan-root"
  mkdir -p "$root"
  for deb in "${packages[@]}"; do
    echo "unpacking $(basename "$deb")"
    dpkg-deb -x "$deb" "$root"
  done
  libdirs=$(find "$root" -type d \( -path '*/lib/x86_64-linux-gnu' -o -path '*/lib64' -o -path '*/usr/lib' \) | paste -sd: -)
  export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  icds=$(find "$root" -name 'nvidia_icd*.json' | paste -sd: -)
  if [[ -z $icds ]] && ldconfig -p 2>/dev/null | grep -q 'libGLX_nvidia.so.0'; then
    icds="$root/nvidia_icd.json"
    printf '{"file_format_version":"1.0.1","ICD":{"library_path":"libGLX_nvidia.so.0","api_version":"1.3"}}\n' >"$icds"
    echo "no ICD JSON in the debs; using the host's libGLX_nvidia.so.0"
  fi
  if [[ -z $icds ]]; then
    echo "gpu-bench: no NVIDIA Vulkan ICD (nvidia_icd.json) in $debs and no libGLX_nvidia.so.0 on the host" >&2
    exit 2
  fi
  export VK_ICD_FILENAMES="$icds" VK_DRIVER_FILES="$icds"
  echo "VK_ICD_FILENAMES=$icds"
fi

npx tsx src/cli/main.ts info --json | tee "$out/adapter.json"
if [[ $local == 0 ]] && grep -Eqi '"isFallbackAdapter": true|llvmpipe|lavapipe|swiftshader' "$out/adapter.json"; then
  echo "gpu-bench: Dawn picked a CPU adapter, not the NVIDIA GPU (driver/kernel-module mismatch? /dev/nvidia* missing?)" >&2
  exit 1
fi

start=$SECONDS
# Seconds each part may take without --local (0: no limit): the whole run stays under 8 minutes.
# The defaults sum to 430 s; unpacking, `info`, the workloads and the table take seconds.
declare -A TIMEOUTS=([both]=80 [wizardcoder-1b-cpu]=50 [wizardcoder-3b-cpu]=100 [wizardcoder-1b-gpu]=40
  [wizardcoder-3b-gpu]=70 [wizardcoder-cpu]=140 [wizardcoder-gpu]=100 [torch]=90)
failed=()
skip() { # NAME DIR REASON: a JSON that scripts/bench-table.ts lists under "Skipped or failed"
  mkdir -p "$2"
  printf '{"name": "%s", "skipped": "%s"}\n' "$1" "${3//\"/\'}" >"$2/$1-skipped.json"
  echo "gpu-bench: $1 skipped: $3" >&2
}
part() { # NAME TIMEOUT-KEY DIR COMMAND…: one part, timed, bounded without --local; a failure is recorded
  local name="$1" key="$2" dir="$3" limit=0 t0=$SECONDS rc=0
  shift 3
  [[ $local == 0 ]] && limit="${TIMEOUTS[$key]:-0}"
  echo "== $name (limit: ${limit} s)"
  if [[ $limit -gt 0 ]]; then timeout --kill-after=10 "$limit" "$@" || rc=$?; else "$@" || rc=$?; fi
  echo "== $name: $((SECONDS - t0)) s, exit $rc"
  if [[ $rc == 124 || $rc == 137 ]]; then
    skip "$name" "$dir" "ran past its limit of $limit s (gpu-bench.sh TIMEOUTS)"
    failed+=("$name")
  elif [[ $rc != 0 ]]; then
    skip "$name" "$dir" "failed, in whole or in part (exit $rc; its error is in the console output)"
    failed+=("$name")
  fi
}

# The training step's workloads: the WizardCoder shapes, one model per process (and time limit), or
# with --local/--quick the tiny stand-in.
step_quick=$quick sets=(wizardcoder-1b wizardcoder-3b)
[[ $local == 1 ]] && step_quick=--quick
[[ -n $step_quick ]] && sets=(wizardcoder)

# matmul, linear and attention time both kernel sets in one run.
part matmul-linear-attention both "$out/both" npx tsx bench/run.ts matmul linear attention $quick --out "$out/both"
for kernels in cpu gpu; do
  for set in "${sets[@]}"; do
    part "train-step-$set-$kernels" "$set-$kernels" "$out/$kernels" \
      npx tsx bench/run.ts train-step $step_quick --shapes "$set" --kernels "$kernels" --out "$out/$kernels"
  done
done

# The PyTorch peer on the same workloads.
mkdir -p "$out/torch"
npx tsx bench/train-step.bench.ts --workloads $step_quick >"$out/workloads.json"
torch_py=''
for py in ${PYTHON:-} python3 /usr/bin/python3; do
  if command -v "$py" >/dev/null && "$py" -c 'import torch' 2>/dev/null; then
    torch_py="$py"
    break
  fi
done
if [[ -z $torch_py ]]; then
  skip train-step-torch "$out/torch" "no python with torch (tried ${PYTHON:+$PYTHON, }python3, /usr/bin/python3)"
elif [[ $local == 0 ]] && ! "$torch_py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  skip train-step-torch "$out/torch" "$torch_py has torch but no CUDA device (a CPU build or no driver)"
else
  device=cuda steps=(--max-steps 5 --budget 10)
  # On lavapipe's machine a CPU step of the stand-in can pass 10 s: two timed steps, not the first.
  [[ $local == 1 ]] && device=auto steps=(--max-steps 2 --budget 60)
  part train-step-torch torch "$out/torch" "$torch_py" recipes/torch/bench_step.py --workloads "$out/workloads.json" \
    --device "$device" ${step_quick:+--quick} "${steps[@]}" --out "$out/torch/train-step-torch.json"
fi

for name in "${also[@]}"; do
  for kernels in cpu gpu; do
    part "$name-$kernels" also "$out/$kernels" npx tsx bench/run.ts "$name" $quick --kernels "$kernels" --out "$out/$kernels"
  done
done
npx tsx scripts/bench-table.ts "$out" "$out/summary.md"
echo "done in $((SECONDS - start)) s: $out/summary.md and JSON beside it"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "gpu-bench: failed or cut short: ${failed[*]}" >&2
  exit 1
fi
