//! Small statistics over seeds: Student-t confidence intervals of a mean (success rates are
//! clipped to [0, 1]; ratios such as saving factors are not).

/// Two-sided 97.5% Student t quantiles for 1..=30 degrees of freedom.
const T975: [f32; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// Mean and 95% t-interval of `xs`, unclipped (a single value gets a zero-width interval; no
/// value gives zeros).
pub fn t_interval(xs: &[f32]) -> (f32, f32, f32) {
    let n = xs.len();
    if n == 0 {
        return (0.0, 0.0, 0.0);
    }
    let mean = xs.iter().sum::<f32>() / n as f32;
    if n == 1 {
        return (mean, mean, mean);
    }
    let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / (n - 1) as f32).sqrt();
    let t = T975[(n - 2).min(T975.len() - 1)];
    let half = t * sd / (n as f32).sqrt();
    (mean, mean - half, mean + half)
}

/// Mean and 95% t-interval of success rates `xs`, clipped to [0, 1].
pub fn mean_ci(xs: &[f32]) -> (f32, f32, f32) {
    let (mean, lo, hi) = t_interval(xs);
    (mean, lo.max(0.0), hi.min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_intervals_follow_student_t() {
        let (m, lo, hi) = mean_ci(&[0.5, 0.6, 0.7]);
        assert!((m - 0.6).abs() < 1e-6);
        // sd 0.1, t(2) 4.303, half = 0.2484
        assert!(
            (hi - m - 0.2484).abs() < 1e-3 && (m - lo - 0.2484).abs() < 1e-3,
            "{lo} {hi}"
        );
        assert_eq!(mean_ci(&[1.0, 1.0, 1.0]), (1.0, 1.0, 1.0));
        let (_, lo, hi) = mean_ci(&[0.0, 1.0]);
        assert_eq!((lo, hi), (0.0, 1.0), "clipped to [0, 1]");
    }

    #[test]
    fn ratios_are_not_clipped() {
        // 10, 20, 30: sd 10, half = 4.303 * 10 / sqrt(3) = 24.84
        let (m, lo, hi) = t_interval(&[10.0, 20.0, 30.0]);
        assert_eq!(m, 20.0);
        assert!(
            (lo + 4.84).abs() < 0.01 && (hi - 44.84).abs() < 0.01,
            "{lo} {hi}"
        );
    }
}
