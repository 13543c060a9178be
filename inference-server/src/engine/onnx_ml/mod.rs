//! ONNX-ML operators written for aimass, registered in tract's ONNX loader in
//! place of (or in addition to) tract's own: tree ensembles, the models most
//! fraud and credit scoring runs on, exact and fast.

mod attributes;
mod forest;
mod trees;

/// Registers the operators with an ONNX loader.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register
        .insert("TreeEnsembleClassifier", trees::classifier);
    onnx.op_register
        .insert("TreeEnsembleRegressor", trees::regressor);
}
