#!/usr/bin/env bash
# Starts a local Kubernetes control plane built from Go modules: etcd,
# kube-apiserver (RBAC on), kube-controller-manager and kube-scheduler, with
# generated certificates, a service-account signing key and an admin
# kubeconfig. Idempotent: a running cluster is left as it is.
#
# Environment:
#   AIMASS_CLUSTER_DIR   state directory (default: <repo>/.cluster)
#   AIMASS_POD_CIDR      pod range, routed to the bridge (default 10.244.0.0/16)
#   AIMASS_SERVICE_CIDR  Service range, routed to the bridge (default 10.96.0.0/16)
#   AIMASS_BRIDGE        bridge the pods attach to (default aimass0)
#   AIMASS_S3_PORT       port of the local S3-compatible store (default 9000)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"

dir="${AIMASS_CLUSTER_DIR:-$here/../.cluster}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
pod_cidr="${AIMASS_POD_CIDR:-10.244.0.0/16}"
svc_cidr="${AIMASS_SERVICE_CIDR:-10.96.0.0/16}"
bridge="${AIMASS_BRIDGE:-aimass0}"

"$here/install-host-packages.sh"
"$here/build-control-plane.sh"
"$here/install-kubectl.sh"
log "building the node agent and the inference server"
(cd "$here/.." && cargo build --quiet --locked -p aimass-node-agent -p aimass-inference-server -p aimass-operator -p aimass-audit -p aimass-console --bins)
kubectl="$KUBECTL_BIN_DIR/kubectl"

if [ -f "$dir/env" ] && "$kubectl" --kubeconfig "$dir/admin.kubeconfig" get --raw /readyz >/dev/null 2>&1; then
  log "cluster already running ($dir)"
  exit 0
fi
"$here/cluster-down.sh" >/dev/null 2>&1 || true
mkdir -p "$dir"/{pki,logs,pids,etcd}

# --- network: both ranges end on the bridge, so no packet for them leaves the host
prefix_host() { python3 -c 'import ipaddress,sys; n=ipaddress.ip_network(sys.argv[1]); print(n[int(sys.argv[2])])' "$1" "$2"; }
gateway="$(prefix_host "$pod_cidr" 1)"
kubernetes_svc_ip="$(prefix_host "$svc_cidr" 1)"
pod_prefix_len="${pod_cidr#*/}"
if ! ip link show "$bridge" >/dev/null 2>&1; then
  ip link add "$bridge" type bridge
fi
ip addr replace "$gateway/$pod_prefix_len" dev "$bridge"
ip link set "$bridge" up
ip route replace "$svc_cidr" dev "$bridge"
for probe in "$kubernetes_svc_ip" "$(prefix_host "$pod_cidr" 300)"; do
  route="$(ip route get "$probe")"
  case "$route" in
    *"dev $bridge "*) ;;
    *) die "traffic to $probe would leave through '$route', not the bridge $bridge; refusing to start" ;;
  esac
done

# --- certificates
pki="$dir/pki"
if [ ! -f "$pki/ca.crt" ]; then
  log "generating certificates"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=aimass-local-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
fi
# issue NAME SUBJECT [SANS] — a key pair signed by the cluster CA.
issue() {
  local name="$1" subject="$2" sans="${3:-}"
  [ -f "$pki/$name.crt" ] && return 0
  local ext="$pki/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=digitalSignature,keyEncipherment"
    if [ -n "$sans" ]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$sans"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$ext"
  openssl req -newkey rsa:2048 -nodes -subj "$subject" -keyout "$pki/$name.key" -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$ext"
}
issue apiserver "/CN=kube-apiserver" \
  "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$gateway,IP:$kubernetes_svc_ip"
issue admin "/O=system:masters/CN=aimass-admin"
issue apiserver-kubelet-client "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client"
issue controller-manager "/CN=system:kube-controller-manager"
issue scheduler "/CN=system:kube-scheduler"
issue kube-proxy "/CN=system:kube-proxy"
issue kubelet "/CN=aimass-node-agent" "IP:$gateway,DNS:localhost"

