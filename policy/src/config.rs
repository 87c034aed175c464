//! Training configuration (serde, so runs can be configured in RON or JSON; every field has a
//! default, CleanRL's `ppo.py` defaults for PPO).

use crate::loss::LossConfig;
use serde::{Deserialize, Serialize};

/// The policy-gradient algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    /// PPO with GAE and a critic.
    #[default]
    Ppo,
    /// GRPO: group-normalised episode outcomes, no critic, optional KL to a reference policy.
    Grpo,
}

impl std::str::FromStr for Algo {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ppo" => Ok(Self::Ppo),
            "grpo" => Ok(Self::Grpo),
            other => Err(format!("unknown algorithm `{other}`: expected ppo or grpo")),
        }
    }
}

/// Adam's settings (the learning rate and its schedule are `lr` and `anneal_lr`). Every field is
/// optional in a config file; the defaults are CleanRL's (`eps=1e-5`) and burn's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    /// Exponential decay of the first moment.
    pub beta_1: f32,
    /// Exponential decay of the second moment.
    pub beta_2: f32,
    /// Added to the denominator for numerical stability.
    pub epsilon: f32,
    /// L2 weight decay (0: none).
    pub weight_decay: f32,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-5,
            weight_decay: 0.0,
        }
    }
}

impl OptimizerConfig {
    /// burn's Adam with these settings.
    pub fn adam(&self) -> burn::optim::AdamConfig {
        let adam = burn::optim::AdamConfig::new()
            .with_beta_1(self.beta_1)
            .with_beta_2(self.beta_2)
            .with_epsilon(self.epsilon);
        if self.weight_decay > 0.0 {
            adam.with_weight_decay(Some(burn::optim::decay::WeightDecayConfig::new(
                self.weight_decay,
            )))
        } else {
            adam
        }
    }
}

/// Everything that shapes a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// PPO or GRPO.
    pub algo: Algo,
    /// Seed of every random choice (initial weights, tasks, actions, minibatches).
    pub seed: u64,
    /// Number of iterations (rollout phase + update phase).
    pub iterations: usize,
    /// Hidden width of every layer.
    pub hidden: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Anneal the learning rate linearly to 0 over `iterations`.
    pub anneal_lr: bool,
    /// Environments stepped side by side (PPO) or used in turn for groups (GRPO).
    pub num_envs: usize,
    /// PPO: steps per env per iteration.
    pub num_steps: usize,
    /// Minibatches per epoch.
    pub minibatches: usize,
    /// Passes over the iteration's data.
    pub epochs: usize,
    /// Discount.
    pub gamma: f32,
    /// GAE lambda.
    pub gae_lambda: f32,
    /// Normalise advantages per minibatch (PPO).
    pub norm_adv: bool,
    /// GRPO: rollouts per task (G).
    pub group_size: usize,
    /// GRPO: tasks per iteration.
    pub groups: usize,
    /// Step cap of one episode in GRPO and evaluation (envs also truncate on their own).
    pub max_episode_steps: usize,
    /// Loss coefficients.
    pub loss: LossConfig,
    /// The optimizer's settings (Adam).
    pub optimizer: OptimizerConfig,
    /// Vocabulary: most words kept.
    pub vocab_max_words: usize,
    /// Vocabulary: hashed buckets for unseen words.
    pub vocab_oov_buckets: u32,
    /// Vocabulary: random-policy episodes observed to build it when no data is given.
    pub vocab_episodes: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            algo: Algo::Ppo,
            seed: 1,
            iterations: 60,
            hidden: 64,
            lr: 2.5e-4,
            anneal_lr: true,
            num_envs: 4,
            num_steps: 128,
            minibatches: 4,
            epochs: 4,
            gamma: 0.99,
            gae_lambda: 0.95,
            norm_adv: true,
            group_size: 8,
            groups: 8,
            max_episode_steps: 100,
            loss: LossConfig::default(),
            optimizer: OptimizerConfig::default(),
            vocab_max_words: 4000,
            vocab_oov_buckets: 64,
            vocab_episodes: 64,
        }
    }
}

impl TrainConfig {
    /// Env steps one iteration collects, where a real budget is turned into iterations: PPO's
    /// `num_envs` x `num_steps` exactly; GRPO's `groups` x `group_size` whole episodes, each
    /// `episode_steps` long on average (the caller's estimate, e.g. the mean length of the
    /// offline episodes; GRPO does not look at `num_steps`).
    pub fn steps_per_iteration(&self, episode_steps: f64) -> f64 {
        match self.algo {
            Algo::Ppo => (self.num_envs * self.num_steps) as f64,
            Algo::Grpo => (self.groups * self.group_size) as f64 * episode_steps.max(1.0),
        }
    }

