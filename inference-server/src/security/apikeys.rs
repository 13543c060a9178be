//! Authentication by API key, for platforms that cannot present a
//! Kubernetes token or a client certificate. The keys are those of the
//! `ApiClient`s in the server's namespace, followed by a watch: a key
//! removed from its client, or a client deleted, stops authenticating as
//! soon as the watch delivers the change, without a restart.
//!
//! Only a key's id and the SHA-256 of the whole key are known here; a
//! presented key is looked up by its id and its hash compared in constant
//! time.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use aimass_crds::api_key;
use aimass_crds::v1alpha1::{ApiClient, ClientQuota};
use base64::Engine as _;
use futures::StreamExt;
use governor::{Quota, RateLimiter};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{OwnLimit, Principal, Refusal};

/// Longest the last known keys are trusted while the watch is broken (as
/// long as a cached TokenReview): a revocation made meanwhile is not seen.
pub const STALE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The group every API key principal belongs to, so all of them can be
/// bound at once.
pub const API_CLIENTS_GROUP: &str = "aimass:apiclients";

/// A new key: (the key, its id, its SHA-256 in hex). The key is shown to
/// its holder once; only the id and the hash are kept.
pub fn generate() -> Result<(String, String, String), getrandom::Error> {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id)?;
    getrandom::fill(&mut secret)?;
    let id = hex::encode(id);
    let key = format!(
        "{}{id}_{}",
        api_key::PREFIX,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    Ok((key, id, hash))
}

/// One client, as its keys authenticate it.
struct Client {
    principal: String,
    groups: Vec<String>,
    expires: Option<jiff::Timestamp>,
    limit: Option<OwnLimit>,
}

struct Key {
    sha256: [u8; 32],
    client: Arc<Client>,
}

/// The API keys the server accepts now.
#[derive(Default)]
pub struct ApiKeys {
    by_id: RwLock<Arc<HashMap<String, Key>>>,
    /// Limiters by client (`namespace/name`) and quota, kept across updates
    /// so a change to another client does not reset this one's budget.
    limits: RwLock<HashMap<String, (ClientQuota, OwnLimit)>>,
    synced: AtomicBool,
    /// Since when the watch has been failing, if it is.
    broken_since: std::sync::Mutex<Option<std::time::Instant>>,
}

impl ApiKeys {
    /// The principal `key` stands for: `Unauthenticated` for an unknown,
    /// wrong, removed or expired key; `Unavailable` until the clients were
    /// first listed.
    pub fn authenticate(&self, key: &str) -> Result<Principal, Refusal> {
        if !self.synced.load(Ordering::Acquire) {
            return Err(Refusal::Unavailable(
                "the ApiClients have not been listed yet".into(),
            ));
        }
        if self
            .broken_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|since| since.elapsed() > STALE_TTL)
        {
            return Err(Refusal::Unavailable(
                "the watch on ApiClients has failed for over a minute: a revoked key could pass"
                    .into(),
            ));
        }
        let id = api_key::key_id(key).ok_or(Refusal::UnknownApiKey)?;
        let by_id = Arc::clone(&self.by_id.read().unwrap_or_else(|p| p.into_inner()));
        let entry = by_id.get(id).ok_or(Refusal::UnknownApiKey)?;
        let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        if !bool::from(hash.ct_eq(&entry.sha256)) {
            return Err(Refusal::UnknownApiKey);
        }
        let client = &entry.client;
        if client
            .expires
            .is_some_and(|expires| expires <= jiff::Timestamp::now())
        {
            return Err(Refusal::UnknownApiKey);
        }
        let mut groups = client.groups.clone();
        groups.push(API_CLIENTS_GROUP.into());
        Ok(Principal {
            user: client.principal.clone(),
            uid: None,
            groups,
            credential_id: format!("apikey:{id}"),
            method: "ApiKey",
            limit: client.limit.clone(),
        })
    }

    /// Replaces the accepted keys with those of `clients`, and marks the
    /// set as listed.
    pub fn replace<'a>(&self, clients: impl IntoIterator<Item = &'a ApiClient>) {
        let mut limits = self.limits.write().unwrap_or_else(|p| p.into_inner());
        let mut kept = HashMap::new();
        let mut by_id = HashMap::new();
        let mut duplicates = std::collections::HashSet::new();
        for api_client in clients {
            let name = format!(
                "{}/{}",
                api_client.metadata.namespace.as_deref().unwrap_or_default(),
                api_client.metadata.name.as_deref().unwrap_or_default()
            );
            let limit = api_client.spec.quota.as_ref().map(|quota| {
                let limit = match limits.remove(&name) {
                    Some((old, limit)) if &old == quota => limit,
                    _ => OwnLimit::new(quota),
                };
                kept.insert(name.clone(), (quota.clone(), limit.clone()));
                limit
            });
            let client = Arc::new(Client {
                principal: api_client.spec.principal.clone(),
                groups: api_client.spec.groups.clone(),
                expires: api_client.spec.expires.as_ref().map(|t| t.0),
                limit,
            });
            for (id, sha256) in active_keys(api_client) {
                let key = Key {
                    sha256,
                    client: Arc::clone(&client),
                };
                if by_id.insert(id.clone(), key).is_some() {
                    duplicates.insert(id);
                }
            }
        }
        // A key id listed by two clients (a copied key Secret) could stand
        // for either: it authenticates neither.
        for id in duplicates {
            tracing::warn!(
                id,
                "an API key id is listed by more than one ApiClient: refused"
            );
            by_id.remove(&id);
        }
        *limits = kept;
        *self.by_id.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(by_id);
        self.synced.store(true, Ordering::Release);
    }

    /// Follows the ApiClients of `api` until the stream ends (never, but for
    /// shutdown): every change replaces the accepted keys at once.
    pub async fn follow(self: Arc<Self>, api: kube::Api<ApiClient>) {
        let (reader, writer) = reflector::store();
        let stream = reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff()
            .boxed();
        stream
            .for_each(|event| {
                match event {
                    Ok(event) => {
                        self.watch_healthy(true);
                        if matches!(
                            event,
                            watcher::Event::InitDone
                                | watcher::Event::Apply(_)
                                | watcher::Event::Delete(_)
                        ) {
                            let clients = reader.state();
                            self.replace(clients.iter().map(AsRef::as_ref));
                        }
                    }
                    Err(e) => {
                        self.watch_healthy(false);
                        tracing::warn!(error = %e, "watching ApiClients");
                    }
                }
                futures::future::ready(())
            })
            .await;
    }

    /// Notes whether the watch just delivered (`true`) or failed.
    fn watch_healthy(&self, healthy: bool) {
        let mut since = self.broken_since.lock().unwrap_or_else(|p| p.into_inner());
        match (healthy, *since) {
            (true, _) => *since = None,
            (false, None) => *since = Some(std::time::Instant::now()),
            (false, Some(_)) => {}
        }
    }
}

