#!/usr/bin/env bash
# Makes sure a Vulkan driver is present for wgpu: on machines without a GPU, Mesa's software
# driver (lavapipe, Debian `mesa-vulkan-drivers`). Exits 0 when a Vulkan ICD is installed, 1 when
# it could not be installed (no root, no apt) — the wgpu tests then skip.
set -uo pipefail
has_icd() { compgen -G "/usr/share/vulkan/icd.d/*.json" >/dev/null || compgen -G "/etc/vulkan/icd.d/*.json" >/dev/null; }
if has_icd; then exit 0; fi
bash "$(dirname "$0")/apt-install.sh" "the wgpu tests (lavapipe)" mesa-vulkan-drivers libvulkan1 || exit 1
has_icd
