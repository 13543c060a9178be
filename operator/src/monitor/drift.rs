//! Drift: every `spec.drift.intervalSeconds` the monitor reads each stable
//! replica's counts (`GET /drift` on its admin port), takes what each
//! counted since its previous reading, keeps those increments for
//! `windowSeconds`, and evaluates their sum against the version's baseline
//! ([`evaluate`], pure): the PSI of each score, the CSI of each feature,
//! the level reached and the `Drift` condition's hysteresis.
//!
//! A replica's counts are tenant-reachable data (its image may be a
//! tenant's): read bounded (size and time), checked against the format and
//! against the baseline digest the operator put in the pod's spec, and
//! dropped when they do not fit.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use aimass_crds::v1alpha1::{
    ColumnStability, DriftLevel, DriftPoint, DriftSpec, DriftStatus, ModelDeployment,
};
use aimass_drift::{Snapshot, stability};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::model_deployment::workload;

/// Features shown in status, highest CSI first.
const TOP_FEATURES: usize = 10;
/// How many evaluations `status.drift.history` keeps (the CRD's limit).
const HISTORY: usize = 60;
/// Features a condition or an Event names.
pub const NAMED_FEATURES: usize = 3;

/// One column's counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ColumnCounts {
    /// Rows per bin.
    pub counts: Vec<u64>,
    /// Rows with a missing value.
    pub missing: u64,
    /// Rows outside what training saw.
    pub outside: u64,
}

/// Counts of every column (features, then scores) and rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    /// Rows scored.
    pub rows: u64,
    /// Features then scores.
    pub columns: Vec<ColumnCounts>,
}

impl Counts {
    /// The counts of a server's snapshot.
    pub fn of(snapshot: &Snapshot) -> Self {
        Self {
            rows: snapshot.rows,
            columns: snapshot
                .features
                .iter()
                .chain(&snapshot.scores)
                .map(|c| ColumnCounts {
                    counts: c.counts.clone(),
                    missing: c.missing,
                    outside: c.outside,
                })
                .collect(),
        }
    }

    /// What was counted since `earlier`; all of it when a counter went
    /// down (the server restarted) or the shapes differ.
    pub fn since(&self, earlier: &Counts) -> Counts {
        let shaped = self.columns.len() == earlier.columns.len()
            && self
                .columns
                .iter()
                .zip(&earlier.columns)
                .all(|(a, b)| a.counts.len() == b.counts.len());
        let grew = |a: u64, b: u64| a >= b;
        let monotonic = shaped
            && grew(self.rows, earlier.rows)
            && self.columns.iter().zip(&earlier.columns).all(|(a, b)| {
                grew(a.missing, b.missing)
                    && grew(a.outside, b.outside)
                    && a.counts.iter().zip(&b.counts).all(|(x, y)| grew(*x, *y))
            });
        if !monotonic {
            return self.clone();
        }
        Counts {
            rows: self.rows - earlier.rows,
            columns: self
                .columns
                .iter()
                .zip(&earlier.columns)
                .map(|(a, b)| ColumnCounts {
                    counts: a.counts.iter().zip(&b.counts).map(|(x, y)| x - y).collect(),
                    missing: a.missing - b.missing,
                    outside: a.outside - b.outside,
                })
                .collect(),
        }
    }

    /// Adds `other` (of the same shape; nothing is added otherwise).
    pub fn add(&mut self, other: &Counts) {
        if self.columns.is_empty() && self.rows == 0 {
            *self = other.clone();
            return;
        }
        if self.columns.len() != other.columns.len() {
            return;
        }
        self.rows = self.rows.saturating_add(other.rows);
        for (a, b) in self.columns.iter_mut().zip(&other.columns) {
            if a.counts.len() != b.counts.len() {
                continue;
            }
            for (x, y) in a.counts.iter_mut().zip(&b.counts) {
                *x = x.saturating_add(*y);
            }
            a.missing = a.missing.saturating_add(b.missing);
            a.outside = a.outside.saturating_add(b.outside);
        }
    }
}

/// The columns' names and baseline proportions, as the servers report them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layout {
    /// Each feature's name and proportions.
    pub features: Vec<(String, Vec<f64>)>,
    /// Each score's name and proportions.
    pub scores: Vec<(String, Vec<f64>)>,
}

impl Layout {
    /// The layout of a server's snapshot.
    pub fn of(snapshot: &Snapshot) -> Self {
        let side = |columns: &[aimass_drift::SnapshotColumn]| {
            columns
                .iter()
                .map(|c| (c.name.clone(), c.expected.clone()))
                .collect()
        };
        Self {
            features: side(&snapshot.features),
            scores: side(&snapshot.scores),
        }
    }
}

/// A change of the `Drift` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Drift is detected now.
    Detected,
    /// Drift is over.
    Cleared,
}

