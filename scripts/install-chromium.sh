#!/usr/bin/env bash
# install-chromium.sh — headless Chromium for the browser test
# (e2e/browser_test.go), from Debian's `chromium` package. Quiet and a no-op
# when /usr/bin/chromium (or TCS_CHROMIUM) is already there.
set -euo pipefail

die() { echo "install-chromium.sh: $*" >&2; exit 1; }

bin=${TCS_CHROMIUM:-/usr/bin/chromium}
[ -x "$bin" ] && exit 0

command -v apt-get >/dev/null 2>&1 \
  || die "$bin is missing and apt-get is not available: install Chromium by hand (Debian's chromium package) or set TCS_CHROMIUM to its path"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "$bin is missing and installing it needs root (no sudo here)"
  sudo="sudo"
fi
echo "install-chromium.sh: installing chromium with apt-get" >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2 \
  || die "apt-get install chromium failed"
[ -x "$bin" ] || die "$bin still missing after apt-get install chromium"
