//! Tests of the API as users meet it: the generated YAML, the schema's
//! documentation and structure, the examples, and the invalid fixtures that
//! the CEL rules must reject (the cluster tests prove the same against a real
//! API server).

use std::path::{Path, PathBuf};

use kube::core::cel::validate_cel;
use serde_json::Value;

use crate::v1alpha1::{ApiClient, Model, ModelApproval, ModelDeployment, ScoringJob, TrainingJob};
use crate::{crds, render_crd, validation};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crate lives in the workspace")
        .to_path_buf()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Every YAML document of a file, as JSON values.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("readable file");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let value: Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            value
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// A manifest of one of our kinds, deserialized into its Rust type.
enum Manifest {
    Model(Box<Model>),
    TrainingJob(Box<TrainingJob>),
    ModelDeployment(Box<ModelDeployment>),
    ApiClient(Box<ApiClient>),
    ModelApproval(Box<ModelApproval>),
    ScoringJob(Box<ScoringJob>),
}

impl Manifest {
    fn parse(value: Value) -> Result<Self, String> {
        let kind = value["kind"].as_str().unwrap_or_default().to_owned();
        let err = |e: serde_json::Error| format!("{kind}: {e}");
        Ok(match kind.as_str() {
            "Model" => Self::Model(serde_json::from_value(value).map_err(err)?),
            "TrainingJob" => Self::TrainingJob(serde_json::from_value(value).map_err(err)?),
            "ModelDeployment" => Self::ModelDeployment(serde_json::from_value(value).map_err(err)?),
            "ApiClient" => Self::ApiClient(serde_json::from_value(value).map_err(err)?),
            "ModelApproval" => Self::ModelApproval(serde_json::from_value(value).map_err(err)?),
            "ScoringJob" => Self::ScoringJob(serde_json::from_value(value).map_err(err)?),
            other => return Err(format!("unexpected kind {other:?}")),
        })
    }

    /// The CEL rules, evaluated client-side on the typed (and so defaulted)
    /// object.
    fn validate_cel(&self) -> Result<(), String> {
        match self {
            Self::Model(m) => validate_cel(m.as_ref()),
            Self::TrainingJob(t) => validate_cel(t.as_ref()),
            Self::ModelDeployment(d) => validate_cel(d.as_ref()),
            Self::ApiClient(c) => validate_cel(c.as_ref()),
            Self::ModelApproval(a) => validate_cel(a.as_ref()),
            Self::ScoringJob(j) => validate_cel(j.as_ref()),
        }
        .map_err(|e| e.to_string())
    }

    /// The checks the schema cannot express.
    fn validate_pure(&self) -> Result<(), crate::Error> {
        match self {
            Self::Model(m) => validation::validate_model(&m.spec),
            Self::TrainingJob(t) => validation::validate_training_job(&t.spec),
            Self::ModelDeployment(d) => validation::validate_model_deployment(&d.spec),
            Self::ScoringJob(j) => validation::validate_scoring_job(&j.spec),
            Self::ApiClient(_) | Self::ModelApproval(_) => Ok(()),
        }
    }
}

#[test]
fn generated_crds_are_up_to_date() {
    let all = crds();
    let mut expected = Vec::new();
    for dir in ["crds", "charts/aimass/files/crds"] {
        for (file, crd) in &all {
            expected.push((
                repo_root().join(dir).join(file),
                render_crd(crd).expect("CRD renders"),
            ));
        }
    }
    let kinds: Vec<_> = all.into_iter().map(|(_, crd)| crd).collect();
    expected.push((
        repo_root().join("docs/crd-reference.md"),
        crate::reference::render(&kinds).expect("reference renders"),
    ));
    for (path, rendered) in expected {
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == rendered,
            "{} is out of date with the Rust types: run `make generate`",
            path.display()
        );
    }
}

/// Walks a schema, calling `visit(path, node)` on every node.
fn walk(path: &str, node: &Value, visit: &mut dyn FnMut(&str, &Value)) {
    visit(path, node);
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            walk(&format!("{path}.{name}"), child, visit);
        }
    }
    if let Some(items) = node.get("items") {
        walk(&format!("{path}[]"), items, visit);
    }
    if let Some(extra) = node.get("additionalProperties").filter(|v| v.is_object()) {
        walk(&format!("{path}{{}}"), extra, visit);
    }
}

fn schema_of(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    serde_json::to_value(&crd.spec.versions[0].schema).expect("schema serializes")["openAPIV3Schema"].clone()
}

#[test]
fn every_field_is_documented_for_kubectl_explain() {
    let mut undocumented = Vec::new();
    for (_, crd) in crds() {
        let schema = schema_of(&crd);
        for part in ["spec", "status"] {
            walk(
                &format!("{}.{part}", crd.spec.names.kind),
                &schema["properties"][part],
                &mut |path, node| {
                    let documented = node
                        .get("description")
                        .and_then(Value::as_str)
                        .is_some_and(|d| !d.trim().is_empty());
                    // Array items and map values are described by their field.
                    if !documented && !path.ends_with("[]") && !path.ends_with('}') {
                        undocumented.push(path.to_owned());
                    }
                },
            );
        }
    }
    assert!(
        undocumented.is_empty(),
        "fields without a description: {undocumented:#?}"
    );
}

