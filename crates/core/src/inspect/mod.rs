//! Inspection: every configured detector over a whole scan, tile by tile, merged into one
//! list of findings with material evidence, a risk score and a clear/review/alarm decision.

pub mod anomaly;
pub mod cargo;
pub mod config;
pub mod findings;
pub mod output;
pub mod run;

pub use crate::preprocess::views::ScanViews;
pub use config::PipelineConfig;
pub use findings::{Decision, Finding, Inspection};
pub use run::Pipeline;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Detect(#[from] crate::detect::DetectError),
    #[error(transparent)]
    Scan(#[from] crate::scan::ScanError),
    #[error("{}: model {model}: {source}", .scan.display())]
    Tiles { scan: PathBuf, model: String, source: crate::preprocess::tiles::TileError },
    #[error("{}: model {model}: cannot resample to the model's pixel pitch: {reason}", .scan.display())]
    Pitch { scan: PathBuf, model: String, reason: String },
    #[error(transparent)]
    Preprocess(#[from] crate::preprocess::PreprocessError),
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: cannot write image: {source}", .path.display())]
    Image { path: PathBuf, source: image::ImageError },
}
