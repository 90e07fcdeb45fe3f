//! The CPU execution provider (always available).

use super::SessionConfig;
use crate::detect::DetectError;
use ort::ep::ExecutionProviderDispatch;

pub const NAME: &str = "cpu";

pub fn dispatch() -> ExecutionProviderDispatch {
    // The arena keeps tile-sized buffers between runs instead of reallocating each batch.
    ort::ep::CPU::default().with_arena_allocator(true).build()
}

/// CPU in place of a GPU `provider` this build lacks (`reason` says why): an error when
/// `require_gpu` forbids the fallback, else a warning.
#[cfg_attr(all(feature = "cuda", feature = "tensorrt"), allow(dead_code))]
pub fn instead_of(
    provider: &str,
    reason: &str,
    cfg: &SessionConfig,
) -> Result<(Vec<ExecutionProviderDispatch>, &'static str), DetectError> {
    if cfg.require_gpu {
        return Err(DetectError::Provider { provider: provider.into(), reason: reason.into() });
    }
    tracing::warn!("{reason}; running on CPU");
    Ok((vec![dispatch()], NAME))
}
