#!/usr/bin/env bash
# Zip the app root assembled by `make build` (dist/app) into the deployment
# package (dist/app.zip), keeping the handler executable. Usage:
#   scripts/package.sh [SRC_DIR [OUT_ZIP]]
set -euo pipefail
cd "$(dirname "$0")/.."
src="${1:-dist/app}"
out="${2:-dist/app.zip}"
exec "${GO:-go}" run ./cmd/package -src "$src" -out "$out"
