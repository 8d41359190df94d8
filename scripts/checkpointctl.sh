#!/usr/bin/env bash
# Installs checkpointctl from its Go module into a cache and prints the binary's path (last line
# of stdout). v1.6.0 is pinned: v1.7.0 does not build from the module proxy (its go-criu v8.5.0
# is not served there). Idempotent; concurrent callers wait on a lock.
#
# Environment: HIATUS_CHECKPOINTCTL_CACHE (default: $HOME/.cache/hiatus/checkpointctl)
set -euo pipefail
version=v1.6.0
cache="${HIATUS_CHECKPOINTCTL_CACHE:-$HOME/.cache/hiatus/checkpointctl}"
bin="$cache/$version/bin/checkpointctl"
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then PATH="/usr/local/go/bin:$PATH"; fi
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [[ ! -x "$bin" ]]; then
  command -v go >/dev/null 2>&1 || { echo "go not found on PATH: cannot build checkpointctl" >&2; exit 1; }
  echo "[checkpointctl] building $version from its Go module (about a minute on 2 cores)" >&2
  GOBIN="$cache/$version/bin" GOFLAGS=-mod=mod go install "github.com/checkpoint-restore/checkpointctl@$version" >&2
fi
echo "$bin"
