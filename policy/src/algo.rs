//! The two algorithms' data preparation: PPO's GAE over collected segments and GRPO's
//! group-normalised episode outcomes, plus the shared epoch/minibatch loop.

use crate::PolicyError;
use crate::net::PolicyNet;
use crate::rollout::Decided;
use crate::update::{LossConfig, Sample, StepStats, minibatch_step};
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use rand::Rng;
use rand::seq::SliceRandom;

/// Generalised advantage estimates and return targets of one env's segment.
pub fn gae(segment: &[Decided], gamma: f32, lambda: f32) -> (Vec<f32>, Vec<f32>) {
    let n = segment.len();
    let mut adv = vec![0.0; n];
    let mut last = 0.0;
    for t in (0..n).rev() {
        let d = &segment[t];
        let next_value = if d.cut || t + 1 == n {
            d.next_value
        } else {
            segment[t + 1].value
        };
        let delta = d.reward + gamma * next_value - d.value;
        let carry = if d.cut || t + 1 == n { 0.0 } else { last };
        last = delta + gamma * lambda * carry;
        adv[t] = last;
    }
    let ret = adv.iter().zip(segment).map(|(a, d)| a + d.value).collect();
    (adv, ret)
}

/// GRPO advantages: each episode's return minus the group mean, over the group's standard
/// deviation (all zero when every member got the same return: no signal).
pub fn group_advantages(returns: &[f32]) -> Vec<f32> {
    let n = returns.len().max(1) as f32;
    let mean = returns.iter().sum::<f32>() / n;
    let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f32>() / n;
    let std = var.sqrt();
    if std < 1e-6 {
        return vec![0.0; returns.len()];
    }
    returns.iter().map(|r| (r - mean) / (std + 1e-6)).collect()
}

/// Normalises advantages to mean 0 and standard deviation 1 (CleanRL's `norm_adv`).
fn normalise(samples: &mut [Sample<'_>]) {
    let n = samples.len() as f32;
    if samples.len() < 2 {
        return;
    }
    let mean = samples.iter().map(|s| s.advantage).sum::<f32>() / n;
    let var = samples
        .iter()
        .map(|s| (s.advantage - mean).powi(2))
        .sum::<f32>()
        / (n - 1.0);
    let std = var.sqrt();
    for s in samples {
        s.advantage = (s.advantage - mean) / (std + 1e-8);
    }
}

/// Settings of the epoch/minibatch loop.
#[derive(Debug, Clone, Copy)]
pub struct EpochPlan {
    /// Passes over the data.
    pub epochs: usize,
    /// Minibatches per pass.
    pub minibatches: usize,
    /// Normalise advantages per minibatch.
    pub norm_adv: bool,
    /// Learning rate of this iteration.
    pub lr: f64,
}

/// Runs `plan.epochs` shuffled passes of minibatch steps over `samples`.
pub fn optimise(
    mut net: PolicyNet,
    optim: &mut ModuleOptimizer,
    samples: &[Sample<'_>],
    loss: &LossConfig,
    plan: EpochPlan,
    device: &Device,
    rng: &mut impl Rng,
) -> Result<(PolicyNet, Vec<StepStats>), PolicyError> {
    let mut order: Vec<usize> = (0..samples.len()).collect();
    let mb_size = samples.len().div_ceil(plan.minibatches.max(1)).max(1);
    let mut stats = vec![];
    for _ in 0..plan.epochs {
        order.shuffle(rng);
        for chunk in order.chunks(mb_size) {
            let mut mb: Vec<Sample<'_>> = chunk.iter().map(|&i| samples[i]).collect();
            if plan.norm_adv {
                normalise(&mut mb);
            }
            let (next, s) = minibatch_step(net, optim, &mb, loss, plan.lr, device)?;
            net = next;
            stats.push(s);
        }
    }
    Ok((net, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::Encoded;

    fn step(reward: f32, value: f32, cut: bool, next_value: f32) -> Decided {
        Decided {
            encoded: Encoded::default(),
            action: 0,
            log_prob: 0.0,
            ref_log_prob: 0.0,
            value,
            reward,
            cut,
            next_value,
        }
    }

    #[test]
    fn gae_matches_a_hand_computation_and_stops_at_episode_ends() {
        // episode 1: two steps, terminal reward 1; episode 2: one step cut by the segment end
        let seg = vec![
            step(0.0, 0.5, false, 0.0),
            step(1.0, 0.8, true, 0.0),
            step(0.0, 0.3, true, 0.6),
        ];
        let (adv, ret) = gae(&seg, 0.9, 0.5);
        let d1 = 1.0 - 0.8;
        let d0 = 0.0 + 0.9 * 0.8 - 0.5;
        assert!((adv[1] - d1).abs() < 1e-6);
        assert!((adv[0] - (d0 + 0.9 * 0.5 * d1)).abs() < 1e-6);
        assert!(
            (adv[2] - (0.9 * 0.6 - 0.3)).abs() < 1e-6,
            "bootstraps, does not leak across"
        );
        assert!((ret[0] - (adv[0] + 0.5)).abs() < 1e-6);
    }

    #[test]
    fn group_advantages_are_centred_and_zero_without_variance() {
        let a = group_advantages(&[1.0, 0.0, 0.0, 1.0]);
        assert!((a.iter().sum::<f32>()).abs() < 1e-5);
        assert!(a[0] > 0.9 && a[1] < -0.9);
        assert_eq!(group_advantages(&[1.0, 1.0, 1.0]), vec![0.0; 3]);
    }
}
