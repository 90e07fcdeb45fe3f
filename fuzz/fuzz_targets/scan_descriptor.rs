#![no_main]
//! A scan descriptor (`scan.json`) beside two valid 16-bit planes: every field, plane path,
//! calibration and manifest value the fuzzer can think of goes through `read_scan`.

mod common;

use libfuzzer_sys::fuzz_target;
use nii_atr_core::scan::{Limits, read_scan};

fuzz_target!(|data: &[u8]| {
    let dir = common::scratch();
    if !dir.join("high.png").is_file() {
        let scan = nii_atr_core::example::block_scan(16, 24, &[(4, 4, 12, 12, 1.0)]);
        nii_atr_core::scan::write_scan(&scan, dir, nii_atr_core::scan::PlaneFormat::Png).expect("planes");
    }
    let path = common::file("scan.json", data);
    // Small limits keep each run fast; the readers must refuse, never allocate past them.
    let limits = Limits { max_width: 4096, max_height: 4096, max_pixels: 1 << 22 };
    let _ = read_scan(&path, &limits);
});
