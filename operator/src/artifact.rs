//! Validating an artifact before it becomes a version, in the tenant's
//! namespace: a short Job runs the inference server image with
//! `--validate-only` under the tenant's ServiceAccount, without an API token,
//! with the tenant's storage Secret as its environment, and prints one report
//! line that the operator reads from the pod's log (at most [`LOG_LIMIT`]
//! bytes). The operator never fetches, holds or optimises the artifact, and
//! never reaches a `source.uri` from its own network position.

use std::collections::BTreeMap;

pub use aimass_crds::artifact::Artifact;
use aimass_crds::artifact::Report;
use aimass_crds::v1alpha1::conditions::reasons;
use aimass_crds::v1alpha1::{ModelVersion, VersionPhase};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, LogParams, PostParams, PropagationPolicy};
use kube::{Api, Resource, ResourceExt};

use crate::context::Context;
use crate::env_var::env;
use crate::error::{Error, is_conflict, is_not_found};
use crate::{labels, security};

/// The `app.kubernetes.io/name` of validation Jobs, which the Model
/// controller watches.
pub const COMPONENT: &str = "aimass-validator";
/// Name of the validating container.
pub const CONTAINER: &str = "validate";
/// The most bytes of a validation pod's log the operator reads.
pub const LOG_LIMIT: i64 = 1024 * 1024;
/// How long a validation may run.
const DEADLINE_SECONDS: i64 = 600;

/// What to validate, and as whom.
#[derive(Clone, Debug, PartialEq)]
pub struct Check<'a> {
    /// Name of the Job.
    pub job_name: String,
    /// The Model the artifact becomes a version of.
    pub model: &'a str,
    /// Where the artifact is.
    pub uri: &'a str,
    /// The digest it must have, if the user gave one.
    pub sha256: Option<&'a str>,
    /// The tenant's Secret with the storage credentials, as environment.
    pub secret: Option<&'a str>,
    /// The tenant's ServiceAccount to run as (the namespace's default when
    /// unset); its token is never mounted.
    pub service_account: Option<&'a str>,
    /// Where to compute a baseline from when none sits beside the artifact
    /// (a trained version of a Model with `spec.baseline`), as JSON.
    pub baseline_plan: Option<String>,
}

/// Where a validation stands.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// The Job runs; a sentence saying so.
    Running(String),
    /// The Job's pod cannot start (a Secret it reads is missing, its image
    /// cannot be pulled, …); a sentence naming the cause. The kubelet keeps
    /// trying, so it starts once the cause is fixed.
    Blocked(String),
    /// The Job finished: what it learnt, or why the artifact is refused.
    Done(Result<Artifact, String>),
}

/// What every validation Job gets from the operator's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits<'a> {
    /// The image that validates (the inference server's).
    pub image: &'a str,
    /// The container's memory limit.
    pub memory: &'a str,
    /// The largest artifact read.
    pub max_bytes: u64,
}

