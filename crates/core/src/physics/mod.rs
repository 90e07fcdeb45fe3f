//! Photon physics for dual-energy cargo radiography: NIST XCOM attenuation of the project's
//! materials, polychromatic sources (linac bremsstrahlung, X-ray tubes), energy-integrating
//! scintillator detectors and the detector-weighted spectral transmission built from them.
//!
//! Everything here is data-driven from the embedded table `datasets/physics/xcom_materials.csv`
//! (derived from NIST XCOM by `datasets/tools/derive_xcom.py`), so the binary needs no file.
//! The approximations are stated on each model and in `docs/synthetic-data.md`.

mod beam;
mod detector;
mod error;
mod spectrum;
mod xcom;

pub use beam::{BinnedModel, DEFAULT_BINS, ReferenceScanner, SourcePair, SpectralModel, simulate_reference};
pub use detector::{Scintillator, compton_energy_transfer_fraction};
pub use error::PhysicsError;
pub use spectrum::{Filter, SPECTRUM_MIN_MEV, Source, Spectrum};
pub use xcom::{AttenuationTable, CrossSections, MaterialId, MaterialInfo};
