//! Checks the API server's schema and CEL rules cannot express: URI structure,
//! cron syntax, and rules that need parsing. The operator runs them before it
//! acts and reports a failure as an `InvalidSpec` condition.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::Error;
use crate::uri::ArtifactUri;
use crate::v1alpha1::{
    ArtifactStorage, ModelDeploymentSpec, ModelSpec, ScoringJobSpec, ScoringRunSpec,
    TrainingJobSpec, TrainingRunSpec,
};

/// Parses a five-field cron expression (or `@daily` and friends), as the
/// operator evaluates it for scheduled retraining.
pub fn parse_schedule(schedule: &str) -> Result<Cron, Error> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(schedule)
        .map_err(|e| Error::InvalidSchedule {
            schedule: schedule.to_owned(),
            reason: e.to_string(),
        })
}

/// Parses a URI found at `field`, naming the field in the error.
pub fn parse_uri(field: &str, uri: &str) -> Result<ArtifactUri, Error> {
    uri.parse().map_err(|e: Error| match e {
        Error::InvalidUri { reason, .. } => Error::InvalidField {
            field: field.to_owned(),
            reason: format!("{uri:?} is not a valid location: {reason}"),
        },
        other => other,
    })
}

fn validate_storage(field: &str, storage: &ArtifactStorage) -> Result<(), Error> {
    let prefix = parse_uri(field, &storage.prefix)?;
    if !prefix.is_writable() {
        return Err(Error::InvalidField {
            field: field.to_owned(),
            reason: "storage must be writable; http(s) locations are read-only".to_owned(),
        });
    }
    Ok(())
}

fn validate_run(field: &str, run: &TrainingRunSpec) -> Result<(), Error> {
    parse_uri(&format!("{field}.dataset.uri"), &run.dataset.uri)?;
    let mut names: Vec<&str> = run.env.iter().map(|e| e.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::InvalidField {
            field: format!("{field}.env"),
            reason: format!("variable {} is set twice", w[0]),
        });
    }
    Ok(())
}

/// Validates what the schema cannot in a Model's spec.
pub fn validate_model(spec: &ModelSpec) -> Result<(), Error> {
    if let Some(uri) = &spec.source.uri {
        parse_uri("spec.source.uri", uri)?;
    }
    if let Some(storage) = &spec.storage {
        validate_storage("spec.storage.prefix", storage)?;
    }
    if let Some(training) = &spec.source.training {
        if let Some(schedule) = &training.schedule {
            parse_schedule(schedule)?;
        }
        validate_run("spec.source.training.template", &training.template)?;
    }
    if let Some(baseline) = &spec.baseline {
        parse_uri("spec.baseline.uri", &baseline.uri)?;
    }
    if let Some(evaluation) = &spec.evaluation {
        if let Some(schedule) = &evaluation.schedule {
            parse_schedule(schedule)?;
        }
        validate_scoring_run("spec.evaluation.template", &evaluation.template)?;
    }
    Ok(())
}

/// Validates what the schema cannot in a TrainingJob's spec.
pub fn validate_training_job(spec: &TrainingJobSpec) -> Result<(), Error> {
    validate_run("spec", &spec.run)
}

/// Validates what the schema cannot in a ScoringJob's spec.
pub fn validate_scoring_job(spec: &ScoringJobSpec) -> Result<(), Error> {
    validate_scoring_run("spec", &spec.run)
}

/// Validates a scoring run found at `path`: its URIs parse, and the label
/// does not feed the model.
pub fn validate_scoring_run(path: &str, spec: &ScoringRunSpec) -> Result<(), Error> {
    parse_uri(&format!("{path}.dataset.uri"), &spec.dataset.uri)?;
    let output = parse_uri(&format!("{path}.output.uri"), &spec.output.uri)?;
    if !output.is_writable() {
        return Err(Error::InvalidField {
            field: format!("{path}.output.uri"),
            reason: "outputs are written to an object store or a file:// path".to_owned(),
        });
    }
    // The outcome must not feed the model it measures; a segment or an id
    // column may.
    if let Some(label) = &spec.label_column
        && let Some(input) = spec.columns.iter().find(|i| i.columns.contains(label))
    {
        return Err(Error::InvalidField {
            field: format!("{path}.columns[{}]", input.input),
            reason: format!("column {label:?} is the label column: it cannot feed the model"),
        });
    }
    Ok(())
}