/// The (id, hash) of every key of `client` that may authenticate: resolved
/// by the operator into its status and still listed in its spec (a key
/// removed from the spec stops at once, before the operator catches up).
fn active_keys(client: &ApiClient) -> Vec<(String, [u8; 32])> {
    let listed: Vec<&str> = client
        .spec
        .keys
        .iter()
        .map(|k| k.secret_ref.name.as_str())
        .collect();
    client
        .status
        .iter()
        .flat_map(|s| s.keys.iter())
        .filter(|k| listed.contains(&k.secret.as_str()) && api_key::is_valid_id(&k.id))
        .filter_map(|k| {
            let mut sha256 = [0u8; 32];
            hex::decode_to_slice(&k.sha256, &mut sha256).ok()?;
            Some((k.id.clone(), sha256))
        })
        .collect()
}

impl OwnLimit {
    fn new(quota: &ClientQuota) -> Self {
        let non_zero = |n: i32| {
            u32::try_from(n)
                .ok()
                .and_then(NonZeroU32::new)
                .unwrap_or(NonZeroU32::MIN)
        };
        let rate = non_zero(quota.requests_per_second);
        let burst = quota.burst.map_or(rate, non_zero);
        Self(Arc::new(RateLimiter::direct(
            Quota::per_second(rate).allow_burst(burst),
        )))
    }
}

