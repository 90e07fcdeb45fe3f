//! nii-atr: automated threat recognition for dual-energy X-ray scans of cargo.

pub mod detect;
pub mod inspect;
pub mod preprocess;
pub mod runtime;
pub mod scan;
