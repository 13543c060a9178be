//! A deployment's traffic over the last hour (`status.traffic`): what the
//! monitor reads from the servers every 2 s is summed into one point per
//! 30 s (requests per second, error and refusal rates, p50 and p99), the
//! last 120 points are kept, and the callers' requests are totalled over
//! the same hour.

use std::collections::{BTreeMap, VecDeque};

use aimass_crds::v1alpha1::{CallerTraffic, TrafficPoint, TrafficStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::scrape::{self, OrderedF64, Window};

/// Seconds one point sums.
pub const INTERVAL_SECONDS: f64 = 30.0;
/// Points kept: an hour.
pub const POINTS: usize = 120;
/// Callers reported, the busiest first.
pub const CALLERS: usize = 20;
/// Callers are totalled over this many seconds.
const CALLERS_SECONDS: f64 = INTERVAL_SECONDS * POINTS as f64;

/// What has been read since the last point, and each recent interval's
/// callers.
#[derive(Debug, Default)]
pub struct Tracker {
    /// When the interval being summed started (seconds); `None` before the
    /// first round.
    since: Option<f64>,
    /// Whether any server was read in the interval.
    answered: bool,
    requests: f64,
    errors: f64,
    rejected: f64,
    latency: BTreeMap<OrderedF64, f64>,
    callers: BTreeMap<String, f64>,
    /// Earlier intervals' callers (end, counts), oldest first.
    recent: VecDeque<(f64, BTreeMap<String, f64>)>,
}

impl Tracker {
    /// Adds one server's window to the interval.
    pub fn add(&mut self, window: &Window) {
        self.answered = true;
        self.requests += window.requests;
        self.errors += window.errors;
        self.rejected += window.rejected;
        for (bound, count) in &window.latency {
            *self.latency.entry(OrderedF64(*bound)).or_default() += count;
        }
        for (name, count) in &window.callers {
            *self.callers.entry(name.clone()).or_default() += count;
        }
    }

    /// At `now` (seconds), once the interval is 30 s old: `earlier` with the
    /// interval's point added (unless no server answered in it), the oldest
    /// beyond 120 dropped, and the hour's callers. `None` while the interval
    /// runs.
    pub fn close(&mut self, now: f64, earlier: Option<&TrafficStatus>) -> Option<TrafficStatus> {
        let since = *self.since.get_or_insert(now);
        let seconds = now - since;
        if seconds < INTERVAL_SECONDS {
            return None;
        }
        let mut history = earlier.map(|t| t.history.clone()).unwrap_or_default();
        if self.answered {
            history.push(self.point(now, seconds));
        }
        let excess = history.len().saturating_sub(POINTS);
        history.drain(..excess);
        self.recent
            .push_back((now, std::mem::take(&mut self.callers)));
        while self
            .recent
            .front()
            .is_some_and(|(end, _)| *end <= now - CALLERS_SECONDS)
        {
            self.recent.pop_front();
        }
        *self = Self {
            since: Some(now),
            recent: std::mem::take(&mut self.recent),
            ..Self::default()
        };
        Some(TrafficStatus {
            history,
            callers: self.busiest(),
        })
    }

    /// The interval's point, ending at `now` after `seconds`.
    fn point(&self, now: f64, seconds: f64) -> TrafficPoint {
        let share = |n: f64| {
            if self.requests > 0.0 {
                n / self.requests
            } else {
                0.0
            }
        };
        let buckets: Vec<(f64, f64)> = self.latency.iter().map(|(b, c)| (b.0, *c)).collect();
        let millis = |q: f64| scrape::quantile(&buckets, q).map(|s| (s * 1e6).round() / 1e3);
        TrafficPoint {
            time: Time(
                jiff::Timestamp::from_millisecond((now * 1000.0) as i64).unwrap_or_default(),
            ),
            requests_per_second: self.requests / seconds,
            error_rate: share(self.errors),
            rejected_rate: share(self.rejected),
            p50_latency_millis: millis(0.5),
            p99_latency_millis: millis(0.99),
        }
    }

    /// The callers with the most requests over the kept intervals.
    fn busiest(&self) -> Vec<CallerTraffic> {
        let mut totals: BTreeMap<&str, f64> = BTreeMap::new();
        for (_, callers) in &self.recent {
            for (name, count) in callers {
                *totals.entry(name).or_default() += count;
            }
        }
        let mut callers: Vec<CallerTraffic> = totals
            .into_iter()
            .map(|(name, count)| CallerTraffic {
                principal: name.to_owned(),
                requests: count.round() as i64,
            })
            .filter(|c| c.requests > 0)
            .collect();
        callers.sort_by_key(|c| std::cmp::Reverse(c.requests));
        callers.truncate(CALLERS);
        callers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(requests: f64, errors: f64, rejected: f64, callers: &[(&str, f64)]) -> Window {
        Window {
            requests,
            errors,
            rejected,
            // Half the requests within 1 ms, all within 10 ms.
            latency: vec![
                (0.001, requests / 2.0),
                (0.01, requests),
                (f64::INFINITY, requests),
            ],
            callers: callers.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect(),
            ..Window::default()
        }
    }

    #[test]
    fn a_point_sums_thirty_seconds_of_every_replica() {
        let mut tracker = Tracker::default();
        assert_eq!(tracker.close(0.0, None), None);
        // Two replicas, two rounds.
        tracker.add(&window(400.0, 4.0, 20.0, &[("partner:a", 300.0)]));
        tracker.add(&window(200.0, 2.0, 10.0, &[("partner:b", 300.0)]));
        assert_eq!(tracker.close(28.0, None), None);
        tracker.add(&window(600.0, 0.0, 0.0, &[("partner:a", 600.0)]));
        let traffic = tracker.close(30.0, None).expect("a point");
        let [point] = traffic.history.as_slice() else {
            panic!("{traffic:?}")
        };
        assert_eq!(point.time.0.as_second(), 30);
        assert!((point.requests_per_second - 40.0).abs() < 1e-9, "{point:?}");
        assert!((point.error_rate - 0.005).abs() < 1e-9);
        assert!((point.rejected_rate - 0.025).abs() < 1e-9);
        assert_eq!(point.p50_latency_millis, Some(1.0));
        let p99 = point.p99_latency_millis.expect("p99");
        assert!(p99 > 9.0 && p99 <= 10.0, "{p99}");
        let callers: Vec<(&str, i64)> = traffic
            .callers
            .iter()
            .map(|c| (c.principal.as_str(), c.requests))
            .collect();
        assert_eq!(callers, [("partner:a", 900), ("partner:b", 300)]);
    }

    #[test]
    fn an_hour_is_kept_and_silence_is_no_point() {
        let mut tracker = Tracker::default();
        tracker.close(0.0, None);
        let mut traffic = None;
        for i in 1..=130 {
            tracker.add(&window(30.0, 0.0, 0.0, &[(&format!("c{}", i % 25), 1.0)]));
            traffic = tracker
                .close(f64::from(i) * 30.0, traffic.as_ref())
                .or(traffic);
        }
        let kept = traffic.expect("traffic");
        assert_eq!(kept.history.len(), POINTS);
        assert_eq!(kept.history[0].time.0.as_second(), 11 * 30);
        assert_eq!(kept.callers.len(), CALLERS);
        // Over the hour's 120 intervals, 20 names called 5 times and 5
        // names 4 times: the 20 busiest are reported.
        assert!(kept.callers.iter().all(|c| c.requests == 5), "{kept:?}");
        // An interval no server answered adds no point, and no zero.
        let quiet = tracker.close(131.0 * 30.0, Some(&kept)).expect("closed");
        assert_eq!(quiet.history.len(), POINTS);
        assert_eq!(quiet.history.last(), kept.history.last());
        // Idle servers that answered: a point of zero requests.
        tracker.add(&window(0.0, 0.0, 0.0, &[]));
        let idle = tracker.close(132.0 * 30.0, Some(&quiet)).expect("closed");
        let last = idle.history.last().expect("a point");
        assert_eq!((last.requests_per_second, last.error_rate), (0.0, 0.0));
        assert_eq!(last.p99_latency_millis, None);
    }
}
