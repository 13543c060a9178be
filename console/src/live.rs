//! Live updates: a Server-Sent Events stream per open page, fed by watches
//! made with the user's own token, re-checked with a SubjectAccessReview
//! every few seconds and closed as soon as the user may no longer read.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use aimass_crds::v1alpha1::{Model, ModelDeployment, ScoringJob, TrainingJob};
use futures::stream::{BoxStream, SelectAll};
use futures::{StreamExt, TryStreamExt};
use http_body_util::StreamBody;
use hyper::body::{Bytes, Frame};
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::cluster::Access;
use crate::error::Error;
use crate::http::{App, Body};
use crate::session::Session;

/// Changes are gathered this long before they are sent.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// A comment line keeps proxies from closing an idle stream.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// More changes than this in one batch are sent as one "everything".
const BATCH: usize = 50;

/// A change: kind, namespace and name.
type Change = (String, String, String);

/// The resources a stream watches, by kind.
const WATCHED: [&str; 4] = ["models", "trainingjobs", "scoringjobs", "modeldeployments"];

/// Opens the stream for `session` over the namespaces in `query`
/// (`ns=a,b`) that the user may read (all of them when none is named).
pub async fn stream(
    app: Arc<App>,
    session_id: String,
    session: Arc<Session>,
    query: Option<&str>,
) -> Result<hyper::Response<Body>, Error> {
    let asked: Vec<String> = query
        .into_iter()
        .flat_map(|q| url::form_urlencoded::parse(q.as_bytes()))
        .filter(|(k, _)| k == "ns")
        .flat_map(|(_, v)| v.split(',').map(str::to_owned).collect::<Vec<_>>())
        .filter(|n| !n.is_empty())
        .collect();
    let visible = app.cluster.visible(&session).await?;
    let namespaces: Vec<String> = if asked.is_empty() {
        visible
    } else {
        asked.into_iter().filter(|n| visible.contains(n)).collect()
    };
    if namespaces.is_empty() {
        return Err(Error::Forbidden(format!(
            "{} may not read any namespace asked for",
            session.user
        )));
    }
    let permit = Arc::clone(&app.streams)
        .try_acquire_owned()
        .map_err(|_| Error::Busy("the console has as many live streams as it keeps".into()))?;
    let mut watches: SelectAll<BoxStream<'static, Result<Change, watcher::Error>>> =
        SelectAll::new();
    let client = app.cluster.as_user(&session)?;
    for ns in &namespaces {
        for resource in WATCHED {
            let access = Access::aimass("watch", resource, ns);
            if !app.cluster.may(&session, &access).await? {
                continue;
            }
            watches.push(match resource {
                "models" => changes::<Model>(Api::namespaced(client.clone(), ns)),
                "trainingjobs" => changes::<TrainingJob>(Api::namespaced(client.clone(), ns)),
                "scoringjobs" => changes::<ScoringJob>(Api::namespaced(client.clone(), ns)),
                _ => changes::<ModelDeployment>(Api::namespaced(client.clone(), ns)),
            });
        }
    }
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let _permit = permit;
        follow(app, session_id, session, namespaces, watches, tx).await;
    });
    let body =
        StreamBody::new(ReceiverStream::new(rx).map(|b| Ok::<_, Infallible>(Frame::data(b))));
    let mut response = hyper::Response::new(http_body_util::BodyExt::boxed(body));
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    Ok(response)
}

/// The changes to objects of kind `K`, and one when each listing is done.
fn changes<K>(api: Api<K>) -> BoxStream<'static, Result<Change, watcher::Error>>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .try_filter_map(move |event| {
            let kind = kind.clone();
            async move {
                Ok(match event {
                    Event::Apply(o) | Event::Delete(o) => Some((
                        kind,
                        o.meta().namespace.clone().unwrap_or_default(),
                        o.meta().name.clone().unwrap_or_default(),
                    )),
                    // After each (re)listing the page may have missed changes
                    // made between its rendering and the watch: one refresh.
                    Event::InitDone => Some((kind, String::new(), "(synced)".to_owned())),
                    Event::Init | Event::InitApply(_) => None,
                })
            }
        })
        .boxed()
}

/// Sends the changes until the browser goes, the session ends, or the
/// user may no longer list models in one of `namespaces`.
async fn follow(
    app: Arc<App>,
    session_id: String,
    session: Arc<Session>,
    namespaces: Vec<String>,
    mut watches: SelectAll<BoxStream<'static, Result<Change, watcher::Error>>>,
    tx: mpsc::Sender<Bytes>,
) {
    let mut recheck = tokio::time::interval(app.config.recheck());
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut pending: BTreeSet<Change> = BTreeSet::new();
    let flush = tokio::time::sleep(Duration::MAX);
    tokio::pin!(flush);
    if tx
        .send(Bytes::from_static(b"retry: 3000\n\n"))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            change = watches.next(), if !watches.is_empty() => match change {
                Some(Ok(change)) => {
                    if pending.is_empty() {
                        flush.as_mut().reset(tokio::time::Instant::now() + DEBOUNCE);
                    }
                    pending.insert(change);
                }
                Some(Err(e)) => tracing::debug!(user = session.user, error = %e, "a watch failed; retrying"),
                None => {}
            },
            () = &mut flush, if !pending.is_empty() => {
                let batch = std::mem::take(&mut pending);
                if tx.send(Bytes::from(render(&batch))).await.is_err() {
                    return;
                }
                flush.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(86_400));
            }
            _ = recheck.tick() => {
                if let Some(why) = revoked(&app, &session_id, &session, &namespaces).await {
                    let _ = tx.send(Bytes::from(format!("event: denied\ndata: {why}\n\n"))).await;
                    tracing::info!(user = session.user, why, "live stream closed");
                    return;
                }
            }
            _ = heartbeat.tick() => {
                if tx.send(Bytes::from_static(b": ping\n\n")).await.is_err() {
                    return;
                }
            }
            () = tx.closed() => return,
        }
    }
}

/// Why the stream must end, if it must.
async fn revoked(
    app: &App,
    session_id: &str,
    session: &Session,
    namespaces: &[String],
) -> Option<String> {
    if app.sessions.get(session_id).is_none() {
        return Some("signed out".into());
    }
    for namespace in namespaces {
        let access = Access::aimass("list", "models", namespace);
        match app.cluster.may(session, &access).await {
            Ok(true) => {}
            Ok(false) => {
                return Some(format!(
                    "{} may no longer read namespace {namespace}",
                    session.user
                ));
            }
            // An API server that cannot answer is not a revocation; the
            // next check decides.
            Err(e) => tracing::debug!(error = %e, "cannot re-check a stream's access"),
        }
    }
    None
}

/// One SSE event per change, or one "everything" for a large batch.
fn render(batch: &BTreeSet<Change>) -> String {
    if batch.len() > BATCH {
        return "event: change\ndata: *\n\n".into();
    }
    batch
        .iter()
        .map(|(kind, ns, name)| format!("event: change\ndata: {kind} {ns} {name}\n\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_sse_events_and_a_flood_is_one() {
        let batch: BTreeSet<Change> =
            [("Model".to_owned(), "a".to_owned(), "fraud".to_owned())].into();
        assert_eq!(render(&batch), "event: change\ndata: Model a fraud\n\n");
        let flood: BTreeSet<Change> = (0..=BATCH)
            .map(|i| ("Model".to_owned(), "a".to_owned(), format!("m{i}")))
            .collect();
        assert_eq!(render(&flood), "event: change\ndata: *\n\n");
    }
}
