#!/usr/bin/env bash
# `make demo`: the whole product on the local cluster. Builds what is needed,
# starts the control plane, installs the operator with Helm (as a pod under
# its own ServiceAccount), trains the fraud-detection example, serves its
# champion, scores two transactions and shows how to go on.
#
# Environment:
#   AIMASS_DEMO_NAMESPACE  namespace of the example (default fraud-demo)
#   AIMASS_DEMO_DIR        data set and registry (default /tmp/aimass-demo,
#                          the paths examples/fraud-detection/model.yaml names)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"
repo="$(cd "$here/.." && pwd)"
cd "$repo"

ns="${AIMASS_DEMO_NAMESPACE:-fraud-demo}"
data_dir="${AIMASS_DEMO_DIR:-/tmp/aimass-demo}"
system_ns=aimass-system
example="$repo/examples/fraud-detection"
started=$SECONDS
step_no=0
step_name=""
hint=""

# step NAME HINT — announces a step; HINT tells how to see why it failed.
step() {
  step_no=$((step_no + 1))
  step_name="$1"
  hint="$2"
  log "[$step_no/10] $1 ($((SECONDS - started)) s)"
}
trap 'rc=$?; if [ $rc -ne 0 ]; then
  printf "\n\033[1;31mdemo failed at step %s: %s\033[0m\nSee why with:\n  export KUBECONFIG=%s\n  %s\n" \
    "$step_no" "$step_name" "$KUBECONFIG" "$hint" >&2
fi' EXIT

export KUBECONFIG="$repo/.cluster/admin.kubeconfig"
step "building aimass and starting the local cluster" \
  "less $repo/.cluster/logs/*.log   (scripts/cluster-up.sh prints what it runs)"
"$here/cluster-up.sh"
kubectl="$KUBECTL_BIN_DIR/kubectl"
helm="$KUBECTL_BIN_DIR/helm"
export PATH="$KUBECTL_BIN_DIR:$PATH"

step "installing the operator with Helm into $system_ns" \
  "kubectl -n $system_ns describe pods; kubectl -n $system_ns logs deploy/aimass"
# Both namespaces enforce the restricted Pod Security Standard: the operator,
# the trainers and the inference servers all run under it.
for n in "$system_ns" "$ns"; do
  "$kubectl" get namespace "$n" >/dev/null 2>&1 || "$kubectl" create namespace "$n" >/dev/null
  "$kubectl" label --overwrite namespace "$n" pod-security.kubernetes.io/enforce=restricted >/dev/null
done
# The demo owns this local cluster: CRDs an earlier `make test` applied (with
# kubectl, or with a test release since uninstalled) are handed to this
# release, as docs/operations.md tells users to adopt them, and
# --force-conflicts takes over their fields.
for crd in models.aimass.io trainingjobs.aimass.io modeldeployments.aimass.io apiclients.aimass.io modelapprovals.aimass.io scoringjobs.aimass.io; do
  if "$kubectl" get crd "$crd" >/dev/null 2>&1; then
    "$kubectl" annotate --overwrite crd "$crd" meta.helm.sh/release-name=aimass \
      meta.helm.sh/release-namespace="$system_ns" >/dev/null
    "$kubectl" label --overwrite crd "$crd" app.kubernetes.io/managed-by=Helm >/dev/null
  fi
done
# The console is reached over plain HTTP at its ClusterIP on this local
# cluster (the host routes the Service range), so its cookie cannot be
# Secure-only here; behind TLS keep the default.
"$helm" upgrade --install aimass "$repo/charts/aimass" --namespace "$system_ns" \
  --set "storage.fileRoots={$data_dir}" --set "console.namespaces={$ns}" \
  --set console.secureCookies=false --force-conflicts --wait --timeout 180s >/dev/null
"$kubectl" -n "$system_ns" get deploy,pods -l app.kubernetes.io/instance=aimass

step "writing the example's transactions to $data_dir/data" \
  "python3 $example/generate_dataset.py --help"
# A fresh start: the example's registry and any earlier demo objects go.
"$kubectl" -n "$ns" delete scoringjobs,modeldeployments,models,trainingjobs,apiclients --all --wait=true >/dev/null
rm -rf "$data_dir"
python3 "$example/generate_dataset.py" "$data_dir/data/transactions.csv"

step "applying examples/fraud-detection (Model, ModelDeployment, and who may call it)" \
  "kubectl -n $ns get events --sort-by=.lastTimestamp"
"$kubectl" -n "$ns" apply --server-side -k "$example"

step "training: the trainer runs as a Job, its metrics go to the TrainingJob" \
  "kubectl -n $ns describe trainingjobs; kubectl -n $ns logs -l aimass.io/model=card-fraud --tail=50"
"$kubectl" -n "$ns" wait trainingjob -l aimass.io/model=card-fraud \
  --for=create --timeout=60s >/dev/null
