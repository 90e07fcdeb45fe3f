#![no_main]
//! A split's `truth.jsonl` through its one reader.

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::file("truth.jsonl", data);
    let _ = nii_atr_core::truth::read_truth(common::scratch());
});
