#!/usr/bin/env bash
# System packages VulnLab needs on a fresh Debian 12 machine (run as root).
# - mesa-vulkan-drivers from bookworm-backports: Dawn (npm `webgpu`) rejects Debian 12's own lavapipe 22.3.
# - chromium: headless WebGPU (SwiftShader) for the end-to-end tests; playwright cannot download browsers here.
# - python3-torch, python3-numpy, python3-sklearn: the PyTorch recipe's trainer (recipes/torch) and its tests
#   (tests/recipes: torchrun with gloo on CPU), and the scripts that regenerate reference fixtures
#   (scripts/*.py). They add about 5½ minutes: this script took 478 s instead of 138 s in a fresh Debian 12
#   chroot on a busy 2-core machine.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

src=/etc/apt/sources.list.d/debian.sources
backports=/etc/apt/sources.list.d/vulnlab-backports.sources
if [ ! -f "$backports" ]; then
  uris=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$src" 2>/dev/null || true)
  signed=$(awk '/^Signed-By:/ {print $2; exit}' "$src" 2>/dev/null || true)
  cat > "$backports" <<SRC
Types: deb
URIs: ${uris:-http://deb.debian.org/debian}
Suites: bookworm-backports
Components: main
Signed-By: ${signed:-/usr/share/keyrings/debian-archive-keyring.gpg}
SRC
fi

apt-get update -qq
# Before mesa: `-t bookworm-backports` would move libelf1 to backports, and then python3-torch's libdw1 (which
# pins libelf1 to bookworm's version) cannot install. In this order mesa keeps bookworm's libelf1.
apt-get install -y -qq python3-torch python3-numpy python3-sklearn >/dev/null
apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers >/dev/null
apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
echo "system packages ready: $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) mesa, $(chromium --version 2>/dev/null), torch $(dpkg-query -W -f='${Version}' python3-torch)"
