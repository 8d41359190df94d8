#!/usr/bin/env bash
# Builds the Kubernetes binaries used by the e2e harness (kube-apiserver,
# kube-scheduler, kube-controller-manager, and kubectl for the kubectl plugin's
# tests) plus etcd, from the Go modules pinned in this directory (go.mod /
# etcd/go.mod).
#
# Output: ${HIATUS_K8S_CACHE:-$HOME/.cache/hiatus/k8s}/<k8s-version>/bin/
#   kube-apiserver kube-scheduler kube-controller-manager kubectl etcd
# The bin directory path is the LAST line printed on stdout; everything else
# goes to stderr. Idempotent: when the bin directory holds a stamp that
# matches the pinned versions and every binary, nothing is built; when the
# stamp matches but binaries are missing (a cache from before a binary was
# added to the list), only those are built.
#
# Environment:
#   HIATUS_K8S_CACHE   cache root (default: $HOME/.cache/hiatus/k8s)
#   HIATUS_K8S_REBUILD set to 1 to ignore the stamp and rebuild
#   HIATUS_BUILD_P     go build -p value (default: number of CPUs, max 2 is
#                      plenty; the link of kube-apiserver needs ~1-2 GiB)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf '[k8s-build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# A non-login shell (CI) may not have Go's default install location on PATH.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then PATH="/usr/local/go/bin:$PATH"; fi
command -v go >/dev/null 2>&1 || die "go not found on PATH (need Go >= 1.26)"

# Single source of truth for the versions: the wrapper go.mod files.
k8s_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$here/go.mod")"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" && $2 ~ /^v/ {print $2; exit}' "$here/etcd/go.mod")"
[[ -n "$k8s_version" ]] || die "cannot find k8s.io/kubernetes version in $here/go.mod"
[[ -n "$etcd_version" ]] || die "cannot find go.etcd.io/etcd/server/v3 version in $here/etcd/go.mod"

cache_root="${HIATUS_K8S_CACHE:-$HOME/.cache/hiatus/k8s}"
out_dir="$cache_root/$k8s_version"
bin_dir="$out_dir/bin"
stamp="$bin_dir/.stamp"
k8s_commands=(kube-apiserver kube-scheduler kube-controller-manager kubectl)
binaries=("${k8s_commands[@]}" etcd)

# The stamp records what the binaries were built from; any change to the
# pinned modules or to this script's build flags triggers a rebuild.
build_flags_rev=2
want_stamp="k8s=$k8s_version etcd=$etcd_version flags=$build_flags_rev goos=$(go env GOOS) goarch=$(go env GOARCH) sums=$(
  cat "$here/go.mod" "$here/go.sum" "$here/etcd/go.mod" "$here/etcd/go.sum" | sha256sum | cut -c1-16
)"

stamp_matches() {
  [[ "${HIATUS_K8S_REBUILD:-0}" != 1 ]] || return 1
  [[ -f "$stamp" ]] || return 1
  [[ "$(cat "$stamp")" == "$want_stamp" ]]
}

missing_binaries() {
  local b
  for b in "${binaries[@]}"; do [[ -x "$bin_dir/$b" ]] || echo "$b"; done
}

up_to_date() {
  stamp_matches && [[ -z "$(missing_binaries)" ]]
}

if up_to_date; then
  log "up to date: $bin_dir ($k8s_version, etcd $etcd_version)"
  echo "$bin_dir"
  exit 0
fi

mkdir -p "$out_dir"
# Serialise concurrent builds (e.g. parallel test workers) on the same cache.
exec 9>"$out_dir/.lock"
if command -v flock >/dev/null 2>&1; then
  log "acquiring build lock $out_dir/.lock"
  flock 9
  if up_to_date; then
    log "up to date after waiting for lock: $bin_dir"
    echo "$bin_dir"
    exit 0
  fi
fi

# What to build: everything, or (same pinned versions, same flags) only what is missing.
if stamp_matches; then
  mapfile -t wanted < <(missing_binaries)
  partial=1
