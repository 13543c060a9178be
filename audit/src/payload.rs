//! What of a call's input values goes into its audit record. By default
//! nothing: records carry names, types and shapes only. A policy names
//! inputs and how each is kept:
//!
//! - `Drop`: no values (the default for inputs the policy does not name);
//! - `Hash`: each value keyed-hashed (HMAC-SHA256 under a key derived from
//!   the audit key, 16 hex digits), so equal values can be matched across
//!   records without being readable;
//! - `Bucket`: each number replaced by the interval of `buckets` it falls in;
//! - `Keep`: the values, except that anything that looks like a payment card
//!   number (13 to 19 digits passing the Luhn check, whole or grouped by
//!   spaces or dashes) is masked to its first six and last four digits, as
//!   PCI DSS allows a PAN to be shown.

use std::collections::HashMap;

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::Value;

use sha2::Sha256;

/// How one input's values are recorded.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "policy")]
pub enum Treatment {
    /// Not at all.
    Drop,
    /// Keyed hashes.
    Hash,
    /// The interval each number falls in.
    Bucket {
        /// Ascending boundaries.
        buckets: Vec<f64>,
    },
    /// As sent, card numbers masked.
    Keep,
}

#[derive(Deserialize)]
struct Rule {
    input: String,
    #[serde(flatten)]
    treatment: Treatment,
}

/// The treatment of each named input.
pub struct PayloadPolicy {
    rules: HashMap<String, Treatment>,
    key: Vec<u8>,
}

impl PayloadPolicy {
    /// Parses `[{"input": "...", "policy": "Hash"}, ...]`; `key` keys the
    /// hashes.
    pub fn parse(json: &str, key: Vec<u8>) -> Result<Self, String> {
        let rules: Vec<Rule> =
            serde_json::from_str(json).map_err(|e| format!("invalid payload policy: {e}"))?;
        let mut by_input = HashMap::new();
        for rule in rules {
            if let Treatment::Bucket { buckets } = &rule.treatment
                && (buckets.is_empty() || !buckets.is_sorted_by(|a, b| a < b))
            {
                return Err(format!(
                    "payload policy for {}: buckets must be ascending and not empty",
                    rule.input
                ));
            }
            if by_input
                .insert(rule.input.clone(), rule.treatment)
                .is_some()
            {
                return Err(format!("payload policy names input {} twice", rule.input));
            }
        }
        Ok(Self {
            rules: by_input,
            key: hash_key(&key),
        })
    }

    /// The values of input `name` to record, from its request values
    /// (`values` flattens them, and is called only when the policy keeps
    /// something); `None` when the policy drops them or there are none
    /// (sent as binary data).
    pub fn record(
        &self,
        name: &str,
        values: impl FnOnce() -> Option<Vec<Value>>,
    ) -> Option<Vec<Value>> {
        let treatment = self.rules.get(name)?;
        if matches!(treatment, Treatment::Drop) {
            return None;
        }
        let values = values()?;
        match treatment {
            Treatment::Drop => None,
            Treatment::Hash => Some(values.iter().map(|v| self.hash(v)).collect()),
            Treatment::Bucket { buckets } => {
                Some(values.iter().map(|v| bucket(v, buckets)).collect())
            }
            Treatment::Keep => Some(values.into_iter().map(mask_card_number).collect()),
        }
    }

    fn hash(&self, value: &Value) -> Value {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return Value::Null;
        };
        mac.update(text.as_bytes());
        let digest = mac.finalize().into_bytes();
        Value::String(hex::encode(&digest[..8]))
    }
}

