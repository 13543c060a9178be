//! An ensemble's combination: each member's version resolved from its
//! Model, the signature callers see derived from the members' and checked
//! the way the server will check it, and the combination's number, reused
//! when the same members, versions and weights come back. Pure.

use std::collections::BTreeMap;

use aimass_crds::v1alpha1::conditions::reasons;
use aimass_crds::v1alpha1::{
    COMBINATIONS_KEPT, Combination, CombinationMember, CombineRule, EnsembleSpec, Model,
    ModelSelector, ModelSignature, ModelVersion, TensorSignature, VersionPhase,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::resolve;
use super::target::Problem;

/// The combination `ensemble` resolves to from its members' `models` (by
/// name): a `recorded` one when it serves the same thing, else a new one
/// numbered after them. An error names the member at fault.
pub fn combination(
    ensemble: &EnsembleSpec,
    models: &BTreeMap<String, Model>,
    recorded: &[Combination],
    now: &Time,
) -> Result<Combination, Problem> {
    // A member (or the meta-model, `who`) as recorded, with its signature.
    let resolve = |who: String, selector: &ModelSelector, weight: f64| {
        let Some(model) = models.get(&selector.name) else {
            return Err(Problem {
                reason: reasons::REFERENCE_NOT_FOUND,
                message: format!(
                    "{who}: Model {:?} does not exist in this namespace",
                    selector.name
                ),
            });
        };
        let resolved = resolve::resolve(model, selector).map_err(|u| Problem {
            reason: u.reason,
            message: format!("{who}: {}", u.message),
        })?;
        Ok((
            CombinationMember {
                name: String::new(),
                model: selector.name.clone(),
                version: resolved.version.version,
                alias: resolved.alias,
                weight,
                uri: resolved.version.uri,
                sha256: resolved.version.sha256,
            },
            resolved.version.signature,
        ))
    };
    let mut members = Vec::new();
    let mut signatures = Vec::new();
    for member in &ensemble.members {
        let (resolved, signature) = resolve(
            format!("member {}", member.name),
            &member.model,
            member.weight,
        )?;
        signatures.push((member.name.as_str(), signature));
        members.push(CombinationMember {
            name: member.name.clone(),
            ..resolved
        });
    }
    let meta = match &ensemble.meta {
        Some(selector) => Some(resolve("the meta-model".into(), selector, 1.0)?),
        None => None,
    };
    let signature = derive(
        &signatures,
        ensemble.combine,
        &ensemble.output,
        meta.as_ref().map(|(_, s)| s.as_ref()),
    )
    .map_err(|message| Problem {
        reason: reasons::MEMBER_INCOMPATIBLE,
        message,
    })?;
    let wanted = Combination {
        revision: recorded.iter().map(|c| c.revision).max().unwrap_or(0) + 1,
        combine: ensemble.combine,
        output: ensemble.output.clone(),
        members,
        meta: meta.map(|(m, _)| CombinationMember {
            name: "meta".into(),
            ..m
        }),
        signature,
        created: now.clone(),
    };
    Ok(recorded
        .iter()
        .find(|c| c.same_as(&wanted))
        .cloned()
        .unwrap_or(wanted))
}

/// The signature an ensemble of `members` shows callers, or why the server
/// would refuse them (naming the member): shared inputs must agree on type
/// and shape, and every member must return `output` with the same type and
/// shape, of a type `rule` combines; a meta-model (`Stack`) must take the
/// members' scores as its one input, `[rows, members]`, and its outputs are
/// the ensemble's. `None` when a signature is unknown (the server still
/// checks).
fn derive(
    members: &[(&str, Option<ModelSignature>)],
    rule: CombineRule,
    output: &str,
    meta: Option<Option<&ModelSignature>>,
) -> Result<Option<ModelSignature>, String> {
    let Some(known) = members
        .iter()
        .map(|(name, s)| s.as_ref().map(|s| (*name, s)))
        .collect::<Option<Vec<_>>>()
    else {
        return Ok(None);
    };
    if meta.is_some_and(|m| m.is_none()) {
        return Ok(None);
    }
    let mut inputs: Vec<(&TensorSignature, &str)> = Vec::new();
    for (name, signature) in &known {
        for input in &signature.inputs {
            match inputs.iter().find(|(i, _)| i.name == input.name) {
                Some((shared, owner)) if *shared != input => {
                    return Err(format!(
                        "member {name} takes input {} as {} {:?}, but member {owner} takes it as {} {:?}",
                        input.name, input.datatype, input.shape, shared.datatype, shared.shape
                    ));
                }
                Some(_) => {}
                None => inputs.push((input, name)),
            }
        }
    }
    let mut combined: Option<(&TensorSignature, &str)> = None;
    for (name, signature) in &known {
        let Some(theirs) = signature.outputs.iter().find(|o| o.name == output) else {
            let returns: Vec<&str> = signature.outputs.iter().map(|o| o.name.as_str()).collect();
            return Err(format!(
                "member {name} has no output {output}: it returns {}",
                returns.join(", ")
            ));
        };
        match combined {
            None => combined = Some((theirs, name)),
            Some((first, owner))
                if first.datatype != theirs.datatype || first.shape != theirs.shape =>
            {
                return Err(format!(
                    "member {name} returns {output} as {} {:?}, but member {owner} returns it as {} {:?}",
                    theirs.datatype, theirs.shape, first.datatype, first.shape
                ));
            }
            Some(_) => {}
        }
    }
    let Some((spec, first)) = combined else {
        return Ok(None);
    };
    let fits = match rule {
        CombineRule::WeightedSum | CombineRule::Maximum | CombineRule::Stack => {
            matches!(spec.datatype.as_str(), "FP32" | "FP64")
        }
        CombineRule::Vote => matches!(spec.datatype.as_str(), "INT64" | "INT32"),
    };
    if !fits {
        return Err(format!(
            "{rule:?} cannot combine output {output} of type {} (member {first})",
            spec.datatype
        ));
    }
    let mut outputs = match meta.flatten() {
        Some(meta) => stacking(meta, spec, known.len())?,
        None => vec![spec.clone()],
    };
    for (name, signature) in &known {
        outputs.extend(signature.outputs.iter().map(|o| TensorSignature {
            name: format!("{name}.{}", o.name),
            ..o.clone()
        }));
    }
    Ok(Some(ModelSignature {
        inputs: inputs.into_iter().map(|(i, _)| i.clone()).collect(),
        outputs,
    }))
}

/// The outputs of a stacked ensemble: the meta-model's, once it is shown to
/// take the members' scores (`spec`'s type, one column per member).
fn stacking(
    meta: &ModelSignature,
    spec: &TensorSignature,
    members: usize,
) -> Result<Vec<TensorSignature>, String> {
    let [input] = meta.inputs.as_slice() else {
        return Err(format!(
            "the meta-model takes {} inputs; stacking gives it one, the members' scores [rows, {members}]",
            meta.inputs.len()
        ));
    };
    let width = input.shape.get(1).copied().unwrap_or(-1);
    if input.datatype != spec.datatype
        || input.shape.len() != 2
        || (width >= 0 && width != members as i64)
    {
        return Err(format!(
            "the meta-model takes {} as {} {:?}, but stacking gives it the members' scores as {} [rows, {members}]",
            input.name, input.datatype, input.shape, spec.datatype
        ));
    }
    Ok(meta.outputs.clone())
}

/// A combination as the version record the rollout machinery serves: its
/// number, its signature, always Ready.
pub fn as_version(combination: &Combination) -> ModelVersion {
    ModelVersion {
        version: combination.revision,
        phase: VersionPhase::Ready,
        reason: None,
        message: None,
        uri: String::new(),
        sha256: None,
        size_bytes: None,
        signature: combination.signature.clone(),
        metrics: BTreeMap::new(),
        lineage: None,
        provenance: None,
        created: combination.created.clone(),
        baseline: None,
    }
}

/// Records `chosen` in `combinations` when it is new, keeping the latest
/// 20 and always those numbered in `keep` (serving or deployed).
pub fn record(combinations: &mut Vec<Combination>, chosen: &Combination, keep: &[i64]) {
    if combinations.iter().any(|c| c.revision == chosen.revision) {
        return;
    }
    combinations.push(chosen.clone());
    while combinations.len() > COMBINATIONS_KEPT {
        let Some(oldest) = combinations
            .iter()
            .position(|c| !keep.contains(&c.revision) && c.revision != chosen.revision)
        else {
            break;
        };
        combinations.remove(oldest);
    }
}

#[cfg(test)]
mod tests;
