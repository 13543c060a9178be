//! Renders the aimass.io CRDs from the Rust types into YAML files, and the
//! manual's CRD reference from the same schemas.
//!
//! The Makefile's `generate` target runs
//! `crdgen --out crds --out charts/aimass/files/crds --reference docs/crd-reference.md`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Where to write the CRDs and their reference.
#[derive(Parser)]
#[command(name = "crdgen")]
struct Args {
    /// A directory to write one YAML file per CRD into; repeatable.
    #[arg(long = "out", required = true)]
    out: Vec<PathBuf>,

    /// A Markdown file to write the CRD reference to.
    #[arg(long)]
    reference: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let crds = aimass_crds::crds();
    for dir in &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (file, crd) in &crds {
            write(&dir.join(file), &aimass_crds::render_crd(crd)?)?;
        }
    }
    if let Some(path) = &args.reference {
        let crds: Vec<_> = crds.into_iter().map(|(_, crd)| crd).collect();
        write(path, &aimass_crds::reference::render(&crds)?)?;
    }
    Ok(())
}

fn write(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}
