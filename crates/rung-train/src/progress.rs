//! What a user sees while training, on stderr.
//!
//! On a terminal, an [indicatif] bar per epoch (steps done of the epoch's steps, the last step's
//! loss, the epoch's tokens/s so far, indicatif's ETA for the epoch), replaced at the epoch's end
//! by the epoch's summary line. When stderr is not a terminal (a log file, CI, a pipe) a bar
//! would fill the log with carriage returns, so only the summary line is printed. With
//! `progress = false` nothing is printed. Stdout is never used: `rung train` prints its
//! summary there.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// Nothing.
    Off,
    /// One summary line per epoch.
    Lines,
    /// A live bar per epoch, then its summary line.
    Bar,
}

impl Display {
    /// The display for a run: `Off` unless `enabled`, a bar only on a terminal.
    pub fn choose(enabled: bool, terminal: bool) -> Self {
        match (enabled, terminal) {
            (false, _) => Self::Off,
            (true, false) => Self::Lines,
            (true, true) => Self::Bar,
        }
    }

    /// The display for this process's stderr.
    pub fn for_stderr(enabled: bool) -> Self {
        Self::choose(enabled, std::io::stderr().is_terminal())
    }
}

const TEMPLATE: &str = "epoch {prefix} [{bar:30}] {pos}/{len} steps  {msg}  ETA {eta}";

/// The progress of one epoch. Dropping it without [`EpochProgress::finish`] (a run stopped by
/// `max_steps` or an error) clears the bar.
pub struct EpochProgress {
    display: Display,
    bar: Option<ProgressBar>,
    started: Instant,
    tokens: usize,
}

impl EpochProgress {
    /// Starts epoch `epoch` of `epochs` with `steps` steps, `done` of which already ran (a
    /// resumed run).
    pub fn start(display: Display, epoch: usize, epochs: usize, steps: usize, done: usize) -> Self {
        Self::with_target(
            display,
            ProgressDrawTarget::stderr(),
            epoch,
            epochs,
            steps,
            done,
        )
    }

    /// [`EpochProgress::start`] drawing the bar to `target` (tests draw to a hidden target).
    pub fn with_target(
        display: Display,
        target: ProgressDrawTarget,
        epoch: usize,
        epochs: usize,
        steps: usize,
        done: usize,
    ) -> Self {
        let bar = (display == Display::Bar).then(|| {
            let style = ProgressStyle::with_template(TEMPLATE)
                .expect("the template is valid")
                .progress_chars("=> ");
            ProgressBar::with_draw_target(Some(steps as u64), target)
                .with_style(style)
                .with_prefix(format!("{epoch}/{epochs}"))
                .with_position(done as u64)
        });
        Self {
            display,
            bar,
            started: Instant::now(),
            tokens: 0,
        }
    }

    /// Records a finished step: its mean loss and its tokens (prompts included, padding not).
    pub fn step(&mut self, loss: f64, tokens: usize) {
        self.tokens += tokens;
        if let Some(bar) = &self.bar {
            bar.set_message(step_message(loss, self.tokens_per_s()));
            bar.inc(1);
        }
    }

    /// Tokens per second of this epoch in this process so far.
    pub fn tokens_per_s(&self) -> f64 {
        self.tokens as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    /// Steps shown as done (`None` without a bar).
    pub fn position(&self) -> Option<u64> {
        self.bar.as_ref().map(ProgressBar::position)
    }

    /// The bar's message (`None` without a bar).
    pub fn message(&self) -> Option<String> {
        self.bar.as_ref().map(ProgressBar::message)
    }

    /// Ends the epoch: clears the bar and prints `summary` unless progress is off.
    pub fn finish(mut self, summary: &str) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.display != Display::Off {
            eprintln!("{summary}");
        }
    }
}

impl Drop for EpochProgress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// The bar's message: `loss 1.2345  812 tok/s`.
pub fn step_message(loss: f64, tokens_per_s: f64) -> String {
    format!("loss {loss:.4}  {tokens_per_s:.0} tok/s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_only_on_a_terminal_and_nothing_when_off() {
        assert_eq!(Display::choose(false, true), Display::Off);
        assert_eq!(Display::choose(false, false), Display::Off);
        assert_eq!(Display::choose(true, false), Display::Lines);
        assert_eq!(Display::choose(true, true), Display::Bar);
    }

    #[test]
    fn the_bar_counts_steps_from_the_resume_point_and_shows_loss_and_rate() {
        let mut p =
            EpochProgress::with_target(Display::Bar, ProgressDrawTarget::hidden(), 2, 3, 10, 4);
        assert_eq!(p.position(), Some(4));
        p.step(1.23456, 500);
        p.step(0.5, 500);
        assert_eq!(p.position(), Some(6));
        let message = p.message().unwrap();
        assert!(message.starts_with("loss 0.5000  "), "{message}");
        assert!(message.ends_with(" tok/s"), "{message}");
        assert!(p.tokens_per_s() > 0.0);
        p.finish("epoch 2/3 done");
    }

    #[test]
    fn lines_and_off_have_no_bar() {
        for display in [Display::Lines, Display::Off] {
            let mut p = EpochProgress::start(display, 1, 1, 5, 0);
            p.step(1.0, 10);
            assert_eq!(p.position(), None);
            assert_eq!(p.tokens, 10);
        }
        assert_eq!(step_message(2.0, 1234.4), "loss 2.0000  1234 tok/s");
    }
}
