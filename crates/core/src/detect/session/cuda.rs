//! The CUDA execution provider, behind the `cuda` cargo feature.

use super::SessionConfig;
use crate::detect::DetectError;
use ort::ep::ExecutionProviderDispatch;

pub const NAME: &str = "cuda";

/// CUDA first, CPU behind it unless `require_gpu` forbids the fallback.
#[cfg(feature = "cuda")]
pub fn dispatch(cfg: &SessionConfig) -> Result<(Vec<ExecutionProviderDispatch>, &'static str), DetectError> {
    let ep = ort::ep::CUDA::default().with_device_id(cfg.device_id).build();
    if cfg.require_gpu { Ok((vec![ep.error_on_failure()], NAME)) } else { Ok((vec![ep, super::cpu::dispatch()], NAME)) }
}

#[cfg(not(feature = "cuda"))]
pub fn dispatch(cfg: &SessionConfig) -> Result<(Vec<ExecutionProviderDispatch>, &'static str), DetectError> {
    super::cpu::instead_of(NAME, "this nii-atr was built without the `cuda` feature (cargo build --features cuda)", cfg)
}
