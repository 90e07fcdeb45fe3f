//! ONNX detectors: model specs, output decoders, sessions and the cross-tile merge.
//!
//! The flow for one batch of tiles is `Detector::run` (ONNX Runtime) → [`decode`] (raw
//! tensors to per-tile results) → [`merge`] (tiles to one list per scan, in `inspect`).

pub mod decode;
pub mod geometry;
pub mod merge;
pub mod spec;

pub use geometry::{BoxXyxy, Detection, MatchMetric};
pub use merge::{CutEdges, MergeConfig, MergeMethod, MergedBox};
