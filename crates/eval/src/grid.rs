//! Decoding-parameter grid search on a dev set.
//!
//! The grid is the Cartesian product of the listed temperatures, top-p, top-k and repetition
//! penalties over a base [`DecodingParams`]. Greedy points (`temperature == 0`) ignore top-p/top-k,
//! so they are normalized (`top_p = 1`, `top_k = 0`) and deduplicated. Every point is evaluated by
//! an objective (higher is better) and recorded with its full parameters; the best is the first
//! point with the highest score.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::code::{CodeEvalConfig, CodeTask, evaluate_code};
use crate::error::{EvalError, Result};
use crate::model::{CompletionModel, DecodingParams};

/// The values to try.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodingGrid {
    /// Temperatures.
    pub temperature: Vec<f32>,
    /// Nucleus masses.
    pub top_p: Vec<f32>,
    /// Top-k values (`0` = off).
    pub top_k: Vec<usize>,
    /// Repetition penalties.
    pub repetition_penalty: Vec<f32>,
    /// Everything else (max_new_tokens, stop, seed).
    pub base: DecodingParams,
}

impl Default for DecodingGrid {
    fn default() -> Self {
        Self {
            temperature: vec![0.0, 0.2, 0.8],
            top_p: vec![0.95],
            top_k: vec![0],
            repetition_penalty: vec![1.0],
            base: DecodingParams::default(),
        }
    }
}

