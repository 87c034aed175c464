#!/usr/bin/env bash
# Makes sure a Vulkan driver is present for wgpu: on machines without a GPU, Mesa's software
# driver (lavapipe, Debian `mesa-vulkan-drivers`). Exits 0 when a Vulkan ICD is installed, 1 when
# it could not be installed (no root, no apt) — the wgpu tests then skip.
set -uo pipefail
has_icd() { compgen -G "/usr/share/vulkan/icd.d/*.json" >/dev/null || compgen -G "/etc/vulkan/icd.d/*.json" >/dev/null; }
if has_icd; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        echo "setup-vulkan: no Vulkan driver and no root to install mesa-vulkan-drivers; wgpu tests will skip" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null; then
    echo "setup-vulkan: no apt-get; install a Vulkan driver (e.g. Mesa lavapipe) for the wgpu tests" >&2
    exit 1
fi
echo "setup-vulkan: installing mesa-vulkan-drivers (lavapipe) for the wgpu tests" >&2
$SUDO apt-get update -qq >&2 && $SUDO apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >&2
has_icd
