//! Progress of long jobs, reported to whoever drives them.
//!
//! The libraries never draw: a long job (a split run, a bootstrap, a generated dataset) takes
//! a `&dyn Progress` and the command line draws it with indicatif; [`Silent`] reports nothing.

/// Receives a long job's progress. Every method has a do-nothing default.
pub trait Progress: Send + Sync {
    /// Steps of the current stage (resets the position to 0).
    fn set_length(&self, _steps: u64) {}
    /// What is being done now.
    fn set_message(&self, _message: &str) {}
    /// `steps` more are done.
    fn inc(&self, _steps: u64) {}
    /// A line for the user that must not be lost under a progress bar (a skipped input).
    fn println(&self, _line: &str) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {}
