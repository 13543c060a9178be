//! Table tests of an ensemble's combination.

use super::*;
use aimass_crds::v1alpha1::ModelSelector;

/// A classifier signature over `width` features returning `probabilities`
/// as `datatype` with `classes` columns, and `label`.
fn classifier(width: i64, datatype: &str, classes: i64) -> String {
    format!(
        r#"{{inputs: [{{name: features, datatype: FP32, shape: [-1, {width}]}}], outputs: [{{name: label, datatype: INT64, shape: [-1]}}, {{name: probabilities, datatype: {datatype}, shape: [-1, {classes}]}}]}}"#
    )
}

/// Model `name` with one Ready version per signature (numbered from 1),
/// the champion the last.
fn model(name: &str, signatures: &[String]) -> (String, Model) {
    let versions: Vec<String> = signatures
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                r#"{{version: {n}, phase: Ready, uri: "s3://m/{name}/{n}", sha256: "{n:064}", created: "2026-01-01T00:00:00Z", signature: {s}}}"#,
                n = i + 1
            )
        })
        .collect();
    let model = serde_yaml_ng::from_str(&format!(
        r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: {name}, namespace: desk}}
spec: {{source: {{uri: "s3://m/{name}.onnx"}}}}
status:
  aliases: {{champion: {}}}
  versions: [{}]
"#,
        signatures.len(),
        versions.join(", ")
    ))
    .expect("a valid Model");
    (name.to_owned(), model)
}

fn spec(combine: CombineRule, output: &str) -> EnsembleSpec {
    let member = |name: &str, weight| aimass_crds::v1alpha1::EnsembleMember {
        name: name.into(),
        model: ModelSelector {
            name: format!("fraud-{name}"),
            alias: None,
            version: None,
        },
        weight,
    };
    EnsembleSpec {
        combine,
        output: output.into(),
        members: vec![member("gbdt", 0.7), member("mlp", 0.3)],
        meta: None,
    }
}

fn at(day: u32) -> Time {
    Time(
        format!("2026-02-{day:02}T00:00:00Z")
            .parse()
            .expect("a time"),
    )
}

#[test]
fn members_resolve_their_aliases_and_the_same_combination_keeps_its_number() {
    let good = classifier(8, "FP32", 2);
    let mut models = BTreeMap::from([
        model("fraud-gbdt", std::slice::from_ref(&good)),
        model("fraud-mlp", std::slice::from_ref(&good)),
    ]);
    let spec = spec(CombineRule::WeightedSum, "probabilities");
    let first = combination(&spec, &models, &[], &at(1)).expect("servable");
    assert_eq!(first.revision, 1);
    assert_eq!(first.describe(), "gbdt=fraud-gbdt v1, mlp=fraud-mlp v1");
    assert_eq!(first.members[1].alias.as_deref(), Some("champion"));
    assert_eq!(first.members[1].uri, "s3://m/fraud-mlp/1");
    assert_eq!(first.members[0].weight, 0.7);
    let signature = first.signature.clone().expect("derived");
    let outputs: Vec<&str> = signature.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        outputs,
        [
            "probabilities",
            "gbdt.label",
            "gbdt.probabilities",
            "mlp.label",
            "mlp.probabilities"
        ]
    );
    assert_eq!(signature.inputs.len(), 1, "the shared input once");

    // Asked again later, the same members and weights are the same number.
    let again = combination(&spec, &models, std::slice::from_ref(&first), &at(2)).expect("same");
    assert_eq!(again, first, "reused with its first time");

    // The mlp's champion moves: a new combination, numbered next.
    models.extend([model("fraud-mlp", &[good.clone(), good.clone()])]);
    let moved = combination(&spec, &models, std::slice::from_ref(&first), &at(3)).expect("new");
    assert_eq!(moved.revision, 2);
    assert_eq!(moved.describe(), "gbdt=fraud-gbdt v1, mlp=fraud-mlp v2");
    assert_eq!(moved.created, at(3));

    // A changed weight is another combination too; the moved one back is
    // the recorded one.
    let mut heavier = spec.clone();
    heavier.members[1].weight = 0.5;
    let recorded = [first.clone(), moved.clone()];
    assert_eq!(
        combination(&heavier, &models, &recorded, &at(4))
            .expect("weights")
            .revision,
        3
    );
    models.extend([model("fraud-mlp", std::slice::from_ref(&good))]);
    assert_eq!(
        combination(&spec, &models, &recorded, &at(4))
            .expect("back")
            .revision,
        1
    );
}

