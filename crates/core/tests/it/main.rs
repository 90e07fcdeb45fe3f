//! nii-atr-core's behaviour tests: real scans, real models and real ONNX Runtime through the library.
//!
//! One test executable per crate (`autotests = false`): each file is a module here.

mod detect_models;
mod error_messages;
mod inspect_pipeline;
mod physics_dual_energy;
mod physics_xcom;
mod runtime_load;
mod scan_readers;
mod ultralytics_parity;
