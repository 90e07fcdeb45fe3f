//! nii-atr-core: automated threat recognition (ATR) for dual-energy X-ray scans of cargo
//! containers and trucks.
//!
//! Pipeline order: [`scan`] (read) → [`preprocess`] (calibrate, materials, views, tiles) →
//! [`detect`] (ONNX detectors, decoding, cross-tile merge) → [`inspect`] (findings, risk,
//! decision, reports); [`verify`] checks the load against the declared manifest and
//! [`inspect`] turns its results into findings. [`runtime`] loads ONNX Runtime.
//!
//! An integrator needs the names re-exported here: load a [`Pipeline`] once from its
//! [`PipelineConfig`] (every model of it is loaded then, so a bad model fails early), and
//! inspect any number of scans with it, from several threads if need be. Each [`Inspection`]
//! holds the ranked [`Finding`]s, the risk score and the [`Decision`].
//!
//! ```
//! use std::path::Path;
//! use nii_atr_core::{Decision, Pipeline, example, runtime};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
//! runtime::init(None)?; // finds libonnxruntime (docs/setup.md)
//! let pipeline = Pipeline::from_path(&root.join("models/pipeline.default.toml"))?;
//! // A 20 ft container at 10 mm pitch; `read_scan(path, &Limits::default())` reads a file.
//! let scan = example::container_scan(10.0, 1);
//! let (inspection, _views) = pipeline.inspect(&scan)?;
//! println!("{} (risk {:.2})", inspection.decision, inspection.risk_score);
//! for f in inspection.findings.iter().take(3) {
//!     println!("{} {:.2} at {:?} px", f.class_name, f.score, f.bbox_px);
//! }
//! // Findings come ranked, strongest first; the decision follows from the risk.
//! assert!(inspection.findings.windows(2).all(|w| w[0].score >= w[1].score));
//! let cfg = &pipeline.config().decision;
//! assert_eq!(inspection.decision == Decision::Clear, inspection.risk_score < cfg.review_threshold);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod detect;
pub mod example;
pub mod inspect;
pub mod io;
pub mod physics;
pub mod preprocess;
pub mod progress;
pub mod runtime;
pub mod scan;
pub mod truth;
pub mod verify;

pub use inspect::{Decision, Finding, InspectError, Inspection, Pipeline, PipelineConfig};
pub use scan::{Limits, Scan, ScanError, read_scan};

/// An error and its chain of sources on one line, `outer: cause: root cause`, each cause
/// once: many errors name their source in their own message as well as returning it.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("{}: {source}", .path)]
    struct Named {
        path: &'static str,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot load model")]
    struct Outer(#[source] Named);

    #[test]
    fn a_cause_the_message_already_names_is_not_repeated() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = Named { path: "/a/scan.tiff", source: io() };
        assert_eq!(super::error_chain(&e), "/a/scan.tiff: No such file or directory");
        let e = Outer(Named { path: "/a/m.onnx", source: io() });
        assert_eq!(super::error_chain(&e), "cannot load model: /a/m.onnx: No such file or directory");
    }
}
