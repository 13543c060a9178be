//! Health evaluation as a pure function: each replica's figures over the
//! last interval against the absolute thresholds in `spec.health` and
//! against its siblings (median + k·MAD of p99 latency), with hysteresis (a
//! run of bad samples marks a replica unhealthy, a run of good ones clears
//! it), and a node view (most replicas on one node unhealthy makes the node
//! the suspect).

use std::collections::{BTreeMap, HashMap};

use aimass_crds::v1alpha1::HealthSpec;

/// One replica's figures over the last health interval.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaFigures {
    /// Pod name.
    pub pod: String,
    /// Node it runs on.
    pub node: Option<String>,
    /// 99th-percentile latency, in milliseconds, when it served requests.
    pub p99_ms: Option<f64>,
    /// Server errors per request.
    pub error_rate: f64,
    /// CPU use, in cores.
    pub cpu_cores: Option<f64>,
    /// Resident memory, in MiB.
    pub memory_mib: Option<f64>,
}

/// Why a sample was bad.
#[derive(Clone, Debug, PartialEq)]
pub struct Breach {
    /// The metric, as named in `spec.health` (`p99LatencyMillis`, …).
    pub metric: &'static str,
    /// The replica's value.
    pub value: f64,
    /// The threshold it crossed.
    pub threshold: f64,
}

/// A replica's health across evaluations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Track {
    bad: i32,
    good: i32,
    /// Whether it is currently judged unhealthy.
    pub unhealthy: bool,
    /// The breach that made it unhealthy (or the latest one).
    pub breach: Option<Breach>,
    /// When it became unhealthy, in seconds.
    pub since: Option<f64>,
}

/// The state of every replica of one ModelDeployment, by pod.
pub type Tracks = HashMap<String, Track>;

/// The sample's breach, if any: absolute thresholds first, then siblings.
pub fn breach(
    replica: &ReplicaFigures,
    siblings: &[ReplicaFigures],
    spec: &HealthSpec,
) -> Option<Breach> {
    let over = |metric, value: Option<f64>, threshold: Option<f64>| match (value, threshold) {
        (Some(v), Some(t)) if v > t => Some(Breach {
            metric,
            value: v,
            threshold: t,
        }),
        _ => None,
    };
    over(
        "p99LatencyMillis",
        replica.p99_ms,
        spec.p99_latency_millis.map(|t| t as f64),
    )
    .or_else(|| over("errorRate", Some(replica.error_rate), spec.error_rate))
    .or_else(|| over("cpuCores", replica.cpu_cores, spec.cpu_cores))
    .or_else(|| {
        over(
            "memoryMebibytes",
            replica.memory_mib,
            spec.memory_mebibytes.map(|t| t as f64),
        )
    })
    .or_else(|| outlier(replica, siblings, spec.outlier_deviations))
}

/// Latency far above the siblings' median: median + k·MAD, with the MAD
/// floored (10% of the median, at least 1 ms) so identical siblings do not
/// make every wobble an outlier. Needs at least three replicas with data.
fn outlier(replica: &ReplicaFigures, siblings: &[ReplicaFigures], k: f64) -> Option<Breach> {
    let value = replica.p99_ms?;
    let mut all: Vec<f64> = siblings.iter().filter_map(|s| s.p99_ms).collect();
    if all.len() < 3 {
        return None;
    }
    let median = median(&mut all);
    let mut deviations: Vec<f64> = all.iter().map(|v| (v - median).abs()).collect();
    let mad = median_of(&mut deviations).max(median * 0.1).max(1.0);
    let threshold = median + k * mad;
    (value > threshold).then_some(Breach {
        metric: "p99LatencyOutlier",
        value,
        threshold,
    })
}

fn median(values: &mut [f64]) -> f64 {
    median_of(values)
}