#[cfg(test)]
mod tests {
    use aimass_crds::v1alpha1::{
        ApiClientSpec, ApiClientStatus, ApiKeyReference, ResolvedApiKey, SecretReference,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn client(name: &str, keys: &[(&str, &str, &str)], listed: &[&str]) -> ApiClient {
        let mut client = ApiClient::new(
            name,
            ApiClientSpec {
                principal: format!("partner:{name}"),
                groups: vec!["partners".into()],
                expires: None,
                quota: None,
                keys: listed
                    .iter()
                    .map(|s| ApiKeyReference {
                        secret_ref: SecretReference { name: (*s).into() },
                    })
                    .collect(),
            },
        );
        client.metadata.namespace = Some("risk".into());
        client.status = Some(ApiClientStatus {
            keys: keys
                .iter()
                .map(|(secret, id, sha256)| ResolvedApiKey {
                    secret: (*secret).into(),
                    id: (*id).into(),
                    sha256: (*sha256).into(),
                })
                .collect(),
            ..ApiClientStatus::default()
        });
        client
    }

    #[test]
    fn a_key_authenticates_its_client_until_it_is_removed() {
        let (old, old_id, old_hash) = generate().unwrap();
        let (new, new_id, new_hash) = generate().unwrap();
        let keys = ApiKeys::default();
        assert!(matches!(
            keys.authenticate(&old),
            Err(Refusal::Unavailable(_))
        ));
        let both = [("k1", &*old_id, &*old_hash), ("k2", &*new_id, &*new_hash)];
        keys.replace([&client("exchange", &both, &["k1", "k2"])]);
        for key in [&old, &new] {
            let principal = keys.authenticate(key).unwrap();
            assert_eq!(principal.user, "partner:exchange");
            assert_eq!(principal.groups, ["partners", API_CLIENTS_GROUP]);
            assert_eq!(principal.method, "ApiKey");
            assert!(principal.credential_id.starts_with("apikey:"));
            assert!(!principal.credential_id.contains(&key[24..]));
        }
        // Rotated: the old key is gone from the spec, its status not yet
        // updated by the operator.
        keys.replace([&client("exchange", &both, &["k2"])]);
        assert_eq!(keys.authenticate(&old), Err(Refusal::UnknownApiKey));
        assert!(keys.authenticate(&new).is_ok());
        keys.replace([]);
        assert_eq!(keys.authenticate(&new), Err(Refusal::UnknownApiKey));
    }

    #[test]
    fn known_keys_are_trusted_only_a_minute_into_a_broken_watch() {
        let (key, id, hash) = generate().unwrap();
        let keys = ApiKeys::default();
        keys.replace([&client("exchange", &[("k1", &id, &hash)], &["k1"])]);
        keys.watch_healthy(false);
        assert!(
            keys.authenticate(&key).is_ok(),
            "a short outage is ridden out"
        );
        *keys.broken_since.lock().unwrap() =
            std::time::Instant::now().checked_sub(STALE_TTL + std::time::Duration::from_secs(1));
        assert!(matches!(
            keys.authenticate(&key),
            Err(Refusal::Unavailable(_))
        ));
        keys.watch_healthy(true);
        assert!(keys.authenticate(&key).is_ok(), "the watch is back");
    }

    #[test]
    fn a_forged_key_with_a_known_id_or_an_expired_client_is_refused() {
        let (key, id, hash) = generate().unwrap();
        let keys = ApiKeys::default();
        let mut exchange = client("exchange", &[("k1", &id, &hash)], &["k1"]);
        keys.replace([&exchange]);
        let forged = format!("{}{id}_{}", api_key::PREFIX, "A".repeat(43));
        assert_eq!(keys.authenticate(&forged), Err(Refusal::UnknownApiKey));
        assert_eq!(
            keys.authenticate("aimass_nothex_x"),
            Err(Refusal::UnknownApiKey)
        );
        exchange.spec.expires = Some(Time(
            jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1),
        ));
        keys.replace([&exchange]);
        assert_eq!(keys.authenticate(&key), Err(Refusal::UnknownApiKey));
    }

    #[test]
    fn a_quota_is_the_clients_own_and_survives_other_changes() {
        let (a, a_id, a_hash) = generate().unwrap();
        let (b, b_id, b_hash) = generate().unwrap();
        let keys = ApiKeys::default();
        let mut exchange = client("exchange", &[("k1", &a_id, &a_hash)], &["k1"]);
        exchange.spec.quota = Some(ClientQuota {
            requests_per_second: 1,
            burst: Some(3),
        });
        let bank = client("bank", &[("k1", &b_id, &b_hash)], &["k1"]);
        keys.replace([&exchange, &bank]);
        let limit = keys.authenticate(&a).unwrap().limit.unwrap();
        let allowed = (0..10).filter(|_| limit.check().is_ok()).count();
        assert_eq!(allowed, 3, "a burst of three, then the rate");
        assert!(keys.authenticate(&b).unwrap().limit.is_none());
        // Another client changes: this one's budget is not refilled.
        keys.replace([&exchange]);
        let limit = keys.authenticate(&a).unwrap().limit.unwrap();
        assert!(limit.check().is_err());
    }

    #[test]
    fn a_key_id_listed_by_two_clients_authenticates_neither() {
        let (key, id, hash) = generate().unwrap();
        let entry = [("k1", &*id, &*hash)];
        let keys = ApiKeys::default();
        keys.replace([
            &client("exchange", &entry, &["k1"]),
            &client("impostor", &entry, &["k1"]),
        ]);
        assert_eq!(keys.authenticate(&key), Err(Refusal::UnknownApiKey));
        keys.replace([&client("exchange", &entry, &["k1"])]);
        assert_eq!(keys.authenticate(&key).unwrap().user, "partner:exchange");
    }
}
