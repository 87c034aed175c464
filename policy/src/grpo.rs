//! GRPO: no critic; groups of whole episodes from one task instance, each episode's return
//! normalised within its group as the advantage of all its steps; then the same clipped
//! objective as PPO (`loss::optimise`, without the value loss and without advantage
//! normalisation), with an optional KL penalty to a frozen reference policy (`kl_coef`).
//!
//! 1. **collect** (`Trainer::collect_grpo`): `groups` groups of `group_size` episodes;
//! 2. **advantages** ([`group_advantages`]);
//! 3. **optimise**: as PPO's third step.

use crate::PolicyError;
use crate::rollout::{EpisodePolicy, EpisodeStats, TaskSampler, run_episode};
use crate::trainer::{Collected, Trainer};
use dreamgym_sim::Env;

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

impl Trainer {
    /// GRPO's data: `groups` groups of `group_size` whole episodes, each group from one task
    /// instance (the same reset seed); every step of an episode gets its group-normalised return
    /// as advantage. No critic: return targets are zeros the loss ignores (`vf_coef` 0).
    pub(crate) fn collect_grpo(
        &mut self,
        envs: &mut [Box<dyn Env>],
        samplers: &[TaskSampler],
    ) -> Result<Collected, PolicyError> {
        let mut decided = vec![];
        let mut adv = vec![];
        let mut episodes = vec![];
        for g in 0..self.cfg.groups {
            let env = envs[g % envs.len()].as_mut();
            let sampler = &samplers[g % samplers.len()];
            let (_, seed) = sampler.reset(env, &mut self.rng)?;
            let mut members = vec![];
            for _ in 0..self.cfg.group_size {
                let (first, _) = sampler.reset_with(env, &mut self.rng, Some(seed))?;
                let policy = EpisodePolicy {
                    featurizer: &self.featurizer,
                    net: &self.native,
                    reference: self.reference.as_ref(),
                    greedy: false,
                };
                let (steps, stats) = run_episode(
                    env,
                    first,
                    policy,
                    self.cfg.max_episode_steps,
                    &mut self.rng,
                )?;
                members.push((steps, stats));
            }
            let returns: Vec<f32> = members.iter().map(|(_, s)| s.ret).collect();
            for ((steps, stats), a) in members.into_iter().zip(group_advantages(&returns)) {
                adv.extend(std::iter::repeat_n(a, steps.len()));
                decided.extend(steps);
                episodes.push(EpisodeStats { env: g, ..stats });
            }
        }
        let steps = decided.len();
        Ok(Collected {
            steps,
            decided,
            advantages: adv,
            returns: vec![0.0; steps],
            episodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_advantages_are_centred_and_zero_without_variance() {
        let a = group_advantages(&[1.0, 0.0, 0.0, 1.0]);
        assert!((a.iter().sum::<f32>()).abs() < 1e-5);
        assert!(a[0] > 0.9 && a[1] < -0.9);
        assert_eq!(group_advantages(&[1.0, 1.0, 1.0]), vec![0.0; 3]);
    }
}
