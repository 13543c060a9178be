//! The `batch/v1` Job (and, for distributed runs, the headless Service) that
//! runs a TrainingJob's trainer under the trainer contract. Pure: built from
//! the TrainingJob and the facts the reconcile resolved.

use std::collections::BTreeMap;

use aimass_crds::trainer::CONTAINER;
use aimass_crds::v1alpha1::TrainingJob;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec, PodTemplateSpec,
    SecretEnvSource, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::env_var::env;
use crate::{labels, security};

/// Port torch.distributed's rendezvous listens on in rank 0.
pub const MASTER_PORT: i32 = 29500;
/// Annotation the Job controller sets to an Indexed Job pod's index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// What the reconcile resolved for a run before building its Job.
#[derive(Clone, Debug, PartialEq)]
pub struct Run<'a> {
    /// The Model version the run produces.
    pub version: i64,
    /// Where the trainer writes `model.onnx` and `metrics.json`.
    pub output_uri: &'a str,
    /// Secret with the storage credentials, passed to the trainer as
    /// environment variables.
    pub storage_secret: Option<&'a str>,
}

/// Name of the Job (and headless Service) of a TrainingJob; fits a label value.
pub fn job_name(tj: &TrainingJob) -> String {
    labels::fit(&tj.metadata.name.clone().unwrap_or_default(), 52)
}

/// The labels of a run's pods and objects.
pub fn run_labels(tj: &TrainingJob) -> BTreeMap<String, String> {
    let mut labels = labels::common("aimass-trainer", &tj.spec.model_ref.name);
    labels.insert(
        labels::TRAINING_JOB.into(),
        labels::fit(&tj.metadata.name.clone().unwrap_or_default(), 63),
    );
    labels
}

/// The trainer contract's environment.
fn contract_env(tj: &TrainingJob, run: &Run<'_>, job: &str) -> Vec<EnvVar> {
    let spec = &tj.spec.run;
    let hyperparameters =
        serde_json::to_string(&spec.hyperparameters).unwrap_or_else(|_| "{}".into());
    let mut vars = vec![
        env("AIMASS_DATASET_URI", &spec.dataset.uri),
        env("AIMASS_OUTPUT_URI", run.output_uri),
        env("AIMASS_HYPERPARAMETERS", hyperparameters),
        env("AIMASS_MODEL_NAME", &tj.spec.model_ref.name),
        env("AIMASS_MODEL_VERSION", run.version.to_string()),
    ];
    if spec.workers > 1 {
        vars.extend([
            env("WORLD_SIZE", spec.workers.to_string()),
            EnvVar {
                name: "RANK".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                        api_version: None,
                    }),
                    ..EnvVarSource::default()
                }),
            },
            // Rank 0's stable name: `<job>-0` under the headless Service.
            env("MASTER_ADDR", format!("{job}-0.{job}")),
            env("MASTER_PORT", MASTER_PORT.to_string()),
        ]);
    }
    vars.extend(spec.env.iter().cloned());
    vars
}

fn secret_env(name: &str) -> EnvFromSource {
    EnvFromSource {
        secret_ref: Some(SecretEnvSource {
            name: name.to_owned(),
            optional: Some(false),
        }),
        ..EnvFromSource::default()
    }
}

