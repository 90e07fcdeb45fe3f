//! nii-atr-synth's behaviour tests: generated scans through the engine, recipes, the tile export.
//!
//! One test executable per crate (`autotests = false`): each file is a module here.

mod common;
mod export_tiles;
mod synth_pipeline;
mod synth_recipes;
mod verify_pipeline;
