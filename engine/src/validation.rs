//! Checking an artifact before it becomes a version: it must load, be
//! optimised and answer a warm-up inference in the very engine the server
//! runs, and its signature and digest are recorded.
//!
//! An artifact is untrusted tenant data, so this never runs in the operator:
//! the operator starts a short Job in the tenant's namespace, under the
//! tenant's ServiceAccount and without any API token, running this binary
//! with `--validate-only`. The Job prints one [`Report`] line on stdout and
//! the operator reads it from the pod's log (bounded), so the operator never
//! fetches the artifact, never holds it in memory and never optimises it.

pub use aimass_crds::artifact::{Artifact, Report};
use aimass_crds::v1alpha1::{ModelSignature, TensorSignature, VersionBaseline};
use aimass_drift::{Baseline, MAX_BASELINE_BYTES, Tensor as DriftTensor};

use crate::{Backend, TensorSpec, TractBackend};

/// How long fetching an artifact may take.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Fetches `uri` (at most `max_bytes`) with credentials from the
/// environment and validates it.
pub async fn run(uri: &str, expected_sha256: Option<String>, max_bytes: usize) -> Report {
    let bytes = match fetch(uri, max_bytes).await {
        Ok(bytes) => bytes,
        Err(message) => return Report::Invalid(message),
    };
    let checked =
        tokio::task::spawn_blocking(move || validate(&bytes, expected_sha256.as_deref())).await;
    let mut artifact = match checked {
        Ok(Ok(artifact)) => artifact,
        Ok(Err(message)) => return Report::Invalid(message),
        Err(e) => return Report::Invalid(format!("validation did not finish: {e}")),
    };
    match baseline(
        &aimass_storage::sibling(uri, BASELINE_FILE),
        &artifact.signature,
    )
    .await
    {
        Ok(baseline) => {
            artifact.baseline = baseline;
            Report::Valid(artifact)
        }
        Err(message) => Report::Invalid(message),
    }
}

/// The training baseline's file name, beside the artifact.
pub const BASELINE_FILE: &str = "baseline.json";

/// The baseline at `uri`, if there is one, checked against `signature`;
/// the error is a sentence for the version's `message`.
pub async fn baseline(
    uri: &str,
    signature: &ModelSignature,
) -> Result<Option<VersionBaseline>, String> {
    let read = match aimass_storage::open(uri, &aimass_storage::Credentials::Environment) {
        Ok(location) => {
            location
                .get_bounded(MAX_BASELINE_BYTES, aimass_storage::READ_TIMEOUT)
                .await
        }
        Err(e) => Err(e),
    };
    let bytes = match read {
        Ok(None) => return Ok(None),
        Ok(Some(bytes)) => bytes,
        Err(aimass_storage::Error::TooLarge { limit, .. }) => {
            return Err(format!("{BASELINE_FILE} is larger than {limit} bytes"));
        }
        Err(e) => return Err(format!("cannot read {BASELINE_FILE}: {e}")),
    };
    let parsed = Baseline::parse(&bytes).map_err(|e| e.to_string())?;
    check_baseline(&parsed, signature)?;
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    Ok(Some(VersionBaseline {
        uri: aimass_storage::redact(uri),
        sha256: aimass_storage::sha256_hex(&bytes),
        features: count(parsed.features.len()),
        scores: count(parsed.scores.len()),
    }))
}

/// Checks that every column of `baseline` is in `signature`.
pub fn check_baseline(baseline: &Baseline, signature: &ModelSignature) -> Result<(), String> {
    fn view(specs: &[TensorSignature]) -> Vec<DriftTensor<'_>> {
        specs
            .iter()
            .map(|t| DriftTensor {
                name: &t.name,
                width: row_width(&t.shape),
                text: t.datatype == "BYTES",
            })
            .collect()
    }
    baseline
        .check(&view(&signature.inputs), &view(&signature.outputs))
        .map_err(|e| e.to_string())
}

/// Values per row of a tensor of `shape` (batch axis first), when fixed.
pub fn row_width(shape: &[i64]) -> Option<usize> {
    shape.iter().skip(1).try_fold(1usize, |width, d| {
        usize::try_from(*d)
            .ok()
            .filter(|d| *d > 0)
            .map(|d| width * d)
    })
}

