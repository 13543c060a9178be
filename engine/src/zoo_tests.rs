//! Parity with onnxruntime on the model zoo (tests/zoo): every model the
//! exporters write loads, and its outputs match onnxruntime's to 1e-5; models
//! the server must refuse are refused with a message that says how to fix
//! the export.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::tensor::{DataType, Tensor, TensorData};
use crate::{Backend, TractBackend};

fn zoo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/zoo/models")
}

fn tensor(v: &Value) -> Tensor {
    let datatype = DataType::parse(v["datatype"].as_str().unwrap()).unwrap();
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data = v["data"].as_array().unwrap();
    let f = |x: &Value| x.as_f64().unwrap_or(f64::NAN);
    let data = match datatype {
        DataType::Fp32 => TensorData::Fp32(data.iter().map(|x| f(x) as f32).collect()),
        DataType::Fp64 => TensorData::Fp64(data.iter().map(f).collect()),
        DataType::Int64 => TensorData::Int64(data.iter().map(|x| x.as_i64().unwrap()).collect()),
        DataType::Int32 => {
            TensorData::Int32(data.iter().map(|x| x.as_i64().unwrap() as i32).collect())
        }
        DataType::Bool => TensorData::Bool(data.iter().map(|x| x.as_bool().unwrap()).collect()),
        DataType::Bytes => TensorData::Bytes(
            data.iter()
                .map(|x| x.as_str().unwrap().as_bytes().to_vec())
                .collect(),
        ),
        other => panic!("zoo datatype {other} not handled by the test"),
    };
    Tensor::new(shape, data).unwrap()
}

fn as_f64(t: &Tensor) -> Option<Vec<f64>> {
    Some(match &t.data {
        TensorData::Fp32(v) => v.iter().map(|x| f64::from(*x)).collect(),
        TensorData::Fp64(v) => v.clone(),
        TensorData::Int64(v) => v.iter().map(|x| *x as f64).collect(),
        TensorData::Int32(v) => v.iter().map(|x| f64::from(*x)).collect(),
        _ => return None,
    })
}

/// Equal to 1e-5, relative, or absolute for values near 0.
fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-5 * a.abs().max(b.abs()).max(1.0)
}

fn check(name: &str, reference: &Value) -> Result<(), String> {
    let bytes = std::fs::read(zoo().join(format!("{name}.onnx"))).map_err(|e| e.to_string())?;
    let loaded = TractBackend::load(&bytes);
    if let Some(expected) = reference["expect_load_error"].as_str() {
        return match loaded {
            Ok(_) => Err("loaded, but should have been refused".into()),
            Err(e) if e.to_string().contains(expected) => Ok(()),
            Err(e) => Err(format!("refused with {e:?}, expected {expected:?}")),
        };
    }
    let backend = loaded.map_err(|e| format!("load: {e}"))?;
    let inputs: Vec<Tensor> = reference["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(tensor)
        .collect();
    let names: Vec<&str> = backend
        .signature()
        .inputs
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let ref_names: Vec<&str> = reference["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    if names != ref_names {
        return Err(format!("inputs {names:?}, reference {ref_names:?}"));
    }
    let outputs = backend.run(inputs).map_err(|e| format!("run: {e}"))?;
    for (expected, got) in reference["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&outputs)
    {
        let expected = tensor(expected);
        if expected.shape != got.shape {
            return Err(format!(
                "shape {:?}, onnxruntime {:?}",
                got.shape, expected.shape
            ));
        }
        match (as_f64(&expected), as_f64(got)) {
            (Some(e), Some(g)) => {
                if let Some(i) = (0..e.len()).find(|&i| !close(e[i], g[i])) {
                    return Err(format!("element {i}: {} vs onnxruntime {}", g[i], e[i]));
                }
            }
            _ if expected.data == got.data => {}
            _ => return Err(format!("{:?} vs onnxruntime {:?}", got.data, expected.data)),
        }
    }
    Ok(())
}

#[test]
fn every_zoo_model_matches_onnxruntime() {
    let mut failures = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(zoo())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let mut checked = 0;
    for path in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let name = path.file_stem().unwrap().to_str().unwrap();
        let reference: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        if let Err(e) = check(name, &reference) {
            failures.push(format!("{name}: {e}"));
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} zoo models found");
    assert!(
        failures.is_empty(),
        "zoo models that do not match onnxruntime:\n{}",
        failures.join("\n")
    );
}
