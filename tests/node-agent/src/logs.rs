//! Container logs: captured line by line with a timestamp and stream, kept
//! per container attempt, and served as the kubelet serves them (tail,
//! timestamps, previous attempt, follow) for `kubectl logs` and the operator.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};

use crate::error::{Error, Result};

/// Pods' logs by namespace and name.
type PodLogMap = HashMap<(String, String), Arc<PodLogs>>;

/// Where each pod's logs are, by namespace and name.
#[derive(Clone, Default)]
pub struct LogRegistry {
    pods: Arc<Mutex<PodLogMap>>,
}

impl LogRegistry {
    /// Registers a pod's logs (replacing an earlier pod of the same name).
    pub fn insert(&self, namespace: &str, name: &str, logs: Arc<PodLogs>) {
        self.lock()
            .insert((namespace.to_owned(), name.to_owned()), logs);
    }

    /// Forgets a pod, if `logs` is still the one registered under its name.
    pub fn remove(&self, namespace: &str, name: &str, logs: &Arc<PodLogs>) {
        let mut pods = self.lock();
        let key = (namespace.to_owned(), name.to_owned());
        if pods.get(&key).is_some_and(|l| Arc::ptr_eq(l, logs)) {
            pods.remove(&key);
        }
    }

    /// A pod's logs.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<PodLogs>> {
        self.lock()
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PodLogMap> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The state of one container's logs.
#[derive(Clone, Copy, Debug, Default)]
struct Attempts {
    /// Number of the latest attempt (0 for the first run).
    current: u32,
    /// Whether that attempt is still running.
    running: bool,
}

/// One pod's log files.
pub struct PodLogs {
    dir: PathBuf,
    containers: Mutex<HashMap<String, Attempts>>,
}

/// Options of a log request, as in the kubelet's `containerLogs` query.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// Keep streaming until the container stops.
    pub follow: bool,
    /// Logs of the previous attempt.
    pub previous: bool,
    /// Only the last this many lines.
    pub tail_lines: Option<usize>,
    /// Prefix lines with their RFC 3339 timestamp.
    pub timestamps: bool,
    /// Only lines newer than this many seconds.
    pub since_seconds: Option<i64>,
    /// At most this many bytes.
    pub limit_bytes: Option<usize>,
}

