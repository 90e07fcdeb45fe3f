//! The physics-based dual-energy cargo scan generator (`nii-atr synth`).
//!
//! A case is a scene (ISO container with its own steel, commodity cargo, concealed threats)
//! rendered through the polychromatic physics of [`nii_atr_core::physics`] by a fan beam, with
//! detector noise, written in the scan descriptor format with its labels and manifest.

pub mod case;
pub mod catalogue;
pub mod container;
pub mod dataset;
pub mod geometry;
pub mod recipe;
pub mod render;
pub mod scene;
pub mod threats;
pub mod tiles;

use thiserror::Error;

use nii_atr_core::physics::PhysicsError;

/// Why a scene, recipe or dataset could not be generated or written.
#[derive(Debug, Error)]
pub enum SynthError {
    #[error(transparent)]
    Physics(#[from] PhysicsError),
    #[error("invalid {name}: {reason}")]
    Parameter { name: &'static str, reason: String },
    #[error("{path}: {reason}")]
    File { path: std::path::PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}
