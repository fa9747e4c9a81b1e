//! Before/after comparison of per-item scores (base model vs tuned model) with paired bootstrap
//! confidence intervals, flagging regressions (catastrophic forgetting).
//!
//! Items are paired by id (items present on one side only are counted and ignored). The delta is
//! `mean(after) - mean(before)` over paired items; its confidence interval is the percentile
//! interval of `resamples` paired bootstrap means (items drawn with replacement, seeded, so the
//! interval is reproducible). A metric is a *regression* when its improvement (the delta, negated
//! for lower-is-better metrics) is below `-regression_threshold`, and *significant* when the
//! interval excludes 0.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// Whether larger values of a metric are better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Accuracy, pass@k, log-likelihood.
    HigherIsBetter,
    /// Perplexity, loss.
    LowerIsBetter,
}

/// Per-item scores of one metric on one model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricScores {
    /// Metric name, e.g. `general_knowledge/acc`.
    pub metric: String,
    /// Direction of improvement.
    pub direction: Direction,
    /// `(item id, score)`.
    pub items: Vec<(String, f64)>,
}

/// Settings of a comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompareConfig {
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Confidence level of the interval, in (0, 1).
    pub confidence: f64,
    /// Seed of the resampling.
    pub seed: u64,
    /// A drop larger than this (in metric units) is flagged as a regression.
    pub regression_threshold: f64,
}

impl Default for CompareConfig {
    fn default() -> Self {
        Self {
            resamples: 2000,
            confidence: 0.95,
            seed: 0,
            regression_threshold: 0.02,
        }
    }
}

/// Comparison of one metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Metric name.
    pub metric: String,
    /// Direction of improvement.
    pub direction: Direction,
    /// Items present on both sides.
    pub paired: usize,
    /// Items present only before / only after (ignored).
    pub unpaired: usize,
    /// Mean before (paired items).
    pub before: f64,
    /// Mean after (paired items).
    pub after: f64,
    /// `after - before`.
    pub delta: f64,
    /// Lower bound of the bootstrap interval of `delta`.
    pub ci_low: f64,
    /// Upper bound of the bootstrap interval of `delta`.
    pub ci_high: f64,
    /// Confidence level of the interval.
    pub confidence: f64,
    /// Improvement dropped below `-regression_threshold`.
    pub regression: bool,
    /// The interval excludes 0.
    pub significant: bool,
}

