//! ONNX-ML operators written for aimass, registered in tract's ONNX loader in
//! place of (or in addition to) tract's own: tree ensembles, the models most
//! fraud and credit scoring runs on, exact and fast, and the pre-processing
//! and linear operators exporters put around models.

mod attributes;
mod forest;
mod preprocess;
mod shared;
mod trees;

/// Registers the operators with an ONNX loader.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register
        .insert("TreeEnsembleClassifier", trees::classifier);
    onnx.op_register
        .insert("TreeEnsembleRegressor", trees::regressor);
    onnx.op_register
        .insert("TreeEnsemble", trees::tree_ensemble);
    onnx.op_register.insert("Scaler", preprocess::scaler);
    onnx.op_register.insert("Imputer", preprocess::imputer);
    onnx.op_register.insert("Binarizer", preprocess::binarizer);
    onnx.op_register
        .insert("OneHotEncoder", preprocess::one_hot);
    onnx.op_register
        .insert("LabelEncoder", preprocess::label_encoder);
    onnx.op_register
        .insert("LinearClassifier", preprocess::linear_classifier);
}
