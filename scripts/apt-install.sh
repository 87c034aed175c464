#!/usr/bin/env bash
# Installs Debian packages for a test's tool, as root or through passwordless sudo:
# `bash scripts/apt-install.sh WHAT PACKAGE...` (WHAT names what they are for, in messages).
# Exits 0 once installed, 1 when they cannot be (no root, no apt).
set -uo pipefail
what="$1"
shift
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        echo "apt-install: no root to install $* for $what; those tests will skip" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null; then
    echo "apt-install: no apt-get; install $* yourself for $what" >&2
    exit 1
fi
echo "apt-install: installing $* for $what" >&2
$SUDO apt-get update -qq >&2 && $SUDO apt-get install -y -qq "$@" >&2