/// Compare `before` and `after` (same metric on two models).
pub fn compare(
    before: &MetricScores,
    after: &MetricScores,
    cfg: &CompareConfig,
) -> Result<Comparison> {
    if before.direction != after.direction {
        return Err(EvalError::InvalidArgument(format!(
            "metric {}: directions differ",
            before.metric
        )));
    }
    if !(cfg.confidence > 0.0 && cfg.confidence < 1.0) || cfg.resamples == 0 {
        return Err(EvalError::InvalidArgument(
            "compare needs 0 < confidence < 1 and resamples >= 1".into(),
        ));
    }
    let after_by_id: HashMap<&str, f64> = after
        .items
        .iter()
        .map(|(id, s)| (id.as_str(), *s))
        .collect();
    let mut pairs: Vec<(f64, f64)> = Vec::new();
    for (id, b) in &before.items {
        if let Some(&a) = after_by_id.get(id.as_str()) {
            pairs.push((*b, a));
        }
    }
    let paired = pairs.len();
    if paired == 0 {
        return Err(EvalError::InvalidArgument(format!(
            "metric {}: no item ids in common",
            before.metric
        )));
    }
    if pairs.iter().any(|(b, a)| !b.is_finite() || !a.is_finite()) {
        return Err(EvalError::InvalidArgument(format!(
            "metric {}: non-finite item score",
            before.metric
        )));
    }
    let unpaired = before.items.len() + after.items.len() - 2 * paired;
    let n = paired as f64;
    let before_mean = pairs.iter().map(|p| p.0).sum::<f64>() / n;
    let after_mean = pairs.iter().map(|p| p.1).sum::<f64>() / n;
    let diffs: Vec<f64> = pairs.iter().map(|(b, a)| a - b).collect();
    let delta = after_mean - before_mean;
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let mut means: Vec<f64> = (0..cfg.resamples)
        .map(|_| {
            (0..paired)
                .map(|_| diffs[rng.random_range(0..paired)])
                .sum::<f64>()
                / n
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let alpha = 1.0 - cfg.confidence;
    let ci_low = quantile(&means, alpha / 2.0);
    let ci_high = quantile(&means, 1.0 - alpha / 2.0);
    let improvement = match before.direction {
        Direction::HigherIsBetter => delta,
        Direction::LowerIsBetter => -delta,
    };
    Ok(Comparison {
        metric: before.metric.clone(),
        direction: before.direction,
        paired,
        unpaired,
        before: before_mean,
        after: after_mean,
        delta,
        ci_low,
        ci_high,
        confidence: cfg.confidence,
        regression: improvement < -cfg.regression_threshold,
        significant: ci_low > 0.0 || ci_high < 0.0,
    })
}

/// Compare several metrics; `before` and `after` are matched by metric name (metrics missing on
/// one side are an error).
pub fn compare_all(
    before: &[MetricScores],
    after: &[MetricScores],
    cfg: &CompareConfig,
) -> Result<Vec<Comparison>> {
    before
        .iter()
        .map(|b| {
            let a = after.iter().find(|a| a.metric == b.metric).ok_or_else(|| {
                EvalError::InvalidArgument(format!(
                    "metric {} missing in the `after` results",
                    b.metric
                ))
            })?;
            compare(b, a, cfg)
        })
        .collect()
}

/// Linear-interpolated quantile of sorted values (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(metric: &str, direction: Direction, v: &[f64]) -> MetricScores {
        MetricScores {
            metric: metric.into(),
            direction,
            items: v
                .iter()
                .enumerate()
                .map(|(i, &s)| (format!("q{i}"), s))
                .collect(),
        }
    }

    #[test]
    fn identical_results_give_zero_delta() -> Result<()> {
        let a = scores("acc", Direction::HigherIsBetter, &[1.0, 0.0, 1.0, 1.0, 0.0]);
        let c = compare(&a, &a, &CompareConfig::default())?;
        assert_eq!((c.delta, c.ci_low, c.ci_high), (0.0, 0.0, 0.0));
        assert!(!c.regression && !c.significant);
        Ok(())
    }

    #[test]
    fn catastrophic_forgetting_is_flagged() -> Result<()> {
        // 200 questions: 80% right before, 50% after (the tuned model forgot 60 answers).
        let before: Vec<f64> = (0..200).map(|i| f64::from(u8::from(i % 5 != 0))).collect();
        let after: Vec<f64> = before
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if i < 120 && b == 1.0 && i % 2 == 1 {
                    0.0
                } else {
                    b
                }
            })
            .collect();
        let b = scores("gk/acc", Direction::HigherIsBetter, &before);
        let a = scores("gk/acc", Direction::HigherIsBetter, &after);
        let c = compare(&b, &a, &CompareConfig::default())?;
        assert!((c.before - 0.8).abs() < 1e-12);
        assert!((c.delta - (c.after - c.before)).abs() < 1e-12);
        assert!(c.delta < -0.2);
        assert!(c.ci_low <= c.delta && c.delta <= c.ci_high);
        assert!(c.ci_high < 0.0 && c.significant && c.regression);
        // Reversed: an improvement, not a regression.
        let c = compare(&a, &b, &CompareConfig::default())?;
        assert!(!c.regression && c.significant && c.ci_low > 0.0);
        Ok(())
    }

    #[test]
    fn lower_is_better_and_pairing() -> Result<()> {
        // Perplexity went up by 1 on each paired doc: a regression for a lower-is-better metric.
        let b = MetricScores {
            metric: "ppl".into(),
            direction: Direction::LowerIsBetter,
            items: vec![
                ("a".into(), 10.0),
                ("b".into(), 12.0),
                ("only_before".into(), 1.0),
            ],
        };
        let a = MetricScores {
            metric: "ppl".into(),
            direction: Direction::LowerIsBetter,
            items: vec![
                ("b".into(), 13.0),
                ("a".into(), 11.0),
                ("only_after".into(), 99.0),
            ],
        };
        let c = compare(&b, &a, &CompareConfig::default())?;
        assert_eq!(c.paired, 2);
        assert_eq!(c.unpaired, 2);
        assert!((c.delta - 1.0).abs() < 1e-12);
        assert!(c.regression);
        Ok(())
    }

    #[test]
    fn bootstrap_is_seeded_and_interval_width_sane() -> Result<()> {
        let before: Vec<f64> = (0..100).map(|i| (i as f64 * 0.37).sin()).collect();
        let after: Vec<f64> = before
            .iter()
            .enumerate()
            .map(|(i, b)| b + 0.1 + 0.5 * (i as f64 * 1.3).cos())
            .collect();
        let b = scores("m", Direction::HigherIsBetter, &before);
        let a = scores("m", Direction::HigherIsBetter, &after);
        let cfg = CompareConfig {
            seed: 3,
            ..Default::default()
        };
        let c1 = compare(&b, &a, &cfg)?;
        let c2 = compare(&b, &a, &cfg)?;
        assert_eq!(c1, c2);
        // Normal approximation: half-width ~ 1.96 * sd / sqrt(n).
        let d: Vec<f64> = before.iter().zip(&after).map(|(b, a)| a - b).collect();
        let mu = d.iter().sum::<f64>() / 100.0;
        let sd = (d.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / 99.0).sqrt();
        let half = (c1.ci_high - c1.ci_low) / 2.0;
        let normal = 1.96 * sd / 10.0;
        assert!(
            (half / normal - 1.0).abs() < 0.15,
            "bootstrap half-width {half} vs normal {normal}"
        );
        assert!(
            compare_all(
                std::slice::from_ref(&b),
                &[scores("other", Direction::HigherIsBetter, &after)],
                &cfg
            )
            .is_err()
        );
        assert_eq!(compare_all(&[b], &[a], &cfg)?.len(), 1);
        Ok(())
    }

    #[test]
    fn quantile_interpolates_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 4.0);
        assert!((quantile(&v, 0.5) - 2.5).abs() < 1e-12);
        assert!((quantile(&v, 0.25) - 1.75).abs() < 1e-12);
    }
}
