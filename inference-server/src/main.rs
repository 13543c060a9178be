//! Entry point of `aimass-inference-server`.

use aimass_inference_server::config;
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
