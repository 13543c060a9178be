//! Renders the aimass.io CRDs from the Rust types into YAML files.
//!
//! Usage: `crdgen <output-dir>` (the Makefile's `generate` target passes
//! `crds/`).

use std::path::PathBuf;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .context("usage: crdgen <output-dir>")?;
    for (file, crd) in aimass_crds::crds() {
        let path = dir.join(file);
        std::fs::write(&path, aimass_crds::render_crd(&crd)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
