#!/usr/bin/env bash
# Makes sure a headless browser is present for tests/report_browser.rs, which opens the run
# report's charts in it: Debian's `chromium`. Exits 0 when one is installed, 1 when it could not
# be installed (no root, no apt) — the browser test then says so and passes.
set -uo pipefail
has_browser() { command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null; }
if has_browser; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        echo "setup-browser: no chromium and no root to install it; the report's charts are not checked in a browser" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null; then
    echo "setup-browser: no apt-get; install chromium for the report's browser test" >&2
    exit 1
fi
echo "setup-browser: installing chromium (headless) for the report's browser test" >&2
$SUDO apt-get update -qq >&2 && $SUDO apt-get install -y -qq chromium >&2
has_browser
