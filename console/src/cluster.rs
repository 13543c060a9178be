//! The console's two ways into the API server: its own identity, for
//! TokenReviews and SubjectAccessReviews only, and the signed-in user's
//! token, for everything it reads, watches and changes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};

use crate::error::Error;
use crate::session::{Identity, Session};

/// How long the API server gets for one call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Tokens longer than this are refused without asking.
const TOKEN_LIMIT: usize = 16 * 1024;

/// How long an access decision is trusted: short, so that a revoked
/// binding closes streams soon.
const DECISION_TTL: Duration = Duration::from_secs(5);

/// The API group of the aimass kinds.
pub const GROUP: &str = "aimass.io";

/// One access question: may the user `verb` `resource` in `namespace`?
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Access {
    /// e.g. `list`, `get`, `watch`, `patch`, `create`.
    pub verb: &'static str,
    /// The API group: [`GROUP`], or `""` for the core kinds.
    pub group: &'static str,
    /// e.g. `models`, or a subresource such as `pods/log`.
    pub resource: &'static str,
    /// The namespace.
    pub namespace: String,
}

impl Access {
    /// May the user `verb` the aimass.io `resource` in `namespace`?
    pub fn aimass(verb: &'static str, resource: &'static str, namespace: &str) -> Self {
        Self {
            verb,
            group: GROUP,
            resource,
            namespace: namespace.to_owned(),
        }
    }

    /// May the user `verb` the core `resource` (`pods`, `pods/log`) in
    /// `namespace`?
    pub fn core(verb: &'static str, resource: &'static str, namespace: &str) -> Self {
        Self {
            group: "",
            ..Self::aimass(verb, resource, namespace)
        }
    }
}

/// The API server as the console reaches it.
pub struct Cluster {
    base: kube::Config,
    own: kube::Client,
    decisions: Mutex<HashMap<(String, Access), (bool, Instant)>>,
    namespaces: Vec<String>,
}

impl Cluster {
    /// From `config` (in-cluster or a kubeconfig: its identity is the
    /// console's own), showing `namespaces` (empty: what users may list).
    pub fn new(config: kube::Config, namespaces: Vec<String>) -> Result<Self, Error> {
        let own = kube::Client::try_from(config.clone()).map_err(Error::Kube)?;
        Ok(Self {
            base: config,
            own,
            decisions: Mutex::new(HashMap::new()),
            namespaces,
        })
    }

    /// A client that authenticates as the session's user and nothing else:
    /// the console's certificates, token files and exec plugins are dropped.
    pub fn as_user(&self, session: &Session) -> Result<kube::Client, Error> {
        let mut config = self.base.clone();
        config.auth_info = kube::config::AuthInfo {
            token: Some(session.token.clone().into()),
            ..kube::config::AuthInfo::default()
        };
        kube::Client::try_from(config).map_err(Error::Kube)
    }

    /// Who `token` belongs to, by a TokenReview for the API server's own
    /// audiences (the console uses the token with the API server).
    pub async fn review(&self, token: &str) -> Result<Identity, Error> {
        let refused = || Error::Forbidden("the API server does not accept this token".into());
        if token.is_empty() || token.len() > TOKEN_LIMIT || !token.is_ascii() {
            return Err(refused());
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let answer = timed(
            Api::<TokenReview>::all(self.own.clone()).create(&PostParams::default(), &review),
        )
        .await?;
        let status = answer.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Err(refused());
        }
        let user = status.user.unwrap_or_default();
        Ok(Identity {
            user: user
                .username
                .filter(|u| !u.is_empty())
                .ok_or_else(refused)?,
            uid: user.uid,
            groups: user.groups.unwrap_or_default(),
        })
    }

    /// Whether the session's user may do `access`, by a SubjectAccessReview
    /// (trusted for a few seconds).
    pub async fn may(&self, session: &Session, access: &Access) -> Result<bool, Error> {
        let key = (session.user.clone(), access.clone());
        if let Some((allowed, at)) = self.lock().get(&key)
            && at.elapsed() < DECISION_TTL
        {
            return Ok(*allowed);
        }
        let (resource, subresource) = match access.resource.split_once('/') {
            Some((resource, sub)) => (resource, Some(sub)),
            None => (access.resource, None),
        };
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(session.user.clone()),
                uid: session.uid.clone(),
                groups: Some(session.groups.clone()),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(access.group.into()),
                    resource: Some(resource.into()),
                    subresource: subresource.map(Into::into),
                    verb: Some(access.verb.into()),
                    namespace: Some(access.namespace.clone()),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let answer = timed(
            Api::<SubjectAccessReview>::all(self.own.clone())
                .create(&PostParams::default(), &review),
        )
        .await?;
        let status = answer.status.unwrap_or_default();
        let allowed = status.allowed && status.denied != Some(true);
        let mut decisions = self.lock();
        if decisions.len() > 100_000 {
            decisions.clear();
        }
        decisions.insert(key, (allowed, Instant::now()));
        Ok(allowed)
    }

    /// Ok when allowed, `Forbidden` naming the access otherwise.
    pub async fn check(&self, session: &Session, access: &Access) -> Result<(), Error> {
        if self.may(session, access).await? {
            Ok(())
        } else {
            let group = if access.group.is_empty() {
                String::new()
            } else {
                format!(".{}", access.group)
            };
            Err(Error::Forbidden(format!(
                "{} may not {} {}{group} in namespace {}",
                session.user, access.verb, access.resource, access.namespace
            )))
        }
    }

    /// The namespaces the user may list models in: of the configured ones,
    /// or else of those the user may list.
    pub async fn visible(&self, session: &Session) -> Result<Vec<String>, Error> {
        let candidates = if self.namespaces.is_empty() {
            let api = Api::<Namespace>::all(self.as_user(session)?);
            match timed(api.list(&ListParams::default())).await {
                Ok(list) => list
                    .items
                    .into_iter()
                    .filter_map(|n| n.metadata.name)
                    .collect(),
                Err(Error::Forbidden(_)) => Vec::new(),
                Err(e) => return Err(e),
            }
        } else {
            self.namespaces.clone()
        };
        let mut visible = Vec::new();
        for namespace in candidates {
            let access = Access::aimass("list", "models", &namespace);
            if self.may(session, &access).await? {
                visible.push(access.namespace);
            }
        }
        Ok(visible)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Access), (bool, Instant)>> {
        self.decisions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `call` within [`CALL_TIMEOUT`], its error kept in the console's terms.
pub async fn timed<T>(call: impl Future<Output = Result<T, kube::Error>>) -> Result<T, Error> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| Error::Timeout)?
        .map_err(Error::from)
}
