#!/usr/bin/env bash
# Starts a throw-away Kubernetes control plane on loopback for the e2e harness:
# etcd, kube-apiserver, kube-scheduler and kube-controller-manager (no kubelet,
# no nodes: tests create Node objects through the API).
#
# Usage: start-local.sh DIR
#   DIR must be empty or not exist; everything (certs, kubeconfigs, etcd data,
#   logs) is written below it and left there after exit for inspection.
#
# Environment (all optional):
#   K8S_BIN_DIR      directory holding the four binaries (default: the output of
#                    ./build.sh, which is instant when already built)
#   ETCD_PORT        etcd client port              (default 23790)
#   ETCD_PEER_PORT   etcd peer port                (default 23791)
#   APISERVER_PORT   kube-apiserver secure port    (default 26443)
#   SCHEDULER_PORT   kube-scheduler secure port    (default 20259)
#   KCM_PORT         kube-controller-manager port  (default 20257)
#   SCHEDULER_CONFIG_EXTRA  file whose YAML is appended to the generated
#                    KubeSchedulerConfiguration (top-level keys other than
#                    apiVersion/kind/clientConnection/leaderElection, e.g.
#                    `extenders:` or `profiles:`)
#   STARTUP_TIMEOUT  seconds to wait for each component (default 120)
#   KCM_CONTROLLERS  kube-controller-manager --controllers value
#                    (default '*,-node-lifecycle-controller', see README)
#   APISERVER_DISABLE_ADMISSION_PLUGINS  (default TaintNodesByCondition;
#                    set to "" together with KCM_CONTROLLERS='*' to get the
#                    real node lifecycle: then Node Leases must be renewed)
#   ETCD_EXTRA_ARGS, APISERVER_EXTRA_ARGS, SCHEDULER_EXTRA_ARGS, KCM_EXTRA_ARGS
#                    extra flags appended to that component's command line
#                    (split on whitespace), e.g. APISERVER_EXTRA_ARGS=-v=3
#
# Once everything is ready it prints one line on stdout:
#   READY <DIR>/kubeconfigs/admin.kubeconfig
# (all other output goes to stderr) and writes <DIR>/cluster.env. It then
# stays in the foreground; SIGTERM/SIGINT (or any component dying) stops all
# components (reverse order) and the script exits.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[start-local] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 DIR"
dir="$1"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
[[ -z "$(ls -A "$dir")" ]] || die "$dir is not empty"

etcd_port="${ETCD_PORT:-23790}"
etcd_peer_port="${ETCD_PEER_PORT:-23791}"
api_port="${APISERVER_PORT:-26443}"
sched_port="${SCHEDULER_PORT:-20259}"
kcm_port="${KCM_PORT:-20257}"
timeout="${STARTUP_TIMEOUT:-120}"
kcm_controllers="${KCM_CONTROLLERS-*,-node-lifecycle-controller}"
disable_admission="${APISERVER_DISABLE_ADMISSION_PLUGINS-TaintNodesByCondition}"
bin="${K8S_BIN_DIR:-$("$here/build.sh")}"
for b in etcd kube-apiserver kube-scheduler kube-controller-manager; do
  [[ -x "$bin/$b" ]] || die "missing $bin/$b (run build.sh)"
done
command -v openssl >/dev/null || die "openssl not found (apt-get install -y openssl)"
command -v curl >/dev/null || die "curl not found (apt-get install -y curl)"

pki="$dir/pki"
kc="$dir/kubeconfigs"
logs="$dir/logs"
mkdir -p "$pki" "$kc" "$logs" "$dir/etcd-data"
chmod 700 "$dir/etcd-data" # etcd warns otherwise

