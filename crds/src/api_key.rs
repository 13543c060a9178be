//! The format of aimass API keys, shared by the tool that makes them, the
//! operator that resolves their Secrets and the servers that check them.
//!
//! A key reads `aimass_<id>_<secret>`: `id` is 16 lowercase hex digits, not
//! secret, named in audit records; `secret` is 32 random bytes in unpadded
//! base64url. Its Secret holds the id and the SHA-256 (hex) of the whole
//! key, never the key.

/// What every key starts with, so scanners and people recognise one.
pub const PREFIX: &str = "aimass_";
/// The key of the id in a key Secret.
pub const SECRET_ID: &str = "id";
/// The key of the hash in a key Secret.
pub const SECRET_SHA256: &str = "sha256";

/// The id of a presented key, if it has the shape of one.
pub fn key_id(key: &str) -> Option<&str> {
    let (id, secret) = key.strip_prefix(PREFIX)?.split_once('_')?;
    (is_valid_id(id) && !secret.is_empty()).then_some(id)
}

/// Whether `id` is a key id: 16 lowercase hex digits.
pub fn is_valid_id(id: &str) -> bool {
    is_lower_hex(id, 16)
}

/// Whether `hash` is a SHA-256 in lowercase hex.
pub fn is_valid_sha256(hash: &str) -> bool {
    is_lower_hex(hash, 64)
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_id_of_a_well_formed_key_only() {
        assert_eq!(
            key_id("aimass_0123456789abcdef_c2VjcmV0"),
            Some("0123456789abcdef")
        );
        assert_eq!(key_id("aimass_0123456789abcdef_"), None);
        assert_eq!(key_id("aimass_0123456789ABCDEF_c2VjcmV0"), None);
        assert_eq!(key_id("aimass_0123_c2VjcmV0"), None);
        assert_eq!(key_id("eyJhbGciOiJSUzI1NiJ9.e30.sig"), None);
        assert!(is_valid_sha256(&"ab".repeat(32)));
        assert!(!is_valid_sha256(&"AB".repeat(32)));
    }
}
