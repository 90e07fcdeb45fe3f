//! nii-atr-core: automated threat recognition for dual-energy X-ray scans of cargo.
//!
//! Pipeline order: [`scan`] (read) → [`preprocess`] (calibrate, materials, views, tiles) →
//! [`detect`] (ONNX detectors, decoding, cross-tile merge) → [`inspect`] (findings, risk,
//! decision, reports); [`verify`] checks the load against the declared manifest and
//! [`inspect`] turns its results into findings. [`runtime`] loads ONNX Runtime.

pub mod detect;
pub mod example;
pub mod inspect;
pub mod physics;
pub mod preprocess;
pub mod progress;
pub mod runtime;
pub mod scan;
pub mod truth;
pub mod verify;

/// An error and its chain of sources on one line, `outer: cause: root cause`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
