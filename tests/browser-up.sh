#!/usr/bin/env bash
# Make a headless Chromium answer on this host, for the report's browser test (tests/test_report_html.py):
# installs Debian's chromium (and a font, so the page's text renders) where it is missing (root, apt).
# Idempotent; an installed browser is left alone.
set -euo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "browser-up: need root to apt-get install ${need[*]}" >&2; exit 1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
fi
chromium --version