impl DecodingGrid {
    /// Every distinct point, in order (temperature outermost, repetition penalty innermost).
    pub fn points(&self) -> Result<Vec<DecodingParams>> {
        if self.temperature.is_empty()
            || self.top_p.is_empty()
            || self.top_k.is_empty()
            || self.repetition_penalty.is_empty()
        {
            return Err(EvalError::InvalidArgument(
                "every grid axis needs at least one value".into(),
            ));
        }
        let mut out: Vec<DecodingParams> = Vec::new();
        for &temperature in &self.temperature {
            for &top_p in &self.top_p {
                for &top_k in &self.top_k {
                    for &repetition_penalty in &self.repetition_penalty {
                        let greedy = temperature == 0.0;
                        let p = DecodingParams {
                            temperature,
                            top_p: if greedy { 1.0 } else { top_p },
                            top_k: if greedy { 0 } else { top_k },
                            repetition_penalty,
                            ..self.base.clone()
                        };
                        p.validate()?;
                        if !out.contains(&p) {
                            out.push(p);
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// One evaluated grid point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    /// The parameters.
    pub params: DecodingParams,
    /// Objective value (higher is better).
    pub score: f64,
    /// Other metrics measured at this point (e.g. `pass@10`).
    pub metrics: BTreeMap<String, f64>,
}

/// Result of a grid search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridResult {
    /// Name of the objective, e.g. `pass@1`.
    pub objective: String,
    /// Index of the best point in `points`.
    pub best: usize,
    /// Every point, in grid order.
    pub points: Vec<GridPoint>,
}

impl GridResult {
    /// The best point.
    pub fn best_point(&self) -> Option<&GridPoint> {
        self.points.get(self.best)
    }
}

/// What an objective returns for one point: the score and optional extra metrics.
pub type ObjectiveValue = (f64, BTreeMap<String, f64>);

/// Evaluate `objective` at every grid point.
pub fn grid_search(
    grid: &DecodingGrid,
    objective_name: &str,
    objective: &mut dyn FnMut(&DecodingParams) -> Result<ObjectiveValue>,
) -> Result<GridResult> {
    let mut points = Vec::new();
    for params in grid.points()? {
        let (score, metrics) = objective(&params)?;
        if score.is_nan() {
            return Err(EvalError::InvalidArgument(format!(
                "objective returned NaN at {}",
                params.label()
            )));
        }
        tracing::info!(params = %params.label(), score, "grid point");
        points.push(GridPoint {
            params,
            score,
            metrics,
        });
    }
    let mut best = 0;
    for (i, p) in points.iter().enumerate() {
        if p.score > points[best].score {
            best = i;
        }
    }
    Ok(GridResult {
        objective: objective_name.to_string(),
        best,
        points,
    })
}

/// Grid search on a code dev set: the objective is pass@`k` (`k <= samples_per_problem`), and every
/// reported pass@k is recorded as a metric.
pub fn grid_search_code(
    model: &mut dyn CompletionModel,
    tasks: &[CodeTask],
    grid: &DecodingGrid,
    cfg: &CodeEvalConfig,
    k: u64,
) -> Result<GridResult> {
    if k == 0 || k > cfg.samples_per_problem as u64 {
        return Err(EvalError::InvalidArgument(format!(
            "grid objective pass@{k} needs 1 <= k <= samples_per_problem ({})",
            cfg.samples_per_problem
        )));
    }
    let mut objective = |params: &DecodingParams| -> Result<ObjectiveValue> {
        let point_cfg = CodeEvalConfig {
            decoding: params.clone(),
            ..cfg.clone()
        };
        let r = evaluate_code(model, tasks, &point_cfg)?;
        let metrics: BTreeMap<String, f64> = r
            .pass_at_k
            .iter()
            .map(|p| (format!("pass@{}", p.k), p.value))
            .collect();
        let score = r
            .pass_at(k)
            .ok_or_else(|| EvalError::InvalidArgument(format!("pass@{k} not computed")))?;
        Ok((score, metrics))
    };
    grid_search(grid, &format!("pass@{k}"), &mut objective)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_the_deduplicated_product() -> Result<()> {
        let grid = DecodingGrid {
            temperature: vec![0.0, 0.5, 1.0],
            top_p: vec![0.9, 1.0],
            top_k: vec![0, 40],
            repetition_penalty: vec![1.0, 1.2],
            base: DecodingParams {
                max_new_tokens: 32,
                ..Default::default()
            },
        };
        let pts = grid.points()?;
        // Greedy: 2 points (one per repetition penalty); sampling: 2 * 2 * 2 * 2 = 16.
        assert_eq!(pts.len(), 2 + 16);
        assert!(pts.iter().all(|p| p.max_new_tokens == 32));
        assert!(
            pts.iter()
                .filter(|p| p.temperature == 0.0)
                .all(|p| p.top_p == 1.0 && p.top_k == 0)
        );
        assert!(
            DecodingGrid {
                top_p: vec![],
                ..Default::default()
            }
            .points()
            .is_err()
        );
        assert!(
            DecodingGrid {
                top_p: vec![1.5],
                temperature: vec![1.0],
                ..Default::default()
            }
            .points()
            .is_err()
        );
        Ok(())
    }

    #[test]
    fn best_point_found_and_params_recorded() -> Result<()> {
        let grid = DecodingGrid {
            temperature: vec![0.0, 0.3, 0.6, 0.9],
            top_p: vec![0.8, 0.95],
            top_k: vec![0],
            repetition_penalty: vec![1.0, 1.1],
            base: DecodingParams::default(),
        };
        // Peak at T = 0.6, top_p = 0.95, rep = 1.1.
        let mut calls = 0;
        let mut f = |p: &DecodingParams| -> Result<ObjectiveValue> {
            calls += 1;
            let s = -(f64::from(p.temperature) - 0.6).powi(2)
                - (f64::from(p.top_p) - 0.95).abs()
                - (f64::from(p.repetition_penalty) - 1.1).abs();
            Ok((
                s,
                BTreeMap::from([("t".to_string(), f64::from(p.temperature))]),
            ))
        };
        let r = grid_search(&grid, "synthetic", &mut f)?;
        assert_eq!(calls, r.points.len());
        let best = r.best_point().map(|p| p.params.clone()).unwrap_or_default();
        assert_eq!(
            (best.temperature, best.top_p, best.repetition_penalty),
            (0.6, 0.95, 1.1)
        );
        assert!(
            r.points
                .iter()
                .all(|p| p.metrics["t"] == f64::from(p.params.temperature))
        );
        let json = serde_json::to_string(&r)?;
        let back: GridResult = serde_json::from_str(&json)?;
        assert_eq!(back.best, r.best);
        for (a, b) in back.points.iter().zip(&r.points) {
            assert_eq!(a.params, b.params);
            assert!((a.score - b.score).abs() <= 1e-15 * b.score.abs().max(1.0));
        }
        Ok(())
    }
}
