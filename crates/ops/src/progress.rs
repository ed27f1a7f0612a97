//! Progress for long local commands: a bar with rate and ETA on a terminal, and a plain line
//! every few seconds otherwise (CI logs, `kubectl logs`), so both stay readable.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Progress {
    label: String,
    total: Option<u64>,
    done: AtomicU64,
    started: Instant,
    bar: Option<indicatif::ProgressBar>,
    last_line: Mutex<Instant>,
    every: Duration,
    enabled: bool,
}

impl Progress {
    /// `total` in bytes when known. `enabled = false` makes every call a no-op (quiet runs).
    pub fn new(label: &str, total: Option<u64>, enabled: bool) -> Arc<Progress> {
        let tty = std::io::stderr().is_terminal();
        let bar = (enabled && tty).then(|| {
            let b = match total {
                Some(t) => indicatif::ProgressBar::new(t),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let style = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .map(|s| s.progress_chars("=> "));
            if let Ok(s) = style {
                b.set_style(s);
            }
            b.set_message(label.to_string());
            b
        });
        Arc::new(Progress {
            label: label.to_string(),
            total,
            done: AtomicU64::new(0),
            started: Instant::now(),
            bar,
            last_line: Mutex::new(Instant::now()),
            every: Duration::from_secs(5),
            enabled,
        })
    }

    pub fn inc(&self, bytes: u64) {
        if !self.enabled {
            return;
        }
        let done = self.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if let Some(b) = &self.bar {
            b.set_position(done);
            return;
        }
        let mut last = match self.last_line.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if last.elapsed() >= self.every {
            *last = Instant::now();
            eprintln!("{}", self.line(done));
        }
    }

    /// The plain progress line: done, percentage, rate, ETA.
    pub fn line(&self, done: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-6);
        let rate = done as f64 / secs;
        match self.total {
            Some(t) if t > 0 => {
                let eta = if rate > 0.0 {
                    (t.saturating_sub(done)) as f64 / rate
                } else {
                    0.0
                };
                format!(
                    "{}: {:.1}/{:.1} MB ({:.0}%), {:.1} MB/s, ETA {:.0}s",
                    self.label,
                    done as f64 / 1e6,
                    t as f64 / 1e6,
                    100.0 * done as f64 / t as f64,
                    rate / 1e6,
                    eta
                )
            }
            _ => format!(
                "{}: {:.1} MB, {:.1} MB/s",
                self.label,
                done as f64 / 1e6,
                rate / 1e6
            ),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_line_has_rate_and_eta() {
        let p = Progress::new("cat", Some(200_000_000), false);
        let l = p.line(100_000_000);
        assert!(l.starts_with("cat: 100.0/200.0 MB (50%)"), "{l}");
        assert!(l.contains("MB/s") && l.contains("ETA"), "{l}");
        let p = Progress::new("backfill", None, false);
        assert!(p.line(5_000_000).starts_with("backfill: 5.0 MB"));
    }
}