    /// Defaults for GRPO (no critic).
    pub fn grpo() -> Self {
        let mut c = Self {
            algo: Algo::Grpo,
            epochs: 2,
            ..Self::default()
        };
        c.loss.vf_coef = 0.0;
        c
    }

    /// Checks the numbers make sense; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("iterations", self.iterations),
            ("hidden", self.hidden),
            ("num_envs", self.num_envs),
            ("num_steps", self.num_steps),
            ("minibatches", self.minibatches),
            ("epochs", self.epochs),
            ("group_size", self.group_size),
            ("groups", self.groups),
            ("max_episode_steps", self.max_episode_steps),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("`{name}` must be at least 1"));
            }
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("`lr` must be a positive number, got {}", self.lr));
        }
        let o = &self.optimizer;
        if !((0.0..1.0).contains(&o.beta_1) && (0.0..1.0).contains(&o.beta_2)) {
            return Err("`optimizer.beta_1` and `optimizer.beta_2` must lie in [0, 1)".into());
        }
        let finite_positive = |x: f32| x > 0.0 && x.is_finite();
        if !finite_positive(o.epsilon)
            || !(o.weight_decay == 0.0 || finite_positive(o.weight_decay))
        {
            return Err("`optimizer.epsilon` must be a positive number and `optimizer.weight_decay` a finite number >= 0".into());
        }
        if !(0.0..=1.0).contains(&self.gamma) || !(0.0..=1.0).contains(&self.gae_lambda) {
            return Err("`gamma` and `gae_lambda` must lie in [0, 1]".into());
        }
        self.loss.validate()?;
        if self.algo == Algo::Grpo && self.group_size < 2 {
            return Err(
                "`group_size` must be at least 2 for GRPO (advantages are relative to the group)"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_per_iteration_is_ppos_rollout_and_grpos_episodes() {
        let ppo = TrainConfig {
            num_envs: 4,
            num_steps: 64,
            ..Default::default()
        };
        assert_eq!(ppo.steps_per_iteration(17.0), 256.0);
        let grpo = TrainConfig {
            groups: 3,
            group_size: 5,
            num_steps: 64,
            ..TrainConfig::grpo()
        };
        // 15 episodes of 12 steps: num_steps plays no part
        assert_eq!(grpo.steps_per_iteration(12.0), 180.0);
        // a degenerate estimate still gives a step per episode
        assert_eq!(grpo.steps_per_iteration(0.0), 15.0);
    }

    #[test]
    fn the_optimizer_is_configurable_and_checked() {
        let cfg: TrainConfig =
            serde_json::from_str(r#"{"optimizer": {"epsilon": 1e-8}, "lr": 0.001}"#).unwrap();
        assert_eq!(cfg.optimizer.epsilon, 1e-8);
        assert_eq!(
            cfg.optimizer.beta_1, 0.9,
            "the other fields keep their defaults"
        );
        assert!(cfg.validate().is_ok());
        let mut bad = cfg.clone();
        bad.optimizer.beta_2 = 1.0;
        assert!(bad.validate().unwrap_err().contains("optimizer.beta_1"));
        let mut bad = cfg;
        bad.optimizer.weight_decay = f32::NAN;
        assert!(
            bad.validate()
                .unwrap_err()
                .contains("optimizer.weight_decay")
        );
        // NaN coefficients are refused before training, not met mid-run
        for (field, set) in [
            (
                "loss.clip",
                (|c: &mut TrainConfig| c.loss.clip = f32::NAN) as fn(&mut TrainConfig),
            ),
            ("loss.max_grad_norm", |c| c.loss.max_grad_norm = f32::NAN),
            ("loss.vf_coef", |c| c.loss.vf_coef = f32::NAN),
            ("loss.ent_coef", |c| c.loss.ent_coef = f32::INFINITY),
            ("loss.clip", |c| c.loss.clip = 0.0),
        ] {
            let mut bad = TrainConfig::default();
            set(&mut bad);
            let e = bad.validate().unwrap_err();
            assert!(e.contains(field), "{field}: {e}");
        }
        // a config without the field (an older checkpoint's header) reads as the defaults
        let old: TrainConfig = serde_json::from_str(r#"{"lr": 0.001}"#).unwrap();
        assert_eq!(old.optimizer, OptimizerConfig::default());
    }
}
