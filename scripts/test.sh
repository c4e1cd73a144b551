#!/usr/bin/env bash
# Installs everything the tests need, type-checks the product packages, then runs the whole suite.
# The tests start their own redis-server, S3 server (moto) and headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
echo "==> type check (mypy --strict on the product packages; settings in pyproject.toml)"
.venv/bin/python -m mypy
echo "==> tests"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
