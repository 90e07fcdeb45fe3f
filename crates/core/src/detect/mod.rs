//! ONNX detectors: model specs, output decoders, sessions and the cross-tile merge.
//!
//! The flow for a batch of tiles is [`Detector::run`] (ONNX Runtime) → [`Detector::decode`]
//! (raw tensors to per-tile results, [`decode`]) → [`merge`] (tiles to one list per scan,
//! done by `inspect`).

pub mod decode;
pub mod detector;
pub mod geometry;
pub mod merge;
pub mod session;
pub mod spec;

pub use detector::{Decoded, Detector, RunTimes, SpecSource};
pub use geometry::{BoxXyxy, Detection, MatchMetric};
pub use merge::{CutEdges, MergeConfig, MergeMethod, MergedBox};
pub use session::{Optimization, Provider, SessionConfig};
pub use spec::{ModelSpec, SpecError, ThreatCategory};

use std::path::PathBuf;

/// Everything that can go wrong loading or running a detector.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("ONNX Runtime is not loaded: call nii_atr::runtime::init first")]
    RuntimeNotLoaded,
    #[error("{}: model file not found", .path.display())]
    ModelMissing { path: PathBuf },
    #[error("{}: cannot load model (corrupt, truncated or not ONNX?): {source}", .path.display())]
    ModelLoad { path: PathBuf, source: ort::Error },
    #[error("{}: unsupported model: {reason}", .path.display())]
    Unsupported { path: PathBuf, reason: String },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("execution provider `{provider}` unavailable and require_gpu forbids falling back to CPU: {reason}")]
    Provider { provider: String, reason: String },
    #[error("{}: input tensor has shape {found:?}, the model takes {expected:?}", .model.display())]
    Input { model: PathBuf, expected: Vec<usize>, found: Vec<usize> },
    #[error("{}: ONNX Runtime run failed: {source}", .model.display())]
    Run { model: PathBuf, source: ort::Error },
    #[error("{}: {source}", .model.display())]
    Decode { model: PathBuf, source: decode::DecodeError },
}
