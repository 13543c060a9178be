//! The console's HTTP: routes, sessions and their cookie, the same-origin
//! and CSRF checks on every change, and the security headers on every
//! answer. Errors become pages in one place, [`App::failure`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use minijinja::{Value, context};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::error::Error;
use crate::pages::{self, Page, Viewer, actions};
use crate::session::{self, Session, Sessions};
use crate::views::Views;

/// A response body: a whole page or a stream.
pub type Body = BoxBody<Bytes, Infallible>;

/// Forms are small; anything larger is refused.
const FORM_LIMIT: usize = 32 * 1024;

/// How long a client gets to send its headers or its form.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many connections are open at once.
const CONNECTIONS: usize = 1024;

/// At most this many live streams are open at once.
const STREAMS: usize = 512;

/// The header asking for only the page's `main` block.
const FRAGMENT_HEADER: &str = "x-fragment";

const CSS: &str = include_str!("../assets/console.css");
const JS: &str = include_str!("../assets/console.js");

/// No inline script or style, nothing from anywhere else.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What every request shares.
pub struct App {
    /// The flags.
    pub config: Config,
    /// The API server.
    pub cluster: Cluster,
    /// Signed-in users.
    pub sessions: Sessions,
    /// Templates.
    pub views: Views,
    /// Permits for live streams.
    pub streams: Arc<Semaphore>,
}

impl App {
    /// The console with `config` over `cluster`.
    pub fn new(config: Config, cluster: Cluster) -> Result<Self, Error> {
        Ok(Self {
            sessions: Sessions::new(config.session_ttl()),
            views: Views::new()?,
            streams: Arc::new(Semaphore::new(STREAMS)),
            config,
            cluster,
        })
    }
}

/// Serves `listener` until the process ends.
pub async fn serve(app: Arc<App>, listener: TcpListener) {
    let connections = Arc::new(Semaphore::new(CONNECTIONS));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            continue;
        };
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| handle(Arc::clone(&app), req));
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .max_buf_size(64 * 1024);
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}

/// Answers one request; never fails.
async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    // A page asked for without a session goes to sign-in; a stream gets 401.
    let page_request = req.method() == Method::GET && req.uri().path() != "/events";
    let fragment = req.headers().contains_key(FRAGMENT_HEADER);
    let mut response = match route(&app, req).await {
        Ok(response) => response,
        Err(e) => app.failure(e, page_request, fragment),
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        // Not no-referrer: under it browsers send `Origin: null` with forms.
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cache-control", "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    Ok(response)
}

/// The signed-in session a request carries, with its id.
fn session_of(app: &App, headers: &HeaderMap) -> Option<(String, Arc<Session>)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::cookie_value)
        .and_then(|id| app.sessions.get(id).map(|s| (id.to_owned(), s)))
}

async fn route(app: &Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let session_id = session_of(app, req.headers()).map(|(id, _)| id);
    let answer = dispatch(app, req).await;
    // The API server no longer takes the session's token (it expired or
    // was revoked): the session ends, and the browser signs in again.
    if matches!(answer, Err(Error::Unauthenticated))
        && let Some(id) = session_id
    {
        app.sessions.remove(&id);
    }
    answer
}

async fn dispatch(app: &Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let method = req.method().clone();
    let signed_in = session_of(app, req.headers());
    let fragment = req.headers().contains_key(FRAGMENT_HEADER);
    match (&method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) => Ok(text(StatusCode::OK, "text/plain", "ok")),
        (&Method::GET, ["static", "console.css"]) => Ok(text(StatusCode::OK, "text/css", CSS)),
        (&Method::GET, ["static", "console.js"]) => Ok(text(StatusCode::OK, "text/javascript", JS)),
        (&Method::GET, ["login"]) => match signed_in {
            Some(_) => Ok(redirect("/")),
            None => app.login_page(None, StatusCode::OK),
        },
        (&Method::POST, ["login"]) => {
            same_origin(req.headers())?;
            let form = read_form(req).await?;
            let token = form.get("token").map(|t| t.trim()).unwrap_or_default();
            match app.cluster.review(token).await {
                Ok(who) => {
                    let (id, session) = app.sessions.create(who, token.to_owned())?;
                    tracing::info!(user = session.user, "signed in");
                    let mut response = redirect("/");
                    set_cookie(
                        &mut response,
                        &session::set_cookie(
                            &id,
                            app.config.secure_cookies,
                            app.config.session_ttl(),
                        ),
                    );
                    Ok(response)
                }
                Err(Error::Forbidden(message)) => {
                    app.login_page(Some(message), StatusCode::UNAUTHORIZED)
                }
                Err(e) => Err(e),
            }
        }
        (&Method::GET, ["events"]) => {
            let (id, session) = signed_in.ok_or(Error::Unauthenticated)?;
            crate::live::stream(Arc::clone(app), id, session, query.as_deref()).await
        }
        (&Method::POST, rest) => {
            let (id, session) = signed_in.ok_or(Error::Unauthenticated)?;
            same_origin(req.headers())?;
            let form = read_form(req).await?;
            if !session::csrf_matches(&session, form.get("csrf").map_or("", String::as_str)) {
                return Err(Error::Forbidden(
                    "the form is stale or not from this console; reload the page".into(),
                ));
            }
            let viewer = Viewer {
                cluster: &app.cluster,
                session: &session,
            };
            let back = match rest {
                ["logout"] => {
                    app.sessions.remove(&id);
                    let mut response = redirect("/login");
                    set_cookie(
                        &mut response,
                        &session::clear_cookie(app.config.secure_cookies),
                    );
                    return Ok(response);
                }
                ["ns", ns, "models", model, "aliases"] => {
                    actions::pin(viewer, ns, model, &form).await?
                }
                ["ns", ns, "models", model, "schedule"] => {
                    actions::schedule(viewer, ns, model, &form).await?
                }
                ["ns", ns, "models", model, "approvals"] => {
                    actions::approve(viewer, ns, model, &form).await?
                }
                _ => return Err(Error::NotFound("no such action".into())),
            };
            Ok(redirect(&back))
        }
        (&Method::GET, rest) => {
            let Some((_, session)) = signed_in else {
                return Ok(redirect("/login"));
            };
            let viewer = Viewer {
                cluster: &app.cluster,
                session: &session,
            };
            let page = match rest {
                [] => pages::overview(viewer).await?,
                ["models"] => pages::models(viewer).await?,
                ["trainingjobs"] => pages::training_jobs(viewer).await?,
                ["scoringjobs"] => pages::scoring_jobs(viewer).await?,
                ["deployments"] => pages::deployments(viewer).await?,
                ["decisions"] => pages::decisions(viewer).await?,
                ["approvals"] => pages::approvals(viewer).await?,
                ["ns", ns, "models", m, "compare"] => {
                    pages::compare(viewer, ns, m, query.as_deref()).await?
                }
                ["ns", ns, "models", m] => pages::model(viewer, ns, m).await?,
                ["ns", ns, "models", m, "versions", v] => pages::version(viewer, ns, m, v).await?,
                ["ns", ns, "trainingjobs", t] => pages::training_job(viewer, ns, t).await?,
                ["ns", ns, "scoringjobs", s] => pages::scoring_job(viewer, ns, s).await?,
                ["ns", ns, "deployments", d] => pages::deployment(viewer, ns, d).await?,
                ["ns", ns, kind, name, "yaml"] => pages::yaml(viewer, ns, kind, name).await?,
                _ => return Err(Error::NotFound("no such page".into())),
            };
            app.page(&session, page, fragment)
        }
        _ => Err(Error::BadRequest(format!("{method} is not answered here"))),
    }
}

