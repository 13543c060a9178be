//! Which Model version a ModelDeployment should serve: its pinned version, or
//! the version its alias (default `champion`) points at, which must exist and
//! be Ready. Pure.

use aimass_crds::v1alpha1::conditions::{self, reasons};
use aimass_crds::v1alpha1::{
    CHAMPION_ALIAS, Model, ModelSelector, ModelSignature, ModelVersion, VersionPhase,
};

/// The version to serve.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The version record.
    pub version: ModelVersion,
    /// The alias it was resolved from, if any.
    pub alias: Option<String>,
}

/// Why no version can be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved {
    /// CamelCase reason for the conditions.
    pub reason: &'static str,
    /// A sentence for humans.
    pub message: String,
}

/// Resolves `selector` against `model`'s registry.
pub fn resolve(model: &Model, selector: &ModelSelector) -> Result<Resolved, Unresolved> {
    let status = model.status.clone().unwrap_or_default();
    let (number, alias) = match (selector.version, &selector.alias) {
        (Some(version), _) => (version, None),
        (None, alias) => {
            let alias = alias.clone().unwrap_or_else(|| CHAMPION_ALIAS.to_owned());
            match status.aliases.get(&alias) {
                Some(&version) => (version, Some(alias)),
                None => return Err(no_alias(model, &selector.name, &alias)),
            }
        }
    };
    let Some(version) = status.versions.iter().find(|v| v.version == number) else {
        return Err(Unresolved {
            reason: reasons::NO_READY_VERSION,
            message: format!("Model {} has no version {number}", selector.name),
        });
    };
    if version.phase != VersionPhase::Ready {
        return Err(Unresolved {
            reason: reasons::NO_READY_VERSION,
            message: format!(
                "version {number} of Model {} is {:?}: {}",
                selector.name,
                version.phase,
                version.message.clone().unwrap_or_default()
            ),
        });
    }
    Ok(Resolved {
        version: version.clone(),
        alias,
    })
}

/// Why the Model has no `alias`: the Model's own problem when it is not
/// Ready, else the aliases it has.
fn no_alias(model: &Model, name: &str, alias: &str) -> Unresolved {
    let status = model.status.clone().unwrap_or_default();
    let not_ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::types::READY && c.status == "False");
    if status.aliases.is_empty()
        && let Some(problem) = not_ready
    {
        return Unresolved {
            reason: reasons::NO_READY_VERSION,
            message: format!(
                "Model {name} has no version to serve: {} ({})",
                problem.message, problem.reason
            ),
        };
    }
    let existing = status
        .aliases
        .iter()
        .map(|(alias, version)| format!("{alias} -> v{version}"))
        .collect::<Vec<_>>();
    Unresolved {
        reason: if status.versions.is_empty() {
            reasons::NO_READY_VERSION
        } else {
            reasons::ALIAS_UNRESOLVED
        },
        message: if existing.is_empty() {
            format!(
                "Model {name} has no {alias} alias: no alias is set ({} version(s) recorded)",
                status.versions.len()
            )
        } else {
            format!(
                "Model {name} has no {alias} alias; its aliases are {}",
                existing.join(", ")
            )
        },
    }
}

