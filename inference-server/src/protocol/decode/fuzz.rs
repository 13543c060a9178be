//! Whatever arrives, decoding answers Ok or a ProtocolError: it never
//! panics and never allocates from a claimed shape before checking it.
use proptest::prelude::*;

use super::*;
use aimass_engine::TensorSpec;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        // Any Unicode, multi-byte characters included: error messages
        // quote values and must never cut through a character.
        any::<String>().prop_map(Value::String),
        "\\PC{30,60}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn signature() -> Signature {
    Signature {
        inputs: vec![TensorSpec {
            name: "x".into(),
            datatype: DataType::Fp32,
            shape: vec![-1, 4],
        }],
        outputs: vec![TensorSpec {
            name: "y".into(),
            datatype: DataType::Fp32,
            shape: vec![-1],
        }],
        on_request: 0,
    }
}

fn input() -> impl Strategy<Value = Value> {
    (
            prop_oneof![Just("x".to_owned()), "[a-z]{1,3}"],
            prop::collection::vec(prop_oneof![-2i64..6, Just(i64::MAX), Just(1i64 << 40)], 0..4),
            prop_oneof![Just("FP32".to_owned()), Just("BYTES".to_owned()), Just("INT8".to_owned()), "[A-Z0-9]{2,6}"],
            json_value(),
            prop::option::of(0u64..64),
        )
            .prop_map(|(name, shape, datatype, data, binary)| {
                let mut input = serde_json::json!({"name": name, "shape": shape, "datatype": datatype, "data": data});
                if let Some(size) = binary {
                    input["parameters"] = serde_json::json!({"binary_data_size": size});
                    input.as_object_mut().map(|o| o.remove("data"));
                }
                input
            })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_json_never_panics(body in json_value(), binary in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(request) = serde_json::from_value::<InferRequest>(body) {
            let _ = decode(request, &binary, &signature());
        }
    }

    #[test]
    fn near_valid_requests_never_panic(inputs in prop::collection::vec(input(), 0..3), binary in prop::collection::vec(any::<u8>(), 0..64)) {
        let body = serde_json::json!({"inputs": inputs});
        // Data holding an object is refused while parsing.
        let parsed = serde_json::from_value::<InferRequest>(body);
        prop_assume!(parsed.is_ok());
        if let Ok(request) = parsed {
            let _ = decode(request, &binary, &signature());
        }
    }

    #[test]
    fn unicode_values_in_a_numeric_input_are_refused_not_panicked_on(text in "\\PC{0,80}") {
        let request: InferRequest = serde_json::from_value(serde_json::json!({
            "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [text, 1, 2, 3]}]
        })).unwrap();
        prop_assert!(decode(request, &[], &signature()).is_err());
    }

    #[test]
    fn arbitrary_bytes_as_binary_tensors_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), count in 0usize..64) {
        for dt in DataType::ALL {
            let _ = from_binary(dt, &bytes, count);
        }
    }
}
