//! The metrics behind autoscaling and replica health: every 2 s each Ready inference pod's
//! `/metrics` is read (bounded concurrency, short timeouts), and the
//! difference from the pod's previous reading becomes its share of a
//! sample: concurrency as busy seconds per second (Little's law), requests
//! per second, and the interval's p99. A pod that does not answer adds
//! nothing to that sample ("no data", not zero load); a pod seen for the
//! first time only sets its baseline.

use std::collections::{BTreeMap, HashMap, VecDeque};

use futures::StreamExt;

use crate::autoscaler::decide::{Memory, Sample};
use crate::scrape::{self, Snapshot};

/// Samples kept per ModelDeployment beyond its stable window, in seconds.
const SLACK_SECONDS: f64 = 10.0;
/// Scrapes in flight at once.
const PARALLEL_SCRAPES: usize = 16;

/// What the monitor keeps between rounds for one ModelDeployment.
#[derive(Default)]
pub struct Series {
    /// Each pod's latest reading (time, snapshot), by pod name.
    pub last: HashMap<String, (f64, Snapshot)>,
    /// Each pod's reading at the previous health evaluation.
    pub health_base: HashMap<String, (f64, Snapshot)>,
    /// When health was last evaluated, in seconds.
    pub last_health: f64,
    /// When the shadow's comparison was last written, in seconds.
    pub last_shadow: f64,
    /// The replicas' health across evaluations.
    pub tracks: crate::health::evaluate::Tracks,
    /// Nodes currently suspected, for their Events.
    pub suspects: Vec<String>,
    /// Samples, oldest first.
    pub samples: VecDeque<Sample>,
    /// The decision memory (panic mode, recent recommendations).
    pub memory: Memory,
    /// What the monitor last wrote to status.
    pub findings: Option<super::Findings>,
    /// Drift counts and their window.
    pub drift: super::drift::Tracker,
    /// Traffic since the last traffic point, and the hour's callers.
    pub traffic: super::traffic::Tracker,
}

impl Series {
    /// Scrapes `pods` (name, IP) at `now` and adds a sample when at least
    /// one pod had an earlier reading; keeps `window` seconds of samples.
    pub async fn observe(&mut self, pods: &[(String, String)], port: i32, now: f64, window: f64) {
        let readings: Vec<(String, Option<Snapshot>)> = futures::stream::iter(pods.iter().cloned())
            .map(|(name, ip)| async move { (name, scrape::scrape(&ip, port).await) })
            .buffer_unordered(PARALLEL_SCRAPES)
            .collect()
            .await;
        let mut total = Sample {
            time: now,
            concurrency: 0.0,
            rps: 0.0,
            p99_ms: None,
        };
        let mut buckets: BTreeMap<scrape::OrderedF64, f64> = BTreeMap::new();
        let mut contributed = false;
        for (name, reading) in readings {
            let Some(snapshot) = reading else { continue };
            if let Some((then, earlier)) = self.last.get(&name)
                && now > *then
            {
                let window = snapshot.since(earlier);
                let dt = now - then;
                total.concurrency += window.busy_seconds / dt;
                total.rps += window.requests / dt;
                for (bound, count) in &window.latency {
                    *buckets.entry(scrape::OrderedF64(*bound)).or_default() += count;
                }
                self.traffic.add(&window);
                contributed = true;
            }
            self.last.insert(name, (now, snapshot));
        }
        self.last
            .retain(|name, _| pods.iter().any(|(p, _)| p == name));
        if contributed {
            let flat: Vec<(f64, f64)> = buckets.into_iter().map(|(b, c)| (b.0, c)).collect();
            total.p99_ms = scrape::quantile(&flat, 0.99).map(|s| s * 1000.0);
            self.samples.push_back(total);
        }
        while self
            .samples
            .front()
            .is_some_and(|s| s.time < now - window - SLACK_SECONDS)
        {
            self.samples.pop_front();
        }
    }
}