"$kubectl" -n "$ns" wait trainingjob -l aimass.io/model=card-fraud \
  --for=jsonpath='{.status.phase}'=Succeeded --timeout=600s >/dev/null
"$kubectl" -n "$ns" get trainingjobs

step "registry: version 1 passes the gates and becomes champion" \
  "kubectl -n $ns describe model card-fraud"
"$kubectl" -n "$ns" wait model/card-fraud --for=jsonpath='{.status.aliases.champion}'=1 --timeout=120s >/dev/null
"$kubectl" -n "$ns" get model card-fraud -o jsonpath='{range .status.versions[*]}  version {.version}: {.phase}, metrics {.metrics}{"\n"}{end}'

step "serving: the ModelDeployment becomes Ready" \
  "kubectl -n $ns describe modeldeployment card-fraud-scoring; kubectl -n $ns get pods"
"$kubectl" -n "$ns" wait modeldeployment/card-fraud-scoring --for=condition=Ready --timeout=300s >/dev/null
ip="$("$kubectl" -n "$ns" get service card-fraud-scoring -o jsonpath='{.spec.clusterIP}')"
url="http://$ip/v2/models/card-fraud/infer"

step "scoring two transactions (an ordinary one and a suspicious one) as fraud-analyst" \
  "kubectl -n $ns describe modeldeployment card-fraud-scoring; kubectl -n $ns logs -l app.kubernetes.io/name=aimass-inference-server"
# The servers check every caller: a token bound to the audience aimass, and
# RBAC create on models/infer for card-fraud (examples/fraud-detection/callers.yaml).
token="$("$kubectl" -n "$ns" create token fraud-analyst --audience aimass --duration 1h)"
score() {
  curl -s -m 5 -H 'Content-Type: application/json' -H @- --data @"$example/request.json" "$url" "$@" \
    <<<"Authorization: Bearer $token"
}
answer=""
for _ in $(seq 1 30); do
  answer="$(score -f)" && break
  sleep 1
done
if [ -z "$answer" ]; then
  echo "no successful answer from $url; the last one was:" >&2
  score >&2 || true
  exit 1
fi
code="$(curl -s -o /dev/null -w '%{http_code}' -m 5 -H 'Content-Type: application/json' --data @"$example/request.json" "$url" || true)"
echo "POST $url without a token: HTTP $code"
echo "POST $url as system:serviceaccount:$ns:fraud-analyst:"
python3 - "$answer" <<'PY'
import json, sys
answer = json.loads(sys.argv[1])
print(f"model {answer['model_name']} version {answer.get('model_version')}")
outputs = {o["name"]: o for o in answer["outputs"]}
probabilities = next(o for o in answer["outputs"] if o["datatype"].startswith("FP"))
labels = next(o for o in answer["outputs"] if o["datatype"].startswith("INT"))
for i, what in enumerate(["ordinary purchase, 42.50 at a grocery", "1,899.00 abroad at 3 am, card not present"]):
    p = probabilities["data"][2 * i + 1]
    print(f"  transaction {i + 1} ({what}): fraud probability {p:.3f}, label {labels['data'][i]}")
PY

step "scoring as a partner outside the cluster, with an API key (examples/fraud-detection/partner.yaml)" \
  "kubectl -n $ns describe apiclient exchange-a"
# The key goes to a file once; its Secret holds only the id and SHA-256.
key_file="$data_dir/exchange-a.key"
rm -f "$key_file"
"$kubectl" -n "$ns" delete secret exchange-a-key --ignore-not-found >/dev/null
"$CARGO_TARGET_DIR/debug/aimass-apikey" new --secret exchange-a-key --key-file "$key_file" \
  | "$kubectl" -n "$ns" apply -f - >/dev/null
"$kubectl" -n "$ns" apply --server-side -f "$example/partner.yaml" >/dev/null
"$kubectl" -n "$ns" wait apiclient/exchange-a --for=condition=Ready --timeout=60s >/dev/null
"$kubectl" -n "$ns" get apiclient exchange-a
code=""
for _ in $(seq 1 20); do
  code="$(curl -s -o /dev/null -w '%{http_code}' -m 5 -H 'Content-Type: application/json' -H @- \
    --data @"$example/request.json" "$url" <<<"Authorization: Bearer $(cat "$key_file")" || true)"
  [ "$code" = 200 ] && break
  sleep 0.5
done
echo "POST $url as partner:exchange-a (API key ${key_file}): HTTP $code"
[ "$code" = 200 ] || { echo "the partner's key was not accepted" >&2; exit 1; }

"$kubectl" -n "$ns" get modeldeployment card-fraud-scoring \
  -o jsonpath='{range .status.conditions[?(@.type=="Secured")]}Secured={.status} ({.reason}): {.message}{"\n"}{end}'

step "backtest: a challenger with deeper trees against the champion, on held-out transactions" \
  "kubectl -n $ns describe scoringjob card-fraud-backtest; kubectl -n $ns logs -l aimass.io/scoring-job=card-fraud-backtest"