/// Evaluates `window` (the rows of the last `spec.windowSeconds`, from
/// `start` to `end`) of version `version` against `layout`, continuing the
/// hysteresis of `previous`. Pure.
pub fn evaluate(
    spec: &DriftSpec,
    layout: &Layout,
    window: &Counts,
    previous: Option<&DriftStatus>,
    version: i64,
    (start, end): (Time, Time),
) -> (DriftStatus, Option<Transition>) {
    let previous = previous.filter(|p| p.version == Some(version));
    let feature_count = layout.features.len();
    let stabilities = |columns: &[(String, Vec<f64>)], offset: usize| -> Vec<ColumnStability> {
        columns
            .iter()
            .enumerate()
            .filter_map(|(i, (name, expected))| {
                let counts = window.columns.get(offset + i)?;
                Some(ColumnStability {
                    name: name.clone(),
                    index: stability(expected, &counts.counts).unwrap_or(0.0),
                    missing: i64::try_from(counts.missing).unwrap_or(i64::MAX),
                    out_of_contract: i64::try_from(counts.outside).unwrap_or(i64::MAX),
                })
            })
            .collect()
    };
    let scores = stabilities(&layout.scores, feature_count);
    let mut features = stabilities(&layout.features, 0);
    features.sort_by(|a, b| {
        b.index
            .total_cmp(&a.index)
            .then_with(|| a.name.cmp(&b.name))
    });
    let rows = i64::try_from(window.rows).unwrap_or(i64::MAX);
    let highest = scores
        .iter()
        .chain(&features)
        .map(|c| c.index)
        .fold(0.0, f64::max);
    let level = if rows < spec.min_rows {
        DriftLevel::InsufficientData
    } else if highest >= spec.action {
        DriftLevel::Action
    } else if highest >= spec.warning {
        DriftLevel::Warning
    } else {
        DriftLevel::Stable
    };
    let was_detected = previous.is_some_and(|p| p.detected);
    let streak = previous.map_or(0, |p| p.streak);
    let (streak, detected) = match (was_detected, level) {
        (_, DriftLevel::InsufficientData | DriftLevel::NoBaseline) => (streak, was_detected),
        (false, DriftLevel::Action) if streak + 1 >= spec.detect_after => (0, true),
        (false, DriftLevel::Action) => (streak + 1, false),
        (false, _) => (0, false),
        (true, DriftLevel::Stable) if streak + 1 >= spec.clear_after => (0, false),
        (true, DriftLevel::Stable) => (streak + 1, true),
        (true, _) => (0, true),
    };
    let transition = match (was_detected, detected) {
        (false, true) => Some(Transition::Detected),
        (true, false) => Some(Transition::Cleared),
        _ => None,
    };
    let detected_since = match transition {
        Some(Transition::Detected) => Some(end.clone()),
        _ if detected => previous.and_then(|p| p.detected_since.clone()),
        _ => None,
    };
    let window_seconds = spec.window_seconds;
    let message = match level {
        DriftLevel::InsufficientData => format!(
            "{rows} rows scored in the last {window_seconds} s, fewer than minRows {}: not judged",
            spec.min_rows
        ),
        _ => {
            let psi = scores.first().map_or_else(
                || "no score watched".to_owned(),
                |s| format!("PSI {:.4} ({})", s.index, s.name),
            );
            format!(
                "{psi} over {rows} rows in the last {window_seconds} s; top features by CSI: {}",
                named(&features)
            )
        }
    };
    features.truncate(TOP_FEATURES);
    let judged = !matches!(level, DriftLevel::InsufficientData);
    let mut history = previous.map(|p| p.history.clone()).unwrap_or_default();
    history.push(DriftPoint {
        time: end.clone(),
        rows,
        psi: scores.first().map(|s| s.index).filter(|_| judged),
        top_csi: features.first().map(|f| f.index).filter(|_| judged),
    });
    let excess = history.len().saturating_sub(HISTORY);
    history.drain(..excess);
    let status = DriftStatus {
        version: Some(version),
        level,
        detected,
        detected_since,
        streak,
        window_start: Some(start),
        window_end: Some(end),
        rows,
        psi: scores.first().map(|s| s.index),
        scores,
        features,
        warning: spec.warning,
        action: spec.action,
        message,
        history,
    };
    (status, transition)
}

