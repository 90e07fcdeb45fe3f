//! The physics-based dual-energy cargo scan generator (`nii-atr synth`).
//!
//! A case is a scene (ISO container with its own steel, commodity cargo, concealed threats)
//! rendered through the polychromatic physics of [`crate::physics`] by a fan beam, with
//! detector noise, written in the scan descriptor format with its labels and manifest.

pub mod geometry;
