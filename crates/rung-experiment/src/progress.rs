//! Progress lines on stderr: per stage (episodes done, ETA) and for the whole experiment.
//! Lines are rewritten in place on a terminal and printed once at the end otherwise, so logs
//! stay short.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rung_agents::harness::Progress;

/// A progress callback for an episode runner.
pub fn episodes(label: String) -> Progress {
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let shown = Mutex::new(0usize);
    Arc::new(move |done: usize, total: usize| {
        let mut shown = shown.lock().unwrap_or_else(|e| e.into_inner());
        if done <= *shown {
            return;
        }
        *shown = done;
        let elapsed = started.elapsed().as_secs_f64();
        let eta = elapsed / done as f64 * total.saturating_sub(done) as f64;
        if terminal {
            eprint!(
                "\r{label}: {done}/{total} episodes, {} elapsed, ETA {} ",
                duration(elapsed),
                duration(eta)
            );
            if done == total {
                eprintln!();
            }
        } else if done == total {
            eprintln!("{label}: {total} episodes in {}", duration(elapsed));
        }
    })
}

/// `1h02m`, `3m05s`, `12s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Overall progress of the experiment: stages weighted by their estimated cost.
pub struct Overall {
    started: Instant,
    total: f64,
    done: f64,
    /// Cost of the stages skipped as already done (excluded from the rate).
    skipped: f64,
}

impl Overall {
    /// `total`: the summed weight of every stage.
    pub fn new(total: f64) -> Self {
        Overall {
            started: Instant::now(),
            total: total.max(1e-9),
            done: 0.0,
            skipped: 0.0,
        }
    }

    /// A stage of `weight` finished (`skipped`: found done), and the line to show.
    pub fn advance(&mut self, weight: f64, skipped: bool, what: &str) -> String {
        self.done += weight;
        if skipped {
            self.skipped += weight;
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        let worked = self.done - self.skipped;
        let eta = if worked > 0.0 {
            elapsed / worked * (self.total - self.done)
        } else {
            f64::NAN
        };
        let eta = if eta.is_finite() {
            duration(eta)
        } else {
            "?".into()
        };
        format!(
            "[{:5.1}%] {what}{} — {} elapsed, ETA {eta}",
            100.0 * self.done / self.total,
            if skipped { " (already done)" } else { "" },
            duration(elapsed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(12.4), "12s");
        assert_eq!(duration(185.0), "3m05s");
        assert_eq!(duration(3720.0), "1h02m");
    }

    #[test]
    fn skipped_stages_do_not_count_towards_the_rate() {
        let mut overall = Overall::new(10.0);
        let line = overall.advance(5.0, true, "data");
        assert!(line.contains("50.0%") && line.contains("ETA ?"), "{line}");
        let line = overall.advance(1.0, false, "train");
        assert!(line.contains("60.0%"), "{line}");
    }
}
