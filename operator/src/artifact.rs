//! Validating an artifact before it becomes a version: it must load, be
//! optimised and answer a warm-up inference in the very engine the inference
//! server runs (shared code, so a version that validates is one that serves),
//! and its signature and digest are recorded.

use aimass_crds::v1alpha1::{ModelSignature, TensorSignature};
use aimass_inference_server::engine::{Backend, TensorSpec, TractBackend};
use aimass_inference_server::source;

/// What validation learnt about an artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// sha256 as 64 hex digits.
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// Inputs and outputs.
    pub signature: ModelSignature,
}

/// Validates `bytes`, checking `expected_sha256` when given. The error is a
/// sentence for the version's `message`.
pub async fn validate(bytes: Vec<u8>, expected_sha256: Option<String>) -> Result<Artifact, String> {
    tokio::task::spawn_blocking(move || validate_blocking(&bytes, expected_sha256.as_deref()))
        .await
        .map_err(|e| format!("validation did not finish: {e}"))?
}

fn validate_blocking(bytes: &[u8], expected_sha256: Option<&str>) -> Result<Artifact, String> {
    if let Some(expected) = expected_sha256 {
        source::verify_sha256(bytes, expected).map_err(|e| e.to_string())?;
    }
    let backend = TractBackend::load(bytes)
        .map_err(|e| format!("the model does not load in the inference engine: {e}"))?;
    let convert = |specs: &[TensorSpec]| {
        specs
            .iter()
            .map(|t| TensorSignature {
                name: t.name.clone(),
                datatype: t.datatype.as_str().to_owned(),
                shape: t.shape.clone(),
            })
            .collect()
    };
    let signature = backend.signature();
    Ok(Artifact {
        sha256: source::sha256_hex(bytes),
        size_bytes: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
        signature: ModelSignature {
            inputs: convert(&signature.inputs),
            outputs: convert(&signature.outputs),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zoo(name: &str) -> Vec<u8> {
        let path = format!("{}/../tests/zoo/models/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[tokio::test]
    async fn a_zoo_model_validates_with_its_signature() {
        let bytes = zoo("gbdt_classifier.onnx");
        let digest = source::sha256_hex(&bytes);
        let artifact = validate(bytes, Some(digest.clone())).await.unwrap();
        assert_eq!(artifact.sha256, digest);
        assert_eq!(artifact.signature.inputs.len(), 1);
        assert_eq!(artifact.signature.inputs[0].datatype, "FP32");
        assert_eq!(artifact.signature.inputs[0].shape[0], -1);
        assert!(!artifact.signature.outputs.is_empty());
    }

    #[tokio::test]
    async fn corrupt_and_mismatched_artifacts_are_refused_with_a_reason() {
        let err = validate(b"not an onnx file".to_vec(), None)
            .await
            .unwrap_err();
        assert!(err.contains("does not load"), "{err}");
        let err = validate(zoo("gbdt_classifier.onnx"), Some("0".repeat(64)))
            .await
            .unwrap_err();
        assert!(err.contains("sha256"), "{err}");
    }
}
