//! The soak of the version served: how it has served since it took every
//! replica (requests, error rate, p99), measured from the servers' counters
//! while its Model asks for evidence (`spec.evidence`). The Model controller
//! judges it against the Model's requirements.

use aimass_crds::v1alpha1::{
    CanaryPhase, Model, ModelDeployment, ModelDeploymentStatus, SoakStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::pods;
use super::workload::Track;
use crate::context::Context;
use crate::error::Error;
use crate::scrape::Snapshot;

/// The first reading of a soak.
pub struct Baseline {
    version: i64,
    since: Time,
    reading: Snapshot,
}

/// The soak since `baseline`, given the latest reading.
fn soak_of(baseline: &Baseline, latest: &Snapshot) -> SoakStatus {
    let window = latest.since(&baseline.reading);
    SoakStatus {
        version: baseline.version,
        since: baseline.since.clone(),
        // Counters are whole numbers of requests.
        requests: window.requests.round() as i64,
        error_rate: window.error_rate(),
        p99_latency_millis: window.p99_seconds.map(|s| (s * 1e6).round() / 1e3),
    }
}

/// Measures the soak of the version served into `status.soak`; whether the
/// Model still waits for it to be proven (the caller looks again soon).
pub async fn measure(
    ctx: &Context,
    md: &ModelDeployment,
    model: Option<&Model>,
    status: &mut ModelDeploymentStatus,
    now: &Time,
) -> Result<bool, Error> {
    let uid = md.uid().unwrap_or_default();
    let evidence = model.and_then(|m| m.spec.evidence.as_ref());
    let canary = status
        .canary
        .as_ref()
        .is_some_and(|c| c.phase == CanaryPhase::Analysing);
    let (Some(version), Some(_), false) = (status.serving_version, evidence, canary) else {
        ctx.soak_baselines.take(&uid);
        status.soak = None;
        return Ok(false);
    };
    let reading = pods::track_snapshot(ctx, md, Track::Stable).await?;
    let baseline = match ctx
        .soak_baselines
        .take(&uid)
        .filter(|b| b.version == version)
    {
        Some(baseline) => baseline,
        None => Baseline {
            version,
            since: now.clone(),
            reading: reading.clone(),
        },
    };
    status.soak = Some(soak_of(&baseline, &reading));
    ctx.soak_baselines.put(&uid, baseline);
    let proven = model
        .and_then(|m| m.status.as_ref())
        .is_some_and(|s| s.evidence.iter().any(|e| e.version == version));
    Ok(!proven)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::OrderedF64;

    fn reading(requests: f64, errors: f64, buckets: &[(f64, f64)]) -> Snapshot {
        Snapshot {
            requests,
            errors,
            latency: buckets.iter().map(|(b, c)| (OrderedF64(*b), *c)).collect(),
            servers: 1,
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_soak_counts_what_happened_since_its_first_reading() {
        let since = Time(jiff::Timestamp::UNIX_EPOCH);
        let baseline = Baseline {
            version: 3,
            since: since.clone(),
            reading: reading(
                100.0,
                5.0,
                &[(0.001, 90.0), (0.01, 100.0), (f64::INFINITY, 100.0)],
            ),
        };
        let latest = reading(
            1100.0,
            15.0,
            &[(0.001, 1090.0), (0.01, 1100.0), (f64::INFINITY, 1100.0)],
        );
        let soak = soak_of(&baseline, &latest);
        assert_eq!(soak.version, 3);
        assert_eq!(soak.since, since);
        assert_eq!(soak.requests, 1000);
        assert!((soak.error_rate - 0.01).abs() < 1e-9, "{soak:?}");
        // The 990th of 1000 requests lies in the first bucket.
        let p99 = soak.p99_latency_millis.unwrap();
        assert!(p99 > 0.0 && p99 <= 1.0, "{soak:?}");
        // Servers that restarted count from zero, never negative.
        let restarted = reading(10.0, 0.0, &[(0.001, 10.0), (f64::INFINITY, 10.0)]);
        let soak = soak_of(&baseline, &restarted);
        assert_eq!(soak.requests, 10);
        assert_eq!(soak.error_rate, 0.0);
        // No requests: no p99.
        assert_eq!(
            soak_of(&baseline, &baseline.reading).p99_latency_millis,
            None
        );
    }
}