# --- ports: free ones, so two clusters (or anything else) never collide
read -r etcd_port etcd_peer_port api_port cm_port sched_port < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
PY
)
server="https://$gateway:$api_port"

kubeconfig() { # NAME USER-CERT
  local file="$dir/$1.kubeconfig"
  rm -f "$file"
  "$kubectl" config --kubeconfig "$file" set-cluster aimass --server "$server" \
    --certificate-authority "$pki/ca.crt" --embed-certs >/dev/null
  "$kubectl" config --kubeconfig "$file" set-credentials "$1" \
    --client-certificate "$pki/$2.crt" --client-key "$pki/$2.key" --embed-certs >/dev/null
  "$kubectl" config --kubeconfig "$file" set-context aimass --cluster aimass --user "$1" >/dev/null
  "$kubectl" config --kubeconfig "$file" use-context aimass >/dev/null
}
kubeconfig admin admin
kubeconfig controller-manager controller-manager
kubeconfig scheduler scheduler
kubeconfig kube-proxy kube-proxy

# start NAME ARGS... — a component in its own session, logs and pid in $dir.
start() {
  local name="$1"; shift
  setsid "$@" >"$dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$dir/pids/$name"
}
bin="$K8S_BIN_DIR"

log "starting etcd"
start etcd "$bin/etcd" --name default --data-dir "$dir/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster "default=http://127.0.0.1:$etcd_peer_port" --unsafe-no-fsync --log-level warn

log "starting kube-apiserver on $server"
start kube-apiserver "$bin/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address "$gateway" --advertise-address "$gateway" --secure-port "$api_port" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" \
  --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$pki/ca.crt" \
  --kubelet-preferred-address-types InternalIP \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range "$svc_cidr" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --allow-privileged=true --profiling=false

log "waiting for the API server to be ready"
deadline=$((SECONDS + 60))
until "$kubectl" --kubeconfig "$dir/admin.kubeconfig" get --raw /readyz >/dev/null 2>&1; do
  for c in etcd kube-apiserver; do
    kill -0 "$(cat "$dir/pids/$c")" 2>/dev/null || { tail -20 "$dir/logs/$c.log" >&2; die "$c exited; see $dir/logs/$c.log"; }
  done
  [ $SECONDS -lt $deadline ] || { tail -20 "$dir/logs/kube-apiserver.log" >&2; die "API server not ready after 60 s"; }
  sleep 0.5
done
# The controllers need the RBAC roles the API server bootstraps, so they start now.
log "starting kube-controller-manager"
start kube-controller-manager "$bin/kube-controller-manager" \
  --kubeconfig "$dir/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$cm_port" \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
  --use-service-account-credentials \
  --allocate-node-cidrs --cluster-cidr "$pod_cidr" --node-cidr-mask-size 24 \
  --service-cluster-ip-range "$svc_cidr" --leader-elect=false --profiling=false

log "starting kube-scheduler"
start kube-scheduler "$bin/kube-scheduler" \
  --kubeconfig "$dir/scheduler.kubeconfig" \
  --authentication-kubeconfig "$dir/scheduler.kubeconfig" \
  --authorization-kubeconfig "$dir/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$sched_port" --leader-elect=false --profiling=false

# --- nodes: the agent registers them and runs their pods
python_bin="$("$here/zoo-venv.sh")/bin/python"
repo="$(cd "$here/.." && pwd)"
sed -e "s#@TARGET_DIR@#$CARGO_TARGET_DIR#g" -e "s#@REPO@#$repo#g" -e "s#@PYTHON@#$python_bin#g" \
  "$here/../tests/cluster/images.yaml" >"$dir/images.yaml"
