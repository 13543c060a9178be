//! Reading the inference servers' `/metrics`: the request counters and the
//! latency histogram of the metrics contract, summed over a set of pods, and
//! the difference between two readings as error rate and p99 latency. A pod
//! that does not answer in time is left out ("no data"), never read as zero.

use std::collections::BTreeMap;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

/// The most caller names kept of one server's metrics.
pub const CALLER_NAMES: usize = 256;
/// A longer caller name is not kept.
pub const CALLER_NAME_BYTES: usize = 256;

/// How long one scrape may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Counters of one or more servers at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Inference requests answered, any status.
    pub requests: f64,
    /// Of those, answered with a 5xx status.
    pub errors: f64,
    /// Of those, refused with a 4xx status.
    pub rejected: f64,
    /// Calls by the user name they authenticated as (at most
    /// [`CALLER_NAMES`] names, each at most [`CALLER_NAME_BYTES`] long: the
    /// server may be a tenant's).
    pub callers: BTreeMap<String, f64>,
    /// Seconds spent answering requests (the latency histogram's sum): its
    /// rate is the time-averaged number of requests in flight.
    pub busy_seconds: f64,
    /// Cumulative latency histogram: upper bound in seconds to count.
    pub latency: BTreeMap<OrderedF64, f64>,
    /// How many servers answered.
    pub servers: usize,
    /// CPU seconds the server processes used.
    pub cpu_seconds: f64,
    /// Resident memory of the server processes, in bytes.
    pub memory_bytes: f64,
    /// The shadows' comparisons, by the version shadowed.
    pub shadow: BTreeMap<i64, ShadowCounts>,
}

/// What a shadow compared (`aimass_shadow_*`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShadowCounts {
    /// Requests it scored.
    pub requests: f64,
    /// Rows compared.
    pub rows: f64,
    /// Rows whose labels agreed.
    pub agreements: f64,
    /// Whether labels were compared (the models return them).
    pub labelled: bool,
    /// Sampled requests it did not score.
    pub dropped: f64,
    /// Rows whose score differences are at most each bound (cumulative).
    pub differences: BTreeMap<OrderedF64, f64>,
    /// The sum of the score differences, and how many there were.
    pub difference_sum: f64,
    /// Rows with a score difference.
    pub difference_count: f64,
}

impl ShadowCounts {
    fn add(&mut self, other: &ShadowCounts) {
        self.requests += other.requests;
        self.rows += other.rows;
        self.agreements += other.agreements;
        self.labelled |= other.labelled;
        self.dropped += other.dropped;
        for (bound, count) in &other.differences {
            *self.differences.entry(*bound).or_default() += count;
        }
        self.difference_sum += other.difference_sum;
        self.difference_count += other.difference_count;
    }
}

/// An `f64` that sorts, for histogram bounds.
#[derive(Clone, Copy, Debug)]
pub struct OrderedF64(pub f64);
impl PartialEq for OrderedF64 {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for OrderedF64 {}
impl PartialOrd for OrderedF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrderedF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// What happened between two snapshots.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    /// Seconds spent answering requests in the window.
    pub busy_seconds: f64,
    /// Requests answered in the window.
    pub requests: f64,
    /// Server errors in the window.
    pub errors: f64,
    /// Refusals (4xx) in the window.
    pub rejected: f64,
    /// The latency histogram of the window: cumulative (upper bound in
    /// seconds, count).
    pub latency: Vec<(f64, f64)>,
    /// Calls in the window by caller.
    pub callers: BTreeMap<String, f64>,
    /// 99th-percentile latency in the window, in seconds, when there were
    /// requests.
    pub p99_seconds: Option<f64>,
}

impl Window {
    /// Errors per request, 0 without requests.
    pub fn error_rate(&self) -> f64 {
        if self.requests > 0.0 {
            self.errors / self.requests
        } else {
            0.0
        }
    }
}

