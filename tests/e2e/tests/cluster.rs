//! The local cluster behaves like a real one: the real scheduler spreads a
//! Deployment over the node agent's nodes, pods answer on their own IPs,
//! Services route through kube-proxy from the host and from pods, Jobs retry
//! and finish, logs stream, RBAC holds for in-cluster clients, and deleting
//! things leaves no process behind.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aimass_e2e::{
    TestNamespace, http_get, http_get_settled, kubectl, kubectl_path, logs_contain, pod_processes,
    pods, run, wait, wait_for,
};
use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::conditions;
use serde_json::json;

const ECHO_PROGRAM: &str = "echo-server";

fn echo_deployment(replicas: i32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: echo}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: echo}}}}
  template:
    metadata: {{labels: {{app: echo}}}}
    spec:
      terminationGracePeriodSeconds: 5
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        labelSelector: {{matchLabels: {{app: echo}}}}
      containers:
      - name: echo
        image: aimass/echo-server:latest
        ports: [{{containerPort: 8080, name: http}}]
        readinessProbe:
          exec: {{command: [sh, -c, "test ! -e /tmp/aimass-e2e-unready-$HOSTNAME"]}}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {{name: echo}}
spec:
  selector: {{app: echo}}
  ports: [{{port: 80, targetPort: http}}]
"#
    )
}

async fn available(ns: &TestNamespace, replicas: i32) -> Result<()> {
    let deployments = ns.api::<Deployment>();
    wait_for(
        &deployments,
        "echo",
        Duration::from_secs(90),
        move |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref()).is_some_and(|s| {
                s.available_replicas == Some(replicas) && s.replicas == Some(replicas)
            })
        },
    )
    .await?;
    Ok(())
}

fn pod_ip(pod: &Pod) -> Result<String> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .context("pod without IP")
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

#[tokio::test]
async fn a_deployment_spreads_over_nodes_serves_on_pod_ips_and_cleans_up() -> Result<()> {
    run("deploy", |ns: Arc<TestNamespace>| async move {
        ns.apply(&echo_deployment(3)).await?;
        available(&ns, 3).await?;
        let running = pods(&ns, "app=echo").await?;
        let nodes: BTreeSet<String> = running
            .iter()
            .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
            .collect();
        ensure!(
            nodes.len() == 3,
            "the scheduler put the replicas on {nodes:?}"
        );
        // A pod answers once its address is reachable: on a cluster just
        // started after another was torn down this has taken seconds.
        let urls = running
            .iter()
            .map(|p| Ok(format!("http://{}:8080/", pod_ip(p)?)))
            .collect::<Result<Vec<_>>>()?;
        wait(
            Duration::from_secs(30),
            "every pod to answer on its IP",
            || {
                let urls = urls.clone();
                async move {
                    for url in &urls {
                        if http_get(url).await.is_err() {
                            return Ok(false);
                        }
                    }
                    Ok(true)
                }
            },
        )
        .await?;
        for (pod, url) in running.iter().zip(&urls) {
            let (status, body) = http_get(url).await?;
            ensure!(
                status == 200 && body.contains(&name(pod)),
                "{} answered {status} {body}",
                name(pod)
            );
            ensure!(
                pod_processes(&name(pod), ECHO_PROGRAM).len() == 1,
                "{} has no single process",
                name(pod)
            );
        }

        ns.api::<Deployment>()
            .patch(
                "echo",
                &PatchParams::apply(aimass_e2e::FIELD_MANAGER),
                &Patch::Merge(json!({"spec": {"replicas": 1}})),
            )
            .await?;
        available(&ns, 1).await?;
        wait(
            Duration::from_secs(30),
            "two echo processes to stop",
            || {
                let alive = running
                    .iter()
                    .filter(|p| !pod_processes(&name(p), ECHO_PROGRAM).is_empty())
                    .count();
                async move { Ok(alive == 1) }
            },
        )
        .await?;

        ns.api::<Deployment>()
            .delete("echo", &DeleteParams::foreground())
            .await?;
        wait(
            Duration::from_secs(30),
            "every echo process to stop",
            || {
                let alive = running
                    .iter()
                    .map(|p| pod_processes(&name(p), ECHO_PROGRAM).len())
                    .sum::<usize>();
                async move { Ok(alive == 0) }
            },
        )
        .await
    })
    .await
}

