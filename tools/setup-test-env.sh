#!/usr/bin/env bash
# Installs what the test suites need beyond npm packages: Debian's chromium, a Vulkan
# driver that Dawn accepts (Mesa 25 lavapipe from bookworm-backports; Chromium's SwiftShader
# ICD as the second one), and zstd. Idempotent; does nothing when everything is there already.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -e /usr/lib/x86_64-linux-gnu/libvulkan.so.1 ] || need+=(libvulkan1)
command -v zstd >/dev/null || need+=(zstd) # tools/bench/sass.mjs reads the GPU driver's zstd shader cache
mesa_new() { ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 && dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -qE '^(2[5-9]|[3-9][0-9])'; }
mesa_new || need+=(mesa)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  cat >&2 <<MSG
Missing for the tests: ${need[*]}.
On Debian 12 as root this script installs them. Otherwise install:
  - Chromium at /usr/bin/chromium (Debian package 'chromium')
  - the Vulkan loader (libvulkan1) and Mesa >= 25 lavapipe (bookworm-backports 'mesa-vulkan-drivers')
  - zstd (Debian package 'zstd')
MSG
  exit 1
fi

. /etc/os-release
bp=/etc/apt/sources.list.d/backports.sources
if [ ! -f "$bp" ]; then
  cat > "$bp" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: ${VERSION_CODENAME}-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium libvulkan1 fonts-liberation zstd >/dev/null
apt-get install -y -qq --no-install-recommends -t "${VERSION_CODENAME}-backports" mesa-vulkan-drivers >/dev/null
echo "setup-test-env: chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'), mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
