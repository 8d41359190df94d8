#!/usr/bin/env bash
# Issues the certificates hiatus needs, from one private CA, into a directory (default
# ./hiatus-certs), and writes the API server's admission configuration for the restore webhook.
# It changes nothing in the cluster; deploy/README.md ("Certificates") says where each file goes.
#
#   ca.crt, ca.key                       the CA. Keep ca.key off the cluster.
#   tls.crt, tls.key                     the extender's serving certificate, both ports
#                                        (DNS: hiatus.hiatus-system.svc[.cluster.local])
#   scheduler-client.crt, .key           kube-scheduler's client certificate for the verbs
#                                        (CN=system:kube-scheduler, --allowed-client-names)
#   apiserver-webhook-client.crt, .key   kube-apiserver's client certificate for the webhook
#                                        (CN=kube-apiserver-webhook-client, --webhook-allowed-client-names)
#   prometheus-client.crt, .key          Prometheus' client certificate for /metrics
#                                        (CN=hiatus-metrics-reader; /metrics takes any name the CA signed)
#   webhook-client.kubeconfig            the API server's credentials for hiatus.hiatus-system.svc:8443
#   admission-config.yaml                --admission-control-config-file pointing at that kubeconfig
#
# Usage: deploy/certs.sh [DIR]
#   HIATUS_APISERVER_CONFIG_DIR  where the two API server files will live on control-plane
#                                hosts (default /etc/kubernetes/hiatus; kubeConfigFile must be absolute)
#   HIATUS_CERT_DAYS             validity of the leaf certificates (default 365; the CA gets 10 years)
set -euo pipefail

out=${1:-hiatus-certs}
apiserver_dir=${HIATUS_APISERVER_CONFIG_DIR:-/etc/kubernetes/hiatus}
days=${HIATUS_CERT_DAYS:-365}
service=hiatus.hiatus-system.svc
webhook_port=8443

case "$apiserver_dir" in
  /*) ;;
  *) echo "HIATUS_APISERVER_CONFIG_DIR must be absolute (kube-apiserver refuses a relative kubeConfigFile)" >&2; exit 2 ;;
esac
command -v openssl >/dev/null || { echo "certs.sh needs openssl" >&2; exit 2; }
mkdir -p "$out"
cd "$out"
umask 077

if [[ ! -f ca.key ]]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=hiatus-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout ca.key -out ca.crt 2>/dev/null
fi

# issue NAME SUBJECT EXTENSIONS: NAME.key and NAME.crt signed by the CA.
issue() {
  openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%b\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" -sha256 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
client='keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth'

# Go (kube-scheduler, kube-apiserver) ignores the CN of a server: the names must be SANs.
issue tls "/CN=$service" "subjectAltName=DNS:$service,DNS:$service.cluster.local\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment"
issue scheduler-client "/CN=system:kube-scheduler" "$client"
issue apiserver-webhook-client "/CN=kube-apiserver-webhook-client" "$client"
issue prometheus-client "/CN=hiatus-metrics-reader" "$client"

# The API server picks a webhook's client credentials from this kubeconfig by the webhook's
# host:port (k8s.io/apiserver pkg/util/webhook/authentication.go): for a Service webhook,
# <service>.<namespace>.svc:<port>.
b64() { base64 <"$1" | tr -d '\n'; }
cat >webhook-client.kubeconfig <<EOF
apiVersion: v1
kind: Config
users:
  - name: $service:$webhook_port
    user:
      client-certificate-data: $(b64 apiserver-webhook-client.crt)
      client-key-data: $(b64 apiserver-webhook-client.key)
EOF
cat >admission-config.yaml <<EOF
# kube-apiserver --admission-control-config-file. If the API server has one already, add the
# MutatingAdmissionWebhook entry below to its plugins list instead.
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: MutatingAdmissionWebhook
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: WebhookAdmissionConfiguration
      kubeConfigFile: $apiserver_dir/webhook-client.kubeconfig
EOF
chmod 644 ca.crt tls.crt scheduler-client.crt apiserver-webhook-client.crt prometheus-client.crt admission-config.yaml
echo "certificates and API server files written to $(pwd)"
