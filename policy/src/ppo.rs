//! PPO, as CleanRL's `ppo.py` does it, in three steps per iteration:
//!
//! 1. **collect** (`Trainer::collect_ppo`): `num_envs` environments step `num_steps` times each
//!    with the current policy (`rollout::VecCollector`); an episode that ends is reset in place
//!    and the segment continues;
//! 2. **advantages** ([`gae`]): generalised advantage estimation per env segment with `gamma`
//!    and `gae_lambda`, bootstrapping from the critic where a segment is cut;
//! 3. **optimise** (`loss::optimise`): `epochs` shuffled passes of `minibatches` minibatches
//!    (advantages normalised per minibatch, `norm_adv`) of the clipped objective
//!    (`loss::minibatch_step`: `clip`, `clip_value`, `vf_coef`, `ent_coef`, `max_grad_norm`), at a
//!    learning rate annealed over the iterations (`anneal_lr`).
//!
//! `Trainer::iterate` runs the three and records the iteration's metrics.

use crate::PolicyError;
use crate::rollout::{Decided, TaskSampler, VecCollector};
use crate::trainer::{Collected, Trainer};
use dreamgym_sim::Env;

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

impl Trainer {
    /// PPO's data: `num_envs` envs step `num_steps` each with the current policy (an episode
    /// that ends is reset in place), then every env's segment gets its GAE advantages and
    /// return targets.
    pub(crate) fn collect_ppo(
        &mut self,
        envs: &mut [Box<dyn Env>],
        samplers: &[TaskSampler],
    ) -> Result<Collected, PolicyError> {
        let n = envs.len().min(self.cfg.num_envs);
        let mut collector = VecCollector {
            envs: &mut envs[..n],
            samplers,
            featurizer: &self.featurizer,
        };
        let segs = collector.collect(&self.native, self.cfg.num_steps, &mut self.rng)?;
        let mut decided = vec![];
        let mut adv = vec![];
        let mut ret = vec![];
        for seg in segs.segments {
            let (a, r) = gae(&seg, self.cfg.gamma, self.cfg.gae_lambda);
            adv.extend(a);
            ret.extend(r);
            decided.extend(seg);
        }
        Ok(Collected {
            steps: decided.len(),
            decided,
            advantages: adv,
            returns: ret,
            episodes: segs.episodes,
        })
    }
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
}
