//! Statistics over repetitions and passes: median, sample standard deviation, the 95% confidence
//! interval of the mean (Student's t), and percentiles (linear interpolation between order
//! statistics, as numpy's default).

use serde::{Deserialize, Serialize};

/// Summary of repeated measurements of one quantity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of values.
    pub n: usize,
    /// Median.
    pub median: f64,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one value).
    pub std: f64,
    /// Half-width of the 95% confidence interval of the mean (0 for one value).
    pub ci95: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Summary {
    /// Summarises `values`; `None` when empty or when a value is not finite.
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = if n > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let ci95 = if n > 1 {
            t_975(n - 1) * std / (n as f64).sqrt()
        } else {
            0.0
        };
        Some(Summary {
            n,
            median: percentile(values, 50.0)?,
            mean,
            std,
            ci95,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// The `p`-th percentile (0..=100) of `values`, interpolating linearly between the two nearest
/// order statistics; `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (p.clamp(0.0, 100.0) / 100.0) * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    Some(v[lo] + (v[hi] - v[lo]) * (rank - lo as f64))
}

/// The 97.5% quantile of Student's t distribution with `df` degrees of freedom (two-sided 95%).
pub fn t_975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => T[df - 1],
        31..=60 => 2.000,
        61..=120 => 1.980,
        _ => 1.960,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v = [4.0, 1.0, 3.0, 2.0];
        // numpy.percentile([1,2,3,4], [0, 50, 90, 99]) = 1, 2.5, 3.7, 3.97
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 50.0), Some(2.5));
        assert!((percentile(&v, 90.0).unwrap() - 3.7).abs() < 1e-12);
        assert!((percentile(&v, 99.0).unwrap() - 3.97).abs() < 1e-12);
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn summary_by_hand() {
        // 2, 4, 6: mean 4, sample variance (4 + 0 + 4) / 2 = 4, std 2;
        // ci95 = t(2) * 2 / sqrt(3) = 4.303 * 1.1547005 = 4.968676...
        let s = Summary::of(&[6.0, 2.0, 4.0]).unwrap();
        assert_eq!((s.n, s.median, s.mean, s.std), (3, 4.0, 4.0, 2.0));
        assert!((s.ci95 - 4.303 * 2.0 / 3f64.sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max), (2.0, 6.0));
        let one = Summary::of(&[5.0]).unwrap();
        assert_eq!((one.std, one.ci95, one.median), (0.0, 0.0, 5.0));
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[1.0, f64::NAN]).is_none());
    }
}