#[tokio::test]
async fn a_service_routes_from_the_host_and_from_pods_to_ready_replicas_only() -> Result<()> {
    run("service", |ns: Arc<TestNamespace>| async move {
        ns.apply(&echo_deployment(3)).await?;
        available(&ns, 3).await?;
        let svc = ns.api::<Service>().get("echo").await?;
        let ip = svc
            .spec
            .and_then(|s| s.cluster_ip)
            .context("no ClusterIP")?;
        let url = format!("http://{ip}/");

        // kube-proxy programs the new Service within its sync period.
        wait(Duration::from_secs(30), "the Service to answer", || {
            let url = url.clone();
            async move { Ok(http_get(&url).await.is_ok_and(|(status, _)| status == 200)) }
        })
        .await?;

        // From the host: requests spread over the replicas. Endpoints join
        // as each replica turns ready and kube-proxy resyncs, so a first
        // batch may still see only one; the spread must appear within 30 s.
        let last = Arc::new(std::sync::Mutex::new(HashSet::new()));
        wait(
            Duration::from_secs(30),
            "requests to spread over at least two replicas",
            || {
                let url = url.clone();
                let last = last.clone();
                async move {
                    let mut served = HashSet::new();
                    for _ in 0..30 {
                        let (status, body) = http_get_settled(&url).await?;
                        ensure!(status == 200, "{status} {body}");
                        served.insert(
                            serde_json::from_str::<serde_json::Value>(&body)?["pod"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                        );
                    }
                    let spread = served.len() >= 2;
                    *last.lock().map_err(|e| anyhow::anyhow!("{e}"))? = served;
                    Ok(spread)
                }
            },
        )
        .await
        .with_context(|| {
            format!(
                "30 requests all went to {:?}",
                last.lock().map(|s| s.clone())
            )
        })?;

        // From another pod, through the Service's environment variables.
        ns.apply(
            r#"
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  restartPolicy: Never
  containers:
  - name: curl
    image: busybox
    command: [sh, -c, "curl -s -m 5 http://$ECHO_SERVICE_HOST:$ECHO_SERVICE_PORT/from-pod"]
"#,
        )
        .await?;
        let client = wait_for(
            &ns.api::<Pod>(),
            "client",
            Duration::from_secs(60),
            aimass_e2e::pod_finished,
        )
        .await?;
        let phase = client.status.and_then(|s| s.phase).unwrap_or_default();
        let (_, logs, _) = kubectl(&["logs", "-n", &ns.name, "client"])?;
        ensure!(
            phase == "Succeeded" && logs.contains("/from-pod") && logs.contains("echo-"),
            "{phase}: {logs}"
        );

        // A replica that turns unready leaves the rotation.
        let victim = name(&pods(&ns, "app=echo").await?[0]);
        let marker = format!("/tmp/aimass-e2e-unready-{victim}");
        std::fs::write(&marker, "")?;
        let result = async {
            wait(
                Duration::from_secs(30),
                "the unready replica to leave the endpoints",
                || {
                    let url = url.clone();
                    let victim = victim.clone();
                    async move {
                        for _ in 0..15 {
                            let (_, body) = http_get(&url).await?;
                            if body.contains(&victim) {
                                return Ok(false);
                            }
                        }
                        Ok(true)
                    }
                },
            )
            .await
        }
        .await;
        let _ = std::fs::remove_file(&marker);
        result
    })
    .await
}

#[tokio::test]
async fn jobs_retry_to_their_backoff_limit_or_complete_and_keep_logs() -> Result<()> {
    run("jobs", |ns: Arc<TestNamespace>| async move {
        ns.apply(
            r#"
apiVersion: batch/v1
kind: Job
metadata: {name: fails}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: f, image: busybox, command: [sh, -c, "echo trying; exit 1"]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: works}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: w, image: busybox, command: [sh, -c, "echo the answer is 42"]}]
"#,
        )
        .await?;
        let jobs = ns.api::<Job>();
        let has = |type_: &'static str| {
            move |j: Option<&Job>| {
                j.and_then(|j| j.status.as_ref())
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
            }
        };
        wait_for(&jobs, "works", Duration::from_secs(60), has("Complete")).await?;
        let (ok, logs, err) = kubectl(&["logs", "-n", &ns.name, "job/works"])?;
        ensure!(ok && logs.contains("the answer is 42"), "{logs}{err}");

        let failed = wait_for(&jobs, "fails", Duration::from_secs(90), has("Failed")).await?;
        let reason = failed
            .status
            .and_then(|s| s.conditions)
            .and_then(|cs| cs.into_iter().find(|c| c.type_ == "Failed"))
            .and_then(|c| c.reason)
            .unwrap_or_default();
        ensure!(reason == "BackoffLimitExceeded", "failed with {reason}");
        let attempts = pods(&ns, "job-name=fails").await?;
        ensure!(
            attempts.len() == 2,
            "{} attempts instead of 1 + backoffLimit",
            attempts.len()
        );
        for pod in attempts {
            let status = pod.status.unwrap_or_default();
            let exit = status
                .container_statuses
                .unwrap_or_default()
                .first()
                .and_then(|c| c.state.as_ref())
                .and_then(|s| s.terminated.as_ref())
                .map(|t| t.exit_code);
            ensure!(
                status.phase.as_deref() == Some("Failed") && exit == Some(1),
                "{:?} {exit:?}",
                status.phase
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn in_cluster_clients_get_exactly_what_rbac_grants() -> Result<()> {
    run("rbac", |ns: Arc<TestNamespace>| async move {
        let kubectl_bin = kubectl_path().canonicalize()?;
        ns.apply(&format!(
            r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{name: reader}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pod-reader}}
rules: [{{apiGroups: [""], resources: [pods], verbs: [get, list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: reader}}
subjects: [{{kind: ServiceAccount, name: reader, namespace: {ns}}}]
roleRef: {{kind: Role, name: pod-reader, apiGroup: rbac.authorization.k8s.io}}
---
apiVersion: v1
kind: Pod
metadata: {{name: incluster}}
spec:
  serviceAccountName: reader
  restartPolicy: Never
  containers:
  - name: k
    image: aimass/kubectl
    command: [sh, -c, "{kubectl} get pods -o name; echo ---; {kubectl} get secrets 2>&1; exit 0"]
"#,
            ns = ns.name,
            kubectl = kubectl_bin.display()
        ))
        .await?;
        wait_for(
            &ns.api::<Pod>(),
            "incluster",
            Duration::from_secs(60),
            aimass_e2e::pod_finished,
        )
        .await?;
        let (_, logs, _) = kubectl(&["logs", "-n", &ns.name, "incluster"])?;
        let (allowed, denied) = logs.split_once("---").context("no separator in output")?;
        ensure!(
            allowed.contains("pod/incluster"),
            "listing pods was not allowed: {logs}"
        );
        ensure!(
            denied.contains("Forbidden")
                && denied.contains(&format!("system:serviceaccount:{}:reader", ns.name)),
            "listing secrets was not denied: {logs}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn pods_get_their_environment_volumes_init_containers_and_restarts() -> Result<()> {
    run("podspec", |ns: Arc<TestNamespace>| async move {
        ns.apply(
            r#"
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {threshold: "0.85", mode: strict}
---
apiVersion: v1
kind: Pod
metadata: {name: checks, labels: {team: fraud}}
spec:
  restartPolicy: OnFailure
  initContainers:
  - name: prepare
    image: busybox
    command: [sh, -c, "echo prepared > /work/init.txt"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: main
    image: busybox
    workingDir: /work
    env:
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: TEAM, valueFrom: {fieldRef: {fieldPath: "metadata.labels['team']"}}}
    - {name: GREETING, value: "hello $(POD_NAME)"}
    envFrom: [{configMapRef: {name: settings}, prefix: CFG_}]
    command:
    - sh
    - -c
    - |
      echo "password=$PASSWORD pod=$POD_NAME team=$TEAM greeting=$GREETING threshold=$CFG_threshold"
      echo "init=$(cat init.txt) mode=$(cat /etc/settings/mode) ns=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace)"
      if [ ! -e attempt ]; then touch attempt; echo first attempt fails; exit 3; fi
      echo second attempt succeeds
    volumeMounts:
    - {name: work, mountPath: /work}
    - {name: settings, mountPath: /etc/settings, readOnly: true}
  volumes:
  - {name: work, emptyDir: {}}
  - {name: settings, configMap: {name: settings}}
"#,
        )
        .await?;
        let pod = wait_for(&ns.api::<Pod>(), "checks", Duration::from_secs(90), aimass_e2e::pod_finished).await?;
        let status = pod.status.unwrap_or_default();
        let main = status.container_statuses.unwrap_or_default().into_iter().next().context("no status")?;
        ensure!(status.phase.as_deref() == Some("Succeeded"), "phase {:?}", status.phase);
        ensure!(main.restart_count == 1, "restarts: {}", main.restart_count);
        let last_exit = main.last_state.and_then(|s| s.terminated).map(|t| t.exit_code);
        ensure!(last_exit == Some(3), "last exit {last_exit:?}");
        let (_, logs, _) = kubectl(&["logs", "-n", &ns.name, "checks"])?;
        for expected in [
            "password=s3cret pod=checks team=fraud greeting=hello checks threshold=0.85",
            &format!("init=prepared mode=strict ns={}", ns.name),
            "second attempt succeeds",
        ] {
            ensure!(logs.contains(expected), "missing {expected:?} in {logs}");
        }
        let (_, previous, _) = kubectl(&["logs", "-n", &ns.name, "checks", "--previous"])?;
        ensure!(previous.contains("first attempt fails"), "{previous}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn logs_stream_and_deletion_is_graceful_then_forceful() -> Result<()> {
    run("lifecycle", |ns: Arc<TestNamespace>| async move {
        ns.apply(
            r#"
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: loop
    image: busybox
    command: [sh, -c, "trap 'echo got SIGTERM, ignoring it' TERM; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"]
"#,
        )
        .await?;
        wait_for(&ns.api::<Pod>(), "stubborn", Duration::from_secs(60), conditions::is_pod_running()).await?;
        // `kubectl logs -f` (through the API server's proxy to the agent) sees new lines.
        logs_contain(&ns, "stubborn", "tick 10", Duration::from_secs(20)).await?;
        ensure!(!pod_processes("stubborn", "tick").is_empty(), "no process for the pod");

        let started = std::time::Instant::now();
        ns.api::<Pod>().delete("stubborn", &DeleteParams::default()).await?;
        wait(Duration::from_secs(20), "the pod object to go", || async {
            Ok(ns.api::<Pod>().get_opt("stubborn").await?.is_none())
        })
        .await?;
        let took = started.elapsed();
        ensure!(pod_processes("stubborn", "tick").is_empty(), "processes survived the deletion");
        // It ignored SIGTERM, so it was killed when the 2 s grace period ran out.
        ensure!(took >= Duration::from_secs(2), "deleted after {took:?}, before the grace period ended");
        Ok(())
    })
    .await
}
