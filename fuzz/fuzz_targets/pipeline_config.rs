#![no_main]
//! A pipeline config (TOML) through `PipelineConfig::load` and its checks.

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::file("pipeline.toml", data);
    if let Ok(cfg) = nii_atr_core::PipelineConfig::load(&path) {
        let _ = cfg.check();
    }
});
