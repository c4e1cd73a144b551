#!/usr/bin/env bash
# Installs everything Takan needs on a fresh Debian machine of this kind:
#   Debian packages (when missing): chromium (browser tests), redis-server (Redis tests),
#   ffmpeg (ffprobe checks), openssl, fonts-noto-cjk (Chinese pages in screenshots and the
#   record PDF), poppler-utils (pdftotext/pdftoppm: the record PDF's tests),
#   iproute2 and nftables (testkit/netlab: shaped links, loss and outages in a namespace);
#   nginx (tests/multinode: a real reverse proxy in front of two nodes);
#   a virtualenv in .venv with Takan and its Python dependencies;
#   the pages' npm packages (web_client/node_modules).
# Usage: scripts/install.sh [--test]   (--test adds the test-only Python packages)
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

need=()
command -v chromium >/dev/null || need+=(chromium)
command -v redis-server >/dev/null || need+=(redis-server)
command -v ffprobe >/dev/null || need+=(ffmpeg)
command -v openssl >/dev/null || need+=(openssl)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need+=(fonts-noto-cjk)
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v pdftotext >/dev/null || need+=(poppler-utils)
[ -x /usr/sbin/nginx ] || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
echo "==> installing Python packages into .venv"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${extras}"

echo "==> installing the pages' npm packages"
npm ci --prefix web_client --no-audit --no-fund --silent
echo "==> installed"
