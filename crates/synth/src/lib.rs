//! The physics-based dual-energy cargo scan generator (`nii-atr synth`).
//!
//! A case is a scene (ISO container with its own steel, commodity cargo, concealed threats)
//! rendered through the polychromatic physics of [`nii_atr_core::physics`] by a fan beam, with
//! detector noise, written in the scan descriptor format with its labels and manifest.
//! The training-tile export ([`tiles`], `nii-atr tiles`) cuts the engine's model inputs and
//! their box labels from a generated split.

#![warn(missing_docs)]

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
    /// The physics could not be set up: an unknown material, a bad spectrum or detector.
    #[error(transparent)]
    Physics(#[from] PhysicsError),
    /// A parameter out of its range (recipe, options, scene).
    #[error("invalid {name}: {reason}")]
    Parameter {
        /// The parameter, as the recipe or options name it (e.g. `noise.photons_high`).
        name: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// A file that could not be parsed, or a scan or image that could not be written.
    #[error("{path}: {reason}")]
    File {
        /// The file or case folder.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {error}")]
    Io {
        /// The file or folder.
        path: std::path::PathBuf,
        /// The operating system's error.
        #[source]
        error: std::io::Error,
    },
}
