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

/// Everything that can go wrong loading a pipeline or inspecting a scan.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The pipeline config is unreadable or out of range.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A model failed to load or run.
    #[error(transparent)]
    Detect(#[from] crate::detect::DetectError),
    /// The scan file cannot be read.
    #[error(transparent)]
    Scan(#[from] crate::scan::ScanError),
    /// Tiles cannot be cut from the scan for a model.
    #[error("{}: model {model}: {error}", .scan.display())]
    Tiles {
        /// The scan (its file, else its id).
        scan: PathBuf,
        /// The model's name.
        model: String,
        /// Why the tiles failed.
        error: crate::preprocess::tiles::TileError,
    },
    /// The scan cannot be resampled to a model's pixel pitch.
    #[error("{}: model {model}: cannot resample to the model's pixel pitch: {reason}", .scan.display())]
    Pitch {
        /// The scan (its file, else its id).
        scan: PathBuf,
        /// The model's name.
        model: String,
        /// Why not.
        reason: String,
    },
    /// Calibration or material classification failed.
    #[error(transparent)]
    Preprocess(#[from] crate::preprocess::PreprocessError),
    /// A report or output file cannot be written (or an input folder read).
    #[error("{}: {error}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// An image cannot be encoded or written.
    #[error("{}: cannot write image: {error}", .path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// The encoder's error.
        error: image::ImageError,
    },
}
