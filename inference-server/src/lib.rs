//! The aimass inference server: one ONNX model behind the Open Inference
//! Protocol v2 REST API (the API of KServe and Triton), with dynamic
//! batching, Prometheus metrics and graceful shutdown.
//!
//! The engine (`engine`) is also what the operator uses to validate an
//! artifact before it records a model version, so a version that validates
//! is a version the server can serve.

pub mod config;
pub mod engine;
pub mod tensor;

#[cfg(test)]
mod zoo_tests;
