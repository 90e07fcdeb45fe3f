//! The TensorRT execution provider, behind the `tensorrt` cargo feature.

use super::SessionConfig;
use crate::detect::DetectError;
use ort::ep::ExecutionProviderDispatch;

pub const NAME: &str = "tensorrt";

/// TensorRT first, then CUDA and CPU for the operators it leaves, unless `require_gpu`
/// forbids falling back.
#[cfg(feature = "tensorrt")]
pub fn dispatch(cfg: &SessionConfig) -> Result<(Vec<ExecutionProviderDispatch>, &'static str), DetectError> {
    let ep = ort::ep::TensorRT::default().with_device_id(cfg.device_id).build();
    if cfg.require_gpu {
        Ok((vec![ep.error_on_failure()], NAME))
    } else {
        let mut eps = vec![ep];
        #[cfg(feature = "cuda")]
        eps.push(ort::ep::CUDA::default().with_device_id(cfg.device_id).build());
        eps.push(super::cpu::dispatch());
        Ok((eps, NAME))
    }
}

#[cfg(not(feature = "tensorrt"))]
pub fn dispatch(cfg: &SessionConfig) -> Result<(Vec<ExecutionProviderDispatch>, &'static str), DetectError> {
    super::cpu::instead_of(
        NAME,
        "this nii-atr was built without the `tensorrt` feature (cargo build --features tensorrt)",
        cfg,
    )
}