# ---------------------------------------------------------------- process mgmt
names=()
pids=()
stopping=0
# shellcheck disable=SC2317 # invoked via trap
cleanup() {
  local rc=$?
  trap - EXIT TERM INT
  stopping=1
  local i pid n
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid="${pids[i]}"
    kill -TERM "$pid" 2>/dev/null || continue
    for ((n = 0; n < 100; n++)); do # up to 10 s, then SIGKILL
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    log "stopped ${names[i]} (pid $pid)"
  done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

extra() { # VAR -> words of $VAR into the array "extra_args"
  extra_args=()
  [[ -z "${!1:-}" ]] || read -r -a extra_args <<<"${!1}"
}

start() { # name cmd...
  local name="$1"
  shift
  printf '%q ' "$@" >"$logs/$name.cmdline"
  "$@" >"$logs/$name.log" 2>&1 &
  names+=("$name")
  pids+=("$!")
  log "started $name (pid $!), log: $logs/$name.log"
}

wait_for() { # name url curl-args...
  local name="$1" url="$2"
  shift 2
  local deadline=$((SECONDS + timeout)) i
  until curl -fsS --max-time 5 "$@" "$url" >/dev/null 2>&1; do
    for i in "${!pids[@]}"; do
      kill -0 "${pids[i]}" 2>/dev/null || {
        tail -n 30 "$logs/${names[i]}.log" >&2 || true
        die "${names[i]} exited during startup"
      }
    done
    ((SECONDS < deadline)) || {
      tail -n 30 "$logs/$name.log" >&2 || true
      die "timed out waiting for $name at $url"
    }
    sleep 0.5
  done
  log "$name ready ($url)"
}

# ------------------------------------------------------------------- certs
# ECDSA P-256 everywhere: instant to generate and accepted by all components.
new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

sign() { # name subject extensions
  local name="$1" subj="$2" ext="$3"
  new_key "$pki/$name.key"
  openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr"
  printf '%b\n' "$ext" >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -CAserial "$pki/ca.srl" -days 3650 -sha256 \
    -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

new_key "$pki/ca.key"
openssl req -x509 -new -key "$pki/ca.key" -sha256 -days 3650 -subj "/CN=hiatus-e2e-ca" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
  -out "$pki/ca.crt"

client_ext='keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth'
sign apiserver "/CN=kube-apiserver" \
  'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local'
# Identities matched by the RBAC bootstrap policy (system:masters is
# cluster-admin; the two system:kube-* users have their own ClusterRoles).
sign admin "/O=system:masters/CN=hiatus-admin" "$client_ext"
sign scheduler "/CN=system:kube-scheduler" "$client_ext"
sign controller-manager "/CN=system:kube-controller-manager" "$client_ext"
rm -f "$pki/ca.srl"

# Service-account token signing key pair.
new_key "$pki/sa.key"
openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

# Static bearer token for the admin (handy for plain HTTPS clients).
admin_token="$(openssl rand -hex 24)"
printf '%s,hiatus-admin-token,hiatus-admin-token,"system:masters"\n' "$admin_token" >"$pki/tokens.csv"
chmod 600 "$pki"/*.key "$pki/tokens.csv"

# --------------------------------------------------------------- kubeconfigs
server="https://127.0.0.1:$api_port"
b64() { base64 -w0 <"$1"; }
kubeconfig() { # name
  cat >"$kc/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: hiatus
  cluster:
    server: $server
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: $1
  user:
    client-certificate-data: $(b64 "$pki/$1.crt")
    client-key-data: $(b64 "$pki/$1.key")
contexts:
- name: hiatus
  context:
    cluster: hiatus
    user: $1
current-context: hiatus
EOF
  chmod 600 "$kc/$1.kubeconfig"
}
kubeconfig admin
kubeconfig scheduler
kubeconfig controller-manager

cat >"$dir/scheduler-config.yaml" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $kc/scheduler.kubeconfig
leaderElection:
  leaderElect: false
EOF
if [[ -n "${SCHEDULER_CONFIG_EXTRA:-}" ]]; then
  cat "$SCHEDULER_CONFIG_EXTRA" >>"$dir/scheduler-config.yaml"
fi

# --------------------------------------------------------------------- etcd
etcd_url="http://127.0.0.1:$etcd_port"
peer_url="http://127.0.0.1:$etcd_peer_port"
extra ETCD_EXTRA_ARGS
start etcd "$bin/etcd" \
  --name=hiatus \
  --data-dir="$dir/etcd-data" \
  --listen-client-urls="$etcd_url" \
  --advertise-client-urls="$etcd_url" \
  --listen-peer-urls="$peer_url" \
  --initial-advertise-peer-urls="$peer_url" \
  --initial-cluster="hiatus=$peer_url" \
  --initial-cluster-state=new \
  --unsafe-no-fsync=true \
  --log-level=warn \
  ${extra_args[@]+"${extra_args[@]}"}
wait_for etcd "$etcd_url/health"

# ------------------------------------------------------------ kube-apiserver
# TaintNodesByCondition admission is disabled: it puts
# node.kubernetes.io/not-ready:NoSchedule on every new Node, and only the
# node-lifecycle-controller (disabled below) would ever remove it.
extra APISERVER_EXTRA_ARGS
start kube-apiserver "$bin/kube-apiserver" \
  --etcd-servers="$etcd_url" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --secure-port="$api_port" \
  --cert-dir="$dir/apiserver-certs" \
  --tls-cert-file="$pki/apiserver.crt" \
  --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --token-auth-file="$pki/tokens.csv" \
  --authorization-mode=Node,RBAC \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$pki/sa.pub" \
  --service-account-signing-key-file="$pki/sa.key" \
  --service-cluster-ip-range=10.0.0.0/24 \
  --disable-admission-plugins="$disable_admission" \
  --endpoint-reconciler-type=none \
  ${extra_args[@]+"${extra_args[@]}"}
admin_curl=(--cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key")
wait_for kube-apiserver "$server/readyz" "${admin_curl[@]}"

# ------------------------------------------------- scheduler + controllers
extra SCHEDULER_EXTRA_ARGS
start kube-scheduler "$bin/kube-scheduler" \
  --config="$dir/scheduler-config.yaml" \
  --authentication-kubeconfig="$kc/scheduler.kubeconfig" \
  --authorization-kubeconfig="$kc/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 \
  --secure-port="$sched_port" \
  --leader-elect=false \
  ${extra_args[@]+"${extra_args[@]}"}

# node-lifecycle-controller is disabled: with no kubelet renewing Leases it
# would mark every API-created Node Ready=Unknown and taint it
# (unreachable:NoSchedule/NoExecute) after the grace period.
extra KCM_EXTRA_ARGS
start kube-controller-manager "$bin/kube-controller-manager" \
  --kubeconfig="$kc/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$kc/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$kc/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 \
  --secure-port="$kcm_port" \
  --leader-elect=false \
  --use-service-account-credentials=true \
  --service-account-private-key-file="$pki/sa.key" \
  --root-ca-file="$pki/ca.crt" \
  --cluster-signing-cert-file="$pki/ca.crt" \
  --cluster-signing-key-file="$pki/ca.key" \
  --service-cluster-ip-range=10.0.0.0/24 \
  --controllers="$kcm_controllers" \
  ${extra_args[@]+"${extra_args[@]}"}

# Their own serving certs are self-signed in memory, hence -k; /readyz and
# /healthz are always allowed without credentials.
wait_for kube-scheduler "https://127.0.0.1:$sched_port/readyz" -k
wait_for kube-controller-manager "https://127.0.0.1:$kcm_port/healthz" -k
# Pods can only be created once the serviceaccount controller has made the
# namespace's "default" ServiceAccount (ServiceAccount admission plugin).
wait_for default-serviceaccount "$server/api/v1/namespaces/default/serviceaccounts/default" "${admin_curl[@]}"

cat >"$dir/cluster.env" <<EOF
APISERVER_URL=$server
KUBECONFIG=$kc/admin.kubeconfig
ADMIN_TOKEN=$admin_token
CA_CERT=$pki/ca.crt
ADMIN_CERT=$pki/admin.crt
ADMIN_KEY=$pki/admin.key
ETCD_URL=$etcd_url
SCHEDULER_URL=https://127.0.0.1:$sched_port
KCM_URL=https://127.0.0.1:$kcm_port
EOF
log "control plane ready in ${SECONDS}s (env: $dir/cluster.env)"
echo "READY $kc/admin.kubeconfig"

# Stay in the foreground until a signal arrives or a component exits.
set +e
wait -n "${pids[@]}"
rc=$?
((stopping)) || log "a component exited unexpectedly (rc=$rc); stopping the rest"
exit 1
