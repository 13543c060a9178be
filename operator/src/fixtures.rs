//! Objects the unit tests share.

use aimass_crds::v1alpha1::ModelDeployment;

/// ModelDeployment `scorer` in namespace `desk`, serving Model `fraud`, with
/// `more` appended to its manifest: further `spec` fields indented by two
/// spaces, then a `status`, say.
pub fn scorer(more: &str) -> ModelDeployment {
    serde_yaml_ng::from_str(&format!(
        "
apiVersion: aimass.io/v1alpha1
kind: ModelDeployment
metadata: {{name: scorer, namespace: desk}}
spec:
  model: {{name: fraud}}
{more}
"
    ))
    .expect("a valid ModelDeployment")
}
