//! The audit key service: how an `Enforced` server gets the keys of its
//! ModelDeployment's trail, which live in the operator's namespace, out of
//! reach of the namespace's editors.
//!
//! At start each server sends its pod-bound ServiceAccount token (audience
//! [`AUDIENCE`]) sealed to the service's public key
//! ([`aimass_audit::key_handover`]). The service reviews the
//! token, reads the pod its claims name, and hands the keys over (sealed to
//! the request) only when that pod is one of the ModelDeployment's servers
//! as the operator makes them: one container, the operator's server image,
//! its own entrypoint, the key service it was told, and nothing that could
//! share its memory or token ([`pod_may_hold_keys`]). Every refusal is a
//! Warning Event `AuditKeysRefused` on the ModelDeployment (when the pod
//! names one) and a WARN line.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aimass_audit::key_handover::{self, AUDIENCE, MAX_MESSAGE_BYTES};
use aimass_crds::v1alpha1::conditions::reasons;
use aimass_crds::v1alpha1::{ModelDeployment, SecurityMode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::PostParams;
use kube::{Api, Resource, ResourceExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::Error;
use crate::events::{Events, Severity};
use crate::model_deployment::access;

/// Secret (in the key namespace) with the service's X25519 private key.
const PRIVATE_KEY_SECRET: &str = "aimass-audit-key-service";
/// Its key.
const PRIVATE_KEY: &str = "private-key";
/// The token's pod claims.
const POD_NAME_CLAIM: &str = "authentication.kubernetes.io/pod-name";
const POD_UID_CLAIM: &str = "authentication.kubernetes.io/pod-uid";
/// Requests handled at once; more wait (servers retry anyway).
const CONCURRENCY: usize = 16;
/// How long a request may take to arrive and be answered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The server variable that names the key service's public key.
pub const PUBLIC_KEY_ENV: &str = "AIMASS_AUDIT_KEY_SERVICE_PUBLIC_KEY";

/// Where servers reach the key service, and the key they seal to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `http://host:port`.
    pub url: String,
    /// The service's X25519 public key (base64).
    pub public_key: String,
}

/// The running service's state.
struct KeyService {
    client: kube::Client,
    keys: key_handover::KeyService,
    endpoint: Endpoint,
    /// The namespace holding the keys.
    namespace: String,
    /// The image an `Enforced` server must run.
    server_image: String,
    events: Events,
    slots: Semaphore,
}

/// Where the service listens and how servers reach it.
pub struct Settings {
    /// The namespace holding the keys (the operator's own).
    pub namespace: String,
    /// Address to listen on.
    pub addr: SocketAddr,
    /// A Service in `namespace` in front of the operator: servers reach
    /// the key service at its cluster IP (no DNS needed). Without one, at
    /// the address listened on.
    pub service: Option<String>,
    /// The image an `Enforced` server must run.
    pub server_image: String,
}

/// Loads (or makes, once) the service's key pair, binds its address and
/// serves it in the background; returns where servers reach it.
pub async fn start(
    client: kube::Client,
    settings: Settings,
    events: Events,
) -> Result<Endpoint, Error> {
    let keys =
        key_handover::KeyService::from_private(&private_key(&client, &settings.namespace).await?)
            .map_err(Error::Config)?;
    let listener = TcpListener::bind(settings.addr)
        .await
        .map_err(|source| Error::Admin {
            addr: settings.addr,
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| Error::Admin {
        addr: settings.addr,
        source,
    })?;
    let url = match &settings.service {
        Some(service) => service_url(&client, &settings.namespace, service).await?,
        None => format!("http://{bound}"),
    };
    let endpoint = Endpoint {
        url,
        public_key: keys.public_key(),
    };
    info!(url = %endpoint.url, listen = %bound, "serving audit keys");
    let service = Arc::new(KeyService {
        client,
        keys,
        endpoint: endpoint.clone(),
        namespace: settings.namespace,
        server_image: settings.server_image,
        events,
        slots: Semaphore::new(CONCURRENCY),
    });
    tokio::spawn(serve(listener, service));
    Ok(endpoint)
}

/// The service's private key, made on first start.
async fn private_key(client: &kube::Client, namespace: &str) -> Result<Vec<u8>, Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let read = |secret: Secret| {
        secret
            .data
            .and_then(|mut d| d.remove(PRIVATE_KEY))
            .map(|b| b.0)
            .ok_or_else(|| {
                Error::Config(format!(
                    "Secret {namespace}/{PRIVATE_KEY_SECRET} has no {PRIVATE_KEY:?}"
                ))
            })
    };
    if let Some(secret) = secrets
        .get_opt(PRIVATE_KEY_SECRET)
        .await
        .map_err(Error::kube("reading the audit key service's key"))?
    {
        return read(secret);
    }
    let fresh = key_handover::KeyService::generate_private().map_err(Error::Config)?;
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(PRIVATE_KEY_SECRET.into()),
            labels: Some(crate::labels::common("aimass-operator", "audit-keys")),
            ..Default::default()
        },
        data: Some([(PRIVATE_KEY.into(), ByteString(fresh.to_vec()))].into()),
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(fresh.to_vec()),
        // Another replica made it first: use theirs.
        Err(kube::Error::Api(e)) if e.code == 409 => read(
            secrets
                .get(PRIVATE_KEY_SECRET)
                .await
                .map_err(Error::kube("reading the audit key service's key"))?,
        ),
        Err(e) => Err(Error::kube("making the audit key service's key")(e)),
    }
}