impl Snapshot {
    /// Parses one server's metrics text.
    pub fn parse(text: &str) -> Option<Self> {
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).ok()?;
        let mut snapshot = Snapshot {
            servers: 1,
            ..Snapshot::default()
        };
        let mut shadow = ShadowCounts::default();
        let mut shadowed = None;
        for sample in scrape.samples {
            let number = match &sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => Some(*v),
                _ => None,
            };
            match (sample.metric.as_str(), number) {
                ("aimass_shadow_version", Some(v)) => shadowed = Some(v as i64),
                ("aimass_shadow_requests_total", Some(v)) => shadow.requests += v,
                ("aimass_shadow_rows_total", Some(v)) => shadow.rows += v,
                ("aimass_shadow_label_agreements_total", Some(v)) => {
                    shadow.agreements += v;
                    shadow.labelled = true;
                }
                ("aimass_shadow_dropped_total", Some(v)) => shadow.dropped += v,
                ("aimass_shadow_score_difference_sum", Some(v)) => shadow.difference_sum += v,
                ("aimass_shadow_score_difference_count", Some(v)) => {
                    shadow.difference_count += v;
                }
                _ => {}
            }
            match (sample.metric.as_str(), &sample.value) {
                ("aimass_shadow_score_difference", prometheus_parse::Value::Histogram(buckets)) => {
                    for bucket in buckets {
                        *shadow
                            .differences
                            .entry(OrderedF64(bucket.less_than))
                            .or_default() += bucket.count;
                    }
                }
                (
                    "aimass_inference_requests_total",
                    prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v),
                ) => {
                    snapshot.requests += v;
                    match sample.labels.get("code").and_then(|c| c.chars().next()) {
                        Some('5') => snapshot.errors += v,
                        Some('4') => snapshot.rejected += v,
                        _ => {}
                    }
                }
                (
                    "aimass_inference_caller_requests_total",
                    prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v),
                ) => {
                    if let Some(name) = sample.labels.get("principal")
                        && name.len() <= CALLER_NAME_BYTES
                        && (snapshot.callers.len() < CALLER_NAMES
                            || snapshot.callers.contains_key(name))
                    {
                        *snapshot.callers.entry(name.to_owned()).or_default() += v;
                    }
                }
                (
                    "process_cpu_seconds_total",
                    prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v),
                ) => {
                    snapshot.cpu_seconds += v;
                }
                (
                    "process_resident_memory_bytes",
                    prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v),
                ) => {
                    snapshot.memory_bytes += v;
                }
                (
                    "aimass_inference_request_duration_seconds_sum",
                    prometheus_parse::Value::Untyped(v) | prometheus_parse::Value::Counter(v),
                ) => {
                    snapshot.busy_seconds += v;
                }
                (
                    "aimass_inference_request_duration_seconds",
                    prometheus_parse::Value::Histogram(buckets),
                ) => {
                    for bucket in buckets {
                        *snapshot
                            .latency
                            .entry(OrderedF64(bucket.less_than))
                            .or_default() += bucket.count;
                    }
                }
                _ => {}
            }
        }
        if let Some(version) = shadowed {
            snapshot.shadow.insert(version, shadow);
        }
        Some(snapshot)
    }

    /// The sum of several servers' snapshots.
    pub fn sum(snapshots: impl IntoIterator<Item = Snapshot>) -> Self {
        snapshots
            .into_iter()
            .fold(Snapshot::default(), |mut total, s| {
                total.requests += s.requests;
                total.errors += s.errors;
                total.rejected += s.rejected;
                for (name, count) in s.callers {
                    *total.callers.entry(name).or_default() += count;
                }
                total.busy_seconds += s.busy_seconds;
                total.cpu_seconds += s.cpu_seconds;
                total.memory_bytes += s.memory_bytes;
                total.servers += s.servers;
                for (bound, count) in s.latency {
                    *total.latency.entry(bound).or_default() += count;
                }
                for (version, counts) in &s.shadow {
                    total.shadow.entry(*version).or_default().add(counts);
                }
                total
            })
    }

    /// What happened since `earlier` (counters that went down, as after a
    /// restart, count from zero).
    pub fn since(&self, earlier: &Snapshot) -> Window {
        let delta = |now: f64, then: f64| if now >= then { now - then } else { now };
        let requests = delta(self.requests, earlier.requests);
        let buckets: Vec<(f64, f64)> = self
            .latency
            .iter()
            .map(|(bound, count)| {
                (
                    bound.0,
                    delta(*count, earlier.latency.get(bound).copied().unwrap_or(0.0)),
                )
            })
            .collect();
        let callers = self
            .callers
            .iter()
            .map(|(name, count)| {
                let before = earlier.callers.get(name).copied().unwrap_or(0.0);
                (name.clone(), delta(*count, before))
            })
            .filter(|(_, count)| *count > 0.0)
            .collect();
        Window {
            busy_seconds: delta(self.busy_seconds, earlier.busy_seconds),
            requests,
            errors: delta(self.errors, earlier.errors),
            rejected: delta(self.rejected, earlier.rejected),
            p99_seconds: quantile(&buckets, 0.99),
            latency: buckets,
            callers,
        }
    }
}

