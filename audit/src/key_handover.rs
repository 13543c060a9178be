//! How an Enforced server gets its audit keys without any Secret of its
//! namespace holding them: it asks the operator's key service at start.
//!
//! The operator has a long-lived X25519 key pair whose public half is in
//! the server's settings. The server makes an ephemeral key pair per
//! request; both sides derive, from the Diffie-Hellman of the two, one key
//! for the request and one for the answer (HKDF-SHA256, then
//! ChaCha20-Poly1305). The request carries the pod's bound ServiceAccount
//! token, which the operator reviews (its pod claims name the pod it then
//! checks); the answer carries the keys. So:
//! - whoever sees the request cannot read the token (it is sealed to the
//!   operator), nor replay it usefully (the answer is sealed to the
//!   request's ephemeral key);
//! - whoever answers in the operator's place cannot make the server use
//!   keys of its own choosing (it cannot seal an answer without the
//!   operator's private key).
//!
//! This is the shape of the Noise NK handshake, in one round trip.

use base64::Engine as _;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;
use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey, StaticSecret};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// Tells these keys apart from any other derived from the same exchange.
const SALT: &[u8] = b"aimass-audit-key-handover/v1";
/// The audience of the ServiceAccount token a server sends.
pub const AUDIENCE: &str = "aimass-audit-keys";
/// Most bytes a request or an answer may have (both are a few hundred).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// What a server sends: its ephemeral public key, and its token sealed to
/// the operator.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Request {
    /// The request's ephemeral X25519 public key (base64).
    pub ephemeral: String,
    /// The token, sealed with the request key (base64).
    pub sealed: String,
}

/// What the operator answers: the keys, sealed to the request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The keys, sealed with the answer key (base64).
    pub sealed: String,
}

/// The keys a server needs to keep its ModelDeployment's trail.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditKeys {
    /// The HMAC key of the chain (base64).
    pub chain_key: String,
    /// The Ed25519 seed that seals checkpoints (base64).
    pub signing_seed: String,
}

impl std::fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKeys { .. }")
    }
}

impl AuditKeys {
    /// The chain key's bytes.
    pub fn chain_key(&self) -> Result<Vec<u8>, String> {
        decode(&self.chain_key, "chain key")
    }

    /// The signing seed's bytes.
    pub fn signing_seed(&self) -> Result<Vec<u8>, String> {
        decode(&self.signing_seed, "signing seed")
    }
}

/// The operator's side: its static key pair.
pub struct KeyService {
    secret: StaticSecret,
}

impl KeyService {
    /// A fresh 32-byte private key.
    pub fn generate_private() -> Result<[u8; 32], String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a key: {e}"))?;
        Ok(bytes)
    }

    /// The key service of the 32-byte private key `bytes`.
    pub fn from_private(bytes: &[u8]) -> Result<Self, String> {
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "the key service's private key must be 32 bytes".to_owned())?;
        Ok(Self {
            secret: StaticSecret::from(bytes),
        })
    }

    /// The public key servers are told (base64).
    pub fn public_key(&self) -> String {
        B64.encode(PublicKey::from(&self.secret).as_bytes())
    }

    /// Opens `request`: the token it carries, and the key to seal its
    /// answer with.
    pub fn open(&self, request: &Request) -> Result<(String, Session), String> {
        let ephemeral = public_key(&request.ephemeral)?;
        let shared = self.secret.diffie_hellman(&ephemeral);
        let session = Session::derive(
            shared.as_bytes(),
            ephemeral.as_bytes(),
            PublicKey::from(&self.secret).as_bytes(),
        )?;
        let token = session.open(Direction::Request, &request.sealed)?;
        let token = String::from_utf8(token).map_err(|_| "the token is not text".to_owned())?;
        Ok((token, session))
    }
}

/// A server's request in progress: its ephemeral secret is used once.
pub struct Asking {
    session: Session,
    /// What to send.
    pub request: Request,
}

impl Asking {
    /// A request carrying `token`, sealed to the operator's `public_key`.
    pub fn new(operator_key: &str, token: &str) -> Result<Self, String> {
        let operator = public_key(operator_key)?;
        let secret = StaticSecret::from(KeyService::generate_private()?);
        let ephemeral = PublicKey::from(&secret);
        let shared = secret.diffie_hellman(&operator);
        let session =
            Session::derive(shared.as_bytes(), ephemeral.as_bytes(), operator.as_bytes())?;
        let sealed = session.seal(Direction::Request, token.as_bytes())?;
        Ok(Self {
            session,
            request: Request {
                ephemeral: B64.encode(ephemeral.as_bytes()),
                sealed,
            },
        })
    }

    /// The keys in `answer`, which only the operator could have sealed.
    pub fn open(&self, answer: &Answer) -> Result<AuditKeys, String> {
        let plain = self.session.open(Direction::Answer, &answer.sealed)?;
        serde_json::from_slice(&plain).map_err(|e| format!("the sealed keys do not parse: {e}"))
    }
}

