//! nii-atr: automated threat recognition for dual-energy X-ray scans of cargo.
//!
//! Pipeline order: [`scan`] (read) → [`preprocess`] (calibrate, materials, views, tiles) →
//! detectors → merge → findings and decision → reports. [`runtime`] loads ONNX Runtime.

pub mod bench;
pub mod detect;
pub mod error;
pub mod eval;
pub mod example;
pub mod info;
pub mod inspect;
pub mod physics;
pub mod preprocess;
pub mod runtime;
pub mod scan;
pub mod synth;

pub use error::{Error, Result, error_chain};
