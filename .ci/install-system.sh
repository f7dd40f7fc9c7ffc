#!/usr/bin/env bash
# System packages VulnLab needs on a fresh Debian 12 machine (run as root).
# - mesa-vulkan-drivers from bookworm-backports: Dawn (npm `webgpu`) rejects Debian 12's own lavapipe 22.3.
# - chromium: headless WebGPU (SwiftShader) for the end-to-end tests; playwright cannot download browsers here.
# - python3-torch / python3-sklearn: only to regenerate reference fixtures (scripts under scripts/); CI compares
#   against the committed fixtures, so they are optional (VULNLAB_PYTHON_REFS=1 installs them).
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
apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers >/dev/null
apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
if [ "${VULNLAB_PYTHON_REFS:-0}" = 1 ]; then
  apt-get install -y -qq python3-torch python3-sklearn python3-numpy >/dev/null
fi
echo "system packages ready: $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) mesa, $(chromium --version 2>/dev/null)"
