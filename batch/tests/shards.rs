//! Shards and report end to end on local files: the zoo's GBDT classifier
//! over its reference rows (whose outputs onnxruntime computed), split over
//! three shards, with a malformed row, a label and a segment.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aimass_crds::scoring::ScoringPlan;
use aimass_crds::v1alpha1::ScoredVersion;

fn zoo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/zoo/models")
}

fn reference() -> (Vec<Vec<f64>>, Vec<f64>) {
    let text = std::fs::read_to_string(zoo().join("gbdt_classifier.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let input = &json["inputs"][0];
    let width = input["shape"][1].as_u64().unwrap() as usize;
    let data: Vec<f64> = input["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let probabilities: Vec<f64> = json["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "probabilities")
        .unwrap()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let rows = data.chunks(width).map(<[f64]>::to_vec).collect();
    let bad = probabilities.chunks(2).map(|p| p[1]).collect();
    (rows, bad)
}

fn plan(dir: &Path, shards: u32) -> ScoringPlan {
    let model = zoo().join("gbdt_classifier.onnx");
    let sha256 = aimass_storage::sha256_hex(&std::fs::read(&model).unwrap());
    ScoringPlan {
        dataset: format!("file://{}", dir.join("data.csv").display()),
        versions: vec![ScoredVersion {
            version: 7,
            alias: None,
            uri: format!("file://{}", model.display()),
            sha256,
        }],
        label_column: Some("is_fraud".into()),
        segment_column: Some("channel".into()),
        id_column: Some("id".into()),
        thresholds: vec![0.5],
        output: format!("file://{}", dir.join("out").display()),
        shards,
        max_model_bytes: 1 << 28,
        ..ScoringPlan::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_score_every_row_once_as_onnxruntime_does() {
    let dir = std::env::temp_dir().join(format!("aimass-batch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (rows, expected) = reference();
    let mut csv = String::from("id,f0,f1,f2,f3,f4,f5,f6,f7,is_fraud,channel\n");
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|x| x.to_string()).collect();
        let label = if expected[i] >= 0.5 { 1 } else { 0 };
        csv.push_str(&format!(
            "r{i},{},{label},{}\n",
            cells.join(","),
            ["web", "pos"][i % 2]
        ));
    }
    // Line 18: a missing value; line 19: a word where a number goes.
    csv.push_str("bad1,1,2,3,,5,6,7,8,0,web\n");
    csv.push_str("bad2,1,2,3,4,5,six,7,8,0,web\n");
    std::fs::write(dir.join("data.csv"), csv).unwrap();
    let plan = plan(&dir, 3);
    for shard in 0..3 {
        aimass_batch::score_shard(&plan, shard).await.unwrap();
    }
    let report = aimass_batch::report(&plan).await.unwrap();

    // Every row once, across the parts, with onnxruntime's probability.
    let mut seen: BTreeMap<String, (String, String)> = BTreeMap::new();
    for shard in 0..3 {
        let part = dir.join("out").join(aimass_batch::part_name(
            shard,
            aimass_crds::v1alpha1::DataFormat::Csv,
        ));
        let mut reader = csv::Reader::from_path(part).unwrap();
        let header = reader.headers().unwrap().clone();
        assert_eq!(
            header.iter().collect::<Vec<_>>(),
            [
                "line",
                "id",
                "is_fraud",
                "channel",
                "v7.label",
                "v7.probabilities[0]",
                "v7.probabilities[1]",
                "v7.refused"
            ]
        );
        for record in reader.records() {
            let record = record.unwrap();
            let previous = seen.insert(
                record[1].to_owned(),
                (record[6].to_owned(), record[7].to_owned()),
            );
            assert!(previous.is_none(), "{} twice", &record[1]);
        }
    }
    assert_eq!(seen.len(), rows.len() + 2);
    for (i, p) in expected.iter().enumerate() {
        let (score, refused) = &seen[&format!("r{i}")];
        assert!(refused.is_empty());
        let score: f64 = score.parse().unwrap();
        assert!(
            (score - p).abs() < 1e-6,
            "row {i}: {score} vs onnxruntime's {p}"
        );
    }
    assert_eq!(seen["bad1"].1, "column \"f3\": missing value");
    assert_eq!(
        seen["bad2"].1,
        "column \"f5\": \"six\" is not a finite number"
    );

    assert_eq!(report.rows, rows.len() as i64 + 2);
    let version = &report.versions[0];
    assert_eq!(version.scored, rows.len() as i64);
    assert_eq!(version.refused, 2);
    let lines: Vec<i64> = version.refusals.iter().map(|r| r.line).collect();
    assert_eq!(lines, [rows.len() as i64 + 2, rows.len() as i64 + 3]);
    // Labels follow the score, so it separates them perfectly.
    let metrics = version.metrics.as_ref().unwrap();
    assert_eq!(metrics.auc, Some(1.0));
    assert_eq!(metrics.rows, rows.len() as i64);
    assert_eq!(version.segments.len(), 2);
    let written: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("out").join(aimass_batch::REPORT_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(written["versions"][0]["refused"], 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_data_set_or_column_is_refused_by_name() {
    let dir = std::env::temp_dir().join(format!("aimass-batch-refused-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plan = plan(&dir, 1);
    let missing = aimass_batch::score_shard(&plan, 0).await.unwrap_err();
    assert!(
        matches!(
            missing,
            aimass_batch::Error::Refused {
                reason: "DatasetUnavailable",
                ..
            }
        ),
        "{missing:?}"
    );
    assert!(missing.to_string().contains("data.csv"), "{missing}");

    std::fs::write(
        dir.join("data.csv"),
        "id,f0,f1,f2,f3,f4,f5,f6,f7,channel\nx,1,2,3,4,5,6,7,8,web\n",
    )
    .unwrap();
    let unknown = aimass_batch::score_shard(&plan, 0).await.unwrap_err();
    assert!(
        unknown
            .to_string()
            .contains("spec.labelColumn names column \"is_fraud\""),
        "{unknown}"
    );

    // A digest that is not the artifact's.
    let mut forged = plan.clone();
    forged.label_column = None;
    forged.versions[0].sha256 = "0".repeat(64);
    let digest = aimass_batch::score_shard(&forged, 0).await.unwrap_err();
    assert!(
        matches!(
            digest,
            aimass_batch::Error::Refused {
                reason: "ArtifactInvalid",
                ..
            }
        ),
        "{digest:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The zoo's reference rows as a Parquet file of typed columns (the
/// features as FP32, as a lake would hold them), in two row groups.
fn write_parquet(path: &Path, rows: &[Vec<f64>], expected: &[f64]) {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch, StringArray};
    let mut columns: Vec<(String, ArrayRef)> = vec![(
        "id".into(),
        Arc::new(StringArray::from_iter_values(
            (0..rows.len()).map(|i| format!("r{i}")),
        )),
    )];
    for f in 0..8 {
        let values: Vec<Option<f32>> = rows
            .iter()
            .enumerate()
            // Row 5 has no f3: a null, refused as a missing value.
            .map(|(i, r)| (i != 5 || f != 3).then_some(r[f] as f32))
            .collect();
        columns.push((format!("f{f}"), Arc::new(Float32Array::from(values))));
    }
    columns.push((
        "is_fraud".into(),
        Arc::new(Int64Array::from_iter_values(
            expected.iter().map(|p| i64::from(*p >= 0.5)),
        )),
    ));
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(10))
        .build();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(properties)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_in_and_out_scores_typed_cells_exactly() {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float32Type;

    let dir = std::env::temp_dir().join(format!("aimass-batch-parquet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (rows, expected) = reference();
    write_parquet(&dir.join("data.parquet"), &rows, &expected);
    let mut plan = plan(&dir, 2);
    plan.dataset = format!("file://{}", dir.join("data.parquet").display());
    plan.segment_column = None;
    for shard in 0..2 {
        aimass_batch::score_shard(&plan, shard).await.unwrap();
    }
    let report = aimass_batch::report(&plan).await.unwrap();
    assert_eq!(report.rows, rows.len() as i64);
    assert_eq!(report.versions[0].refused, 1);
    assert_eq!(report.versions[0].refusals[0].line, 6);
    assert_eq!(
        report.versions[0].refusals[0].reason,
        "column \"f3\": missing value"
    );

    let mut seen = BTreeMap::new();
    for shard in 0..2 {
        let name = aimass_batch::part_name(shard, aimass_crds::v1alpha1::DataFormat::Parquet);
        let file = std::fs::File::open(dir.join("out").join(name)).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let ids = batch
                .column_by_name("id")
                .unwrap()
                .as_string::<i32>()
                .clone();
            let scores = batch
                .column_by_name("v7.probabilities[1]")
                .unwrap()
                .as_primitive::<Float32Type>()
                .clone();
            for i in 0..batch.num_rows() {
                let score = (!scores.is_null(i)).then(|| scores.value(i));
                assert!(seen.insert(ids.value(i).to_owned(), score).is_none());
            }
        }
    }
    assert_eq!(seen.len(), rows.len());
    for (i, p) in expected.iter().enumerate() {
        match seen[&format!("r{i}")] {
            None => assert_eq!(i, 5),
            Some(score) => assert!(
                (f64::from(score) - p).abs() < 1e-6,
                "row {i}: {score} vs {p}"
            ),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