impl PodLogs {
    /// Logs kept under `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            containers: Mutex::new(HashMap::new()),
        }
    }

    fn file(&self, container: &str, attempt: u32) -> PathBuf {
        self.dir.join(container).join(format!("{attempt}.log"))
    }

    fn attempts(&self, container: &str) -> Option<Attempts> {
        self.containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(container)
            .copied()
    }

    fn set(&self, container: &str, attempts: Attempts) {
        self.containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(container.to_owned(), attempts);
    }

    /// Starts capturing attempt `attempt` of `container` from its output
    /// streams; the returned task ends when both streams close.
    pub fn capture(
        self: &Arc<Self>,
        container: &str,
        attempt: u32,
        stdout: impl AsyncRead + Unpin + Send + 'static,
        stderr: impl AsyncRead + Unpin + Send + 'static,
    ) -> Result<tokio::task::JoinHandle<()>> {
        let path = self.file(container, attempt);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(Error::io(format!("creating {}", parent.display())))?;
        }
        let file = std::fs::File::create(&path)
            .map_err(Error::io(format!("creating {}", path.display())))?;
        let file = Arc::new(tokio::sync::Mutex::new(tokio::fs::File::from_std(file)));
        self.set(
            container,
            Attempts {
                current: attempt,
                running: true,
            },
        );
        let logs = Arc::clone(self);
        let name = container.to_owned();
        Ok(tokio::spawn(async move {
            let out = tokio::spawn(copy_lines(stdout, "stdout", Arc::clone(&file)));
            let err = tokio::spawn(copy_lines(stderr, "stderr", file));
            let _ = out.await;
            let _ = err.await;
            logs.set(
                &name,
                Attempts {
                    current: attempt,
                    running: false,
                },
            );
        }))
    }

    /// The log lines a request asks for, and whether to keep following.
    pub async fn read(
        &self,
        container: &str,
        options: &LogOptions,
    ) -> Result<(String, Option<Follow>)> {
        let attempts = self.attempts(container).ok_or_else(|| Error::Unsupported {
            reason: "ContainerNotFound",
            message: format!("container {container:?} has not started"),
        })?;
        let attempt = if options.previous {
            attempts
                .current
                .checked_sub(1)
                .ok_or_else(|| Error::Unsupported {
                    reason: "PreviousNotFound",
                    message: format!("previous terminated container {container:?} not found"),
                })?
        } else {
            attempts.current
        };
        let path = self.file(container, attempt);
        let raw = tokio::fs::read(&path).await.unwrap_or_default();
        let complete = raw.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
        let since = options
            .since_seconds
            .map(|s| Timestamp::now() - Duration::from_secs(s.max(0).unsigned_abs()));
        let lines: Vec<&str> = std::str::from_utf8(&raw[..complete])
            .unwrap_or_default()
            .lines()
            .filter(|l| since.is_none_or(|since| line_time(l).is_some_and(|t| t >= since)))
            .collect();
        let start = options
            .tail_lines
            .map_or(0, |n| lines.len().saturating_sub(n));
        let mut text: String = lines[start..]
            .iter()
            .map(|l| render(l, options.timestamps))
            .collect();
        if let Some(limit) = options.limit_bytes {
            text.truncate(floor_char_boundary(&text, limit));
        }
        let follow = (options.follow && !options.previous).then(|| Follow {
            path,
            offset: complete as u64,
            container: container.to_owned(),
            attempt,
            timestamps: options.timestamps,
        });
        Ok((text, follow))
    }

    /// New complete lines for a follower, or `None` once the attempt ended and
    /// everything was sent.
    pub async fn next(&self, follow: &mut Follow) -> Option<String> {
        loop {
            let running = self
                .attempts(&follow.container)
                .is_some_and(|a| a.current == follow.attempt && a.running);
            let raw = tokio::fs::read(&follow.path).await.unwrap_or_default();
            let new = raw.get(follow.offset as usize..).unwrap_or_default();
            let complete = new.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            if complete > 0 {
                follow.offset += complete as u64;
                let text = std::str::from_utf8(&new[..complete]).unwrap_or_default();
                return Some(text.lines().map(|l| render(l, follow.timestamps)).collect());
            }
            if !running {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A follower's position in a log file.
#[derive(Debug)]
pub struct Follow {
    path: PathBuf,
    offset: u64,
    container: String,
    attempt: u32,
    timestamps: bool,
}

async fn copy_lines(
    stream: impl AsyncRead + Unpin,
    name: &'static str,
    file: Arc<tokio::sync::Mutex<tokio::fs::File>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let record = format!("{} {name} {line}\n", Timestamp::now());
        let mut file = file.lock().await;
        // tokio's File hands writes to a blocking thread; flushing waits for
        // the write to land, so a reader never misses a container's last lines.
        if file.write_all(record.as_bytes()).await.is_err() || file.flush().await.is_err() {
            return;
        }
    }
}

/// A stored line `<timestamp> <stream> <text>` as the client asked for it.
fn render(line: &str, timestamps: bool) -> String {
    let mut parts = line.splitn(3, ' ');
    let (Some(ts), Some(_stream)) = (parts.next(), parts.next()) else {
        return format!("{line}\n");
    };
    let text = parts.next().unwrap_or_default();
    if timestamps {
        format!("{ts} {text}\n")
    } else {
        format!("{text}\n")
    }
}

fn line_time(line: &str) -> Option<Timestamp> {
    line.split(' ').next()?.parse().ok()
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(logs: &PodLogs, options: LogOptions) -> Result<(String, Option<Follow>)> {
        logs.read("main", &options).await
    }

    #[tokio::test]
    async fn captures_and_serves_like_a_kubelet() {
        let dir = std::env::temp_dir().join(format!("aimass-logs-test-{}", std::process::id()));
        let logs = Arc::new(PodLogs::new(dir.clone()));
        let stdout: &[u8] = b"one\ntwo\nthree\n";
        let stderr: &[u8] = b"oops\n";
        logs.capture("main", 0, stdout, stderr)
            .unwrap()
            .await
            .unwrap();

        let (all, follow) = read(&logs, LogOptions::default()).await.unwrap();
        assert!(follow.is_none());
        let mut lines: Vec<&str> = all.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["one", "oops", "three", "two"]);

        let tail = LogOptions {
            tail_lines: Some(1),
            ..Default::default()
        };
        assert_eq!(read(&logs, tail).await.unwrap().0.lines().count(), 1);

        let stamped = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        let (stamped, _) = read(&logs, stamped).await.unwrap();
        let stamp_ok = |l: &str| l.split(' ').next().unwrap().parse::<Timestamp>().is_ok();
        assert!(stamped.lines().all(stamp_ok), "{stamped}");

        let previous = || LogOptions {
            previous: true,
            ..Default::default()
        };
        let err = read(&logs, previous()).await.unwrap_err();
        assert!(
            err.to_string().contains("previous terminated container"),
            "{err}"
        );

        let second: &[u8] = b"restarted\n";
        logs.capture("main", 1, second, &b""[..])
            .unwrap()
            .await
            .unwrap();
        assert_eq!(read(&logs, previous()).await.unwrap().0.lines().count(), 4);
        let follow = LogOptions {
            follow: true,
            ..Default::default()
        };
        let (current, mut follow) = read(&logs, follow).await.unwrap();
        assert_eq!(current, "restarted\n");
        // The attempt has ended, so following ends at once.
        assert!(logs.next(follow.as_mut().unwrap()).await.is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
