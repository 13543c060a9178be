//! The aimass inference server: one ONNX model behind the Open Inference
//! Protocol v2 REST API.
//!
//! This foundation release parses and checks its configuration only; model
//! loading and serving arrive with the inference-server work (issue #5).

mod config;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let config = config::Config::parse();
    anyhow::bail!(
        "serving is not implemented yet: aimass-inference-server {} parsed its configuration for model {:?} version {} and stops here",
        env!("CARGO_PKG_VERSION"),
        config.model_name,
        config.model_version
    )
}
