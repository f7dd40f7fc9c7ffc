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
# Measured: bench/matmul.bench.ts (f32 matmul x·Wᵀ, both kernel sets, tfjs-backend-webgpu peer) and
# bench/linear.bench.ts (f32/f16/q8_0/q4_0 linear forward and dx, both kernel sets). `--also NAME`
# adds a bench run once per kernel set (`--kernels cpu`, `--kernels gpu`), e.g. --also train-step.
# Not measured yet: attention and a full training step at WizardCoder shapes (later slices).
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
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
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
# matmul and linear time both kernel sets in one run.
npx tsx bench/run.ts matmul linear $quick --out "$out/both"
for name in "${also[@]}"; do
  for kernels in cpu gpu; do
    npx tsx bench/run.ts "$name" $quick --kernels "$kernels" --out "$out/$kernels"
  done
done
npx tsx scripts/bench-table.ts "$out" "$out/summary.md"
echo "done in $((SECONDS - start)) s: $out/summary.md and JSON beside it"
