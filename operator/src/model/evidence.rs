//! Evidence: a version is proven in this environment once a ModelDeployment
//! has served it for `spec.evidence.soakSeconds` with enough requests, few
//! errors and a low p99 (`judge`, pure, from the soak the ModelDeployment
//! controller measures). Proven versions are listed in `status.evidence`,
//! and a higher environment that follows this Model carries that evidence.

use aimass_crds::v1alpha1::conditions::{reasons, types};
use aimass_crds::v1alpha1::{
    EvidenceSpec, Model, ModelDeployment, ModelStatus, SoakStatus, VersionEvidence,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::conditions::{self, Wanted};
use crate::events::{Notice, Severity};

/// How many proven versions `status.evidence` keeps.
const EVIDENCE_LIMIT: usize = 20;

/// Where a soak stands against the Model's requirements.
#[derive(Clone, Debug, PartialEq)]
pub enum Judged {
    /// Not yet proven; why, in a sentence.
    Soaking(String),
    /// Proven now.
    Proven(VersionEvidence),
}

/// Judges the soak of `deployment` in `namespace` against `spec` at `now`.
pub fn judge(
    spec: &EvidenceSpec,
    soak: &SoakStatus,
    (namespace, deployment): (&str, &str),
    sha256: Option<&str>,
    now: &Time,
) -> Judged {
    let elapsed = now.0.as_second() - soak.since.0.as_second();
    let p99 = soak
        .p99_latency_millis
        .map_or("none yet".to_owned(), |p| format!("{p} ms"));
    let so_far = format!(
        "version {} served by {deployment} for {elapsed}s of {}s: {} requests (at least {}), error rate {:.4} (at most {}), p99 {p99}{}",
        soak.version,
        spec.soak_seconds,
        soak.requests,
        spec.min_requests,
        soak.error_rate,
        spec.max_error_rate,
        spec.max_p99_latency_millis
            .map_or(String::new(), |m| format!(" (at most {m} ms)"))
    );
    let p99_ok = match (spec.max_p99_latency_millis, soak.p99_latency_millis) {
        (None, _) => true,
        (Some(max), Some(p99)) => p99 <= max,
        (Some(_), None) => false,
    };
    let proven = elapsed >= spec.soak_seconds
        && soak.requests >= spec.min_requests
        && soak.error_rate <= spec.max_error_rate
        && p99_ok;
    if !proven {
        return Judged::Soaking(so_far);
    }
    Judged::Proven(VersionEvidence {
        version: soak.version,
        sha256: sha256.map(str::to_owned),
        namespace: namespace.to_owned(),
        deployment: deployment.to_owned(),
        since: soak.since.clone(),
        proven_at: now.clone(),
        requests: soak.requests,
        error_rate: soak.error_rate,
        p99_latency_millis: soak.p99_latency_millis,
    })
}

/// Records the versions proven since the last reconcile, from the soaks of
/// the ModelDeployments that serve the Model, and sets the `Proven`
/// condition (only with `spec.evidence`).
pub fn collect(
    model: &Model,
    deployments: &[ModelDeployment],
    status: &mut ModelStatus,
    now: &Time,
    notices: &mut Vec<Notice>,
) {
    let Some(spec) = &model.spec.evidence else {
        status.conditions.retain(|c| c.type_ != types::PROVEN);
        return;
    };
    let namespace = model.namespace().unwrap_or_default();
    let mut soaking = Vec::new();
    for md in deployments {
        let Some(soak) = md.status.as_ref().and_then(|s| s.soak.as_ref()) else {
            continue;
        };
        if status.evidence.iter().any(|e| e.version == soak.version) {
            continue;
        }
        let sha256 = status
            .versions
            .iter()
            .find(|v| v.version == soak.version)
            .and_then(|v| v.sha256.as_deref());
        match judge(spec, soak, (&namespace, &md.name_any()), sha256, now) {
            Judged::Soaking(message) => soaking.push(message),
            Judged::Proven(evidence) => {
                notices.push(Notice::new(
                    Severity::Normal,
                    crate::events::reasons::VERSION_PROVEN,
                    format!(
                        "version {} is proven in {namespace}: served by {} since {} with {} requests, error rate {:.4}",
                        evidence.version,
                        evidence.deployment,
                        evidence.since.0,
                        evidence.requests,
                        evidence.error_rate
                    ),
                ));
                status.evidence.push(evidence);
            }
        }
    }
    let excess = status.evidence.len().saturating_sub(EVIDENCE_LIMIT);
    status.evidence.drain(..excess);
    let proven = proven_condition(model, status, &soaking);
    conditions::set(
        &mut status.conditions,
        proven,
        model.metadata.generation,
        now,
    );
}

/// `Proven`: whether the promoted alias's version is proven here.
fn proven_condition<'a>(model: &Model, status: &ModelStatus, soaking: &[String]) -> Wanted<'a> {
    let alias = &model.spec.promotion.alias;
    let holder = status.aliases.get(alias);
    if let Some(evidence) = status
        .evidence
        .iter()
        .rev()
        .find(|e| Some(&e.version) == holder)
    {
        return Wanted {
            type_: types::PROVEN,
            status: true,
            reason: reasons::AS_EXPECTED,
            message: format!(
                "{alias} (version {}) is proven here: served by {} with {} requests",
                evidence.version, evidence.deployment, evidence.requests
            ),
        };
    }
    match soaking.first() {
        Some(message) => Wanted {
            type_: types::PROVEN,
            status: false,
            reason: reasons::SOAKING,
            message: message.clone(),
        },
        None => Wanted {
            type_: types::PROVEN,
            status: false,
            reason: reasons::NOT_SERVED,
            message: format!(
                "no ModelDeployment serves {alias} of this Model on every replica yet"
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Time {
        Time(jiff::Timestamp::from_second(second).unwrap())
    }

    fn spec() -> EvidenceSpec {
        serde_json::from_value(serde_json::json!({
            "soakSeconds": 60, "minRequests": 100, "maxErrorRate": 0.01, "maxP99LatencyMillis": 50.0
        }))
        .unwrap()
    }

    fn soak(requests: i64, error_rate: f64, p99: Option<f64>) -> SoakStatus {
        SoakStatus {
            version: 2,
            since: at(1000),
            requests,
            error_rate,
            p99_latency_millis: p99,
        }
    }

    #[test]
    fn a_version_is_proven_only_when_every_requirement_holds() {
        let place = ("risk-preview", "scoring");
        let table = [
            (
                "all good after the soak",
                soak(500, 0.0, Some(3.0)),
                1060,
                true,
            ),
            ("too early", soak(500, 0.0, Some(3.0)), 1059, false),
            ("too few requests", soak(99, 0.0, Some(3.0)), 2000, false),
            ("too many errors", soak(500, 0.02, Some(3.0)), 2000, false),
            ("too slow", soak(500, 0.0, Some(51.0)), 2000, false),
            ("no latency measured", soak(500, 0.0, None), 2000, false),
            (
                "limits are inclusive",
                soak(100, 0.01, Some(50.0)),
                1060,
                true,
            ),
        ];
        for (case, soak, now, proven) in table {
            let judged = judge(&spec(), &soak, place, Some("ab"), &at(now));
            match judged {
                Judged::Proven(e) => {
                    assert!(proven, "{case}: proven but should not be");
                    assert_eq!(
                        (e.version, e.namespace.as_str(), e.deployment.as_str()),
                        (2, "risk-preview", "scoring"),
                        "{case}"
                    );
                    assert_eq!(
                        (e.sha256.as_deref(), e.requests),
                        (Some("ab"), soak.requests)
                    );
                    assert_eq!((e.since, e.proven_at), (at(1000), at(now)), "{case}");
                }
                Judged::Soaking(message) => {
                    assert!(!proven, "{case}: not proven: {message}");
                    assert!(message.contains("version 2 served by scoring"), "{message}");
                }
            }
        }
        let lenient = EvidenceSpec {
            max_p99_latency_millis: None,
            ..spec()
        };
        assert!(matches!(
            judge(&lenient, &soak(500, 0.0, None), place, None, &at(2000)),
            Judged::Proven(_)
        ));
    }
}
