//! Inspects one scan with a pipeline config and prints the decision and the ranked findings.
//!
//! `cargo run --release -p nii-atr-core --example inspect_scan -- <scan.json|.tiff|.png> [pipeline.toml]`
//! (run `make setup` once first: it fetches the ONNX Runtime library this looks for).

use std::path::PathBuf;

use nii_atr_core::{Limits, Pipeline, runtime};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let scan = args.next().ok_or("usage: inspect_scan <scan> [pipeline.toml]")?;
    let config = args.next().unwrap_or_else(|| "models/pipeline.default.toml".into());
    runtime::init(None)?;
    let pipeline = Pipeline::from_path(&config)?;
    let (inspection, _views) = pipeline.inspect_path(&scan, &Limits::default())?;
    println!("{}: {} (risk {:.2})", scan.display(), inspection.decision, inspection.risk_score);
    for f in &inspection.findings {
        let (b, mm) = (&f.bbox_px, &f.bbox_mm);
        println!(
            "  {:<22} {:.2}  x {:.0}-{:.0} y {:.0}-{:.0} px  ({:.0} x {:.0} mm)",
            f.class_name,
            f.score,
            b.x1,
            b.x2,
            b.y1,
            b.y2,
            mm.x2 - mm.x1,
            mm.y2 - mm.y1
        );
    }
    Ok(())
}