/// `http://<cluster IP>:<port>` of the Service `name`'s port `audit-keys`.
async fn service_url(client: &kube::Client, namespace: &str, name: &str) -> Result<String, Error> {
    let service = Api::<Service>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(Error::kube(format!("reading Service {namespace}/{name}")))?;
    let spec = service.spec.unwrap_or_default();
    let ip = spec.cluster_ip.filter(|ip| !ip.is_empty() && ip != "None");
    let port = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.name.as_deref() == Some("audit-keys"))
        .map(|p| p.port);
    match (ip, port) {
        (Some(ip), Some(port)) => Ok(format!("http://{ip}:{port}")),
        _ => Err(Error::Config(format!(
            "Service {namespace}/{name} needs a cluster IP and a port named audit-keys"
        ))),
    }
}

async fn serve(listener: TcpListener, service: Arc<KeyService>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                warn!(error = %e, "the audit key service failed to accept a connection");
                continue;
            }
        };
        let service = Arc::clone(&service);
        tokio::spawn(async move {
            let handler = service_fn(move |req| {
                let service = Arc::clone(&service);
                async move {
                    let answer =
                        tokio::time::timeout(REQUEST_TIMEOUT, service.handle(req, peer)).await;
                    Ok::<_, Infallible>(answer.unwrap_or_else(|_| {
                        refusal(StatusCode::REQUEST_TIMEOUT, "the request took too long")
                    }))
                }
            });
            let connection = http1::Builder::new()
                .header_read_timeout(Duration::from_secs(5))
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(stream), handler);
            if let Err(e) = tokio::time::timeout(REQUEST_TIMEOUT * 3, connection).await {
                debug!(%peer, error = %e, "an audit key connection was held too long");
            }
        });
    }
}

fn json(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn refusal(status: StatusCode, why: &str) -> Response<Full<Bytes>> {
    json(
        status,
        serde_json::json!({ "error": why }).to_string().into_bytes(),
    )
}

/// Why a request gets no keys, and how to answer it.
struct Refused {
    status: StatusCode,
    reason: String,
    /// The ModelDeployment the pod belongs to, when known: the refusal is an
    /// Event there.
    md: Option<ModelDeployment>,
}

impl Refused {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            md: None,
        }
    }
}

impl KeyService {
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        if req.method() != Method::POST || req.uri().path() != "/v1/audit-keys" {
            return refusal(StatusCode::NOT_FOUND, "POST /v1/audit-keys is served here");
        }
        let Ok(_slot) = self.slots.acquire().await else {
            return refusal(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
        };
        match self.answer(req).await {
            Ok(answer) => json(
                StatusCode::OK,
                serde_json::to_vec(&answer).unwrap_or_default(),
            ),
            Err(refused) => {
                warn!(%peer, reason = %refused.reason, "audit keys refused");
                if let Some(md) = &refused.md {
                    self.events
                        .publish(
                            &md.object_ref(&()),
                            Severity::Warning,
                            reasons::AUDIT_KEYS_REFUSED,
                            "HandOverAuditKeys",
                            refused.reason.clone(),
                        )
                        .await;
                }
                refusal(refused.status, &refused.reason)
            }
        }
    }