/// The first features with their CSI: `amount 1.2345, hour 0.0100`.
pub fn named(features: &[ColumnStability]) -> String {
    if features.is_empty() {
        return "none watched".into();
    }
    features
        .iter()
        .take(NAMED_FEATURES)
        .map(|f| format!("{} {:.4}", f.name, f.index))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the monitor keeps between drift evaluations of one ModelDeployment.
#[derive(Default)]
pub struct Tracker {
    /// When the next evaluation is due, in seconds.
    next: f64,
    /// The version and baseline digest counted.
    key: Option<(i64, String)>,
    /// The layout of that baseline.
    layout: Option<Layout>,
    /// Each replica's latest counts, by pod name.
    readings: HashMap<String, Counts>,
    /// What was counted between evaluations, oldest first, with the time.
    increments: VecDeque<(f64, Counts)>,
}

/// A replica to read: its name, address, baseline digest and start.
struct Replica {
    name: String,
    ip: String,
    sha256: String,
    started: Option<f64>,
}

impl Tracker {
    /// Whether an evaluation is due at `now` (seconds).
    pub fn due(&self, now: f64) -> bool {
        now >= self.next
    }

    /// Reads the stable replicas of `md` among `pods`, adds what they
    /// counted and evaluates the window at `now` (seconds); the new status
    /// and the condition's change. `None` when drift is not watched.
    pub async fn observe(
        &mut self,
        md: &ModelDeployment,
        pods: &[Arc<Pod>],
        now: f64,
    ) -> Option<(DriftStatus, Option<Transition>)> {
        let spec = &md.spec.drift;
        self.next = now + f64::from(spec.interval_seconds);
        let status = md.status.as_ref();
        let version = status.and_then(|s| s.serving_version);
        let (true, Some(version)) = (spec.enabled, version) else {
            *self = Self {
                next: self.next,
                ..Self::default()
            };
            return None;
        };
        let replicas = stable_replicas(pods, version);
        let end = time(now);
        let window = f64::from(spec.window_seconds);
        let previous = status.and_then(|s| s.drift.as_ref());
        let Some(sha256) = replicas.first().map(|r| r.sha256.clone()) else {
            self.key = None;
            return Some((no_baseline(spec, version, end), None));
        };
        if self.key.as_ref() != Some(&(version, sha256.clone())) {
            *self = Self {
                next: self.next,
                key: Some((version, sha256.clone())),
                ..Self::default()
            };
        }
        let readings: Vec<(Replica, Option<Snapshot>)> = futures::stream::iter(replicas)
            .filter(|r| futures::future::ready(r.sha256 == sha256))
            .map(|r| async move {
                let url = format!("http://{}:{}/drift", r.ip, workload::ADMIN_PORT);
                let snapshot = crate::scrape::get_json::<Snapshot>(&url).await;
                (r, snapshot)
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut increment = Counts::default();
        let mut seen = Vec::new();
        for (replica, snapshot) in readings {
            let Some(snapshot) =
                snapshot.filter(|s| s.validate().is_ok() && s.baseline_sha256 == sha256)
            else {
                continue;
            };
            let layout = Layout::of(&snapshot);
            if self.layout.get_or_insert_with(|| layout.clone()) != &layout {
                continue;
            }
            let counts = Counts::of(&snapshot);
            match self.readings.get(&replica.name) {
                Some(earlier) => increment.add(&counts.since(earlier)),
                // A replica seen for the first time brings its whole count
                // when it started inside the window (else it only sets its
                // base: its counts may be days old).
                None if replica.started.is_some_and(|s| s >= now - window) => {
                    increment.add(&counts)
                }
                None => {}
            }
            seen.push(replica.name.clone());
            self.readings.insert(replica.name, counts);
        }
        self.readings.retain(|name, _| seen.contains(name));
        self.increments.push_back((now, increment));
        while self
            .increments
            .front()
            .is_some_and(|(t, _)| *t <= now - window)
        {
            self.increments.pop_front();
        }
        let Some(layout) = &self.layout else {
            return Some((no_baseline(spec, version, end), None));
        };
        let mut total = Counts::default();
        for (_, counts) in &self.increments {
            total.add(counts);
        }
        Some(evaluate(
            spec,
            layout,
            &total,
            previous,
            version,
            (time(now - window), end),
        ))
    }
}

/// The status of a version whose servers count nothing.
fn no_baseline(spec: &DriftSpec, version: i64, end: Time) -> DriftStatus {
    DriftStatus {
        version: Some(version),
        level: DriftLevel::NoBaseline,
        window_end: Some(end),
        warning: spec.warning,
        action: spec.action,
        message: format!(
            "version {version} has no baseline (its trainer wrote no baseline.json), or its servers do not report counts: drift is not measured and spec.drift.rules are not applied"
        ),
        ..DriftStatus::default()
    }
}

/// The ready, stable replicas serving `version`.
fn stable_replicas(pods: &[Arc<Pod>], version: i64) -> Vec<Replica> {
    let version = version.to_string();
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.labels().get(workload::TRACK_LABEL).map(String::as_str)
                == Some(workload::Track::Stable.as_str())
        })
        .filter(|p| p.labels().get(workload::VERSION_LABEL) == Some(&version))
        .filter_map(|p| {
            let sha256 = p
                .spec
                .as_ref()?
                .containers
                .first()?
                .env
                .as_ref()?
                .iter()
                .find(|e| e.name == workload::BASELINE_SHA256_VAR)?
                .value
                .clone()?;
            Some(Replica {
                name: p.metadata.name.clone()?,
                ip: workload::serving_ip(p)?,
                sha256,
                started: p
                    .status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .map(|t| t.0.as_millisecond() as f64 / 1000.0),
            })
        })
        .collect()
}

/// The time at `seconds` since the epoch.
fn time(seconds: f64) -> Time {
    Time(
        jiff::Timestamp::from_millisecond((seconds * 1000.0) as i64)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    )
}

#[cfg(test)]
mod tests;
