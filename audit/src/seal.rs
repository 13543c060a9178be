//! Signed checkpoints ("seals") of an audit trail. The HMAC chain proves
//! the records are intact to whoever holds the chain's key; a seal proves
//! to anyone holding only the public verifying key that this server's trail
//! stood at (sequence, MAC) at a given time. The operator makes the Ed25519
//! key pair with the audit key, keeps the public half, and checks every
//! seal it collects against it and against the seal before, so a trail
//! that went back, changed under a sealed record, or a checkpoint made up
//! by someone without the signing key, is found.
//!
//! The signed message names the namespace, model and pod, so a seal cannot
//! be passed off for another replica's trail.

use base64::Engine as _;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::{Checkpoint, Target};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// Tells this message format apart from any other signed with the key.
const CONTEXT: &str = "aimass-audit-seal/v1";

/// A checkpoint of one replica's trail, signed by its server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seal {
    /// Namespace of the ModelDeployment.
    pub namespace: String,
    /// The model the trail records calls to.
    pub model: String,
    /// The replica's pod.
    pub pod: String,
    /// Sequence of the trail's last record.
    pub sequence: u64,
    /// That record's MAC.
    pub mac: String,
    /// Calls the server could not record since it started.
    #[serde(default)]
    pub write_failures: u64,
    /// When the seal was made (UTC, µs).
    pub time: String,
    /// Ed25519 signature of the fields above (base64).
    pub signature: String,
}

/// What `GET /audit/checkpoint` answers: the chain's tail, and its seal
/// when the server has a signing key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointAnswer {
    /// The chain's tail.
    #[serde(flatten)]
    pub checkpoint: Checkpoint,
    /// Calls the server could not record since it started.
    #[serde(default, rename = "writeFailures")]
    pub write_failures: u64,
    /// The same, signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<Seal>,
}

/// Signs checkpoints with a server's signing key.
pub struct Sealer {
    key_pair: Ed25519KeyPair,
}

/// A fresh key pair: (the 32-byte seed the server signs with, the public
/// verifying key in base64).
pub fn generate() -> Result<(Vec<u8>, String), String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness for a signing key: {e}"))?;
    let sealer = Sealer::from_seed(&seed)?;
    Ok((seed.to_vec(), sealer.verifying_key()))
}

impl Sealer {
    /// The sealer of the 32-byte `seed`.
    pub fn from_seed(seed: &[u8]) -> Result<Self, String> {
        Ed25519KeyPair::from_seed_unchecked(seed)
            .map(|key_pair| Self { key_pair })
            .map_err(|_| "an audit signing key must be 32 bytes".to_owned())
    }

    /// The public key that verifies this sealer's seals (base64).
    pub fn verifying_key(&self) -> String {
        B64.encode(self.key_pair.public_key().as_ref())
    }

    /// Seals `checkpoint` of the trail of `target`, which failed to record
    /// `write_failures` calls, at `time`.
    pub fn seal(
        &self,
        target: &Target,
        checkpoint: &Checkpoint,
        write_failures: u64,
        time: String,
    ) -> Seal {
        let mut seal = Seal {
            namespace: target.namespace.clone(),
            model: target.model.clone(),
            pod: target.pod.clone(),
            sequence: checkpoint.sequence,
            mac: checkpoint.mac.clone(),
            write_failures,
            time,
            signature: String::new(),
        };
        seal.signature = B64.encode(self.key_pair.sign(&message(&seal)).as_ref());
        seal
    }
}

/// Checks that `seal` was signed by the holder of `verifying_key` (base64).
pub fn verify(seal: &Seal, verifying_key: &str) -> Result<(), String> {
    let key = B64
        .decode(verifying_key)
        .map_err(|e| format!("the verifying key is not base64: {e}"))?;
    let signature = B64
        .decode(&seal.signature)
        .map_err(|e| format!("the signature is not base64: {e}"))?;
    UnparsedPublicKey::new(&ED25519, key)
        .verify(&message(seal), &signature)
        .map_err(|_| "the signature does not verify with the audit verifying key".to_owned())
}

/// The signed bytes: every field but the signature, one per line.
fn message(seal: &Seal) -> Vec<u8> {
    format!(
        "{CONTEXT}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
        seal.namespace,
        seal.model,
        seal.pod,
        seal.sequence,
        seal.mac,
        seal.write_failures,
        seal.time
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(pod: &str) -> Target {
        Target {
            namespace: "risk".into(),
            model: "fraud".into(),
            pod: pod.into(),
            ..Target::default()
        }
    }

    #[test]
    fn a_seal_verifies_with_its_key_only_and_not_once_changed() {
        let (seed, verifying_key) = generate().unwrap();
        let sealer = Sealer::from_seed(&seed).unwrap();
        assert_eq!(sealer.verifying_key(), verifying_key);
        let checkpoint = Checkpoint {
            sequence: 42,
            mac: "ab".repeat(32),
        };
        let seal = sealer.seal(
            &target("scoring-1"),
            &checkpoint,
            0,
            "2026-11-24T08:00:00.000000Z".into(),
        );
        verify(&seal, &verifying_key).unwrap();
        let (_, other_key) = generate().unwrap();
        assert!(verify(&seal, &other_key).is_err(), "another key");
        let mut moved = seal.clone();
        moved.pod = "scoring-2".into();
        assert!(verify(&moved, &verifying_key).is_err(), "another pod");
        let mut back = seal.clone();
        back.sequence = 41;
        assert!(verify(&back, &verifying_key).is_err(), "another sequence");
        let mut hidden = seal.clone();
        hidden.write_failures = 3;
        assert!(verify(&hidden, &verifying_key).is_err(), "other failures");
        let mut garbled = seal;
        garbled.signature = "not base64!".into();
        assert!(verify(&garbled, &verifying_key).is_err());
        assert!(Sealer::from_seed(&[1; 16]).is_err());
    }

    #[test]
    fn an_answer_without_a_seal_reads_as_before() {
        let answer: CheckpointAnswer =
            serde_json::from_str(r#"{"sequence": 3, "mac": "m3"}"#).unwrap();
        assert_eq!(answer.checkpoint.sequence, 3);
        assert!(answer.seal.is_none());
    }
}
