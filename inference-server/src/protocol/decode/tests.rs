//! Tests of `decode`.

use super::*;
use aimass_engine::TensorSpec;

#[test]
fn a_long_multibyte_value_is_quoted_whole_characters() {
    let request: InferRequest = serde_json::from_value(serde_json::json!({
            "inputs": [
                {"name": "features", "shape": [1, 3], "datatype": "FP32", "data": ["é".repeat(100), 1, 2]},
                {"name": "mcc", "shape": [1, 1], "datatype": "INT64", "data": [5411]}
            ]
        }))
        .unwrap();
    let err = decode(request, &[], &signature()).unwrap_err().to_string();
    assert!(err.contains("éééé"), "{err}");
}

fn signature() -> Signature {
    Signature {
        inputs: vec![
            TensorSpec {
                name: "features".into(),
                datatype: DataType::Fp32,
                shape: vec![-1, 3],
            },
            TensorSpec {
                name: "mcc".into(),
                datatype: DataType::Int64,
                shape: vec![-1, 1],
            },
        ],
        outputs: vec![
            TensorSpec {
                name: "label".into(),
                datatype: DataType::Int64,
                shape: vec![-1],
            },
            TensorSpec {
                name: "probabilities".into(),
                datatype: DataType::Fp32,
                shape: vec![-1, 2],
            },
        ],
        on_request: 0,
    }
}

fn request(body: Value) -> InferRequest {
    serde_json::from_value(body).unwrap()
}

fn ok_body() -> Value {
    serde_json::json!({
        "id": "r1",
        "inputs": [
            {"name": "mcc", "shape": [2, 1], "datatype": "INT64", "data": [5411, 7995]},
            {"name": "features", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2.5, null], [4, 5, 6]]}
        ],
        "outputs": [{"name": "probabilities"}]
    })
}

#[test]
fn decodes_nested_and_flat_data_in_signature_order() {
    let d = decode(request(ok_body()), &[], &signature()).unwrap();
    assert_eq!(d.id.as_deref(), Some("r1"));
    assert_eq!(d.rows, 2);
    assert_eq!(d.inputs[0].shape, vec![2, 3]);
    let TensorData::Fp32(v) = &d.inputs[0].data else {
        panic!()
    };
    assert_eq!(&v[..2], &[1.0, 2.5]);
    assert!(v[2].is_nan(), "null is a missing value");
    assert_eq!(d.inputs[1].data, TensorData::Int64(vec![5411, 7995]));
    assert_eq!(
        d.outputs,
        vec![OutputRequest {
            index: 1,
            binary: false
        }]
    );
}

fn error(mutate: impl FnOnce(&mut Value)) -> String {
    let mut body = ok_body();
    mutate(&mut body);
    decode(request(body), &[], &signature())
        .unwrap_err()
        .to_string()
}

#[test]
fn every_mistake_gets_a_precise_message() {
    type Mutation = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|b| {
                b["inputs"].as_array_mut().unwrap().remove(0);
            }),
            "missing input \"mcc\"",
        ),
        (
            Box::new(|b| b["inputs"][0]["name"] = "merchant".into()),
            "unknown input \"merchant\"",
        ),
        (
            Box::new(|b| b["inputs"][1]["datatype"] = "FP64".into()),
            "has datatype FP64, but the model expects FP32",
        ),
        (
            Box::new(|b| b["inputs"][1]["datatype"] = "FP16".into()),
            "has datatype FP16",
        ),
        (
            Box::new(|b| b["inputs"][1]["shape"] = serde_json::json!([2, 4])),
            "has shape [2, 4], but the model expects [-1, 3]",
        ),
        (
            Box::new(|b| b["inputs"][1]["shape"] = serde_json::json!([6])),
            "has shape [6]",
        ),
        (
            Box::new(|b| b["inputs"][1]["data"] = serde_json::json!([1, 2, 3])),
            "holds 6 elements, but 3 were sent",
        ),
        (
            Box::new(|b| b["inputs"][1]["data"][0][1] = "high".into()),
            "element 1 is \"high\", not a number",
        ),
        (
            Box::new(|b| b["inputs"][0]["data"][0] = serde_json::json!(1.5)),
            "element 0 is 1.5, not an integer",
        ),
        (
            Box::new(|b| {
                b["inputs"][0]["shape"] = serde_json::json!([1, 1]);
                b["inputs"][0]["data"] = serde_json::json!([5411]);
            }),
            "disagree on the batch size",
        ),
        (
            Box::new(|b| b["outputs"][0]["name"] = "score".into()),
            "unknown output \"score\"",
        ),
        (
            Box::new(|b| {
                let i = b["inputs"][0].clone();
                b["inputs"].as_array_mut().unwrap().push(i);
            }),
            "given more than once",
        ),
        (
            Box::new(|b| {
                b["inputs"][0].as_object_mut().unwrap().remove("data");
            }),
            "no data",
        ),
    ];
    for (mutate, expected) in cases {
        let message = error(mutate);
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
}

#[test]
fn decodes_binary_tensor_data() {
    let mut binary = Vec::new();
    for x in [1.0f32, 2.0, 3.0] {
        binary.extend_from_slice(&x.to_le_bytes());
    }
    binary.extend_from_slice(&42i64.to_le_bytes());
    let body = serde_json::json!({
        "inputs": [
            {"name": "features", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12}},
            {"name": "mcc", "shape": [1, 1], "datatype": "INT64", "parameters": {"binary_data_size": 8}}
        ],
        "parameters": {"binary_data_output": true}
    });
    let d = decode(request(body), &binary, &signature()).unwrap();
    assert_eq!(d.inputs[0].data, TensorData::Fp32(vec![1.0, 2.0, 3.0]));
    assert_eq!(d.inputs[1].data, TensorData::Int64(vec![42]));
    assert!(d.outputs.iter().all(|o| o.binary));

    let short = serde_json::json!({"inputs": [
        {"name": "features", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12}},
        {"name": "mcc", "shape": [1, 1], "datatype": "INT64", "parameters": {"binary_data_size": 8}}
    ]});
    let err = decode(request(short), &binary[..16], &signature()).unwrap_err();
    assert!(err.to_string().contains("runs past"), "{err}");
}

#[test]
fn decodes_length_prefixed_bytes() {
    let mut bytes = Vec::new();
    for s in ["fraud", "ok"] {
        bytes.extend_from_slice(&(s.len() as u32).to_le_bytes());
        bytes.extend_from_slice(s.as_bytes());
    }
    assert_eq!(
        from_binary(DataType::Bytes, &bytes, 2).unwrap(),
        TensorData::Bytes(vec![b"fraud".to_vec(), b"ok".to_vec()])
    );
    assert!(from_binary(DataType::Bytes, &bytes[..7], 2).is_err());
}