/// The Job validating `check` for `owner`, which owns it.
pub fn build<K>(owner: &K, check: &Check<'_>, limits: &Limits<'_>) -> Job
where
    K: Resource<DynamicType = ()>,
{
    let mut vars = vec![
        env("AIMASS_MODEL_URI", check.uri),
        env("AIMASS_MODEL_NAME", check.model),
        env("AIMASS_VALIDATE_ONLY", "true"),
        env("AIMASS_MAX_MODEL_BYTES", limits.max_bytes),
    ];
    vars.extend(check.sha256.map(|s| env("AIMASS_MODEL_SHA256", s)));
    vars.extend(
        check
            .baseline_plan
            .as_deref()
            .map(|plan| env(aimass_crds::scoring::BASELINE_PLAN_ENV, plan)),
    );
    vars.extend(
        check
            .secret
            .map(|name| crate::storage::secret_env(name, ""))
            .into_iter()
            .flatten(),
    );
    let labels = labels::common(COMPONENT, check.model);
    let container = Container {
        name: CONTAINER.into(),
        image: Some(limits.image.to_owned()),
        env: Some(vars),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), Quantity("100m".into())),
                ("memory".into(), Quantity("128Mi".into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".into(),
                Quantity(limits.memory.to_owned()),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(security::container(true)),
        ..Container::default()
    };
    Job {
        metadata: labels::owned_meta(owner, check.job_name.clone(), labels.clone()),
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(DEADLINE_SECONDS),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    restart_policy: Some("Never".into()),
                    service_account_name: check.service_account.map(str::to_owned),
                    // It reads tenant data: no API credentials at all.
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(security::pod(None)),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// Starts the validation Job of `check` unless it exists, and reads its
/// report once it has finished.
pub async fn ensure<K>(ctx: &Context, owner: &K, check: &Check<'_>) -> Result<Progress, Error>
where
    K: Resource<DynamicType = ()>,
{
    let namespace = owner.meta().namespace.clone().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = &check.job_name;
    let Some(job) = jobs
        .get_opt(name)
        .await
        .map_err(Error::kube(format!("reading the validation Job {name}")))?
    else {
        let limits = Limits {
            image: &ctx.server_image,
            memory: &ctx.validation_memory_limit,
            max_bytes: ctx.max_artifact_bytes,
        };
        let job = build(owner, check, &limits);
        match jobs.create(&PostParams::default(), &job).await {
            Ok(_) => {}
            Err(e) if is_conflict(&e) => {}
            Err(e) => {
                return Err(Error::kube(format!("creating the validation Job {name}"))(
                    e,
                ));
            }
        }
        return Ok(running(check));
    };
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let pod = newest_pod(&pods, name).await?;
    let status = job.status.clone().unwrap_or_default();
    // The Job's status lags its pod's when the Job controller is busy: a
    // finished pod is read at once.
    let (finished, failed) = match pod.as_ref().map(pod_state) {
        Some(PodState::Blocked(why)) => {
            return Ok(Progress::Blocked(format!(
                "the validation Job {name} cannot start its pod: {why}; it starts once that is fixed"
            )));
        }
        Some(PodState::Finished { failed }) => (true, failed),
        _ => (false, false),
    };
    let failed = failed || status.failed.unwrap_or(0) > 0 || failure(&job).is_some();
    if !finished && status.succeeded.unwrap_or(0) == 0 && !failed {
        return Ok(running(check));
    }
    let report = match &pod {
        Some(pod) => read_report(&pods, pod).await,
        None => None,
    };
    Ok(Progress::Done(match (report, failed) {
        (Some(report), _) => report.into_result(),
        (None, true) => Err(format!(
            "the validation Job {name} failed: {}",
            failure(&job).unwrap_or_else(|| "no reason given".into())
        )),
        (None, false) => Err(format!(
            "the validation Job {name} finished without a report"
        )),
    }))
}

/// Writes what validation said into a version's record: its digest, size
/// and signature, or `Rejected` with reason `ArtifactInvalid` and why.
pub fn record_outcome(version: &mut ModelVersion, outcome: Result<Artifact, String>) {
    match outcome {
        Ok(artifact) => {
            version.sha256 = Some(artifact.sha256);
            version.size_bytes = Some(artifact.size_bytes);
            version.signature = Some(artifact.signature);
            version.baseline = artifact.baseline;
        }
        Err(message) => {
            version.phase = VersionPhase::Rejected;
            version.reason = Some(reasons::ARTIFACT_INVALID.into());
            version.message = Some(message);
        }
    }
}

fn running(check: &Check<'_>) -> Progress {
    Progress::Running(format!(
        "validating {} in Job {}",
        check.uri, check.job_name
    ))
}

/// The newest pod of Job `job`.
pub(crate) async fn newest_pod(pods: &Api<Pod>, job: &str) -> Result<Option<Pod>, Error> {
    let listed = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .map_err(Error::kube(format!("listing the pods of Job {job}")))?;
    Ok(listed
        .items
        .into_iter()
        .max_by_key(|p| p.creation_timestamp().map(|t| t.0)))
}

/// Where a validation pod stands.
#[derive(Debug, PartialEq)]
enum PodState {
    /// Scheduled or running.
    Running,
    /// Cannot start: why, in the kubelet's words.
    Blocked(String),
    /// Its container ended.
    Finished {
        /// It ended with a failure.
        failed: bool,
    },
}

/// Waiting reasons that do not pass by themselves.
const BLOCKED: &[&str] = &[
    "CreateContainerConfigError",
    "CreateContainerError",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
];

/// Where `pod` stands, from its phase and its container's state. Pure.
fn pod_state(pod: &Pod) -> PodState {
    let status = pod.status.as_ref();
    match status.and_then(|s| s.phase.as_deref()) {
        Some("Succeeded") => return PodState::Finished { failed: false },
        Some("Failed") => return PodState::Finished { failed: true },
        _ => {}
    }
    let waiting = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.name == CONTAINER)
        .find_map(|c| c.state.as_ref()?.waiting.clone());
    match waiting {
        Some(w) if w.reason.as_deref().is_some_and(|r| BLOCKED.contains(&r)) => {
            let reason = w.reason.unwrap_or_default();
            PodState::Blocked(match w.message.filter(|m| !m.is_empty()) {
                Some(message) => format!("{message} ({reason})"),
                None => reason,
            })
        }
        _ => PodState::Running,
    }
}

/// The report in `pod`'s log.
async fn read_report(pods: &Api<Pod>, pod: &Pod) -> Option<Report> {
    Report::from_log(&read_log(pods, pod, CONTAINER).await)
}

/// The log of `container` in `pod`, at most [`LOG_LIMIT`] bytes of it;
/// empty when it cannot be read.
pub(crate) async fn read_log(pods: &Api<Pod>, pod: &Pod, container: &str) -> String {
    pods.logs(
        &pod.name_any(),
        &LogParams {
            container: Some(container.into()),
            limit_bytes: Some(LOG_LIMIT),
            ..LogParams::default()
        },
    )
    .await
    .unwrap_or_default()
}

/// The Job's failure condition, as a sentence.
fn failure(job: &Job) -> Option<String> {
    let condition = job
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed" && c.status == "True")?;
    Some(format!(
        "{}: {}",
        condition.reason.clone().unwrap_or_default(),
        condition.message.clone().unwrap_or_default()
    ))
}

/// Deletes a finished validation Job and its pod.
pub async fn remove(ctx: &Context, namespace: &str, name: &str) -> Result<(), Error> {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match jobs.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(Error::kube(format!("deleting the validation Job {name}"))(
            e,
        )),
    }
}

/// Why the operator will not have `uri` (given in `field`) fetched at all,
/// even by a tenant pod: it names a cloud metadata endpoint, whose answer is
/// the node's identity.
pub fn refused_source(field: &str, uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    let metadata = match url.host()? {
        url::Host::Ipv4(ip) => ip.is_link_local(),
        url::Host::Ipv6(ip) => (ip.segments()[0] & 0xffc0) == 0xfe80 || ip.segments()[0] == 0xfd00,
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            ["metadata", "metadata.google.internal", "instance-data"].contains(&name.as_str())
                || name.ends_with(".metadata.google.internal")
        }
    };
    metadata.then(|| {
        format!(
            "{field} {uri:?} names a cloud metadata endpoint; nothing is ever fetched from there"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimass_crds::v1alpha1::Model;

    fn model() -> Model {
        serde_yaml_ng::from_str(
            "apiVersion: aimass.io/v1alpha1\nkind: Model\nmetadata: {name: fraud, namespace: desk-a, uid: u1}\nspec: {source: {uri: 's3://b/m.onnx'}}\n",
        )
        .unwrap()
    }

    #[test]
    fn the_validation_job_runs_as_the_tenant_without_api_credentials() {
        let check = Check {
            job_name: "fraud-import-1".into(),
            model: "fraud",
            uri: "s3://b/m.onnx",
            sha256: Some("abc"),
            secret: Some("store"),
            service_account: None,
            baseline_plan: Some(r#"{"dataset":"s3://b/d.csv","rows":100}"#.into()),
        };
        let limits = Limits {
            image: "aimass/inference-server:1",
            memory: "1Gi",
            max_bytes: 1 << 20,
        };
        let job = build(&model(), &check, &limits);
        assert_eq!(job.metadata.namespace.as_deref(), Some("desk-a"));
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Model", "u1"));
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.service_account_name, None);
        let container = &pod.containers[0];
        assert_eq!(
            container.image.as_deref(),
            Some("aimass/inference-server:1")
        );
        let env: BTreeMap<_, _> = container
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or_default()))
            .collect();
        assert_eq!(env["AIMASS_VALIDATE_ONLY"], "true");
        assert_eq!(env["AIMASS_MODEL_URI"], "s3://b/m.onnx");
        assert_eq!(env["AIMASS_MODEL_SHA256"], "abc");
        assert_eq!(env["AIMASS_MAX_MODEL_BYTES"], "1048576");
        assert_eq!(
            env["AIMASS_BASELINE_PLAN"],
            r#"{"dataset":"s3://b/d.csv","rows":100}"#
        );
        let from_secret: Vec<_> = container
            .env
            .iter()
            .flatten()
            .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
            .collect();
        assert!(from_secret.iter().all(|k| k.name == "store"));
        assert!(from_secret.iter().any(|k| k.key == "AWS_SECRET_ACCESS_KEY"));
        assert!(container.env_from.is_none(), "never the whole Secret");
        let limits = container
            .resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap();
        assert_eq!(limits["memory"].0, "1Gi");
    }

    #[test]
    fn metadata_endpoints_are_never_fetched() {
        for (uri, refused) in [
            ("http://169.254.169.254/latest/meta-data/iam", true),
            ("http://[fd00:ec2::254]/latest", true),
            ("http://metadata.google.internal/computeMetadata/v1/", true),
            ("http://Metadata.Google.Internal./x", true),
            ("https://models.example.com/m.onnx", false),
            ("s3://bucket/m.onnx", false),
            ("file:///models/m.onnx", false),
        ] {
            assert_eq!(
                refused_source("source.uri", uri).is_some(),
                refused,
                "{uri}"
            );
        }
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "v"}, "status": status}))
            .expect("a valid Pod")
    }

    fn waiting(reason: &str, message: &str) -> serde_json::Value {
        serde_json::json!({"phase": "Pending", "containerStatuses": [{
            "name": CONTAINER, "image": "server", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"waiting": {"reason": reason, "message": message}},
        }]})
    }

    #[test]
    fn pod_state_table() {
        let cases = [
            (
                "finished",
                serde_json::json!({"phase": "Succeeded"}),
                PodState::Finished { failed: false },
            ),
            (
                "failed",
                serde_json::json!({"phase": "Failed"}),
                PodState::Finished { failed: true },
            ),
            (
                "not scheduled yet",
                serde_json::json!({"phase": "Pending"}),
                PodState::Running,
            ),
            (
                "starting",
                waiting("ContainerCreating", ""),
                PodState::Running,
            ),
            (
                "a missing Secret",
                waiting("CreateContainerConfigError", "secret \"creds\" not found"),
                PodState::Blocked("secret \"creds\" not found (CreateContainerConfigError)".into()),
            ),
            (
                "an image that cannot be pulled, without a message",
                waiting("ImagePullBackOff", ""),
                PodState::Blocked("ImagePullBackOff".into()),
            ),
        ];
        for (case, status, expected) in cases {
            assert_eq!(pod_state(&pod(status)), expected, "{case}");
        }
    }
}
