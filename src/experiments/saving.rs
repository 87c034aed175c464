//! How many real interactions a method saves against a baseline: where the baseline's curve of
//! held-out success against real interactions first reaches a target success, interpolated
//! between the budgets it was trained at (success linear in log real interactions, as the curves
//! are plotted), divided by the real interactions the method used to reach that success.
//!
//! A target the baseline reaches already at its smallest budget gives an upper bound on the
//! factor, one it never reaches a lower bound: both are reported as bounds, never as values.

use serde::Serialize;

/// What a curve needs to reach a success level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Reached between two budgets: the interpolated value.
    Exact,
    /// Reached already at the smallest budget: at most the value.
    AtMost,
    /// Never reached: more than the value (the largest budget).
    MoreThan,
}

/// Real interactions a curve needs to reach `target` (`None` for an empty curve). `curve`:
/// (real interactions > 0, success), ascending in real interactions; the first point at or
/// above the target counts (a curve that dips later is not searched again).
pub fn needed_to_reach(curve: &[(f64, f32)], target: f32) -> Option<(f64, Bound)> {
    let first = curve.first()?;
    let Some(i) = curve.iter().position(|p| p.1 >= target) else {
        return Some((curve[curve.len() - 1].0, Bound::MoreThan));
    };
    if i == 0 {
        return Some((first.0, Bound::AtMost));
    }
    let ((x0, y0), (x1, y1)) = (curve[i - 1], curve[i]);
    // y0 < target <= y1, so y1 > y0
    let frac = f64::from((target - y0) / (y1 - y0));
    let log_x = x0.ln() + frac * (x1.ln() - x0.ln());
    Some((log_x.exp(), Bound::Exact))
}

/// A saving factor: the baseline's real interactions for the target over the method's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Saving {
    /// The success level compared at.
    pub target_success: f32,
    /// Real interactions the method used to reach it.
    pub method_real_interactions: f64,
    /// Real interactions the baseline needs for it (see `bound`).
    pub baseline_real_interactions: f64,
    /// `baseline_real_interactions / method_real_interactions`.
    pub factor: f64,
    /// Whether `factor` is a value or a bound (the baseline's need is).
    pub bound: Bound,
}

/// The saving of a method that reached `target` with `used` real interactions, against
/// `baseline`'s curve (`None` for an empty curve or `used` of 0).
pub fn saving(baseline: &[(f64, f32)], target: f32, used: f64) -> Option<Saving> {
    if used <= 0.0 {
        return None;
    }
    let (needed, bound) = needed_to_reach(baseline, target)?;
    Some(Saving {
        target_success: target,
        method_real_interactions: used,
        baseline_real_interactions: needed,
        factor: needed / used,
        bound,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CURVE: [(f64, f32); 4] = [(1e3, 0.2), (1e4, 0.5), (1e5, 0.9), (1e6, 0.95)];

    #[test]
    fn interpolates_in_log_real_interactions() {
        // 0.7 is half way from 0.5 (10^4) to 0.9 (10^5): 10^4.5 = 31,622.8
        let (x, b) = needed_to_reach(&CURVE, 0.7).unwrap();
        assert_eq!(b, Bound::Exact);
        assert!((x - 31_622.78).abs() < 0.1, "{x}");
        // exactly on a point: that point
        let (x, _) = needed_to_reach(&CURVE, 0.9).unwrap();
        assert!((x - 1e5).abs() < 1e-6, "{x}");
    }

    #[test]
    fn targets_outside_the_curve_are_bounds() {
        assert_eq!(needed_to_reach(&CURVE, 0.1), Some((1e3, Bound::AtMost)));
        assert_eq!(needed_to_reach(&CURVE, 0.99), Some((1e6, Bound::MoreThan)));
        assert_eq!(needed_to_reach(&[], 0.5), None);
    }

    #[test]
    fn the_first_crossing_counts() {
        let dip = [(1e3, 0.6), (1e4, 0.3), (1e5, 0.7)];
        assert_eq!(needed_to_reach(&dip, 0.5), Some((1e3, Bound::AtMost)));
    }

    #[test]
    fn the_factor_is_the_baselines_need_over_the_methods_use() {
        let s = saving(&CURVE, 0.7, 1_000.0).unwrap();
        assert!((s.factor - 31.62278).abs() < 1e-3, "{}", s.factor);
        assert_eq!(s.bound, Bound::Exact);
        assert_eq!(saving(&CURVE, 0.99, 2_000.0).unwrap().factor, 500.0);
        assert!(saving(&CURVE, 0.7, 0.0).is_none());
    }
}