/// Why `next` cannot replace `serving` without breaking callers: its inputs
/// differ in name, type or per-row shape. Outputs may gain tensors.
pub fn incompatible(serving: &ModelSignature, next: &ModelSignature) -> Option<String> {
    let row = |shape: &[i64]| shape.iter().skip(1).copied().collect::<Vec<_>>();
    if serving.inputs.len() != next.inputs.len() {
        return Some(format!(
            "the new version takes {} input(s), the serving one {}",
            next.inputs.len(),
            serving.inputs.len()
        ));
    }
    for (old, new) in serving.inputs.iter().zip(&next.inputs) {
        if old.name != new.name
            || old.datatype != new.datatype
            || row(&old.shape) != row(&new.shape)
        {
            return Some(format!(
                "input {} {} {:?} became {} {} {:?}",
                old.name, old.datatype, old.shape, new.name, new.datatype, new.shape
            ));
        }
    }
    for old in &serving.outputs {
        if !next
            .outputs
            .iter()
            .any(|o| o.name == old.name && o.datatype == old.datatype)
        {
            return Some(format!("output {} {} is gone", old.name, old.datatype));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimass_crds::v1alpha1::TensorSignature;

    fn model(yaml_status: &str) -> Model {
        serde_yaml_ng::from_str(&format!(
            r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: fraud, namespace: risk}}
spec: {{source: {{uri: "file:///m.onnx"}}}}
status: {yaml_status}
"#
        ))
        .unwrap()
    }

    const REGISTRY: &str = r#"
  aliases: {champion: 2, challenger: 3}
  versions:
  - {version: 1, phase: Ready, uri: "file:///1", created: "2026-01-01T00:00:00Z"}
  - {version: 2, phase: Ready, uri: "file:///2", created: "2026-01-01T00:00:00Z"}
  - {version: 3, phase: Rejected, uri: "file:///3", message: broken, created: "2026-01-01T00:00:00Z"}
"#;

    fn selector(alias: Option<&str>, version: Option<i64>) -> ModelSelector {
        ModelSelector {
            name: "fraud".into(),
            alias: alias.map(str::to_owned),
            version,
        }
    }

    #[test]
    fn aliases_default_to_champion_and_pins_win() {
        let m = model(REGISTRY);
        let champion = resolve(&m, &selector(None, None)).unwrap();
        assert_eq!(
            (champion.version.version, champion.alias.as_deref()),
            (2, Some("champion"))
        );
        let pinned = resolve(&m, &selector(None, Some(1))).unwrap();
        assert_eq!((pinned.version.version, pinned.alias), (1, None));
    }

    #[test]
    fn missing_and_rejected_versions_say_why() {
        let m = model(REGISTRY);
        let rejected = resolve(&m, &selector(Some("challenger"), None)).unwrap_err();
        assert_eq!(rejected.reason, "NoReadyVersion");
        assert!(rejected.message.contains("broken"), "{}", rejected.message);
        let missing = resolve(&m, &selector(Some("canary"), None)).unwrap_err();
        assert_eq!(missing.reason, "AliasUnresolved");
        let empty = resolve(&model("{}"), &selector(None, None)).unwrap_err();
        assert_eq!(empty.reason, "NoReadyVersion");
        assert!(resolve(&m, &selector(None, Some(9))).is_err());
    }

    fn sig(inputs: &[(&str, &str, &[i64])], outputs: &[(&str, &str)]) -> ModelSignature {
        let tensor = |(name, datatype, shape): (&str, &str, &[i64])| TensorSignature {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
        };
        ModelSignature {
            inputs: inputs.iter().map(|i| tensor(*i)).collect(),
            outputs: outputs.iter().map(|(n, d)| tensor((n, d, &[-1]))).collect(),
        }
    }

    #[test]
    fn signature_changes_that_break_callers_are_found() {
        let serving = sig(
            &[("transactions", "FP32", &[-1, 8])],
            &[("label", "INT64"), ("probabilities", "FP32")],
        );
        assert_eq!(incompatible(&serving, &serving), None);
        let batch_fixed = sig(
            &[("transactions", "FP32", &[1, 8])],
            &[
                ("label", "INT64"),
                ("probabilities", "FP32"),
                ("extra", "FP32"),
            ],
        );
        assert_eq!(
            incompatible(&serving, &batch_fixed),
            None,
            "batch axis and new outputs are fine"
        );
        for broken in [
            sig(
                &[("transactions", "FP32", &[-1, 9])],
                &[("label", "INT64"), ("probabilities", "FP32")],
            ),
            sig(
                &[("features", "FP32", &[-1, 8])],
                &[("label", "INT64"), ("probabilities", "FP32")],
            ),
            sig(
                &[("transactions", "FP64", &[-1, 8])],
                &[("label", "INT64"), ("probabilities", "FP32")],
            ),
            sig(&[("transactions", "FP32", &[-1, 8])], &[("label", "INT64")]),
        ] {
            assert!(incompatible(&serving, &broken).is_some(), "{broken:?}");
        }
    }

    #[test]
    fn a_missing_alias_names_the_aliases_or_the_models_problem() {
        let wrong = resolve(&model(REGISTRY), &selector(Some("champoin"), None)).unwrap_err();
        assert_eq!(wrong.reason, reasons::ALIAS_UNRESOLVED);
        assert_eq!(
            wrong.message,
            "Model fraud has no champoin alias; its aliases are challenger -> v3, champion -> v2"
        );
        let blocked = model(
            r#"
  conditions:
  - {type: Ready, status: "False", reason: ValidationBlocked, message: "the validation Job cannot start its pod: secret \"creds\" not found", lastTransitionTime: "2026-01-01T00:00:00Z"}
"#,
        );
        let problem = resolve(&blocked, &selector(None, None)).unwrap_err();
        assert_eq!(problem.reason, reasons::NO_READY_VERSION);
        assert_eq!(
            problem.message,
            "Model fraud has no version to serve: the validation Job cannot start its pod: secret \"creds\" not found (ValidationBlocked)"
        );
        let fresh = resolve(&model("{}"), &selector(None, None)).unwrap_err();
        assert_eq!(
            fresh.message,
            "Model fraud has no champion alias: no alias is set (0 version(s) recorded)"
        );
    }
}