    async fn answer(&self, req: Request<Incoming>) -> Result<key_handover::Answer, Refused> {
        let bad = |why: String| Refused::new(StatusCode::BAD_REQUEST, why);
        let body = Limited::new(req.into_body(), MAX_MESSAGE_BYTES)
            .collect()
            .await
            .map_err(|e| bad(format!("the body could not be read: {e}")))?
            .to_bytes();
        let request: key_handover::Request = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("the body is not a key request: {e}")))?;
        let (token, session) = self.keys.open(&request).map_err(bad)?;
        let (namespace, pod_name, pod_uid) = self.review(token).await?;
        let pod = Api::<Pod>::namespaced(self.client.clone(), &namespace)
            .get_opt(&pod_name)
            .await
            .map_err(|e| Refused::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
            .filter(|p| p.metadata.uid.as_deref() == Some(pod_uid.as_str()))
            .ok_or_else(|| {
                Refused::new(
                    StatusCode::FORBIDDEN,
                    format!("pod {namespace}/{pod_name} of the token is gone"),
                )
            })?;
        let md = self.model_deployment_of(&pod).await?;
        let refuse = |why: String| Refused {
            status: StatusCode::FORBIDDEN,
            reason: format!("pod {pod_name}: {why}"),
            md: Some(md.clone()),
        };
        if md.spec.security.mode != SecurityMode::Enforced {
            return Err(refuse("its ModelDeployment is not Enforced".into()));
        }
        pod_may_hold_keys(
            &pod,
            &access::service_account_name(&md),
            &self.server_image,
            &self.endpoint.public_key,
        )
        .map_err(refuse)?;
        let keys = access::read_audit_keys(&self.client, &self.namespace, &md)
            .await
            .map_err(|e| Refused {
                status: StatusCode::SERVICE_UNAVAILABLE,
                reason: e.to_string(),
                md: None,
            })?
            .ok_or_else(|| {
                Refused::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the ModelDeployment's audit keys are not made yet",
                )
            })?;
        info!(namespace, pod = pod_name, "handed the audit keys over");
        session
            .answer(&keys)
            .map_err(|e| Refused::new(StatusCode::INTERNAL_SERVER_ERROR, e))
    }

    /// The namespace, pod name and pod uid of a valid token for the key
    /// service.
    async fn review(&self, token: String) -> Result<(String, String, String), Refused> {
        let unauthenticated = |why: &str| Refused::new(StatusCode::UNAUTHORIZED, why);
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token),
                audiences: Some(vec![AUDIENCE.into()]),
            },
            ..TokenReview::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| Refused::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        let status = reviewed.status.unwrap_or_default();
        if status.authenticated != Some(true)
            || !status.audiences.iter().flatten().any(|a| a == AUDIENCE)
        {
            return Err(unauthenticated(
                "the token is not valid for the key service",
            ));
        }
        let user = status.user.unwrap_or_default();
        let namespace = user
            .username
            .as_deref()
            .and_then(|u| u.strip_prefix("system:serviceaccount:"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(namespace, _)| namespace.to_owned())
            .ok_or_else(|| unauthenticated("the token is not a ServiceAccount's"))?;
        let extra = user.extra.unwrap_or_default();
        let claim = |name: &str| extra.get(name).and_then(|v| v.first()).cloned();
        match (claim(POD_NAME_CLAIM), claim(POD_UID_CLAIM)) {
            (Some(name), Some(uid)) => Ok((namespace, name, uid)),
            _ => Err(unauthenticated("the token is not bound to a pod")),
        }
    }

    /// The ModelDeployment whose Deployment made `pod` (through its
    /// ReplicaSet).
    async fn model_deployment_of(&self, pod: &Pod) -> Result<ModelDeployment, Refused> {
        let namespace = pod.namespace().unwrap_or_default();
        let not_a_server = || {
            Refused::new(
                StatusCode::FORBIDDEN,
                format!(
                    "pod {namespace}/{} is not a ModelDeployment's server",
                    pod.name_any()
                ),
            )
        };
        let unavailable =
            |e: kube::Error| Refused::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        let rs: ReplicaSet = self
            .controller_of(&namespace, pod.owner_references())
            .await
            .map_err(unavailable)?
            .ok_or_else(not_a_server)?;
        let deployment: Deployment = self
            .controller_of(&namespace, rs.owner_references())
            .await
            .map_err(unavailable)?
            .ok_or_else(not_a_server)?;
        self.controller_of(&namespace, deployment.owner_references())
            .await
            .map_err(unavailable)?
            .ok_or_else(not_a_server)
    }

    /// The controlling owner of kind `K` among `owners`, read from the API;
    /// `None` when there is none, or the object of that name is another one
    /// (its uid differs from the reference's).
    async fn controller_of<K>(
        &self,
        namespace: &str,
        owners: &[OwnerReference],
    ) -> Result<Option<K>, kube::Error>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let kind = K::kind(&());
        let Some(owner) = owners
            .iter()
            .find(|o| o.controller == Some(true) && o.kind == kind)
        else {
            return Ok(None);
        };
        Ok(Api::<K>::namespaced(self.client.clone(), namespace)
            .get_opt(&owner.name)
            .await?
            .filter(|o| o.meta().uid.as_deref() == Some(owner.uid.as_str())))
    }
}

