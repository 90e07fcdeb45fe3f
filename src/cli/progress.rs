//! Progress bars: the libraries' [`Progress`] reports drawn with indicatif on stderr.

use indicatif::{ProgressBar, ProgressStyle};
use nii_atr_core::progress::Progress;

/// An indicatif bar behind the libraries' progress trait.
pub struct Bar(pub ProgressBar);

impl Bar {
    /// A bar drawn with `template` (indicatif's syntax), ticking while a stage has no length.
    pub fn new(template: &str) -> Self {
        let pb = ProgressBar::new(0);
        pb.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        Self(pb)
    }

    /// A bar that draws nothing (`--no-progress`, or output that is not a terminal).
    pub fn hidden() -> Self {
        Self(ProgressBar::hidden())
    }

    /// Removes the bar, leaving the lines printed above it.
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bar {
    fn set_length(&self, steps: u64) {
        self.0.set_position(0);
        self.0.set_length(steps);
    }

    fn set_message(&self, message: &str) {
        self.0.set_message(message.to_string());
    }

    fn inc(&self, steps: u64) {
        self.0.inc(steps);
    }

    fn println(&self, line: &str) {
        self.0.println(line);
    }
}
