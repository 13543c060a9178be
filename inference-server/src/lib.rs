//! The aimass inference server: one ONNX model behind the Open Inference
//! Protocol v2 REST and gRPC APIs (the APIs of KServe and Triton), with
//! dynamic batching, Prometheus metrics and graceful shutdown.
//!
//! The same binary validates an artifact before the operator records it as
//! a version (`--validate-only`, run in a Job in the tenant's namespace), so
//! a version that validates is a version the server can serve.

pub mod archive;
pub mod batching;
pub mod config;
pub mod connections;
pub mod drift;
mod error;
pub mod grpc;
pub mod http;
pub mod memory;
pub mod metrics;
pub mod protocol;
pub mod security;
pub mod server;
pub mod shadow;

pub use error::Error;
