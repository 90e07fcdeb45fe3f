//! Loads the real ONNX Runtime library that `make setup` fetched.

#[test]
fn loads_the_fetched_onnx_runtime() {
    let info = nii_atr_core::runtime::init(None).expect("ONNX Runtime should load after `make setup`");
    assert!(info.version.starts_with("1."), "{info:?}");
    // A second call returns the same library instead of loading twice.
    let again = nii_atr_core::runtime::init(None).unwrap();
    assert_eq!(again.library, info.library);
}