#[test]
fn a_member_that_cannot_join_is_named() {
    let good = classifier(8, "FP32", 2);
    let cases = [
        (
            "other input width",
            CombineRule::WeightedSum,
            classifier(9, "FP32", 2),
            "member mlp takes input features as FP32 [-1, 9], but member gbdt takes it as FP32 [-1, 8]",
        ),
        (
            "other output shape",
            CombineRule::WeightedSum,
            classifier(8, "FP32", 3),
            "member mlp returns probabilities as FP32 [-1, 3], but member gbdt returns it as FP32 [-1, 2]",
        ),
        (
            "other output type",
            CombineRule::Maximum,
            classifier(8, "FP64", 2),
            "member mlp returns probabilities as FP64 [-1, 2], but member gbdt returns it as FP32 [-1, 2]",
        ),
        (
            "no such output",
            CombineRule::WeightedSum,
            r#"{inputs: [{name: features, datatype: FP32, shape: [-1, 8]}], outputs: [{name: variable, datatype: FP32, shape: [-1, 1]}]}"#.to_owned(),
            "member mlp has no output probabilities: it returns variable",
        ),
    ];
    for (what, rule, theirs, message) in cases {
        let models = BTreeMap::from([
            model("fraud-gbdt", std::slice::from_ref(&good)),
            model("fraud-mlp", &[theirs]),
        ]);
        let problem =
            combination(&spec(rule, "probabilities"), &models, &[], &at(1)).expect_err(what);
        assert_eq!(problem.reason, reasons::MEMBER_INCOMPATIBLE, "{what}");
        assert_eq!(problem.message, message, "{what}");
    }
    let models = BTreeMap::from([
        model("fraud-gbdt", std::slice::from_ref(&good)),
        model("fraud-mlp", std::slice::from_ref(&good)),
    ]);
    let vote = combination(
        &spec(CombineRule::Vote, "probabilities"),
        &models,
        &[],
        &at(1),
    )
    .expect_err("votes need labels");
    assert_eq!(
        vote.message,
        "Vote cannot combine output probabilities of type FP32 (member gbdt)"
    );
    let labels = combination(&spec(CombineRule::Vote, "label"), &models, &[], &at(1))
        .expect("labels are voted");
    assert_eq!(
        labels.signature.expect("derived").outputs[0].datatype,
        "INT64"
    );

    let alone = BTreeMap::from([model("fraud-gbdt", &[good])]);
    let missing = combination(
        &spec(CombineRule::Maximum, "probabilities"),
        &alone,
        &[],
        &at(1),
    )
    .expect_err("no mlp");
    assert_eq!(missing.reason, reasons::REFERENCE_NOT_FOUND);
    assert_eq!(
        missing.message,
        "member mlp: Model \"fraud-mlp\" does not exist in this namespace"
    );
}

#[test]
fn a_member_without_a_known_signature_is_left_to_the_server() {
    let models = BTreeMap::from([
        model("fraud-gbdt", &[classifier(8, "FP32", 2)]),
        model("fraud-mlp", &["null".to_owned()]),
    ]);
    let c = combination(
        &spec(CombineRule::WeightedSum, "probabilities"),
        &models,
        &[],
        &at(1),
    )
    .expect("servable");
    assert_eq!(c.signature, None);
}

#[test]
fn the_record_keeps_twenty_and_never_what_serves() {
    let made = |revision| Combination {
        revision,
        combine: CombineRule::Maximum,
        output: "probabilities".into(),
        members: Vec::new(),
        meta: None,
        signature: None,
        created: at(1),
    };
    let mut kept: Vec<Combination> = (1..=20).map(made).collect();
    record(&mut kept, &made(20), &[]);
    assert_eq!(kept.len(), 20, "a recorded one is not added twice");
    record(&mut kept, &made(21), &[1, 20]);
    let numbers: Vec<i64> = kept.iter().map(|c| c.revision).collect();
    assert_eq!(kept.len(), 20);
    assert_eq!(
        numbers[..3],
        [1, 3, 4],
        "the serving one stays, the oldest other goes"
    );
    assert_eq!(numbers.last(), Some(&21));
}

/// A logistic meta-model's signature over `width` scores.
fn meta(width: i64, datatype: &str) -> String {
    format!(
        r#"{{inputs: [{{name: scores, datatype: {datatype}, shape: [-1, {width}]}}], outputs: [{{name: label, datatype: INT64, shape: [-1]}}, {{name: probabilities, datatype: FP32, shape: [-1, 2]}}]}}"#
    )
}

#[test]
fn a_stack_answers_with_its_meta_models_outputs_and_records_its_version() {
    let good = classifier(8, "FP32", 2);
    let mut stack = spec(CombineRule::Stack, "probabilities");
    stack.meta = Some(ModelSelector {
        name: "fraud-meta".into(),
        alias: None,
        version: None,
    });
    let registry = |meta_signature: String| {
        BTreeMap::from([
            model("fraud-gbdt", std::slice::from_ref(&good)),
            model("fraud-mlp", std::slice::from_ref(&good)),
            model("fraud-meta", &[meta_signature]),
        ])
    };
    let c = combination(&stack, &registry(meta(2, "FP32")), &[], &at(1)).expect("a stack");
    assert_eq!(
        c.describe(),
        "gbdt=fraud-gbdt v1, mlp=fraud-mlp v1, meta=fraud-meta v1"
    );
    let outputs: Vec<String> = c
        .signature
        .expect("derived")
        .outputs
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(outputs[..3], ["label", "probabilities", "gbdt.label"]);
    for (signature, message) in [
        (
            meta(3, "FP32"),
            "the meta-model takes scores as FP32 [-1, 3], but stacking gives it the members' scores as FP32 [rows, 2]",
        ),
        (
            meta(2, "FP64"),
            "the meta-model takes scores as FP64 [-1, 2], but stacking gives it the members' scores as FP32 [rows, 2]",
        ),
        (
            classifier(8, "FP32", 2).replace(
                "inputs: [",
                "inputs: [{name: extra, datatype: FP32, shape: [-1, 1]}, ",
            ),
            "the meta-model takes 2 inputs; stacking gives it one, the members' scores [rows, 2]",
        ),
    ] {
        let problem = combination(&stack, &registry(signature), &[], &at(1)).expect_err(message);
        assert_eq!(problem.reason, reasons::MEMBER_INCOMPATIBLE);
        assert_eq!(problem.message, message);
    }
    let mut missing = registry(meta(2, "FP32"));
    missing.remove("fraud-meta");
    let problem = combination(&stack, &missing, &[], &at(1)).expect_err("no meta-model");
    assert_eq!(
        problem.message,
        "the meta-model: Model \"fraud-meta\" does not exist in this namespace"
    );
}
