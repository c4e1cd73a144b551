#!/usr/bin/env bash
# Installs everything, then serves Takan on the embedded default: a local data directory
# (./data) and in-process live state. Flags are passed to `takan serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/takan serve --data-dir "${TAKAN_DATA_DIR:-data}" "$@"
