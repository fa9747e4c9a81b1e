//! Learning-rate schedules: linear warm-up, then cosine, linear or constant, with exactly the
//! formulas of HF `transformers.get_{cosine,linear,constant}_schedule_with_warmup` (the rate of
//! optimizer step `k`, counted from 0, is `peak * lambda(k)`).

use serde::{Deserialize, Serialize};

use crate::recipe::SchedulerKind;

/// A warm-up + decay schedule over a fixed number of optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// Peak learning rate.
    pub peak: f64,
    /// Warm-up steps.
    pub warmup_steps: u64,
    /// Total optimizer steps.
    pub total_steps: u64,
    /// Decay after warm-up.
    pub kind: SchedulerKind,
}

impl LrSchedule {
    /// `warmup_steps` wins over `warmup_ratio`; the ratio gives `ceil(ratio * total)` steps (HF).
    pub fn new(peak: f64, kind: SchedulerKind, total_steps: u64, warmup_steps: Option<u64>, warmup_ratio: f64) -> Self {
        let warmup = warmup_steps.unwrap_or_else(|| (warmup_ratio * total_steps as f64).ceil() as u64);
        Self { peak, warmup_steps: warmup, total_steps, kind }
    }

    /// The multiplier of step `k` (0-based: the first optimizer step uses `lambda(0)`).
    pub fn lambda(&self, k: u64) -> f64 {
        let (k, w, n) = (k as f64, self.warmup_steps as f64, self.total_steps as f64);
        if k < w {
            return k / w.max(1.0);
        }
        match self.kind {
            SchedulerKind::Constant => 1.0,
            SchedulerKind::Linear => ((n - k) / (n - w).max(1.0)).max(0.0),
            SchedulerKind::Cosine => {
                let progress = (k - w) / (n - w).max(1.0);
                (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
            }
        }
    }

    /// The learning rate of step `k` (0-based).
    pub fn lr(&self, k: u64) -> f64 {
        self.peak * self.lambda(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hf_cosine_with_warmup() {
        // transformers.get_cosine_schedule_with_warmup(opt, 2, 10) on lr 1.0, values of
        // LambdaLR after 0..10 scheduler steps.
        let s = LrSchedule::new(1.0, SchedulerKind::Cosine, 10, Some(2), 0.0);
        let want = [0.0, 0.5, 1.0, 0.9619397662556434, 0.8535533905932737, 0.6913417161825449, 0.5, 0.3086582838174551, 0.14644660940672624, 0.03806023374435663];
        for (k, w) in want.iter().enumerate() {
            assert!((s.lr(k as u64) - w).abs() < 1e-12, "step {k}: {} vs {w}", s.lr(k as u64));
        }
    }

    #[test]
    fn linear_and_ratio() {
        let s = LrSchedule::new(2.0, SchedulerKind::Linear, 10, None, 0.15);
        assert_eq!(s.warmup_steps, 2, "ceil(0.15 * 10)");
        assert!((s.lr(1) - 1.0).abs() < 1e-12);
        assert!((s.lr(2) - 2.0).abs() < 1e-12);
        assert!((s.lr(6) - 1.0).abs() < 1e-12);
        assert_eq!(s.lr(10), 0.0);
        let c = LrSchedule::new(3.0, SchedulerKind::Constant, 10, Some(0), 0.0);
        assert_eq!(c.lr(0), 3.0);
    }
}
