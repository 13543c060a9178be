//! Types shared by more than one aimass.io kind.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Secret in the same namespace as the object that names it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Name of the Secret. It must live in the same namespace as this object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Where artifacts are written and read, and the credentials to reach them.
///
/// The Secret's keys are static credentials, named as in the cloud
/// providers' environment variables: `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
/// `AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP` (for S3-compatible stores such as
/// MinIO or Ceph), `GOOGLE_SERVICE_ACCOUNT_KEY` (the JSON key itself),
/// `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`,
/// `AZURE_STORAGE_SAS_KEY`, `AZURE_STORAGE_ENDPOINT`. The operator refuses
/// any other key (a file, a credential-provider URL, a metadata endpoint)
/// with `InvalidSpec` naming it, and never uses its own or the node's
/// identity: without keys it reads the store anonymously.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactStorage {
    /// URI prefix under which versions are stored, as
    /// `<prefix>/<model>/<version>/model.onnx` plus a `version.json` record.
    /// Supported schemes: `s3://`, `gs://`, `az://`, `file://` and
    /// `pvc://<claim>/<path>`.
    #[x_kube(validation = (
        "self.matches('^(s3|gs|az|file|pvc)://.+')",
        "storage prefix must start with s3://, gs://, az://, file:// or pvc:// followed by a location"
    ))]
    #[schemars(length(min = 1, max = 2048))]
    pub prefix: String,

    /// Secret holding the credentials for the store. Leave it out for
    /// `file://` prefixes (allowed only below the roots the cluster admin
    /// set) and for stores that allow anonymous access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}

/// One named tensor of a model's input or output signature, in Open Inference
/// Protocol terms.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TensorSignature {
    /// Tensor name as the model declares it; requests must use this name.
    pub name: String,
    /// Element type in Open Inference Protocol spelling, such as `FP32`,
    /// `INT64` or `BYTES`.
    pub datatype: String,
    /// Dimensions; `-1` marks a dynamic dimension such as the batch size.
    pub shape: Vec<i64>,
}

/// The inputs and outputs a model version accepts and returns: the contract
/// its API enforces.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ModelSignature {
    /// Inputs in the order the model declares them.
    #[serde(default)]
    pub inputs: Vec<TensorSignature>,
    /// Outputs in the order the model declares them.
    #[serde(default)]
    pub outputs: Vec<TensorSignature>,
}

/// A metric's value at one moment of a training run.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSample {
    /// Training step (epoch, iteration or boosting round) the trainer reported,
    /// when it reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    /// When the operator read the sample from the trainer's output.
    pub time: Time,
    /// Metric name to value, for example `loss`, `auc`, `ks`, `recall`.
    pub metrics: std::collections::BTreeMap<String, f64>,
}
