//! The CPU execution provider (always available).

use ort::ep::ExecutionProviderDispatch;

pub const NAME: &str = "cpu";

pub fn dispatch() -> ExecutionProviderDispatch {
    // The arena keeps tile-sized buffers between runs instead of reallocating each batch.
    ort::ep::CPU::default().with_arena_allocator(true).build()
}
