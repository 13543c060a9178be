//! The two Jobs of a scoring run, in the tenant's namespace under its
//! ServiceAccount, without an API token, running the inference server's
//! image: the shards (an Indexed Job, `score`), then the report (`report`).
//! Pure.

use std::collections::BTreeMap;

use aimass_crds::scoring::{EXIT_REFUSED, PLAN_ENV};
use aimass_crds::v1alpha1::ScoringJob;
use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::env_var::env;
use crate::{labels, security};

/// The `app.kubernetes.io/name` of a scoring run's Jobs and pods.
pub const COMPONENT: &str = "aimass-scoring";
/// Label naming the ScoringJob a pod belongs to.
pub const SCORING_JOB: &str = "aimass.io/scoring-job";
/// The shards' container.
pub const SHARD_CONTAINER: &str = "score";
/// The report's container.
pub const REPORT_CONTAINER: &str = "report";
/// How long the report may take.
const REPORT_DEADLINE_SECONDS: i64 = 1800;

/// Which of the two Jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The Indexed Job scoring the shards.
    Shards,
    /// The Job merging them into the report.
    Report,
}

impl Kind {
    /// The Job's name for `sj`.
    pub fn job_name(self, sj: &ScoringJob) -> String {
        let base = labels::fit(&sj.metadata.name.clone().unwrap_or_default(), 52);
        match self {
            Self::Shards => format!("{base}-shards"),
            Self::Report => format!("{base}-report"),
        }
    }

    /// Its pods' container.
    pub fn container(self) -> &'static str {
        match self {
            Self::Shards => SHARD_CONTAINER,
            Self::Report => REPORT_CONTAINER,
        }
    }
}

/// What every scoring Job gets from the operator.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings<'a> {
    /// The inference server's image.
    pub image: &'a str,
    /// The plan, as JSON.
    pub plan: &'a str,
}

/// Job `kind` of `sj`.
pub fn build(sj: &ScoringJob, kind: Kind, settings: &Settings<'_>) -> Job {
    let spec = &sj.spec.run;
    let mut labels = labels::common(COMPONENT, &sj.spec.model_ref.name);
    labels.insert(
        SCORING_JOB.into(),
        labels::fit(&sj.metadata.name.clone().unwrap_or_default(), 63),
    );
    let mut vars = vec![env(PLAN_ENV, settings.plan)];
    // The data set's keys, then the output's: the latter win a clash.
    for secret in [&spec.dataset.secret_ref, &spec.output.secret_ref]
        .into_iter()
        .flatten()
    {
        vars.extend(crate::storage::secret_env(&secret.name, ""));
    }
    let container = Container {
        name: kind.container().into(),
        image: Some(settings.image.to_owned()),
        args: Some(vec![kind.container().into()]),
        env: Some(vars),
        resources: Some(spec.resources.clone().unwrap_or_else(default_resources)),
        security_context: Some(security::container(true)),
        ..Container::default()
    };
    let pod = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            restart_policy: Some("Never".into()),
            service_account_name: spec.service_account_name.clone(),
            // It reads tenant data: no API credentials at all.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            security_context: Some(security::pod(None)),
            ..PodSpec::default()
        }),
    };
    let job = match kind {
        Kind::Shards => JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(spec.shards),
            parallelism: Some(spec.shards),
            backoff_limit_per_index: Some(spec.backoff_limit_per_shard),
            max_failed_indexes: Some(0),
            active_deadline_seconds: spec.active_deadline_seconds,
            pod_failure_policy: Some(failure_policy()),
            template: pod,
            ..JobSpec::default()
        },
        Kind::Report => JobSpec {
            backoff_limit: Some(1),
            active_deadline_seconds: Some(REPORT_DEADLINE_SECONDS),
            pod_failure_policy: Some(failure_policy()),
            template: pod,
            ..JobSpec::default()
        },
    };
    Job {
        metadata: labels::owned_meta(sj, kind.job_name(sj), labels),
        spec: Some(job),
        status: None,
    }
}

/// A pod that refuses the job (exit code [`EXIT_REFUSED`]) fails it at
/// once; a pod evicted or preempted is retried without counting.
fn failure_policy() -> PodFailurePolicy {
    PodFailurePolicy {
        rules: vec![
            PodFailurePolicyRule {
                action: "FailJob".into(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    container_name: None,
                    operator: "In".into(),
                    values: vec![EXIT_REFUSED],
                }),
                on_pod_conditions: None,
            },
            PodFailurePolicyRule {
                action: "Ignore".into(),
                on_exit_codes: None,
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".into(),
                    status: Some("True".into()),
                }]),
            },
        ],
    }
}

/// One CPU and 256 MiB asked for; at most 1 GiB used.
fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), Quantity("1".into())),
            ("memory".into(), Quantity("256Mi".into())),
        ])),
        limits: Some(BTreeMap::from([("memory".into(), Quantity("1Gi".into()))])),
        ..ResourceRequirements::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scoring_job() -> ScoringJob {
        serde_yaml_ng::from_str(
            "apiVersion: aimass.io/v1alpha1\nkind: ScoringJob\nmetadata: {name: backtest, namespace: desk-a, uid: u1}\nspec: {modelRef: {name: fraud}, versions: [{alias: champion}], dataset: {uri: 's3://d/t.csv', secretRef: {name: data}}, output: {uri: 's3://o/', secretRef: {name: out}}, shards: 3, serviceAccountName: scorer}\n",
        )
        .unwrap()
    }

    #[test]
    fn shards_are_an_indexed_job_run_as_the_tenant_without_api_credentials() {
        let sj = scoring_job();
        let settings = Settings {
            image: "aimass/inference-server:1",
            plan: "{}",
        };
        let job = build(&sj, Kind::Shards, &settings);
        assert_eq!(job.metadata.name.as_deref(), Some("backtest-shards"));
        assert_eq!(job.metadata.namespace.as_deref(), Some("desk-a"));
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("ScoringJob", "u1")
        );
        let spec = job.spec.unwrap();
        assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
        assert_eq!((spec.completions, spec.parallelism), (Some(3), Some(3)));
        assert_eq!(spec.backoff_limit_per_index, Some(2));
        let rules = spec.pod_failure_policy.unwrap().rules;
        assert_eq!(rules[0].action, "FailJob");
        assert_eq!(
            rules[0].on_exit_codes.as_ref().unwrap().values,
            [EXIT_REFUSED]
        );
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.service_account_name.as_deref(), Some("scorer"));
        let container = &pod.containers[0];
        assert_eq!(container.args.as_deref(), Some(&["score".to_owned()][..]));
        let env = container.env.as_ref().unwrap();
        assert_eq!(env[0].name, PLAN_ENV);
        let secrets: Vec<&str> = env
            .iter()
            .filter_map(|e| {
                Some(
                    e.value_from
                        .as_ref()?
                        .secret_key_ref
                        .as_ref()?
                        .name
                        .as_str(),
                )
            })
            .collect();
        assert!(secrets.contains(&"data") && secrets.contains(&"out"));
        assert!(container.env_from.is_none(), "never the whole Secret");

        let report = build(&sj, Kind::Report, &settings).spec.unwrap();
        assert_eq!(report.completion_mode, None);
        assert_eq!(
            report.template.spec.unwrap().containers[0].args.as_deref(),
            Some(&["report".to_owned()][..])
        );
    }
}
