//! Following a running trainer's output through the API server (as
//! `kubectl logs -f` does) and publishing its progress into the
//! TrainingJob's status: a bounded metrics history, the latest values and a
//! one-line summary. One task per running TrainingJob; the reconcile starts
//! it, and stops it when the run ends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aimass_crds::trainer::{CONTAINER, LINE_LIMIT};
use aimass_crds::v1alpha1::TrainingJob;
use futures::{AsyncBufRead, AsyncBufReadExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::LogParams;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::progress::{Progress, summary};
use crate::status::Writer;

/// The most bytes of a finished run's output read at once.
const READ_ALL_LIMIT: i64 = 4 * 1024 * 1024;

/// How often progress is written to status while lines arrive.
const PUBLISH_EVERY: Duration = Duration::from_secs(2);

/// The running followers, by TrainingJob uid.
#[derive(Default)]
pub struct Followers {
    running: Mutex<HashMap<String, (String, JoinHandle<()>)>>,
}

impl Followers {
    /// Makes sure `pod`'s output is followed for the TrainingJob `uid`
    /// (restarting the follower when the pod changed or the follower ended).
    pub fn ensure(&self, jobs: Api<TrainingJob>, pods: Api<Pod>, name: &str, uid: &str, pod: &str) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((followed, task)) = running.get(uid)
            && followed == pod
            && !task.is_finished()
        {
            return;
        }
        let task = tokio::spawn(follow(jobs, pods, name.to_owned(), pod.to_owned()));
        if let Some((_, old)) = running.insert(uid.to_owned(), (pod.to_owned(), task)) {
            old.abort();
        }
    }

    /// Stops following the TrainingJob `uid`.
    pub fn stop(&self, uid: &str) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, task)) = running.remove(uid) {
            task.abort();
        }
    }
}

/// Reads `pod`'s trainer output from its start until it ends, publishing
/// progress at most every [`PUBLISH_EVERY`].
async fn follow(jobs: Api<TrainingJob>, pods: Api<Pod>, name: String, pod: String) {
    let params = LogParams {
        container: Some(CONTAINER.into()),
        follow: true,
        ..LogParams::default()
    };
    let stream = match pods.log_stream(&pod, &params).await {
        Ok(stream) => stream,
        Err(error) => {
            debug!(%error, pod, "cannot follow the trainer's output yet");
            return;
        }
    };
    let mut lines = std::pin::pin!(bounded_lines(stream, LINE_LIMIT));
    let mut progress = Progress::default();
    let mut published = progress.clone();
    let mut last_publish = tokio::time::Instant::now();
    loop {
        let next = tokio::time::timeout(PUBLISH_EVERY, lines.next()).await;
        match next {
            Ok(Some(Ok(line))) => progress.read(&line, &Time(jiff::Timestamp::now())),
            Ok(Some(Err(error))) => {
                warn!(%error, pod, "reading the trainer's output failed");
                break;
            }
            Ok(None) => break,
            Err(_) => {}
        }
        if progress != published && last_publish.elapsed() >= PUBLISH_EVERY {
            publish(&jobs, &name, &progress).await;
            published = progress.clone();
            last_publish = tokio::time::Instant::now();
        }
    }
    if progress != published {
        publish(&jobs, &name, &progress).await;
    }
}

/// Reads `pod`'s whole trainer output at once, for a run that ended before
/// it could be followed. An unreadable output gives no progress.
pub async fn read_all(pods: &Api<Pod>, pod: &str) -> Progress {
    let params = LogParams {
        container: Some(CONTAINER.into()),
        tail_lines: Some(1000),
        limit_bytes: Some(READ_ALL_LIMIT),
        ..LogParams::default()
    };
    let mut progress = Progress::default();
    match pods.logs(pod, &params).await {
        Ok(text) => {
            let now = Time(jiff::Timestamp::now());
            for line in text.lines() {
                progress.read(line, &now);
            }
        }
        Err(error) => debug!(%error, pod, "cannot read the trainer's output"),
    }
    progress
}

/// The lines of `reader`, each cut at `limit` bytes (the rest of a longer
/// line is skipped without being held), lossily decoded.
fn bounded_lines<R>(reader: R, limit: usize) -> impl Stream<Item = std::io::Result<String>>
where
    R: AsyncBufRead + Unpin,
{
    futures::stream::unfold(reader, move |mut reader| async move {
        let mut line = Vec::new();
        loop {
            let chunk = match reader.fill_buf().await {
                Ok(chunk) => chunk,
                Err(e) => return Some((Err(e), reader)),
            };
            if chunk.is_empty() {
                return (!line.is_empty())
                    .then(|| (Ok(String::from_utf8_lossy(&line).into_owned()), reader));
            }
            let (part, used, done) = match chunk.iter().position(|b| *b == b'\n') {
                Some(end) => (&chunk[..end], end + 1, true),
                None => (chunk, chunk.len(), false),
            };
            let room = limit.saturating_sub(line.len());
            line.extend_from_slice(part.get(..room.min(part.len())).unwrap_or_default());
            reader.consume_unpin(used);
            if done {
                return Some((Ok(String::from_utf8_lossy(&line).into_owned()), reader));
            }
        }
    })
}

/// The status fields the follower writes while the trainer runs.
pub const FIELDS: &[&str] = &["metricsHistory", "metrics", "metricsSummary"];

/// The follower's status writer.
const WRITER: Writer = Writer {
    manager: "aimass-operator/trainingjob-progress",
    others: &[],
};

/// Writes the trainer's figures so far to the TrainingJob's status.
async fn publish(jobs: &Api<TrainingJob>, name: &str, progress: &Progress) {
    if progress.history.is_empty() {
        return;
    }
    let figures = serde_json::json!({
        "metricsHistory": progress.history,
        "metrics": progress.latest,
        "metricsSummary": summary(&progress.latest),
    });
    if let Err(error) = WRITER
        .write(jobs, name, &serde_json::Value::Null, &figures)
        .await
    {
        warn!(%error, name, "cannot publish training progress");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_line_without_end_is_read_in_bounded_memory() {
        let mut text = b"loss=0.5\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
        text.extend(b"\nauc=0.9\nlast");
        let lines: Vec<String> = bounded_lines(futures::io::Cursor::new(text), 1024)
            .map(|l| l.unwrap())
            .collect()
            .await;
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "loss=0.5");
        assert_eq!(lines[1].len(), 1024);
        assert_eq!(lines[2], "auc=0.9");
        assert_eq!(lines[3], "last");
    }
}