/// The key of `Hash`, derived from the audit key (HMAC of a fixed label),
/// so a hashed value never equals a MAC of the chain and the chain key is
/// used for the chain alone.
fn hash_key(audit_key: &[u8]) -> Vec<u8> {
    match Hmac::<Sha256>::new_from_slice(audit_key) {
        Ok(mut mac) => {
            mac.update(b"aimass payload hash v1");
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// `[a,b)` for the boundaries around `value`, `<a` below the first and
/// `>=z` from the last on; non-numbers are dropped to `null`.
fn bucket(value: &Value, buckets: &[f64]) -> Value {
    let Some(x) = value.as_f64() else {
        return Value::Null;
    };
    let above = buckets.partition_point(|b| *b <= x);
    Value::String(match (above.checked_sub(1), buckets.get(above)) {
        (None, Some(first)) => format!("<{first}"),
        (Some(i), Some(next)) => format!("[{},{next})", buckets[i]),
        (Some(i), None) => format!(">={}", buckets[i]),
        (None, None) => "any".into(),
    })
}

/// `value` with any card number masked to its first six and last four
/// digits: a run of 13 to 19 digits that passes the Luhn check, written
/// whole or in groups split by single spaces or dashes (`4111 1111 1111
/// 1111`, `4111-1111-1111-1111`). A grouped run that is no card number as a
/// whole has each of its groups checked alone.
fn mask_card_number(value: Value) -> Value {
    let text = match &value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return value,
    };
    let chars: Vec<char> = text.chars().collect();
    let mut masked = String::with_capacity(text.len());
    let mut changed = false;
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if !c.is_ascii_digit() {
            masked.push(c);
            i += 1;
            continue;
        }
        // Digits, with single separators between digits.
        let mut end = i;
        let mut j = i;
        while let Some(&c) = chars.get(j) {
            let separator =
                matches!(c, ' ' | '-') && chars.get(j + 1).is_some_and(char::is_ascii_digit);
            if c.is_ascii_digit() {
                j += 1;
                end = j;
            } else if separator {
                j += 1;
            } else {
                break;
            }
        }
        let run = chars.get(i..end).unwrap_or_default();
        let grouped = run.iter().any(|c| !c.is_ascii_digit());
        if mask_run(run, &mut masked) {
            changed = true;
        } else if grouped {
            for group in run.split_inclusive(|c| !c.is_ascii_digit()) {
                let (digits, separator) = match group.split_last() {
                    Some((last, rest)) if !last.is_ascii_digit() => (rest, Some(*last)),
                    _ => (group, None),
                };
                changed |= mask_run(digits, &mut masked);
                masked.extend(separator);
            }
        }
        i = end;
    }
    if changed {
        Value::String(masked)
    } else {
        value
    }
}

/// Appends `run` to `out` masked when its digits are a card number (and
/// says so), or as it is (only when it is no card number as a whole run of
/// plain digits: a grouped run is left to its caller).
fn mask_run(run: &[char], out: &mut String) -> bool {
    let digits: String = run.iter().filter(|c| c.is_ascii_digit()).collect();
    let n = digits.len();
    if (13..=19).contains(&n) && luhn(&digits) {
        let mut seen = 0;
        for c in run {
            if c.is_ascii_digit() {
                out.push(if seen < 6 || seen >= n - 4 { *c } else { '*' });
                seen += 1;
            } else {
                out.push(*c);
            }
        }
        true
    } else {
        if run.iter().all(char::is_ascii_digit) {
            out.extend(run);
        }
        false
    }
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let double = d * 2;
                if double > 9 { double - 9 } else { double }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const POLICY_KEY: [u8; 32] = [7; 32];

    /// A request's `data` (flat or nested), flattened as the decoder does.
    fn data(value: Value) -> impl FnOnce() -> Option<Vec<Value>> {
        fn flatten(value: Value, into: &mut Vec<Value>) {
            match value {
                Value::Array(items) => items.into_iter().for_each(|v| flatten(v, into)),
                other => into.push(other),
            }
        }
        move || {
            let mut values = Vec::new();
            flatten(value, &mut values);
            Some(values)
        }
    }

    fn policy() -> PayloadPolicy {
        PayloadPolicy::parse(
            r#"[{"input": "card", "policy": "Keep"},
                {"input": "amount", "policy": "Bucket", "buckets": [10, 100, 1000]},
                {"input": "merchant", "policy": "Hash"},
                {"input": "features", "policy": "Drop"}]"#,
            POLICY_KEY.to_vec(),
        )
        .unwrap()
    }

    #[test]
    fn unnamed_and_dropped_inputs_leave_no_values() {
        let p = policy();
        assert_eq!(p.record("features", data(json!([1.0, 2.0]))), None);
        assert_eq!(p.record("other", data(json!([1.0]))), None);
        assert_eq!(p.record("amount", || None), None, "binary data: nothing");
    }

    #[test]
    fn card_numbers_never_appear_in_clear() {
        let p = policy();
        let kept = p
            .record(
                "card",
                data(json!([
                    ["4111111111111111", "ref 5500005555555559 ok"],
                    ["12345"]
                ])),
            )
            .unwrap();
        assert_eq!(
            kept,
            [
                json!("411111******1111"),
                json!("ref 550000******5559 ok"),
                json!("12345")
            ]
        );
        // Grouped by spaces or dashes, and beside other numbers.
        assert_eq!(
            p.record(
                "card",
                data(json!([
                    "4111 1111 1111 1111",
                    "card: 5500-0055-5555-5559.",
                    "ref 1234 5500005555555559",
                    4111111111111111_u64
                ]))
            )
            .unwrap(),
            [
                json!("4111 11** **** 1111"),
                json!("card: 5500-00**-****-5559."),
                json!("ref 1234 550000******5559"),
                json!("411111******1111")
            ]
        );
        // A digit run that fails the Luhn check is not a card number.
        assert_eq!(
            p.record("card", data(json!(["4111111111111112"]))).unwrap(),
            [json!("4111111111111112")]
        );
    }

    #[test]
    fn amounts_are_bucketed_and_merchants_hashed() {
        let p = policy();
        assert_eq!(
            p.record("amount", data(json!([5, 10, 99.5, 5000])))
                .unwrap(),
            [
                json!("<10"),
                json!("[10,100)"),
                json!("[10,100)"),
                json!(">=1000")
            ]
        );
        let hashed = p
            .record("merchant", data(json!(["acme", "acme", "globex"])))
            .unwrap();
        assert_eq!(hashed[0], hashed[1], "equal values match");
        assert_ne!(hashed[0], hashed[2]);
        assert!(!hashed[0].to_string().contains("acme"));
        let other_key = PayloadPolicy::parse(r#"[{"input": "m", "policy": "Hash"}]"#, vec![8; 32])
            .unwrap()
            .record("m", data(json!(["acme"])))
            .unwrap();
        assert_ne!(other_key[0], hashed[0], "the hash is keyed");
        // Not keyed by the chain's key itself: a hash is never a chain MAC.
        let mut chain = Hmac::<Sha256>::new_from_slice(&POLICY_KEY).unwrap();
        chain.update(b"acme");
        let chain_mac = hex::encode(&chain.finalize().into_bytes()[..8]);
        assert_ne!(hashed[0], json!(chain_mac));
    }

    #[test]
    fn a_bad_policy_is_refused_with_the_reason() {
        for (json, expect) in [
            (
                r#"[{"input": "a", "policy": "Bucket", "buckets": [5, 1]}]"#,
                "ascending",
            ),
            (
                r#"[{"input": "a", "policy": "Keep"}, {"input": "a", "policy": "Drop"}]"#,
                "twice",
            ),
            (
                r#"[{"input": "a", "policy": "Shred"}]"#,
                "invalid payload policy",
            ),
        ] {
            let err = PayloadPolicy::parse(json, vec![0; 32]).err().unwrap();
            assert!(err.contains(expect), "{json}: {err}");
        }
    }
}