/// Validates what the schema cannot in a ModelDeployment's spec.
pub fn validate_model_deployment(spec: &ModelDeploymentSpec) -> Result<(), Error> {
    let replicas = &spec.replicas;
    if !spec.autoscaling.enabled
        && let Some(count) = replicas.count
        && count > replicas.max
    {
        return Err(Error::InvalidField {
            field: "spec.replicas.count".to_owned(),
            reason: format!(
                "{count} replicas exceed replicas.max ({}); raise max to run that many",
                replicas.max
            ),
        });
    }
    if let Some(archive) = &spec.security.audit_archive {
        let prefix = parse_uri("spec.security.auditArchive.prefix", &archive.prefix)?;
        if !prefix.is_writable() || archive.prefix.starts_with("pvc://") {
            return Err(Error::InvalidField {
                field: "spec.security.auditArchive.prefix".to_owned(),
                reason: "an audit archive must be an object store or a file:// path".to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1alpha1::{DatasetSpec, ModelSelector, ModelSource, TrainingSource};
    use k8s_openapi::api::core::v1::EnvVar;

    fn trained_model(schedule: Option<&str>) -> ModelSpec {
        ModelSpec {
            source: ModelSource {
                training: Some(TrainingSource {
                    schedule: schedule.map(str::to_owned),
                    suspend: false,
                    retrain_on: Vec::new(),
                    min_retrain_interval_seconds: 86400,
                    template: TrainingRunSpec {
                        image: "trainer:1".into(),
                        dataset: DatasetSpec {
                            uri: "s3://data/transactions/".into(),
                            secret_ref: None,
                        },
                        ..Default::default()
                    },
                }),
                ..Default::default()
            },
            storage: Some(ArtifactStorage {
                prefix: "s3://registry/".into(),
                secret_ref: None,
            }),
            promotion: Default::default(),
            aliases: Default::default(),
            retention: Default::default(),
            evidence: None,
            evaluation: None,
            baseline: None,
        }
    }

    #[test]
    fn schedules_parse_like_cron() {
        for ok in ["0 2 * * *", "*/5 * * * *", "@daily", "0 0 1 */3 MON-FRI"] {
            assert!(parse_schedule(ok).is_ok(), "{ok}");
        }
        for bad in ["61 * * * *", "* * * * * *", "0 25 * * *", "@fortnightly"] {
            let err = parse_schedule(bad).expect_err(bad);
            assert_eq!(err.category(), "InvalidSchedule");
        }
    }

    #[test]
    fn model_checks_name_the_field() {
        assert_eq!(validate_model(&trained_model(Some("0 2 * * *"))), Ok(()));
        let err = validate_model(&trained_model(Some("0 99 * * *"))).expect_err("hour 99");
        assert!(err.to_string().contains("0 99 * * *"), "{err}");

        let mut spec = trained_model(None);
        spec.storage = Some(ArtifactStorage {
            prefix: "s3://Registry/".into(),
            secret_ref: None,
        });
        let err = validate_model(&spec).expect_err("bucket with upper case");
        assert!(err.to_string().starts_with("spec.storage.prefix:"), "{err}");
    }

    #[test]
    fn duplicate_env_names_are_refused() {
        let mut spec = trained_model(None);
        let training = spec.source.training.as_mut().expect("trained");
        for value in ["1", "2"] {
            training.template.env.push(EnvVar {
                name: "OMP_NUM_THREADS".into(),
                value: Some(value.into()),
                value_from: None,
            });
        }
        let err = validate_model(&spec).expect_err("duplicate env");
        assert_eq!(
            err.to_string(),
            "spec.source.training.template.env: variable OMP_NUM_THREADS is set twice"
        );
    }

    #[test]
    fn fixed_count_must_fit_under_max() {
        let mut spec = ModelDeploymentSpec {
            model: Some(ModelSelector {
                name: "m".into(),
                alias: None,
                version: None,
            }),
            ensemble: None,
            shadow: None,
            replicas: Default::default(),
            autoscaling: Default::default(),
            batching: Default::default(),
            health: Default::default(),
            drift: Default::default(),
            migration: Default::default(),
            rollout: Default::default(),
            server: Default::default(),
            security: Default::default(),
            resources: None,
            node_selector: Default::default(),
            tolerations: Vec::new(),
            affinity: None,
            service_account_name: None,
        };
        spec.replicas.count = Some(50);
        // With the autoscaler on, count is not used.
        assert_eq!(validate_model_deployment(&spec), Ok(()));
        spec.autoscaling.enabled = false;
        let err = validate_model_deployment(&spec).expect_err("count above max");
        assert!(
            err.to_string().contains("exceed replicas.max (10)"),
            "{err}"
        );
        spec.replicas.count = None;
        for (prefix, ok) in [
            ("s3://audit-worm/fraud", true),
            ("file:///var/archive", true),
            ("pvc://claim/audit", false),
        ] {
            spec.security.audit_archive = Some(crate::v1alpha1::AuditArchive {
                prefix: prefix.into(),
                secret_ref: None,
                interval_seconds: None,
                segment_mebibytes: None,
            });
            assert_eq!(validate_model_deployment(&spec).is_ok(), ok, "{prefix}");
        }
    }
}
