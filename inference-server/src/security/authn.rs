//! Authentication: who is calling. A bound ServiceAccount token (or any
//! token the API server accepts) is validated by a TokenReview with the
//! audience the server requires (the answer must list it), and the answer
//! is cached by the token's hash: an accepted token for at most
//! [`TOKEN_TTL`] (so a deleted ServiceAccount's token stops working within
//! it) and never past its expiry, a rejected one for [`REJECTED_TTL`].
//! Tokens not seen before cost at most [`REVIEWS_PER_SECOND`] reviews a
//! second however many arrive: a flood of made-up tokens is refused with
//! 429 instead of flooding the API server.

use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::Api;
use kube::api::PostParams;
use sha2::{Digest, Sha256};

use super::{Principal, Refusal, cache};

/// Longest an accepted token is trusted without asking again.
pub const TOKEN_TTL: Duration = Duration::from_secs(10);
/// Longest a rejected token is refused without asking again.
pub const REJECTED_TTL: Duration = Duration::from_secs(60);
/// TokenReviews a second, at most, for tokens not in the cache (with bursts
/// of twice as many).
pub const REVIEWS_PER_SECOND: u32 = 50;
/// The longest bearer token reviewed; longer ones are refused unasked.
const TOKEN_LIMIT: usize = 16 * 1024;

/// Validates bearer tokens through the API server.
pub struct TokenAuthenticator {
    reviews: Api<TokenReview>,
    audience: String,
    cache: moka::sync::Cache<[u8; 32], cache::Timed<Option<Principal>>>,
    timeout: Duration,
    reviews_budget: governor::DefaultDirectRateLimiter,
}

impl TokenAuthenticator {
    /// Reviews tokens with `client`, requiring `audience`.
    pub fn new(client: kube::Client, audience: String, timeout: Duration) -> Self {
        Self {
            reviews: Api::all(client),
            audience,
            cache: cache::timed(100_000),
            timeout,
            reviews_budget: governor::RateLimiter::direct(
                governor::Quota::per_second(
                    std::num::NonZeroU32::new(REVIEWS_PER_SECOND)
                        .unwrap_or(std::num::NonZeroU32::MIN),
                )
                .allow_burst(
                    std::num::NonZeroU32::new(2 * REVIEWS_PER_SECOND)
                        .unwrap_or(std::num::NonZeroU32::MIN),
                ),
            ),
        }
    }

    /// The refusal of a caller without a token this server takes.
    pub fn unauthenticated(&self) -> Refusal {
        Refusal::Unauthenticated {
            audience: self.audience.clone(),
        }
    }

    /// The principal `token` stands for; `Refusal::Unauthenticated` for a
    /// token the API server rejects, `Refusal::Unavailable` when it cannot
    /// be asked (never cached).
    pub async fn authenticate(&self, token: &str) -> Result<Principal, Refusal> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = self.cache.get(&hash) {
            return hit.value.ok_or_else(|| self.unauthenticated());
        }
        if token.len() > TOKEN_LIMIT {
            return Err(self.unauthenticated());
        }
        self.reviews_budget.check().map_err(super::rate_limited)?;
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: Some(vec![self.audience.clone()]),
            },
            ..TokenReview::default()
        };
        let answer = tokio::time::timeout(
            self.timeout,
            self.reviews.create(&PostParams::default(), &review),
        )
        .await
        .map_err(|_| Refusal::Unavailable("the TokenReview timed out".into()))?
        .map_err(|e| Refusal::Unavailable(format!("the TokenReview failed: {e}")))?;
        let status = answer.status.unwrap_or_default();
        // The answer must say the token is meant for this server: an
        // authenticator that ignores audiences answers none.
        let principal = (status.authenticated == Some(true)
            && status
                .audiences
                .as_ref()
                .is_some_and(|a| a.contains(&self.audience)))
        .then(|| {
            let user = status.user.unwrap_or_default();
            Principal {
                user: user.username.unwrap_or_default(),
                uid: user.uid,
                groups: user.groups.unwrap_or_default(),
                credential_id: format!("token:{}", &hex::encode(hash)[..16]),
                method: "ServiceAccountToken",
                limit: None,
            }
        });
        let ttl = match &principal {
            Some(_) => expiry(token).map_or(TOKEN_TTL, |left| left.min(TOKEN_TTL)),
            None => REJECTED_TTL,
        };
        self.cache.insert(
            hash,
            cache::Timed {
                value: principal.clone(),
                ttl,
            },
        );
        principal.ok_or_else(|| self.unauthenticated())
    }
}

/// Time left before a JWT's `exp`, read without checking the signature
/// (the API server checked it): only to keep a cached answer from outliving
/// the token.
fn expiry(token: &str) -> Option<Duration> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let exp = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_u64()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(Duration::from_secs(exp.saturating_sub(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(exp: u64) -> String {
        let part = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.sig",
            part(serde_json::json!({"alg": "RS256"})),
            part(serde_json::json!({"exp": exp}))
        )
    }

    #[test]
    fn a_token_near_expiry_is_cached_only_until_it_expires() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let left = expiry(&jwt(now + 20)).unwrap();
        assert!(left <= Duration::from_secs(20) && left >= Duration::from_secs(18));
        assert_eq!(expiry(&jwt(now - 5)), Some(Duration::ZERO));
        assert_eq!(expiry("not-a-jwt"), None);
    }
}