sysctl -qw net.ipv4.ip_forward=1
nodes="${AIMASS_NODES:-3}"
log "starting the node agent with $nodes nodes"
KUBECONFIG="$dir/admin.kubeconfig" start node-agent "$CARGO_TARGET_DIR/debug/aimass-node-agent" \
  --nodes "$nodes" --state-dir "$dir/agent" --bridge "$bridge" --gateway "$gateway" \
  --pod-prefix-len "$pod_prefix_len" --images "$dir/images.yaml" \
  --tls-cert "$pki/kubelet.crt" --tls-key "$pki/kubelet.key" --client-ca "$pki/ca.crt"
ready_nodes() {
  "$kubectl" --kubeconfig "$dir/admin.kubeconfig" get nodes -l aimass.io/local-node=true \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | grep -c True || true
}
until [ "$(ready_nodes)" -ge "$nodes" ]; do
  kill -0 "$(cat "$dir/pids/node-agent")" 2>/dev/null || { tail -20 "$dir/logs/node-agent.log" >&2; die "node agent exited; see $dir/logs/node-agent.log"; }
  [ $SECONDS -lt $deadline ] || die "nodes not Ready; see $dir/logs/node-agent.log"
  sleep 0.5
done

# --- Services: kube-proxy (nftables) on the host; it needs a Node to exist.
read -r proxy_metrics_port proxy_health_port < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
PY
)
log "starting kube-proxy"
start kube-proxy "$bin/kube-proxy" --kubeconfig "$dir/kube-proxy.kubeconfig" \
  --proxy-mode nftables --cluster-cidr "$pod_cidr" --hostname-override "${AIMASS_NODE_PREFIX:-aimass-node-}0" \
  --masquerade-all --conntrack-max-per-core 0 \
  --metrics-bind-address "127.0.0.1:$proxy_metrics_port" --healthz-bind-address "127.0.0.1:$proxy_health_port"
until curl -sf "http://127.0.0.1:$proxy_health_port/healthz" >/dev/null 2>&1; do
  kill -0 "$(cat "$dir/pids/kube-proxy")" 2>/dev/null || { tail -20 "$dir/logs/kube-proxy.log" >&2; die "kube-proxy exited; see $dir/logs/kube-proxy.log"; }
  [ $SECONDS -lt $deadline ] || die "kube-proxy not healthy; see $dir/logs/kube-proxy.log"
  sleep 0.5
done

# --- an S3-compatible object store on the bridge, where a bank's on-premises
# store would be (moto's server, in memory): reachable from pods and the host,
# and from nothing else. examples/full keeps its registry and data set there.
s3_port="${AIMASS_S3_PORT:-9000}"
s3="http://$gateway:$s3_port"
log "starting an S3-compatible object store at $s3"
start object-store "$(dirname "$python_bin")/moto_server" -H "$gateway" -p "$s3_port"
until curl -s -o /dev/null "$s3/"; do
  kill -0 "$(cat "$dir/pids/object-store")" 2>/dev/null || { tail -20 "$dir/logs/object-store.log" >&2; die "the object store exited; see $dir/logs/object-store.log"; }
  [ $SECONDS -lt $deadline ] || die "the object store did not start; see $dir/logs/object-store.log"
  sleep 0.3
done

# The command-line tools the manual uses, next to kubectl and helm.
mkdir -p "$dir/bin"
for tool in aimass-apikey aimass-audit; do
  ln -sf "$CARGO_TARGET_DIR/debug/$tool" "$dir/bin/$tool"
done
cat >"$dir/env" <<EOF
export KUBECONFIG=$dir/admin.kubeconfig
export PATH=$dir/bin:$KUBECTL_BIN_DIR:\$PATH
export AIMASS_S3_ENDPOINT=$s3
EOF
cat >"$dir/cluster.json" <<EOF
{"server": "$server", "gateway": "$gateway", "podCIDR": "$pod_cidr", "serviceCIDR": "$svc_cidr", "bridge": "$bridge", "kubernetesServiceIP": "$kubernetes_svc_ip", "s3Endpoint": "$s3"}
EOF
log "cluster ready ($nodes nodes): eval \"\$(make -s cluster-env)\" to use it"
