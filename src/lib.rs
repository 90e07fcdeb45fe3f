//! nii-atr: automated threat recognition for dual-energy X-ray scans of cargo.

pub mod physics;
pub mod preprocess;
pub mod runtime;
pub mod scan;
pub mod synth;
