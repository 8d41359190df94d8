#!/usr/bin/env bash
# Installs the locked dependencies when a fresh clone has none, so that the README's
# commands (npm run start:local, npm start, npm test) work straight after git clone.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "installing dependencies (npm ci)..." >&2
  npm ci --no-audit --no-fund >&2
fi
