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
    /// ONNX Runtime could not be loaded.
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    /// A model was loaded before ONNX Runtime.
    #[error("ONNX Runtime is not loaded: call nii_atr::runtime::init first")]
    RuntimeNotLoaded,
    /// No file at the model path.
    #[error("{}: model file not found", .path.display())]
    ModelMissing {
        /// The model path.
        path: PathBuf,
    },
    /// ONNX Runtime refused the model file.
    #[error("{}: cannot load model (corrupt, truncated or not ONNX?): {error}", .path.display())]
    ModelLoad {
        /// The model file.
        path: PathBuf,
        /// ONNX Runtime's error.
        error: ort::Error,
    },
    /// The model has an input or output nii-atr cannot feed or read.
    #[error("{}: unsupported model: {reason}", .path.display())]
    Unsupported {
        /// The model file.
        path: PathBuf,
        /// What is unsupported.
        reason: String,
    },
    /// The spec is unreadable, inconsistent or disagrees with the model.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A GPU provider is unavailable and `require_gpu` is set.
    #[error("execution provider `{provider}` unavailable and require_gpu forbids falling back to CPU: {reason}")]
    Provider {
        /// The provider asked for.
        provider: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The tiles handed to a run have the wrong shape.
    #[error("{}: input tensor has shape {found:?}, the model takes {expected:?}", .model.display())]
    Input {
        /// The model file.
        model: PathBuf,
        /// The shape a run takes, `[tiles, channels, height, width]`.
        expected: Vec<usize>,
        /// The shape handed over.
        found: Vec<usize>,
    },
    /// ONNX Runtime failed during a run.
    #[error("{}: ONNX Runtime run failed: {error}", .model.display())]
    Run {
        /// The model file.
        model: PathBuf,
        /// ONNX Runtime's error.
        error: ort::Error,
    },
    /// Score or IoU thresholds set for a model they cannot apply to (a model with a spec file,
    /// a decoder without NMS, a value outside 0..=1).
    #[error("{}: cannot set thresholds: {reason}", .model.display())]
    Thresholds {
        /// The model file.
        model: PathBuf,
        /// Why not.
        reason: String,
    },
    /// The model's outputs do not fit its decoder.
    #[error("{}: {error}", .model.display())]
    Decode {
        /// The model file.
        model: PathBuf,
        /// What does not fit.
        error: decode::DecodeError,
    },
}