/// The two keys of one exchange.
pub struct Session {
    request: LessSafeKey,
    answer: LessSafeKey,
}

#[derive(Clone, Copy)]
enum Direction {
    Request,
    Answer,
}

impl Session {
    fn derive(shared: &[u8], ephemeral: &[u8], operator: &[u8]) -> Result<Self, String> {
        // An all-zero secret means a low-order point was sent.
        if shared.iter().all(|b| *b == 0) {
            return Err("the ephemeral key is not a valid X25519 key".into());
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(shared);
        let key = |label: &[u8]| -> Result<LessSafeKey, String> {
            let info = [ephemeral, operator, label];
            let okm = prk
                .expand(&info, &CHACHA20_POLY1305)
                .map_err(|_| "key derivation failed".to_owned())?;
            Ok(LessSafeKey::new(UnboundKey::from(okm)))
        };
        Ok(Self {
            request: key(b"request")?,
            answer: key(b"answer")?,
        })
    }

    fn key(&self, direction: Direction) -> &LessSafeKey {
        match direction {
            Direction::Request => &self.request,
            Direction::Answer => &self.answer,
        }
    }

    fn seal(&self, direction: Direction, plain: &[u8]) -> Result<String, String> {
        let mut data = plain.to_vec();
        // Each key seals one message, so a constant nonce is never reused.
        self.key(direction)
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::empty(),
                &mut data,
            )
            .map_err(|_| "sealing failed".to_owned())?;
        Ok(B64.encode(data))
    }

    fn open(&self, direction: Direction, sealed: &str) -> Result<Vec<u8>, String> {
        let mut data = decode(sealed, "sealed message")?;
        let plain = self
            .key(direction)
            .open_in_place(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::empty(),
                &mut data,
            )
            .map_err(|_| "the sealed message does not open with this exchange's key".to_owned())?;
        Ok(plain.to_vec())
    }

    /// Seals `keys` as the answer to this exchange's request.
    pub fn answer(&self, keys: &AuditKeys) -> Result<Answer, String> {
        let plain = serde_json::to_vec(keys).map_err(|e| e.to_string())?;
        Ok(Answer {
            sealed: self.seal(Direction::Answer, &plain)?,
        })
    }
}

