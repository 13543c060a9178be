//! The inference server as a workload of the local cluster: a Deployment of
//! it becomes Ready through its Open Inference Protocol readiness endpoint,
//! and every replica, and the Service in front of them, answer with the
//! onnxruntime reference prediction.

use std::sync::Arc;
use std::time::Duration;

use aimass_e2e::{TestNamespace, close, pods, post, repo_root, run, wait, wait_for};
use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use serde_json::{Value, json};

#[tokio::test]
async fn inference_servers_run_as_pods_and_answer_with_the_reference_prediction() -> Result<()> {
    run("serving", |ns: Arc<TestNamespace>| async move {
        let models = repo_root().join("tests/zoo/models");
        ns.apply(&format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: fraud}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: fraud}}}}
  template:
    metadata: {{labels: {{app: fraud}}}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: server
        image: aimass/inference-server:dev
        args: [--model-uri, /models/torch_mlp.onnx, --model-name, fraud, --model-version, "1", --drain-timeout-seconds, "5"]
        ports: [{{containerPort: 8080, name: http}}]
        readinessProbe: {{httpGet: {{path: /v2/health/ready, port: http}}, periodSeconds: 1}}
        livenessProbe: {{httpGet: {{path: /v2/health/live, port: http}}, periodSeconds: 5}}
        volumeMounts: [{{name: models, mountPath: /models, readOnly: true}}]
      volumes:
      - name: models
        hostPath: {{path: {models}, type: Directory}}
---
apiVersion: v1
kind: Service
metadata: {{name: fraud}}
spec:
  selector: {{app: fraud}}
  ports: [{{port: 80, targetPort: http}}]
"#,
            models = models.display()
        ))
        .await?;
        wait_for(&ns.api::<Deployment>(), "fraud", Duration::from_secs(90), |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref()).is_some_and(|s| s.ready_replicas == Some(2))
        })
        .await?;

        let reference: Value = serde_json::from_str(&std::fs::read_to_string(models.join("torch_mlp.json"))?)?;
        let input = &reference["inputs"][0];
        let request = json!({"id": "e2e", "inputs": [{"name": input["name"], "shape": input["shape"], "datatype": input["datatype"], "data": input["data"]}]});
        let expected = &reference["outputs"][0]["data"];

        let replicas = pods(&ns, "app=fraud").await?;
        ensure!(replicas.len() == 2, "{} replicas", replicas.len());
        for pod in &replicas {
            let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).context("pod without IP")?;
            let (status, answer) = post(&format!("http://{ip}:8080/v2/models/fraud/infer"), &request).await?;
            ensure!(status == 200, "{ip}: {status} {answer}");
            ensure!(close(&answer["outputs"][0]["data"], expected), "{ip} answered {answer}, expected {expected}");
        }

        let svc = ns.api::<Service>().get("fraud").await?;
        let ip = svc.spec.and_then(|s| s.cluster_ip).context("no ClusterIP")?;
        let url = format!("http://{ip}/v2/models/fraud/infer");
        wait(Duration::from_secs(30), "the Service to answer", || {
            let (url, request) = (url.clone(), request.clone());
            async move { Ok(post(&url, &request).await.is_ok_and(|(s, _)| s == 200)) }
        })
        .await?;
        let (status, answer) = post(&url, &json!({"inputs": []})).await?;
        ensure!(status == 400 && answer["error"].as_str().is_some_and(|e| e.contains("missing input")), "{status} {answer}");
        Ok(())
    })
    .await
}