/// The `q` quantile of a cumulative histogram, interpolated inside its
/// bucket as Prometheus' `histogram_quantile` does.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let inside = count - lower.1;
            let fraction = if inside > 0.0 {
                (rank - lower.1) / inside
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * fraction);
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

/// The most bytes read of a server's answer (`/metrics`,
/// `/audit/checkpoint`): the server image may be a tenant's.
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Reads `http://<ip>:<port>/metrics`; `None` when the server does not
/// answer in time or answers something unreadable.
pub async fn scrape(ip: &str, port: i32) -> Option<Snapshot> {
    let body = get(&format!("http://{ip}:{port}/metrics")).await?;
    Snapshot::parse(&String::from_utf8_lossy(&body))
}

async fn get(url: &str) -> Option<Bytes> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let uri: hyper::Uri = url.parse().ok()?;
    let response = tokio::time::timeout(TIMEOUT, client.get(uri))
        .await
        .ok()?
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = http_body_util::Limited::new(response.into_body(), BODY_LIMIT);
    let body = tokio::time::timeout(TIMEOUT, body.collect())
        .await
        .ok()?
        .ok()?;
    Some(body.to_bytes())
}

/// GETs `url` and parses the JSON answer; `None` on any failure.
pub async fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> Option<T> {
    serde_json::from_slice(&get(url).await?).ok()
}

