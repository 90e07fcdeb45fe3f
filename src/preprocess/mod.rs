//! Preprocessing: calibration to attenuation, material discrimination, officer views, tiles.

pub mod calibration;
pub mod materials;
pub mod render;
pub mod tiles;