/// Fetches the artifact at `uri` (at most `max_bytes`, within five
/// minutes) with credentials from the environment; the error is a sentence.
pub async fn fetch(uri: &str, max_bytes: usize) -> Result<Vec<u8>, String> {
    let fetched = match aimass_storage::open(uri, &aimass_storage::Credentials::Environment) {
        Ok(location) => location.get_bounded(max_bytes, FETCH_TIMEOUT).await,
        Err(e) => Err(e),
    };
    match fetched {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(format!("there is no artifact at {uri}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Validates `bytes`, checking `expected_sha256` when given. The error is a
/// sentence for the version's `message`.
pub fn validate(bytes: &[u8], expected_sha256: Option<&str>) -> Result<Artifact, String> {
    if let Some(expected) = expected_sha256 {
        aimass_storage::verify_sha256(bytes, expected).map_err(|e| e.to_string())?;
    }
    let backend = TractBackend::load(bytes)
        .map_err(|e| format!("the model does not load in the inference engine: {e}"))?;
    Ok(Artifact {
        sha256: aimass_storage::sha256_hex(bytes),
        size_bytes: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
        signature: model_signature(backend.signature()),
        baseline: None,
    })
}

/// The signature as a version's record keeps it.
pub fn model_signature(signature: &crate::Signature) -> ModelSignature {
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
    ModelSignature {
        inputs: convert(&signature.inputs),
        outputs: convert(&signature.outputs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zoo(name: &str) -> Vec<u8> {
        let path = format!("{}/../tests/zoo/models/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn a_zoo_model_validates_with_its_signature() {
        let bytes = zoo("gbdt_classifier.onnx");
        let digest = aimass_storage::sha256_hex(&bytes);
        let artifact = validate(&bytes, Some(&digest)).unwrap();
        assert_eq!(artifact.sha256, digest);
        assert_eq!(artifact.signature.inputs.len(), 1);
        assert_eq!(artifact.signature.inputs[0].datatype, "FP32");
        assert_eq!(artifact.signature.inputs[0].shape[0], -1);
        assert!(!artifact.signature.outputs.is_empty());
    }

    #[test]
    fn corrupt_and_mismatched_artifacts_are_refused_with_a_reason() {
        let err = validate(b"not an onnx file", None).unwrap_err();
        assert!(err.contains("does not load"), "{err}");
        let err = validate(&zoo("gbdt_classifier.onnx"), Some(&"0".repeat(64))).unwrap_err();
        assert!(err.contains("sha256"), "{err}");
    }

    #[tokio::test]
    async fn a_run_reports_one_line_that_reads_back_from_a_noisy_log() {
        let path = format!(
            "{}/../tests/zoo/models/gbdt_classifier.onnx",
            env!("CARGO_MANIFEST_DIR")
        );
        let report = run(&format!("file://{path}"), None, 1 << 20).await;
        assert!(matches!(report, Report::Valid(_)), "{report:?}");
        let log = format!(
            "starting\n{{\"aimassValidation\": \"forged\"}}\nnot json\n{}\n",
            report.to_line()
        );
        assert_eq!(Report::from_log(&log), Some(report));
        let missing = run("file:///no/such/model.onnx", None, 1 << 20).await;
        let Report::Invalid(message) = &missing else {
            panic!("{missing:?}")
        };
        assert!(message.contains("/no/such/model.onnx"), "{message}");
        assert_eq!(Report::from_log("garbage\n{}\n"), None);
        assert_eq!(Report::from_log(&missing.to_line()), Some(missing));
        let Report::Invalid(message) = run(&format!("file://{path}"), None, 1024).await else {
            panic!("a model over the limit was read")
        };
        assert!(message.contains("larger than 1024 bytes"), "{message}");
    }

    #[tokio::test]
    async fn a_baseline_beside_the_artifact_is_checked_and_recorded() {
        let dir = std::env::temp_dir().join(format!("aimass-baseline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("model.onnx"), zoo("gbdt_classifier.onnx")).unwrap();
        let uri = format!("file://{}/model.onnx", dir.display());
        let Report::Valid(plain) = run(&uri, None, 1 << 20).await else {
            panic!("the zoo model validates")
        };
        assert_eq!(plain.baseline, None, "no baseline.json, none recorded");
        let input = &plain.signature.inputs[0].name;
        let output = &plain.signature.outputs.last().unwrap().name;
        let baseline = |index: usize| {
            serde_json::json!({
                "rows": 10,
                "features": [{"name": "f0", "tensor": input, "index": index, "edges": [0.5], "proportions": [0.5, 0.5]}],
                "scores": [{"name": "p", "tensor": output, "index": 0, "edges": [0.5], "proportions": [0.9, 0.1]}]
            })
            .to_string()
        };
        std::fs::write(dir.join(BASELINE_FILE), baseline(0)).unwrap();
        let Report::Valid(artifact) = run(&uri, None, 1 << 20).await else {
            panic!("a good baseline keeps the version valid")
        };
        let recorded = artifact.baseline.unwrap();
        assert_eq!((recorded.features, recorded.scores), (1, 1));
        assert_eq!(
            recorded.sha256,
            aimass_storage::sha256_hex(baseline(0).as_bytes())
        );
        assert!(recorded.uri.ends_with("/baseline.json"), "{}", recorded.uri);
        // A column the model does not have refuses the version, saying why.
        std::fs::write(dir.join(BASELINE_FILE), baseline(10_000)).unwrap();
        let Report::Invalid(message) = run(&uri, None, 1 << 20).await else {
            panic!("a baseline past the input's width is refused")
        };
        assert!(
            message.contains("column \"f0\": index 10000 is past"),
            "{message}"
        );
        std::fs::write(dir.join(BASELINE_FILE), "{not json").unwrap();
        let Report::Invalid(message) = run(&uri, None, 1 << 20).await else {
            panic!("a malformed baseline is refused")
        };
        assert!(message.contains("not a valid baseline"), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