impl App {
    /// Renders `page` for `session`.
    fn page(&self, session: &Session, page: Page, fragment: bool) -> Result<Response<Body>, Error> {
        let context = context! {
            user => session.user.clone(),
            csrf => session.csrf.clone(),
            nav => page.nav,
            scope => page.scope.join(","),
            ..page.context
        };
        let html = self.views.render(page.template, context, fragment)?;
        Ok(text(StatusCode::OK, "text/html; charset=utf-8", html))
    }

    fn login_page(
        &self,
        message: Option<String>,
        status: StatusCode,
    ) -> Result<Response<Body>, Error> {
        let html = self.views.render("login.html", context! {message}, false)?;
        Ok(text(status, "text/html; charset=utf-8", html))
    }

    /// The one place an error becomes a response: a page asked for without
    /// a valid session goes to sign-in, a stream or a change gets its
    /// status, and the message names no object the user may not see.
    fn failure(&self, e: Error, page_request: bool, fragment: bool) -> Response<Body> {
        let status = e.status();
        if status.is_server_error() {
            tracing::warn!(category = e.category(), error = %e, "request failed");
        }
        if matches!(e, Error::Unauthenticated) && page_request && !fragment {
            return redirect("/login");
        }
        let message = e.to_string();
        match self.views.render(
            "error.html",
            context! {status => status.as_u16(), message, user => Value::from(())},
            fragment,
        ) {
            Ok(html) => text(status, "text/html; charset=utf-8", html),
            Err(_) => text(status, "text/plain; charset=utf-8", message),
        }
    }
}

/// A change must come from a page of this console: its `Origin` (or, when
/// a browser sends none, its `Sec-Fetch-Site`) must be this host.
fn same_origin(headers: &HeaderMap) -> Result<(), Error> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let refused = || Error::Forbidden("the request did not come from this console".into());
    match (get("origin"), get("host")) {
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map(|(_, rest)| rest);
            if origin_host == Some(host) {
                Ok(())
            } else {
                Err(refused())
            }
        }
        (Some(_), None) => Err(refused()),
        (None, _) => match get("sec-fetch-site") {
            None | Some("same-origin") => Ok(()),
            Some(_) => Err(refused()),
        },
    }
}

/// A urlencoded form of at most [`FORM_LIMIT`] bytes, read within
/// [`READ_TIMEOUT`].
async fn read_form(req: Request<Incoming>) -> Result<actions::Form, Error> {
    let body = tokio::time::timeout(
        READ_TIMEOUT,
        Limited::new(req.into_body(), FORM_LIMIT).collect(),
    )
    .await
    .map_err(|_| Error::BadRequest("the form did not arrive in time".into()))?
    .map_err(|_| Error::BadRequest(format!("a form is at most {FORM_LIMIT} bytes")))?
    .to_bytes();
    Ok(url::form_urlencoded::parse(&body).into_owned().collect())
}

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn redirect(to: &str) -> Response<Body> {
    let mut response = text(StatusCode::SEE_OTHER, "text/plain", "");
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn set_cookie(response: &mut Response<Body>, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    header::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn only_same_origin_changes_pass() {
        assert!(
            same_origin(&headers(&[
                ("origin", "http://console:8080"),
                ("host", "console:8080")
            ]))
            .is_ok()
        );
        assert!(
            same_origin(&headers(&[
                ("origin", "https://evil.example"),
                ("host", "console:8080")
            ]))
            .is_err()
        );
        assert!(same_origin(&headers(&[("origin", "null"), ("host", "console:8080")])).is_err());
        assert!(same_origin(&headers(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])).is_ok());
        // Not a browser: the session cookie and the CSRF token still decide.
        assert!(same_origin(&headers(&[])).is_ok());
    }
}