python3 "$example/generate_dataset.py" "$data_dir/data/holdout.csv" --seed 11
"$kubectl" -n "$ns" apply --server-side -f "$example/challenger.yaml" >/dev/null
"$kubectl" -n "$ns" wait trainingjob/card-fraud-deeper \
  --for=jsonpath='{.status.phase}'=Succeeded --timeout=600s >/dev/null
"$kubectl" -n "$ns" wait model/card-fraud --for=jsonpath='{.status.latestRegisteredVersion}'=2 --timeout=120s >/dev/null
"$kubectl" -n "$ns" apply --server-side -f "$example/backtest.yaml" >/dev/null
"$kubectl" -n "$ns" wait scoringjob/card-fraud-backtest \
  --for=jsonpath='{.status.phase}'=Succeeded --timeout=300s >/dev/null
python3 - "$("$kubectl" -n "$ns" get scoringjob card-fraud-backtest -o json)" <<'PY'
import json, sys
report = json.loads(sys.argv[1])["status"]["report"]
print(f"{report['rows']} held-out transactions, {report['bad']} of them fraud")
print(f"{'version':>8} {'refused':>8} {'AUC':>6} {'KS':>6} {'Gini':>6} {'recall@0.5':>11} {'decline@0.5':>12} {'top-decile bad rate':>20}")
for v in report["versions"]:
    m = v["metrics"]
    t = next(t for t in m["thresholds"] if t["threshold"] == 0.5)
    print(f"{v['version']:>8} {v['refused']:>8} {m['auc']:>6.3f} {m['ks']:>6.3f} {m['gini']:>6.3f} {t.get('recall', 0):>11.3f} "
          f"{t['declineRate']:>12.3f} {m['deciles'][0]['badRate']:>20.3f}")
for w in report["winners"]:
    values = ", ".join(f"v{k} {x:.4f}" for k, x in w["values"].items())
    print(f"best {w['metric'].upper()}: version {w['version']} ({values})")
refusal = (report["versions"][0].get("refusals") or [None])[0]
if refusal:
    print(f"refused rows are listed, never scored as zeros; the first: line {refusal['line']}, {refusal['reason']}")
PY
echo
"$kubectl" -n "$ns" get aimass
echo
# A risk analyst who may edit the example's namespace, to sign in to the
# console with (the built-in edit role, which the chart extends to aimass).
"$kubectl" -n "$ns" create serviceaccount risk-analyst --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
"$kubectl" -n "$ns" create rolebinding risk-analyst-edit --clusterrole=edit \
  --serviceaccount="$ns:risk-analyst" --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
console_ip=$("$kubectl" -n "$system_ns" get service aimass-console -o jsonpath='{.spec.clusterIP}')
console_url="http://$console_ip:8080"
log "demo done in $((SECONDS - started)) s"
cat <<EOF

The console: $console_url
  sign in with a token of the example's risk analyst (valid one hour):
  kubectl -n $ns create token risk-analyst

What next:
  eval "\$(make -s cluster-env)"    # KUBECONFIG; kubectl, helm, aimass-audit, aimass-apikey on PATH
  kubectl -n $ns get aimass                 # Models, TrainingJobs, ModelDeployments, ScoringJobs
  kubectl -n $ns get scoringjob card-fraud-backtest -o yaml   # the whole report; per-row scores in $data_dir/scores
  kubectl -n $ns describe modeldeployment card-fraud-scoring

Watch autoscaling: in one terminal
  kubectl -n $ns get modeldeployment card-fraud-scoring -w
and in another, 16 clients for 60 s (it stops by itself):
  AIMASS_TOKEN=\$(kubectl -n $ns create token fraud-analyst --audience aimass) \\
    python3 $example/load.py $url --clients 16 --seconds 60

Who called, and what was decided: one HMAC-chained record per call in
/var/log/aimass/calls.jsonl of each server; on this local cluster that is
.cluster/agent/pods/<pod uid>/volumes/audit/calls.jsonl. Check it with the key
("key" of Secret audit-key.$ns.card-fraud-scoring in namespace $system_ns, out
of the team's reach):
  kubectl -n $system_ns get secret audit-key.$ns.card-fraud-scoring -o jsonpath='{.data.key}' | base64 -d > audit.key
  aimass-audit verify --log .cluster/agent/pods/<pod uid>/volumes/audit/calls.jsonl --key-file audit.key
(docs/operations.md has the whole recipe, run by the tests.)
The operator keeps each replica's sealed checkpoint (read at least once a minute); anyone can check one:
  aimass-audit verify-seal --namespace $ns --model card-fraud \\
    --verifying-key "\$(kubectl -n $ns get md card-fraud-scoring -o jsonpath='{.status.auditVerifyingKey}')" \\
    --checkpoint "\$(kubectl -n $ns get md card-fraud-scoring -o jsonpath='{.status.auditCheckpoints[0]}')"

Tear down: make cluster-down
EOF
