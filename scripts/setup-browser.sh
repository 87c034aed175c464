#!/usr/bin/env bash
# Makes sure a headless browser is present for tests/report_browser.rs, which opens the run
# report's charts in it: Debian's `chromium`. Exits 0 when one is installed, 1 when it could not
# be installed (no root, no apt) — the browser test then says so and passes.
set -uo pipefail
has_browser() { command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null; }
if has_browser; then exit 0; fi
bash "$(dirname "$0")/apt-install.sh" "the report's browser test" chromium || exit 1
has_browser
