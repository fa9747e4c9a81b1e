//! Progress reporting: an `indicatif` bar on a terminal, periodic `tracing` lines otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// A thread-safe progress counter (`inc` from worker threads).
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: u64,
    done: AtomicU64,
    bar: Option<ProgressBar>,
    last_log: Mutex<Instant>,
}

impl Progress {
    /// A progress display for `total` units of work; a bar when stderr is a terminal.
    pub fn new(label: &str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ({eta})",
            ) {
                bar.set_style(style);
            }
            bar.set_prefix(label.to_string());
            bar
        });
        Self {
            label: label.to_string(),
            total,
            done: AtomicU64::new(0),
            bar,
            last_log: Mutex::new(Instant::now()),
        }
    }

    /// Record `n` more units done.
    pub fn inc(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
            return;
        }
        if let Ok(mut last) = self.last_log.lock()
            && (last.elapsed() >= Duration::from_secs(10) || done == self.total)
        {
            *last = Instant::now();
            tracing::info!("{}: {done}/{}", self.label, self.total);
        }
    }

    /// Units done so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Finish the bar (no-op for the log fallback).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_threads() {
        let p = Progress::new("t", 100);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..25 {
                        p.inc(1);
                    }
                });
            }
        });
        p.finish();
        assert_eq!(p.done(), 100);
    }
}