fn median_of(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Takes one evaluation in: updates every replica's track (dropping pods
/// that are gone) and returns which changed state.
pub fn evaluate(
    tracks: &mut Tracks,
    replicas: &[ReplicaFigures],
    spec: &HealthSpec,
    now: f64,
) -> Vec<(String, bool)> {
    tracks.retain(|pod, _| replicas.iter().any(|r| &r.pod == pod));
    let mut changed = Vec::new();
    for replica in replicas {
        let track = tracks.entry(replica.pod.clone()).or_default();
        match breach(replica, replicas, spec) {
            Some(b) => {
                track.bad += 1;
                track.good = 0;
                if !track.unhealthy || track.breach.is_none() {
                    track.breach = Some(b);
                }
                if !track.unhealthy && track.bad >= spec.unhealthy_after {
                    track.unhealthy = true;
                    track.since = Some(now);
                    changed.push((replica.pod.clone(), true));
                }
            }
            None => {
                track.good += 1;
                track.bad = 0;
                if track.unhealthy && track.good >= spec.healthy_after {
                    track.unhealthy = false;
                    track.since = None;
                    track.breach = None;
                    changed.push((replica.pod.clone(), false));
                }
            }
        }
    }
    changed
}

/// Nodes where most (and at least two) of the replicas are unhealthy.
pub fn suspect_nodes(tracks: &Tracks, replicas: &[ReplicaFigures]) -> Vec<String> {
    let mut per_node: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for replica in replicas {
        let Some(node) = replica.node.as_deref() else {
            continue;
        };
        let entry = per_node.entry(node).or_default();
        entry.0 += 1;
        if tracks.get(&replica.pod).is_some_and(|t| t.unhealthy) {
            entry.1 += 1;
        }
    }
    per_node
        .into_iter()
        .filter(|(_, (all, sick))| *sick >= 2 && *sick * 2 > *all)
        .map(|(node, _)| node.to_owned())
        .collect()
}

/// Whether the trouble is load rather than a replica: half or more of the
/// replicas are unhealthy, or breaching on their way to it, at once.
/// Migration then waits; scaling helps. (Replicas equally slow cross the
/// line a sample or two apart: counting only those already unhealthy would
/// migrate the first one to cross.)
pub fn is_fleet_wide(tracks: &Tracks, replicas: usize) -> bool {
    let sick = tracks.values().filter(|t| t.unhealthy || t.bad > 0).count();
    replicas > 0 && sick * 2 >= replicas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> HealthSpec {
        serde_json::from_value(serde_json::json!({"p99LatencyMillis": 100, "errorRate": 0.05}))
            .unwrap()
    }

    fn replica(pod: &str, node: &str, p99: f64) -> ReplicaFigures {
        ReplicaFigures {
            pod: pod.into(),
            node: Some(node.into()),
            p99_ms: Some(p99),
            error_rate: 0.0,
            cpu_cores: Some(0.1),
            memory_mib: Some(50.0),
        }
    }

    #[test]
    fn absolute_thresholds_and_sibling_outliers_are_breaches() {
        let s = spec();
        let fleet = [
            replica("a", "n1", 5.0),
            replica("b", "n2", 6.0),
            replica("c", "n3", 40.0),
        ];
        assert_eq!(breach(&fleet[0], &fleet, &s), None);
        let outlier = breach(&fleet[2], &fleet, &s).unwrap();
        assert_eq!(outlier.metric, "p99LatencyOutlier");
        let mut slow = replica("d", "n1", 150.0);
        assert_eq!(
            breach(&slow, &[slow.clone()], &s).unwrap().metric,
            "p99LatencyMillis"
        );
        slow.p99_ms = Some(5.0);
        slow.error_rate = 0.2;
        assert_eq!(breach(&slow, &[slow.clone()], &s).unwrap().threshold, 0.05);
        // Two replicas are too few to call one an outlier.
        assert_eq!(breach(&fleet[2], &fleet[1..], &s), None);
    }

    #[test]
    fn hysteresis_needs_a_run_of_bad_then_of_good_samples() {
        let s = spec();
        let mut tracks = Tracks::new();
        let sick = [
            replica("a", "n1", 5.0),
            replica("b", "n2", 5.0),
            replica("c", "n3", 80.0),
        ];
        let well = [
            replica("a", "n1", 5.0),
            replica("b", "n2", 5.0),
            replica("c", "n3", 5.0),
        ];
        for round in 1..=4 {
            assert!(
                evaluate(&mut tracks, &sick, &s, f64::from(round)).is_empty(),
                "round {round}"
            );
        }
        // A good sample in between restarts the count.
        evaluate(&mut tracks, &well, &s, 5.0);
        for round in 6..=9 {
            assert!(evaluate(&mut tracks, &sick, &s, f64::from(round)).is_empty());
        }
        assert_eq!(
            evaluate(&mut tracks, &sick, &s, 10.0),
            [("c".to_owned(), true)]
        );
        assert!(tracks["c"].unhealthy && tracks["c"].since == Some(10.0));
        evaluate(&mut tracks, &well, &s, 11.0);
        evaluate(&mut tracks, &well, &s, 12.0);
        assert_eq!(
            evaluate(&mut tracks, &well, &s, 13.0),
            [("c".to_owned(), false)]
        );
    }

    #[test]
    fn a_node_with_most_replicas_sick_is_the_suspect_and_fleet_wide_trouble_is_load() {
        let s = spec();
        let replicas = [
            replica("a", "n1", 500.0),
            replica("b", "n1", 500.0),
            replica("c", "n2", 5.0),
            replica("d", "n3", 5.0),
            replica("e", "n3", 5.0),
        ];
        let mut tracks = Tracks::new();
        for round in 0..5 {
            evaluate(&mut tracks, &replicas, &s, f64::from(round));
        }
        assert_eq!(suspect_nodes(&tracks, &replicas), ["n1"]);
        assert!(!is_fleet_wide(&tracks, replicas.len()));
        let all_slow: Vec<_> = replicas
            .iter()
            .map(|r| ReplicaFigures {
                p99_ms: Some(500.0),
                ..r.clone()
            })
            .collect();
        for round in 5..10 {
            evaluate(&mut tracks, &all_slow, &s, f64::from(round));
        }
        assert!(
            is_fleet_wide(&tracks, replicas.len()),
            "all slow at once is load"
        );
    }

    #[test]
    fn equally_slow_replicas_crossing_a_sample_apart_are_load() {
        let s = spec();
        let mut tracks = Tracks::new();
        let slow = |pods: &[&str]| -> Vec<ReplicaFigures> {
            ["a", "b", "c"]
                .iter()
                .map(|p| replica(p, "n1", if pods.contains(p) { 500.0 } else { 5.0 }))
                .collect()
        };
        // a turns slow first; b and c follow one sample later.
        for round in 0..s.unhealthy_after - 1 {
            evaluate(&mut tracks, &slow(&["a"]), &s, f64::from(round));
        }
        let changed = evaluate(&mut tracks, &slow(&["a", "b", "c"]), &s, 10.0);
        assert_eq!(changed, [("a".to_owned(), true)], "a is unhealthy first");
        assert!(
            is_fleet_wide(&tracks, 3),
            "b and c breach too: this is load, not a sick replica"
        );
    }
}
