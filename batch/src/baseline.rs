//! A version's drift baseline computed from a data set, for a trained
//! version whose trainer wrote no `baseline.json` (the Model's
//! `spec.baseline`): the validation Job, in the tenant's namespace, scores
//! the first rows of the data set with the version in the serving engine,
//! and describes each feature (named after its column) and the score as
//! `aimass_drift::Column::from_values` does; the file is written beside the
//! artifact and then checked like a trainer's.

use aimass_crds::artifact::Artifact;
use aimass_crds::scoring::BaselinePlan;
use aimass_crds::v1alpha1::DataFormat;
use aimass_drift::{Baseline, Column};
use aimass_engine::tensor::{DataType, Tensor};
use aimass_engine::validation::{BASELINE_FILE, baseline as checked_baseline};
use aimass_storage::Credentials;

use crate::columns::{Header, Roles};
use crate::rows::Row;
use crate::shard::{self, Consumer, Version};
use crate::{Error, Loading};

/// The longest column name kept, as a baseline names its columns.
const NAME_CHARS: usize = 63;

/// Computes the baseline `plan` asks for, writes it beside the artifact at
/// `model_uri` and records it in `artifact`; the error is a sentence for
/// the version's message.
pub async fn complete(
    artifact: &mut Artifact,
    model_uri: &str,
    max_model_bytes: usize,
    plan: &BaselinePlan,
) -> Result<(), String> {
    let baseline = compute(plan, model_uri, &artifact.sha256, max_model_bytes)
        .await
        .map_err(|e| format!("computing the baseline from {}: {e}", plan.dataset))?;
    let bytes = serde_json::to_vec_pretty(&baseline).map_err(|e| e.to_string())?;
    let uri = aimass_storage::sibling(model_uri, BASELINE_FILE);
    aimass_storage::open(&uri, &Credentials::Environment)
        .map_err(|e| e.to_string())?
        .put(bytes)
        .await
        .map_err(|e| format!("writing the computed baseline: {e}"))?;
    artifact.baseline = checked_baseline(&uri, &artifact.signature).await?;
    Ok(())
}

/// The baseline of the first `plan.rows` rows of the data set, scored by
/// the model at `model_uri` (which must hash to `sha256`).
async fn compute(
    plan: &BaselinePlan,
    model_uri: &str,
    sha256: &str,
    max_model_bytes: usize,
) -> Result<Baseline, Error> {
    let format = DataFormat::of(&plan.dataset, plan.dataset_format);
    let (input, names) = crate::open_input(&plan.dataset, format).await?;
    let header = Header::new(names)?;
    let roles = Roles::find(&header, None, None, None)?;
    let loading = Loading {
        uri: model_uri,
        sha256: Some(sha256),
        version: 0,
        max_bytes: max_model_bytes,
        columns: &plan.columns,
        score: plan.score.as_ref(),
    };
    let version = crate::load(&loading, &header, &roles).await?;
    let limit = usize::try_from(plan.rows).unwrap_or(usize::MAX);
    tokio::task::spawn_blocking(move || {
        let mut sample = Sample::new(&version, &header, limit);
        shard::read(input, |_| true, &mut sample)?;
        sample.baseline(&version, &header)
    })
    .await
    .map_err(|e| Error::Data(format!("the reading thread ended: {e}")))?
}

/// The values of every feature and the score, row by row.
struct Sample<'a> {
    version: &'a Version,
    header: &'a Header,
    limit: usize,
    rows: usize,
    /// By input, then element: the values.
    features: Vec<Vec<Vec<f64>>>,
    scores: Vec<f64>,
}

impl<'a> Sample<'a> {
    fn new(version: &'a Version, header: &'a Header, limit: usize) -> Self {
        let features = version
            .layout
            .iter()
            .map(|input| vec![Vec::new(); input.columns.len()])
            .collect();
        Self {
            version,
            header,
            limit,
            rows: 0,
            features,
            scores: Vec::new(),
        }
    }

    /// The baseline of what was read.
    fn baseline(self, version: &Version, header: &Header) -> Result<Baseline, Error> {
        if self.rows == 0 {
            return Err(Error::invalid_spec(
                "no row of the data set could be scored",
            ));
        }
        let mut features = Vec::new();
        for (input, values) in version.layout.iter().zip(&self.features) {
            for (j, (column, values)) in input.columns.iter().zip(values).enumerate() {
                let name: String = header.names()[*column].chars().take(NAME_CHARS).collect();
                features.extend(Column::from_values(&name, &input.name, j, values));
            }
        }
        let (output, element) = version.score;
        let name: String = format!("{}[{element}]", version.outputs[output].name)
            .chars()
            .take(NAME_CHARS)
            .collect();
        let score =
            Column::from_values(&name, &version.outputs[output].name, element, &self.scores);
        let baseline = Baseline {
            rows: self.rows as u64,
            features,
            scores: score.into_iter().collect(),
        };
        baseline
            .validate()
            .map_err(|e| Error::invalid_spec(e.to_string()))?;
        Ok(baseline)
    }
}

