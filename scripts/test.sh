#!/usr/bin/env bash
# Installs everything the tests need, then runs the whole suite.
# The tests start their own redis-server, S3 server (moto) and headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