/// Asks the key service at `url` (`http://host:port`) for the keys, with the
/// token in `token_file`, retrying with a growing pause (said in the log)
/// until it answers: a server that records calls does not start without
/// its keys.
pub async fn fetch(url: &str, operator_key: &str, token_file: &std::path::Path) -> AuditKeys {
    let mut pause = std::time::Duration::from_millis(250);
    loop {
        match fetch_once(url, operator_key, token_file).await {
            Ok(keys) => return keys,
            Err(reason) => {
                tracing::warn!(%url, %reason, retry_in = ?pause, "the audit keys were not handed over");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(30));
    }
}

async fn fetch_once(
    url: &str,
    operator_key: &str,
    token_file: &std::path::Path,
) -> Result<AuditKeys, String> {
    use http_body_util::{BodyExt as _, Full, Limited};

    let token = std::fs::read_to_string(token_file)
        .map_err(|e| format!("cannot read the token {}: {e}", token_file.display()))?;
    let asking = Asking::new(operator_key, token.trim())?;
    let uri: hyper::Uri = format!("{}/v1/audit-keys", url.trim_end_matches('/'))
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{url:?} names no host"))?
        .to_string();
    let body = serde_json::to_vec(&asking.request).map_err(|e| e.to_string())?;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request = hyper::Request::post(uri)
            .header(hyper::header::HOST, &authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(bytes::Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_MESSAGE_BYTES)
            .collect()
            .await
            .map_err(|e| format!("the answer could not be read: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, bytes))
    };
    let (status, bytes) = tokio::time::timeout(std::time::Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "no answer within 10 s".to_owned())??;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&bytes);
        return Err(format!(
            "{status}: {}",
            text.chars().take(300).collect::<String>()
        ));
    }
    let answer: Answer =
        serde_json::from_slice(&bytes).map_err(|e| format!("the answer does not parse: {e}"))?;
    asking.open(&answer)
}

/// The header with which the operator proves, to a server holding the same
/// chain key, that a `POST /warm-up` is its own.
pub const WARM_UP_HEADER: &str = "aimass-warm-up-proof";

/// What the operator sends in [`WARM_UP_HEADER`] at `unix_seconds`:
/// `<minute>.<HMAC-SHA256 of the minute, under a key derived from the
/// chain key>`, so a proof seen on the wire is good for two minutes at
/// most and never reveals the chain key.
pub fn warm_up_proof(chain_key: &[u8], unix_seconds: i64) -> String {
    let minute = unix_seconds.div_euclid(60);
    format!("{minute}.{}", hex::encode(warm_up_mac(chain_key, minute)))
}

/// Whether `proof` is one [`warm_up_proof`] made under `chain_key` in the
/// minute of `unix_seconds` or the one before or after.
pub fn check_warm_up_proof(chain_key: &[u8], proof: &str, unix_seconds: i64) -> bool {
    use subtle::ConstantTimeEq as _;
    let Some((minute, mac)) = proof.split_once('.') else {
        return false;
    };
    let (Ok(minute), Ok(mac)) = (minute.parse::<i64>(), hex::decode(mac)) else {
        return false;
    };
    let now = unix_seconds.div_euclid(60);
    now.abs_diff(minute) <= 1 && bool::from(warm_up_mac(chain_key, minute).ct_eq(&mac))
}

fn warm_up_mac(chain_key: &[u8], minute: i64) -> Vec<u8> {
    use hmac::{KeyInit as _, Mac as _};
    let derived = |label: &[u8], key: &[u8]| -> Vec<u8> {
        match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
            Ok(mut mac) => {
                mac.update(label);
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    };
    let key = derived(b"aimass warm-up v1", chain_key);
    derived(&minute.to_be_bytes(), &key)
}

fn public_key(text: &str) -> Result<PublicKey, String> {
    let bytes: [u8; 32] = decode(text, "public key")?
        .try_into()
        .map_err(|_| "a public key must be 32 bytes".to_owned())?;
    Ok(PublicKey::from(bytes))
}

fn decode(text: &str, what: &str) -> Result<Vec<u8>, String> {
    B64.decode(text.trim())
        .map_err(|e| format!("the {what} is not base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> AuditKeys {
        AuditKeys {
            chain_key: B64.encode([7u8; 32]),
            signing_seed: B64.encode([9u8; 32]),
        }
    }

    fn service() -> KeyService {
        KeyService::from_private(&KeyService::generate_private().unwrap()).unwrap()
    }

    #[test]
    fn the_operator_reads_the_token_and_only_the_asker_reads_the_keys() {
        let service = service();
        let asking = Asking::new(&service.public_key(), "the-token").unwrap();
        let (token, session) = service.open(&asking.request).unwrap();
        assert_eq!(token, "the-token");
        let answer = session.answer(&keys()).unwrap();
        assert_eq!(asking.open(&answer).unwrap(), keys());

        // Someone replaying the request gets an answer only the first asker
        // can open.
        let replayer = Asking::new(&service.public_key(), "other").unwrap();
        let (_, replayed) = service.open(&asking.request).unwrap();
        assert!(replayer.open(&replayed.answer(&keys()).unwrap()).is_err());
    }

    #[test]
    fn another_key_service_can_neither_read_the_token_nor_answer() {
        let real = service();
        let impostor = service();
        let asking = Asking::new(&real.public_key(), "the-token").unwrap();
        assert!(impostor.open(&asking.request).is_err());

        // The impostor answers with a session of its own: refused.
        let own = Asking::new(&impostor.public_key(), "x").unwrap();
        let (_, session) = impostor.open(&own.request).unwrap();
        assert!(asking.open(&session.answer(&keys()).unwrap()).is_err());
    }

    #[test]
    fn tampered_and_malformed_requests_are_refused() {
        let service = service();
        let mut asking = Asking::new(&service.public_key(), "t").unwrap();
        let mut sealed = B64.decode(&asking.request.sealed).unwrap();
        sealed[0] ^= 1;
        asking.request.sealed = B64.encode(&sealed);
        assert!(service.open(&asking.request).is_err());
        for ephemeral in [
            "",
            "not base64!",
            &B64.encode([1u8; 5]),
            &B64.encode([0u8; 32]),
        ] {
            let request = Request {
                ephemeral: ephemeral.into(),
                sealed: asking.request.sealed.clone(),
            };
            assert!(service.open(&request).is_err(), "{ephemeral:?}");
        }
    }

    #[test]
    fn a_warm_up_proof_holds_for_its_minute_and_key_only() {
        let key = [3u8; 32];
        let proof = warm_up_proof(&key, 6_000);
        assert!(check_warm_up_proof(&key, &proof, 6_000));
        assert!(check_warm_up_proof(&key, &proof, 6_059 + 60));
        assert!(!check_warm_up_proof(&key, &proof, 6_000 + 180), "stale");
        assert!(
            !check_warm_up_proof(&[4u8; 32], &proof, 6_000),
            "another key"
        );
        for forged in ["", "100", "100.zz", "100.00", &proof.replace('.', "")] {
            assert!(!check_warm_up_proof(&key, forged, 6_000), "{forged:?}");
        }
    }

    #[test]
    fn keys_never_show_in_debug_output() {
        assert_eq!(format!("{:?}", keys()), "AuditKeys { .. }");
    }
}
