//! The `data` of a request's input, read straight from the JSON into one
//! flat, typed vector: no `serde_json::Value` tree (an allocation per
//! nested array and 32 bytes per element), no flattening copy. Numbers take
//! 16 bytes each, booleans one, text its bytes; only a tensor mixing kinds
//! (which is refused anyway) falls back to a vector of tagged elements.
//! serde_json's nesting limit still applies, so deep nesting is a 400.

use std::fmt;

use serde::de::{Deserialize, Deserializer, Error as _, SeqAccess, Visitor};
use serde_json::Value;

/// A number as JSON wrote it, or `null`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    /// A negative integer (or one that fits `i64`).
    Int(i64),
    /// A non-negative integer past `i64`.
    Uint(u64),
    /// A number with a fraction or an exponent.
    Float(f64),
    /// `null`: a missing value.
    Null,
}

/// One element of a tensor that mixes kinds.
#[derive(Clone, Debug, PartialEq)]
pub enum Element {
    /// A number or `null`.
    Number(Number),
    /// `true` or `false`.
    Bool(bool),
    /// A string.
    Text(String),
}

/// The flattened elements of one input, in row-major order.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Elements {
    /// No element yet.
    #[default]
    Empty,
    /// Numbers and nulls only.
    Numbers(Vec<Number>),
    /// Booleans only.
    Bools(Vec<bool>),
    /// Strings only.
    Texts(Vec<String>),
    /// Several kinds.
    Mixed(Vec<Element>),
}

impl Elements {
    /// How many elements.
    pub fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::Numbers(v) => v.len(),
            Self::Bools(v) => v.len(),
            Self::Texts(v) => v.len(),
            Self::Mixed(v) => v.len(),
        }
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each element as a JSON value (for the audit record's kept values).
    pub fn values(&self) -> Vec<Value> {
        match self {
            Self::Empty => Vec::new(),
            Self::Numbers(v) => v.iter().map(|n| n.value()).collect(),
            Self::Bools(v) => v.iter().map(|b| Value::Bool(*b)).collect(),
            Self::Texts(v) => v.iter().map(|s| Value::String(s.clone())).collect(),
            Self::Mixed(v) => v.iter().map(Element::value).collect(),
        }
    }

    /// Every element, tagged with its kind.
    pub fn into_elements(mut self) -> Vec<Element> {
        self.take_mixed()
    }

    fn push(&mut self, element: Element) {
        match (&mut *self, element) {
            (Self::Numbers(v), Element::Number(n)) => v.push(n),
            (Self::Bools(v), Element::Bool(b)) => v.push(b),
            (Self::Texts(v), Element::Text(s)) => v.push(s),
            (Self::Mixed(v), element) => v.push(element),
            (Self::Empty, Element::Number(n)) => *self = Self::Numbers(vec![n]),
            (Self::Empty, Element::Bool(b)) => *self = Self::Bools(vec![b]),
            (Self::Empty, Element::Text(s)) => *self = Self::Texts(vec![s]),
            (_, element) => {
                let mut mixed = self.take_mixed();
                mixed.push(element);
                *self = Self::Mixed(mixed);
            }
        }
    }

    fn take_mixed(&mut self) -> Vec<Element> {
        match std::mem::take(self) {
            Self::Empty => Vec::new(),
            Self::Numbers(v) => v.into_iter().map(Element::Number).collect(),
            Self::Bools(v) => v.into_iter().map(Element::Bool).collect(),
            Self::Texts(v) => v.into_iter().map(Element::Text).collect(),
            Self::Mixed(v) => v,
        }
    }
}

impl Number {
    /// As JSON.
    pub fn value(&self) -> Value {
        match *self {
            Self::Int(n) => Value::from(n),
            Self::Uint(n) => Value::from(n),
            Self::Float(x) => Value::from(x),
            Self::Null => Value::Null,
        }
    }
}

impl Element {
    /// As JSON.
    pub fn value(&self) -> Value {
        match self {
            Self::Number(n) => n.value(),
            Self::Bool(b) => Value::Bool(*b),
            Self::Text(s) => Value::String(s.clone()),
        }
    }
}

impl<'de> Deserialize<'de> for Elements {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut elements = Elements::default();
        deserializer.deserialize_any(Collect(&mut elements))?;
        Ok(elements)
    }
}

/// Appends every scalar it visits, at any depth of arrays, to its target.
struct Collect<'a>(&'a mut Elements);

impl<'de> serde::de::DeserializeSeed<'de> for Collect<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Collect<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("numbers, booleans, strings or nulls, flat or in nested arrays")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.0.push(Element::Bool(v));
        Ok(())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.0.push(Element::Number(Number::Int(v)));
        Ok(())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        let number = i64::try_from(v).map_or(Number::Uint(v), Number::Int);
        self.0.push(Element::Number(number));
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.0.push(Element::Number(Number::Float(v)));
        Ok(())
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push(Element::Text(v.to_owned()));
        Ok(())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<(), E> {
        self.0.push(Element::Text(v));
        Ok(())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.0.push(Element::Number(Number::Null));
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Collect(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, _map: A) -> Result<(), A::Error> {
        Err(A::Error::custom(
            "tensor data holds an object; give numbers, booleans or strings",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Elements, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn nested_arrays_flatten_into_one_typed_vector() {
        assert_eq!(
            parse("[[1, -2], [3.5, null]]").unwrap(),
            Elements::Numbers(vec![
                Number::Int(1),
                Number::Int(-2),
                Number::Float(3.5),
                Number::Null
            ])
        );
        assert_eq!(
            parse("18446744073709551615").unwrap(),
            Elements::Numbers(vec![Number::Uint(u64::MAX)])
        );
        assert_eq!(
            parse(r#"[["a"], ["b"]]"#).unwrap(),
            Elements::Texts(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            parse("[true, [false]]").unwrap(),
            Elements::Bools(vec![true, false])
        );
        assert_eq!(parse("[[], []]").unwrap(), Elements::Empty);
    }

    #[test]
    fn mixed_kinds_keep_their_order() {
        let mixed = parse(r#"[1, "x", true]"#).unwrap();
        assert_eq!(
            mixed,
            Elements::Mixed(vec![
                Element::Number(Number::Int(1)),
                Element::Text("x".into()),
                Element::Bool(true)
            ])
        );
        assert_eq!(
            mixed.values(),
            serde_json::json!([1, "x", true])
                .as_array()
                .unwrap()
                .clone()
        );
    }

    #[test]
    fn objects_and_deep_nesting_are_refused() {
        let object = parse(r#"[1, {"a": 2}]"#).unwrap_err().to_string();
        assert!(object.contains("holds an object"), "{object}");
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(&deep).is_err());
    }
}