impl Consumer for Sample<'_> {
    fn batch<R: Row>(&mut self, rows: &[R]) -> Result<(), Error> {
        let room = self.limit.saturating_sub(self.rows);
        let rows = &rows[..rows.len().min(room)];
        let built = shard::build(self.version, rows, self.header)?;
        let Some(inputs) = built.inputs else {
            return Ok(());
        };
        let accepted = built.accepted;
        for (k, tensor) in inputs.iter().enumerate() {
            if tensor.data.datatype() == DataType::Bytes {
                continue;
            }
            for (j, values) in self.features[k].iter_mut().enumerate() {
                values.extend(
                    (0..accepted).filter_map(|r| shard::element_f64(tensor, r, accepted, j)),
                );
            }
        }
        let outputs: Vec<Tensor> = self.version.backend.run(inputs)?;
        let (output, element) = self.version.score;
        if let Some(tensor) = outputs.get(output) {
            self.scores.extend(
                (0..accepted).filter_map(|r| shard::element_f64(tensor, r, accepted, element)),
            );
        }
        self.rows += accepted;
        Ok(())
    }

    fn enough(&self) -> bool {
        self.rows >= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zoo(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../tests/zoo/models/{name}.onnx"))
    }

    /// A directory with the zoo's GBDT as `model.onnx` and a CSV of `rows`
    /// rows of its 8 features (plus a label), one with a word for a number.
    fn workspace(rows: usize) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("aimass-baseline-{}-{rows}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(zoo("gbdt_classifier"), dir.join("model.onnx")).unwrap();
        let mut csv = String::from("f0,f1,f2,f3,f4,f5,f6,channel,is_fraud\n");
        for i in 0..rows {
            let x = i as f64 / rows as f64;
            let word = if i == 7 {
                "n/a".to_owned()
            } else {
                format!("{x}")
            };
            csv.push_str(&format!(
                "{word},{},{},{},{},{},{},{},{}\n",
                1.0 - x,
                x * 2.0,
                x * x,
                0.5,
                -x,
                x,
                i % 3,
                i % 2
            ));
        }
        std::fs::write(dir.join("data.csv"), csv).unwrap();
        dir
    }

    #[tokio::test]
    async fn a_baseline_is_computed_from_the_data_set_written_and_checked() {
        let dir = workspace(1000);
        let model_uri = format!("file://{}/model.onnx", dir.display());
        let bytes = std::fs::read(dir.join("model.onnx")).unwrap();
        let mut artifact = aimass_engine::validation::validate(&bytes, None).unwrap();
        let input = artifact.signature.inputs[0].name.clone();
        let plan = BaselinePlan {
            dataset: format!("file://{}/data.csv", dir.display()),
            columns: vec![aimass_crds::v1alpha1::InputColumns {
                input,
                columns: ["f0", "f1", "f2", "f3", "f4", "f5", "f6", "channel"]
                    .map(String::from)
                    .to_vec(),
            }],
            rows: 500,
            ..BaselinePlan::default()
        };
        complete(&mut artifact, &model_uri, 1 << 24, &plan)
            .await
            .unwrap();
        let recorded = artifact.baseline.clone().expect("a baseline is recorded");
        assert_eq!((recorded.features, recorded.scores), (8, 1));
        let written: Baseline =
            serde_json::from_slice(&std::fs::read(dir.join("baseline.json")).unwrap()).unwrap();
        // The first 500 rows that read (one in the first 500 does not).
        assert_eq!(written.rows, 500);
        let names: Vec<&str> = written.features.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["f0", "f1", "f2", "f3", "f4", "f5", "f6", "channel"]);
        // A constant and a three-valued code are categories; the rest deciles.
        assert_eq!(written.features[4].categories, ["0.5"]);
        assert_eq!(written.features[7].categories, ["0", "1", "2"]);
        assert_eq!(written.features[0].edges.len(), 9);
        assert_eq!(
            written.scores[0].tensor,
            artifact.signature.outputs.last().unwrap().name
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_data_set_that_does_not_fit_refuses_the_version_saying_why() {
        let dir = workspace(10);
        let model_uri = format!("file://{}/model.onnx", dir.display());
        let bytes = std::fs::read(dir.join("model.onnx")).unwrap();
        let mut artifact = aimass_engine::validation::validate(&bytes, None).unwrap();
        let plan = BaselinePlan {
            dataset: format!("file://{}/missing.csv", dir.display()),
            rows: 100,
            ..BaselinePlan::default()
        };
        let err = complete(&mut artifact, &model_uri, 1 << 24, &plan)
            .await
            .unwrap_err();
        assert!(
            err.contains("computing the baseline from") && err.contains("missing.csv"),
            "{err}"
        );
        // Nine columns for eight values: which feed the model is not guessed.
        let plan = BaselinePlan {
            dataset: format!("file://{}/data.csv", dir.display()),
            rows: 100,
            ..BaselinePlan::default()
        };
        let err = complete(&mut artifact, &model_uri, 1 << 24, &plan)
            .await
            .unwrap_err();
        assert!(err.contains("name them in spec.columns"), "{err}");
        assert_eq!(artifact.baseline, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