/// POSTs `body` as JSON with `headers`; whether the answer was a success.
pub async fn post_json(url: &str, body: &serde_json::Value, headers: &[(&str, String)]) -> bool {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<Bytes>>();
    let mut request = hyper::Request::post(url).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let Ok(request) = request.body(http_body_util::Full::new(Bytes::from(body.to_string()))) else {
        return false;
    };
    matches!(tokio::time::timeout(TIMEOUT, client.request(request)).await, Ok(Ok(r)) if r.status().is_success())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP aimass_inference_requests_total Inference requests by status code.
# TYPE aimass_inference_requests_total counter
aimass_inference_requests_total{code="200",model="m",version="1"} 90
aimass_inference_requests_total{code="400",model="m",version="1"} 5
aimass_inference_requests_total{code="500",model="m",version="1"} 5
# HELP aimass_inference_request_duration_seconds Latency.
# TYPE aimass_inference_request_duration_seconds histogram
aimass_inference_request_duration_seconds_bucket{model="m",version="1",le="0.001"} 50
aimass_inference_request_duration_seconds_bucket{model="m",version="1",le="0.01"} 99
aimass_inference_request_duration_seconds_bucket{model="m",version="1",le="0.1"} 100
aimass_inference_request_duration_seconds_bucket{model="m",version="1",le="+Inf"} 100
aimass_inference_request_duration_seconds_sum{model="m",version="1"} 0.4
aimass_inference_request_duration_seconds_count{model="m",version="1"} 100
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 2.5
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 52428800
"#;

    #[test]
    fn reads_requests_errors_and_latency() {
        let s = Snapshot::parse(TEXT).unwrap();
        assert_eq!((s.requests, s.errors, s.servers), (100.0, 5.0, 1));
        assert!((s.busy_seconds - 0.4).abs() < 1e-9);
        assert_eq!((s.cpu_seconds, s.memory_bytes), (2.5, 52_428_800.0));
        let window = s.since(&Snapshot::default());
        assert!((window.error_rate() - 0.05).abs() < 1e-9);
        let p99 = window.p99_seconds.unwrap();
        assert!((p99 - 0.01).abs() < 1e-9, "{p99}");
    }

    #[test]
    fn windows_are_differences_and_sums_add_servers() {
        let one = Snapshot::parse(TEXT).unwrap();
        let two = Snapshot::sum([one.clone(), one.clone()]);
        assert_eq!((two.requests, two.servers), (200.0, 2));
        let window = two.since(&one);
        assert_eq!((window.requests, window.errors), (100.0, 5.0));
        assert_eq!(
            Snapshot::default().since(&Snapshot::default()).p99_seconds,
            None
        );
    }

    #[test]
    fn refusals_and_callers_are_read_and_a_lying_server_stays_bounded() {
        let text = format!(
            "{TEXT}aimass_inference_caller_requests_total{{principal=\"partner:a\"}} 60\naimass_inference_caller_requests_total{{principal=\"partner:b\"}} 40\n"
        );
        let earlier = Snapshot::parse(&text).unwrap();
        assert_eq!(earlier.rejected, 5.0);
        assert_eq!(earlier.callers.get("partner:a"), Some(&60.0));
        let later = Snapshot::parse(&text.replace("} 60", "} 75")).unwrap();
        let window = later.since(&earlier);
        // Only the callers that called in the window.
        assert_eq!(
            window.callers.into_iter().collect::<Vec<_>>(),
            [("partner:a".to_owned(), 15.0)]
        );
        // A server that invents 10,000 callers and one huge name.
        let mut lying = String::from(TEXT);
        for i in 0..10_000 {
            lying.push_str(&format!(
                "aimass_inference_caller_requests_total{{principal=\"p{i}\"}} 1\n"
            ));
        }
        lying.push_str(&format!(
            "aimass_inference_caller_requests_total{{principal=\"{}\"}} 1\n",
            "x".repeat(100_000)
        ));
        let s = Snapshot::parse(&lying).unwrap();
        assert_eq!(s.callers.len(), CALLER_NAMES);
        assert!(s.callers.keys().all(|k| k.len() <= CALLER_NAME_BYTES));
        assert_eq!(s.requests, 100.0);
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let buckets = [(0.1, 50.0), (0.2, 100.0), (f64::INFINITY, 100.0)];
        assert!((quantile(&buckets, 0.5).unwrap() - 0.1).abs() < 1e-9);
        assert!((quantile(&buckets, 0.75).unwrap() - 0.15).abs() < 1e-9);
        assert_eq!(quantile(&[(f64::INFINITY, 0.0)], 0.99), None);
    }

    #[tokio::test]
    async fn a_huge_answer_is_read_no_further_than_the_limit() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let head = "HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n";
                    let _ = stream.write_all(head.as_bytes()).await;
                    let chunk = vec![b'#'; 64 * 1024];
                    // Endless, as far as the reader can tell.
                    while stream.write_all(&chunk).await.is_ok() {}
                });
            }
        });
        let started = std::time::Instant::now();
        assert!(get(&format!("http://{addr}/metrics")).await.is_none());
        assert!(started.elapsed() < TIMEOUT * 2, "{:?}", started.elapsed());
    }
}