/// The Job running the trainer.
pub fn build(tj: &TrainingJob, run: &Run<'_>) -> Job {
    let spec = &tj.spec.run;
    let name = job_name(tj);
    let distributed = spec.workers > 1;
    let mut env_from = spec.env_from.clone();
    env_from.extend(run.storage_secret.map(secret_env));
    env_from.extend(
        spec.dataset
            .secret_ref
            .as_ref()
            .map(|s| secret_env(&s.name)),
    );
    let container = Container {
        name: CONTAINER.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.clone(),
        command: (!spec.command.is_empty()).then(|| spec.command.clone()),
        args: (!spec.args.is_empty()).then(|| spec.args.clone()),
        env: Some(contract_env(tj, run, &name)),
        env_from: (!env_from.is_empty()).then_some(env_from),
        resources: spec.resources.clone(),
        ports: distributed.then(|| {
            vec![k8s_openapi::api::core::v1::ContainerPort {
                name: Some("rendezvous".into()),
                container_port: MASTER_PORT,
                ..Default::default()
            }]
        }),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        security_context: Some(security::container(false)),
        ..Container::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        restart_policy: Some("Never".into()),
        service_account_name: spec.service_account_name.clone(),
        image_pull_secrets: (!spec.image_pull_secrets.is_empty())
            .then(|| spec.image_pull_secrets.clone()),
        node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
        tolerations: (!spec.tolerations.is_empty()).then(|| spec.tolerations.clone()),
        affinity: spec.affinity.clone(),
        subdomain: distributed.then(|| name.clone()),
        security_context: Some(security::pod(None)),
        ..PodSpec::default()
    };
    Job {
        metadata: labels::owned_meta(tj, name.clone(), run_labels(tj)),
        spec: Some(JobSpec {
            completions: Some(spec.workers),
            parallelism: Some(spec.workers),
            completion_mode: Some(if distributed { "Indexed" } else { "NonIndexed" }.into()),
            backoff_limit: Some(spec.backoff_limit),
            active_deadline_seconds: spec.active_deadline_seconds,
            ttl_seconds_after_finished: spec.ttl_seconds_after_finished,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(run_labels(tj)),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// The headless Service that gives a distributed run's pods stable names.
pub fn build_service(tj: &TrainingJob) -> Option<Service> {
    if tj.spec.run.workers <= 1 {
        return None;
    }
    let name = job_name(tj);
    Some(Service {
        metadata: labels::owned_meta(tj, name.clone(), run_labels(tj)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(BTreeMap::from([(
                labels::TRAINING_JOB.to_owned(),
                labels::fit(&tj.metadata.name.clone().unwrap_or_default(), 63),
            )])),
            // Workers rendezvous before they are ready.
            publish_not_ready_addresses: Some(true),
            ports: Some(vec![ServicePort {
                name: Some("rendezvous".into()),
                port: MASTER_PORT,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn training_job(yaml: &str) -> TrainingJob {
        let mut tj: TrainingJob = serde_yaml_ng::from_str(yaml).unwrap();
        tj.metadata.uid = Some("uid-1".into());
        tj
    }

    const SINGLE: &str = r#"
apiVersion: aimass.io/v1alpha1
kind: TrainingJob
metadata: {name: fraud-1, namespace: risk}
spec:
  modelRef: {name: fraud}
  image: registry.example/fraud-trainer:1.2
  dataset: {uri: "s3://data/transactions.csv", secretRef: {name: data-creds}}
  hyperparameters: {max_depth: "4", learning_rate: "0.1"}
  env: [{name: EXTRA, value: "1"}]
  backoffLimit: 2
  activeDeadlineSeconds: 600
  ttlSecondsAfterFinished: 60
"#;

    fn env_of(job: &Job) -> BTreeMap<String, EnvVar> {
        let container = &job
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        container
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.clone()))
            .collect()
    }

    #[test]
    fn a_single_worker_job_carries_the_trainer_contract() {
        let tj = training_job(SINGLE);
        let run = Run {
            version: 4,
            output_uri: "s3://models/fraud/4",
            storage_secret: Some("store-creds"),
        };
        let job = build(&tj, &run);
        assert_eq!(job.metadata.name.as_deref(), Some("fraud-1"));
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("TrainingJob", Some(true))
        );
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.backoff_limit, Some(2));
        assert_eq!(spec.active_deadline_seconds, Some(600));
        assert_eq!(spec.ttl_seconds_after_finished, Some(60));
        assert_eq!(spec.completion_mode.as_deref(), Some("NonIndexed"));
        let env = env_of(&job);
        let value = |k: &str| env[k].value.clone().unwrap();
        assert_eq!(value("AIMASS_DATASET_URI"), "s3://data/transactions.csv");
        assert_eq!(value("AIMASS_OUTPUT_URI"), "s3://models/fraud/4");
        assert_eq!(value("AIMASS_MODEL_NAME"), "fraud");
        assert_eq!(value("AIMASS_MODEL_VERSION"), "4");
        assert_eq!(value("EXTRA"), "1");
        let hyper: serde_json::Value =
            serde_json::from_str(&value("AIMASS_HYPERPARAMETERS")).unwrap();
        assert_eq!(
            hyper,
            serde_json::json!({"max_depth": "4", "learning_rate": "0.1"})
        );
        assert!(!env.contains_key("WORLD_SIZE"));
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let secrets: Vec<_> = pod.containers[0]
            .env_from
            .iter()
            .flatten()
            .map(|e| e.secret_ref.as_ref().unwrap().name.clone())
            .collect();
        assert_eq!(secrets, ["store-creds", "data-creds"]);
        // Restricted Pod Security: trainers run in restricted namespaces too.
        let security = pod.containers[0].security_context.as_ref().unwrap();
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(
            security
                .capabilities
                .as_ref()
                .unwrap()
                .drop
                .as_ref()
                .unwrap(),
            &["ALL"]
        );
        let pod_security = pod.security_context.as_ref().unwrap();
        assert_eq!(pod_security.run_as_non_root, Some(true));
        assert_eq!(
            pod_security.seccomp_profile.as_ref().unwrap().type_,
            "RuntimeDefault"
        );
        assert_eq!(
            spec.template
                .metadata
                .as_ref()
                .unwrap()
                .labels
                .as_ref()
                .unwrap()[labels::TRAINING_JOB],
            "fraud-1"
        );
        assert!(build_service(&tj).is_none());
    }

    #[test]
    fn a_distributed_job_is_indexed_with_torch_rendezvous_variables() {
        let tj = training_job(&SINGLE.replace("backoffLimit: 2", "backoffLimit: 2\n  workers: 4"));
        let run = Run {
            version: 1,
            output_uri: "file:///models/fraud/1",
            storage_secret: None,
        };
        let job = build(&tj, &run);
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
        assert_eq!((spec.completions, spec.parallelism), (Some(4), Some(4)));
        let env = env_of(&job);
        assert_eq!(env["WORLD_SIZE"].value.as_deref(), Some("4"));
        assert_eq!(
            env["MASTER_ADDR"].value.as_deref(),
            Some("fraud-1-0.fraud-1")
        );
        assert_eq!(env["MASTER_PORT"].value.as_deref(), Some("29500"));
        let rank = env["RANK"]
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap();
        assert!(rank.field_path.contains(COMPLETION_INDEX));
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.subdomain.as_deref(), Some("fraud-1"));
        let service = build_service(&tj).unwrap();
        let service_spec = service.spec.unwrap();
        assert_eq!(service_spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(service_spec.publish_not_ready_addresses, Some(true));
    }
}