else
  wanted=("${binaries[@]}")
  partial=0
fi
wants() { local b; for b in "${wanted[@]}"; do [[ "$b" == "$1" ]] && return 0; done; return 1; }
k8s_wanted=()
for b in "${k8s_commands[@]}"; do if wants "$b"; then k8s_wanted+=("$b"); fi; done

gover="$(go env GOVERSION)"
log "building ${wanted[*]} (Kubernetes $k8s_version, etcd $etcd_version) with $gover into $bin_dir$([[ $partial == 1 ]] && echo ', the others are cached')"
start_all=$SECONDS

# Pure-Go static binaries, like the upstream release build (hack/lib/golang.sh):
# tags selinux,notest,grpcnotrace; -trimpath; -s -w.
export CGO_ENABLED=0
par="${HIATUS_BUILD_P:-$(nproc 2>/dev/null || echo 2)}"
tags="selinux,notest,grpcnotrace"

tmp_bin="$(mktemp -d "$out_dir/bin.tmp.XXXXXX")"
trap 'rm -rf "$tmp_bin"' EXIT

# --- Kubernetes -------------------------------------------------------------
t0=$SECONDS
log "downloading Kubernetes modules"
(cd "$here" && go mod download) >&2
log "modules ready after $((SECONDS - t0))s"

major="${k8s_version#v}"; major="${major%%.*}"
minor="${k8s_version#v*.}"; minor="${minor%%.*}"
build_date="$(cd "$here" && { go list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes 2>/dev/null || true; })"
[[ -n "$build_date" ]] || build_date="1970-01-01T00:00:00Z"
ver_ldflags=""
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ver_ldflags+=" -X $pkg.gitVersion=$k8s_version"
  ver_ldflags+=" -X $pkg.gitMajor=$major"
  ver_ldflags+=" -X $pkg.gitMinor=$minor"
  ver_ldflags+=" -X $pkg.gitTreeState=clean"
  ver_ldflags+=" -X $pkg.gitCommit="
  ver_ldflags+=" -X $pkg.buildDate=$build_date"
done

if ((${#k8s_wanted[@]} > 0)); then
  t0=$SECONDS
  log "compiling ${k8s_wanted[*]} (-p $par)"
  # One go build invocation so shared packages are compiled once.
  (cd "$here" && go build -p "$par" -trimpath -tags "$tags" \
    -ldflags "-s -w$ver_ldflags" \
    -o "$tmp_bin/" \
    "${k8s_wanted[@]/#/k8s.io/kubernetes/cmd/}") >&2
  log "kubernetes binaries built in $((SECONDS - t0))s"
fi

# --- etcd -------------------------------------------------------------------
# Debian bookworm's etcd-server is 3.4.x; Kubernetes >= 1.34 wants etcd 3.5+
# (1.37 is tested against 3.7), so etcd is built from the pinned module.
if wants etcd; then
  t0=$SECONDS
  log "building etcd $etcd_version"
  (cd "$here/etcd" && go mod download >&2 && go build -p "$par" -trimpath \
    -ldflags "-s -w" -o "$tmp_bin/etcd" go.etcd.io/etcd/server/v3) >&2
  log "etcd built in $((SECONDS - t0))s"
fi

# --- install ------------------------------------------------------------------
if wants kube-apiserver; then "$tmp_bin/kube-apiserver" --version >&2; fi
if wants kubectl; then "$tmp_bin/kubectl" version --client >&2; fi
if wants etcd; then "$tmp_bin/etcd" --version >&2; fi
mkdir -p "$bin_dir"
# A full build replaces a stamp that no longer matches only once every binary is in place.
if [[ $partial == 0 ]]; then rm -f "$stamp"; fi
for b in "${wanted[@]}"; do
  [[ -x "$tmp_bin/$b" ]] || die "missing $b after build"
  mv -f "$tmp_bin/$b" "$bin_dir/$b"
done
printf '%s\n' "$want_stamp" >"$stamp"
log "done in $((SECONDS - start_all))s: $bin_dir"
echo "$bin_dir"