#[test]
fn schemas_are_structural() {
    for (_, crd) in crds() {
        walk(&crd.spec.names.kind, &schema_of(&crd), &mut |path, node| {
            let typed = node.get("type").is_some()
                || node.get("x-kubernetes-int-or-string").is_some()
                || node.get("x-kubernetes-preserve-unknown-fields").is_some();
            assert!(typed, "{path} has no type: {node}");
            assert!(node.get("$ref").is_none(), "{path} uses $ref");
            for combinator in ["anyOf", "oneOf", "allOf"] {
                if let Some(branches) = node.get(combinator).and_then(Value::as_array) {
                    for branch in branches {
                        assert!(
                            branch.get("type").is_none() && branch.get("description").is_none(),
                            "{path}: {combinator} branches may not carry type or description"
                        );
                    }
                }
            }
        });
    }
}

#[test]
fn conditions_are_list_maps_keyed_by_type() {
    for (_, crd) in crds() {
        let conditions = &schema_of(&crd)["properties"]["status"]["properties"]["conditions"];
        assert_eq!(
            conditions["x-kubernetes-list-type"], "map",
            "{}",
            crd.spec.names.kind
        );
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"])
        );
    }
}

#[test]
fn every_kind_is_in_the_aimass_category_with_status() {
    for (_, crd) in crds() {
        assert_eq!(crd.spec.names.categories, Some(vec!["aimass".to_owned()]));
        let version = &crd.spec.versions[0];
        let subresources = version.subresources.as_ref().expect("subresources");
        assert!(
            subresources.status.is_some(),
            "{} has no status subresource",
            crd.spec.names.kind
        );
        assert!(
            crd.spec
                .names
                .short_names
                .as_ref()
                .is_some_and(|s| !s.is_empty())
        );
        assert!(
            version
                .additional_printer_columns
                .as_ref()
                .is_some_and(|c| c.len() >= 4)
        );
    }
    let (_, md) = crds()
        .into_iter()
        .find(|(_, c)| c.spec.names.kind == "ModelDeployment")
        .expect("md");
    let scale = md.spec.versions[0]
        .subresources
        .as_ref()
        .and_then(|s| s.scale.as_ref())
        .expect("scale");
    assert_eq!(scale.spec_replicas_path, ".spec.replicas.count");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
}

#[test]
fn examples_parse_and_pass_every_check() {
    // examples/environments is kustomize bases and patches, whole only once
    // rendered: tests/e2e/tests/environments.rs applies the rendered
    // overlays to the API server.
    let environments = repo_root().join("examples/environments");
    let files: Vec<_> = yaml_files(&repo_root().join("examples"))
        .into_iter()
        .filter(|f| !f.starts_with(&environments))
        .collect();
    let mut seen = 0;
    for file in &files {
        for doc in documents(file) {
            let Some(api_version) = doc["apiVersion"].as_str() else {
                continue;
            };
            if !api_version.starts_with("aimass.io/") {
                continue;
            }
            let manifest =
                Manifest::parse(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            manifest
                .validate_cel()
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            manifest
                .validate_pure()
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            seen += 1;
        }
    }
    assert!(
        seen >= 6,
        "expected a minimal and a full example of each kind, found {seen}"
    );
}

/// The message an invalid fixture must be rejected with, from its
/// `# expect:` line.
fn expected_message(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("readable fixture")
        .lines()
        .find_map(|l| l.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{} has no '# expect:' line", path.display()))
        .to_owned()
}

#[test]
fn invalid_fixtures_are_rejected_by_their_cel_rule() {
    let dir = repo_root().join("tests/fixtures/invalid");
    let mut checked = 0;
    for file in yaml_files(&dir) {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !name.starts_with("cel-") {
            continue; // schema-* fixtures fail plain OpenAPI checks, proven on the cluster
        }
        let expected = expected_message(&file);
        let [doc] = <[Value; 1]>::try_from(documents(&file)).expect("one document per fixture");
        let manifest = Manifest::parse(doc).unwrap_or_else(|e| panic!("{name}: {e}"));
        let err = manifest.validate_cel().expect_err(name);
        assert!(
            err.contains(&expected),
            "{name}: expected {expected:?} in {err}"
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} CEL fixtures found");
}

#[test]
fn an_approval_cannot_be_changed() {
    let old: ModelApproval = serde_yaml_ng::from_str(
        "apiVersion: aimass.io/v1alpha1\nkind: ModelApproval\nmetadata: {name: a}\nspec: {model: fraud, sha256: 0000000000000000000000000000000000000000000000000000000000000000, approvedBy: bob}\n",
    )
    .expect("parses");
    assert!(kube::core::cel::validate_cel_update(&old, &old).is_ok());
    let mut new = old.clone();
    new.spec.approved_by = "mallory".into();
    let err = kube::core::cel::validate_cel_update(&new, &old).expect_err("changed");
    assert!(err.to_string().contains("cannot be changed"), "{err}");
}

#[test]
fn training_job_spec_is_immutable() {
    let text = std::fs::read_to_string(repo_root().join("examples/full/trainingjob.yaml"))
        .expect("example");
    let old: TrainingJob = serde_yaml_ng::from_str(&text).expect("parses");
    let mut new = old.clone();
    assert!(kube::core::cel::validate_cel_update(&new, &old).is_ok());
    new.spec.run.image = "registry.example.com/risk/fraud-trainer:2.0.0".into();
    let err = kube::core::cel::validate_cel_update(&new, &old).expect_err("image change");
    assert!(
        err.to_string().contains("cannot change once created"),
        "{err}"
    );
}
