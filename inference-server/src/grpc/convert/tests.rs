use super::*;
use crate::grpc::proto::model_infer_request::InferInputTensor;
use crate::protocol::decode;
use aimass_engine::TensorSpec;

fn signature() -> Signature {
    Signature {
        inputs: vec![TensorSpec {
            name: "x".into(),
            datatype: DataType::Fp32,
            shape: vec![-1, 2],
        }],
        outputs: vec![TensorSpec {
            name: "label".into(),
            datatype: DataType::Int64,
            shape: vec![-1],
        }],
        on_request: 0,
    }
}

fn input(datatype: &str, contents: Option<InferTensorContents>) -> InferInputTensor {
    InferInputTensor {
        name: "x".into(),
        datatype: datatype.into(),
        shape: vec![1, 2],
        contents,
        ..InferInputTensor::default()
    }
}

fn fp32(values: Vec<f32>) -> InferTensorContents {
    InferTensorContents {
        fp32_contents: values,
        ..InferTensorContents::default()
    }
}

fn decoded(request: ModelInferRequest) -> Result<Vec<f32>, ProtocolError> {
    let (request, binary) = infer_request(request)?;
    let decoded = decode(request, &binary, &signature())?;
    match &decoded.inputs[0].data {
        TensorData::Fp32(v) => Ok(v.clone()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn raw_and_typed_contents_decode_to_the_same_tensor() {
    let raw = ModelInferRequest {
        inputs: vec![input("FP32", None)],
        raw_input_contents: vec![[1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat()],
        ..ModelInferRequest::default()
    };
    let typed = ModelInferRequest {
        inputs: vec![input("FP32", Some(fp32(vec![1.5, -2.0])))],
        ..ModelInferRequest::default()
    };
    assert_eq!(decoded(raw).unwrap(), [1.5, -2.0]);
    assert_eq!(decoded(typed).unwrap(), [1.5, -2.0]);
}

#[test]
fn contents_that_do_not_fit_are_refused_with_the_reason() {
    let cases: Vec<(ModelInferRequest, &str)> = vec![
        (
            ModelInferRequest {
                inputs: vec![input("FP32", None)],
                raw_input_contents: vec![vec![0; 8], vec![0; 8]],
                ..ModelInferRequest::default()
            },
            "raw_input_contents has 2 entries, but there are 1 inputs",
        ),
        (
            ModelInferRequest {
                inputs: vec![input("FP32", Some(fp32(vec![1.0, 2.0])))],
                raw_input_contents: vec![vec![0; 8]],
                ..ModelInferRequest::default()
            },
            "not both",
        ),
        (
            ModelInferRequest {
                inputs: vec![input("FP32", None)],
                ..ModelInferRequest::default()
            },
            "no data",
        ),
        (
            ModelInferRequest {
                inputs: vec![input(
                    "FP32",
                    Some(InferTensorContents {
                        int_contents: vec![1, 2],
                        ..InferTensorContents::default()
                    }),
                )],
                ..ModelInferRequest::default()
            },
            "FP32 elements go in contents.fp32_contents, not contents.int_contents",
        ),
        (
            ModelInferRequest {
                inputs: vec![input("FP32", Some(fp32(vec![1.0])))],
                ..ModelInferRequest::default()
            },
            "take 8 bytes",
        ),
        (
            ModelInferRequest {
                inputs: vec![input("FP32", None)],
                raw_input_contents: vec![vec![0; 7]],
                ..ModelInferRequest::default()
            },
            "take 8 bytes",
        ),
        (
            ModelInferRequest {
                inputs: vec![input("COMPLEX", Some(fp32(vec![1.0, 2.0])))],
                ..ModelInferRequest::default()
            },
            "datatype COMPLEX",
        ),
    ];
    for (request, reason) in cases {
        let error = decoded(request).unwrap_err().to_string();
        assert!(error.contains(reason), "{error:?} should say {reason:?}");
    }
}

#[test]
fn narrow_integers_must_fit_their_type() {
    let contents = InferTensorContents {
        int_contents: vec![1, 300],
        ..InferTensorContents::default()
    };
    let error = typed("x", "INT8", contents).unwrap_err().to_string();
    assert!(
        error.contains("element 1 (300) is out of the range of INT8"),
        "{error}"
    );
    let contents = InferTensorContents {
        uint_contents: vec![65_535],
        ..InferTensorContents::default()
    };
    assert_eq!(
        typed("x", "UINT16", contents).unwrap(),
        TensorData::Uint16(vec![65_535])
    );
}

#[test]
fn outputs_go_back_raw_with_the_id_and_parameters_echoed() {
    let request = ModelInferRequest {
        id: "r1".into(),
        parameters: [(
            "trace".to_owned(),
            InferParameter {
                parameter_choice: Some(ParameterChoice::StringParam("abc".into())),
            },
        )]
        .into(),
        inputs: vec![input("FP32", Some(fp32(vec![1.0, 2.0])))],
        ..ModelInferRequest::default()
    };
    let (request, binary) = infer_request(request).unwrap();
    let decoded = decode(request, &binary, &signature()).unwrap();
    let outputs = [Tensor::new(vec![1], TensorData::Int64(vec![7])).unwrap()];
    let response = infer_response("fraud", "3", &decoded, &outputs, &signature());
    assert_eq!(response.id, "r1");
    assert_eq!(
        response.parameters["trace"].parameter_choice,
        Some(ParameterChoice::StringParam("abc".into()))
    );
    assert_eq!(response.outputs[0].name, "label");
    assert_eq!(response.outputs[0].datatype, "INT64");
    assert_eq!(response.outputs[0].shape, [1]);
    assert_eq!(response.raw_output_contents, [7i64.to_le_bytes().to_vec()]);
}