/// Whether `pod` is an `Enforced` server as the operator makes it, and so
/// may hold the trail's keys: nothing else runs in it (no second, init or
/// ephemeral container, no shared process namespace, no host namespaces),
/// its one container runs `server_image` with the image's own entrypoint
/// and arguments, as `service_account`, told to seal to `public_key` and
/// reading the operator's settings only from `env`. Anything else could
/// read the keys out of the server, or ask for them in its place.
pub fn pod_may_hold_keys(
    pod: &Pod,
    service_account: &str,
    server_image: &str,
    public_key: &str,
) -> Result<(), String> {
    let spec = pod.spec.as_ref().ok_or("it has no spec")?;
    if pod.metadata.deletion_timestamp.is_some() {
        return Err("it is being deleted".into());
    }
    if spec.service_account_name.as_deref() != Some(service_account) {
        return Err(format!(
            "it runs as {:?}, not the servers' ServiceAccount {service_account:?}",
            spec.service_account_name.as_deref().unwrap_or("default")
        ));
    }
    let [container] = spec.containers.as_slice() else {
        return Err(format!(
            "it has {} containers; a server's pod has one",
            spec.containers.len()
        ));
    };
    if spec.init_containers.as_ref().is_some_and(|c| !c.is_empty())
        || spec
            .ephemeral_containers
            .as_ref()
            .is_some_and(|c| !c.is_empty())
    {
        return Err("it has init or ephemeral containers".into());
    }
    if spec.share_process_namespace == Some(true)
        || spec.host_pid == Some(true)
        || spec.host_ipc == Some(true)
        || spec.host_network == Some(true)
    {
        return Err("it shares a process, IPC or network namespace".into());
    }
    if container.image.as_deref() != Some(server_image) {
        return Err(format!(
            "it runs image {:?}, not the operator's server image {server_image:?}",
            container.image.as_deref().unwrap_or("")
        ));
    }
    if container.command.as_ref().is_some_and(|c| !c.is_empty())
        || container.args.as_ref().is_some_and(|a| !a.is_empty())
    {
        return Err("it overrides the image's command or arguments".into());
    }
    if container.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
        return Err("it takes variables from envFrom".into());
    }
    let told: Vec<_> = container
        .env
        .iter()
        .flatten()
        .filter(|v| v.name == PUBLIC_KEY_ENV)
        .collect();
    if told.is_empty()
        || told
            .iter()
            .any(|v| v.value.as_deref() != Some(public_key) || v.value_from.is_some())
    {
        return Err(format!("its {PUBLIC_KEY_ENV} is not the key service's"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
