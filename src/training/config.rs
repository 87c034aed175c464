//! The settings of `dreamgym run` (`RunConfig`, RON, every field optional, the defaults
//! embedded and documented in experiments/run-defaults.ron), shared by `dreamgym train`,
//! `dreamgym efficiency` and `dreamgym serve`'s synthetic env.

use crate::support::ron_file::RangeError;
use dreamgym_curriculum::CurriculumConfig;
use dreamgym_policy::TrainConfig;
use dreamgym_policy::rollout::Split;
use dreamgym_sim::TaskSpec;
use dreamgym_sim::model::retrieval::{Retrievable, RetrievalMode};
use serde::{Deserialize, Serialize};

/// Shares of the offline seed data by behaviour policy (normalised).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OfflineMix {
    /// Expert demonstrations.
    pub expert: f32,
    /// Noisy expert (random action with probability `noise`).
    pub noisy: f32,
    /// Uniformly random exploration.
    pub random: f32,
    /// The noisy expert's epsilon.
    pub noise: f64,
}

impl Default for OfflineMix {
    fn default() -> Self {
        Self {
            expert: 0.2,
            noisy: 0.4,
            random: 0.4,
            noise: 0.3,
        }
    }
}

/// Which experience model a run trains in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ExperienceModelKind {
    /// The native reasoning model, fit on the offline seed data (no LLM needed).
    #[default]
    Native,
    /// An OpenAI-compatible chat-completions server, configured by `DREAMGYM_LLM_URL`,
    /// `DREAMGYM_LLM_MODEL` and `DREAMGYM_LLM_KEY` (see `dreamgym_sim::model::llm`); the
    /// "without reasoning" ablation drops its reasoning field.
    Llm,
}

/// Who plays a synthetic episode of an ensemble (`RunConfig::ensemble_player`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum EnsemblePlayer {
    /// One of the bootstrap members, drawn per episode.
    Member,
    /// The model fit on all the offline data; the bootstrap members judge.
    #[default]
    AllData,
}

/// Which instances a run evaluates its methods on (`RunConfig::eval_fold`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum EvalFold {
    /// The held-out fold (fold 0 of 5); training uses folds 1-4. What every reported figure
    /// is measured on.
    #[default]
    HeldOut,
    /// The validation fold (fold 1 of 5), kept out of training, which then uses folds 2-4: to
    /// tune a setting without looking at the held-out fold, which such a run never plays.
    Validation,
}

/// Settings of `dreamgym run` (RON; every field optional; these defaults are embedded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Task template (None: all).
    pub template: Option<String>,
    /// Difficulty trained and evaluated on.
    pub difficulty: Option<u32>,
    /// Seeds (each runs every method).
    pub seeds: Vec<u64>,
    /// Offline seed episodes (real, on training instances).
    pub offline_episodes: usize,
    /// Their behaviour mix.
    pub offline_mix: OfflineMix,
    /// The learner (the same for every method).
    pub policy: TrainConfig,
    /// The experience model trained in.
    pub experience_model: ExperienceModelKind,
    /// What the model is shown of the real data while an instance is played (`Instance`: that
    /// instance's real transitions; `Similar`: those, then the most similar other instances';
    /// `Off`; the "without retrieval" ablation is always `Off`).
    pub retrieval: RetrievalMode,
    /// Which episodes retrieval may show: `Real` (the offline data and, after sim-to-real's
    /// refit, its real episodes), `All` (also the synthetic episodes the loop has played,
    /// added between iterations) or `Synthetic` (those only).
    pub retrievable: Retrievable,
    /// Policy iterations in the experience model (and for the real-only baseline).
    pub iterations: usize,
    /// Model envs rolled out per iteration in the experience model (the real env uses
    /// `policy.num_envs`): synthetic experience is cheap, so each update can see more of it —
    /// the number of policy updates stays the same.
    pub synthetic_envs: usize,
    /// Sim-to-real budget as a share of the real-only baseline's real steps.
    pub s2r_share: f32,
    /// Sim-to-real learning rate as a share of `policy.lr` (fine-tuning a policy trained in the
    /// model on a small real budget; its schedule anneals over the S2R iterations).
    pub s2r_lr_scale: f64,
    /// Sim-to-real's real iterations are spent in this many rounds; after each, with
    /// `s2r_synthetic_iterations` above 0, the policy trains that many iterations in the
    /// experience model refit on the offline data plus the real episodes of sim-to-real so far
    /// (the "without model update" ablation: in the model as it was).
    pub s2r_rounds: usize,
    /// Iterations in the (refit) experience model after each sim-to-real round (0: sim-to-real
    /// is fine-tuning in the real env only).
    pub s2r_synthetic_iterations: usize,
    /// The curriculum.
    pub curriculum: CurriculumConfig,
    /// Reward penalty for the model's uncertainty: each synthetic step pays `uncertainty_penalty`
    /// x (1 - the model's confidence) less (MOPO-style; 0: none). In [0, 1].
    pub uncertainty_penalty: f32,
    /// Sample what the data leave open (what a place holds on an instance without real evidence
    /// of its own) once per synthetic episode, instead of the model's majority outcome
    /// (`dreamgym_sim::model::world`). Off by default: on household level 1 it lost to the
    /// majority outcome (docs/native-model.md, "Sampled worlds"). The ablation row toggles it:
    /// `dreamgym_sampled_world` where it is off, `dreamgym_deterministic_model` where it is on.
    pub sampled_world: bool,
    /// With `sampled_world`: the probability that a synthetic episode of a training instance
    /// ignores the instance's own real evidence and plays a sampled world. In [0, 1].
    pub evidence_dropout: f64,
    /// Play synthetic episodes in an ensemble of `ensemble_members` native models fit on
    /// bootstrap resamples of the offline episodes, halting an episode where they disagree
    /// (`dreamgym_sim::model::ensemble`; a success is paid only where all but `halt_dissent`
    /// members predict it). The ablation row toggles it: `dreamgym_ensemble` where it is off,
    /// `dreamgym_without_ensemble` where it is on. With an LLM experience model it does nothing.
    pub ensemble: bool,
    /// With `ensemble`: the number of members fit on bootstrap resamples (K, at least 2).
    pub ensemble_members: usize,
    /// With `ensemble`: who plays a synthetic episode — `Member` (one of the K, drawn per
    /// episode, as in MOReL/ME-TRPO) or `AllData` (the model fit on all the offline data; the K
    /// members only judge).
    pub ensemble_player: EnsemblePlayer,
    /// With `ensemble`: how many of the other members may dissent on reward, `done` or success
    /// before the episode halts.
    pub halt_dissent: usize,
    /// With `ensemble`: halt where most of the other members predict another next state too
    /// (off by default: on household level 1 it cut episodes where the data leave a place's
    /// contents open, and lost).
    pub halt_on_next_state: bool,
    /// Validation against unlearning (`crate::training::validation`): every this many
    /// iterations (and at the start and the end) the learner is evaluated in
    /// `ensemble_members` native models fit on bootstrap resamples of the offline episodes;
    /// the run keeps the best policy (0: off; no real step either way). `dreamgym run` only:
    /// `dreamgym train`, which checkpoints as it goes, keeps its last policy.
    pub validate_every: usize,
    /// With `validate_every`: episodes per member and check.
    pub validation_episodes: usize,
    /// Branched rollouts (`dreamgym_sim::model::branch`, MBPO's): the share of synthetic
    /// episodes that start mid-way through a real episode of the data (the replay buffer's
    /// offline episodes, and in sim-to-real's model rounds its real ones) instead of at a task's
    /// beginning, cut after `branch_horizon` steps. In [0, 1]; 0: off.
    pub branch_share: f64,
    /// With `branch_share`: a branch's horizon at the first and at the last iteration in the
    /// model (grown linearly in between), e.g. `(5, 15)`.
    pub branch_horizon: (u32, u32),
    /// Sim-to-real's first this many real iterations train the critic only, the policy frozen
    /// (WSRL: at the switch the critic is miscalibrated for the real env, and the first updates
    /// would follow a wrong advantage); they count in the real budget. 0: off.
    pub s2r_critic_warmup: usize,
    /// Expand the curriculum pool every this many iterations.
    pub expand_every: usize,
    /// Held-out evaluation episodes per method and seed.
    pub eval_episodes: usize,
    /// Which fold the methods are evaluated on: `HeldOut` (the default; the reported figures)
    /// or `Validation` (training instances kept out of training, to tune settings on; the
    /// held-out fold is then never played).
    pub eval_fold: EvalFold,
    /// Real held-out episodes used only to measure the model's fidelity.
    pub fidelity_episodes: usize,
    /// Run the ablations (without retrieval, without reasoning, without curriculum).
    pub ablations: bool,
    /// Points on each learning curve.
    pub curve_points: usize,
    /// Behaviour-clone the successful offline episodes before RL (every RL method starts there,
    /// real_only included; `offline_bc` is that starting point evaluated as it is).
    pub bc_warm_start: bool,
    /// Behaviour-cloning epochs.
    pub bc_epochs: usize,
    /// Largest share of the experience model's steps that may fail (rejected replies, states
    /// without an admissible action) before a training run in it is stopped as an error; above
    /// 5% a warning says so.
    pub max_model_failure_share: f32,
    /// Largest share of the offline collection's task instances on which the env's expert may
    /// fail (raise, hang, crash; counted by kind, the instance abandoned or the step played at
    /// random) before the run stops as an error naming the env and the failure.
    pub max_expert_failure_share: f64,
    /// For `bridge:NAME` envs: the command that runs your own bridge (docs/bridge.md) instead of
    /// the shipped Python one; `--bridge-cmd` on the command line overrides it.
    pub bridge_cmd: Option<String>,
}

impl RunConfig {
    /// Checks every setting's range (NaN and infinities included); the first one outside is
    /// the error.
    pub fn validate(&self) -> Result<(), RangeError> {
        let bad = |field: &str, value: String, allowed: &str| {
            Err(RangeError {
                field: field.into(),
                value,
                allowed: allowed.into(),
            })
        };
        let share = |x: f64| x.is_finite() && (0.0..=1.0).contains(&x);
        let mix = &self.offline_mix;
        for (field, x) in [
            ("offline_mix.expert", mix.expert),
            ("offline_mix.noisy", mix.noisy),
            ("offline_mix.random", mix.random),
        ] {
            if !(x.is_finite() && x >= 0.0) {
                return bad(field, x.to_string(), "a finite share >= 0");
            }
        }
        if mix.expert + mix.noisy + mix.random <= 0.0 {
            return bad(
                "offline_mix",
                "all zero".into(),
                "at least one share above 0",
            );
        }
        if !share(mix.noise) {
            return bad(
                "offline_mix.noise",
                mix.noise.to_string(),
                "a probability in [0, 1]",
            );
        }
        if !share(self.branch_share) {
            return bad(
                "branch_share",
                self.branch_share.to_string(),
                "a share in [0, 1]",
            );
        }
        if self.s2r_critic_warmup > 0 && self.policy.algo == dreamgym_policy::Algo::Grpo {
            return bad(
                "s2r_critic_warmup",
                self.s2r_critic_warmup.to_string(),
                "0 with policy.algo: Grpo (GRPO has no critic to warm up)",
            );
        }
        let (h0, h1) = self.branch_horizon;
        if h0 == 0 || h0 > h1 {
            return bad(
                "branch_horizon",
                format!("({h0}, {h1})"),
                "(start, end) with 1 <= start <= end",
            );
        }
        if !share(f64::from(self.max_model_failure_share)) {
            return bad(
                "max_model_failure_share",
                self.max_model_failure_share.to_string(),
                "a share in [0, 1]",
            );
        }
        if !share(self.max_expert_failure_share) {
            return bad(
                "max_expert_failure_share",
                self.max_expert_failure_share.to_string(),
                "a share in [0, 1]",
            );
        }
        if !share(f64::from(self.s2r_share)) {
            return bad(
                "s2r_share",
                self.s2r_share.to_string(),
                "a share of real_only's real steps in [0, 1]",
            );
        }
        if !(self.uncertainty_penalty.is_finite()
            && (0.0..=1.0).contains(&self.uncertainty_penalty))
        {
            return bad(
                "uncertainty_penalty",
                self.uncertainty_penalty.to_string(),
                "a reward penalty in [0, 1]",
            );
        }
        if !share(self.evidence_dropout) {
            return bad(
                "evidence_dropout",
                self.evidence_dropout.to_string(),
                "a probability in [0, 1]",
            );
        }
        if !(2..=32).contains(&self.ensemble_members) {
            return bad(
                "ensemble_members",
                self.ensemble_members.to_string(),
                "a number of ensemble members in 2..=32",
            );
        }
        if self.halt_dissent >= self.ensemble_members {
            return bad(
                "halt_dissent",
                self.halt_dissent.to_string(),
                "fewer dissenting members than ensemble_members",
            );
        }
        if !(self.s2r_lr_scale.is_finite() && self.s2r_lr_scale > 0.0 && self.s2r_lr_scale <= 10.0)
        {
            return bad(
                "s2r_lr_scale",
                self.s2r_lr_scale.to_string(),
                "a share of policy.lr in (0, 10]",
            );
        }
        for (field, n) in [
            ("iterations", self.iterations),
            ("synthetic_envs", self.synthetic_envs),
            ("eval_episodes", self.eval_episodes),
            ("expand_every", self.expand_every),
            ("curve_points", self.curve_points),
            ("s2r_rounds", self.s2r_rounds),
        ] {
            if n == 0 {
                return bad(field, "0".into(), "at least 1");
            }
        }
        if self.offline_episodes == 0 {
            return bad(
                "offline_episodes",
                "0".into(),
                "at least 1 (the experience model is fit on them)",
            );
        }
        if self.seeds.is_empty() {
            return bad(
                "seeds",
                "[]".into(),
                "at least one seed (three for confidence intervals)",
            );
        }
        if let Err(e) = self.policy.validate() {
            return bad("policy", e, "a valid learner configuration");
        }
        if let Err(e) = self.curriculum.validate() {
            return bad("curriculum", e, "a valid curriculum configuration");
        }
        Ok(())
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            template: None,
            difficulty: Some(1),
            seeds: vec![1, 2, 3],
            offline_episodes: 200,
            offline_mix: OfflineMix::default(),
            policy: TrainConfig {
                lr: 1e-3,
                num_steps: 64,
                ..TrainConfig::default()
            },
            experience_model: ExperienceModelKind::Native,
            retrieval: RetrievalMode::Instance,
            retrievable: Retrievable::Real,
            iterations: 60,
            synthetic_envs: 16,
            s2r_share: 0.1,
            s2r_lr_scale: 0.3,
            s2r_rounds: 1,
            s2r_synthetic_iterations: 0,
            curriculum: CurriculumConfig::default(),
            uncertainty_penalty: 0.0,
            sampled_world: false,
            evidence_dropout: 0.5,
            ensemble: false,
            ensemble_members: 5,
            ensemble_player: EnsemblePlayer::AllData,
            halt_dissent: 1,
            halt_on_next_state: false,
            validate_every: 0,
            validation_episodes: 40,
            branch_share: 0.0,
            branch_horizon: (5, 15),
            s2r_critic_warmup: 0,
            expand_every: 5,
            eval_episodes: 100,
            eval_fold: EvalFold::HeldOut,
            fidelity_episodes: 40,
            ablations: true,
            curve_points: 12,
            bc_warm_start: true,
            bc_epochs: 20,
            max_model_failure_share: 0.5,
            max_expert_failure_share: 0.5,
            bridge_cmd: None,
        }
    }
}

impl RunConfig {
    /// The instances the methods train on (offline data, real training, curriculum starts).
    pub fn train_split(&self) -> Split {
        match self.eval_fold {
            EvalFold::HeldOut => Split::Train,
            EvalFold::Validation => Split::TrainBesideValidation,
        }
    }

    /// The instances the methods are evaluated on (and fidelity measured on).
    pub fn eval_split(&self) -> Split {
        match self.eval_fold {
            EvalFold::HeldOut => Split::HeldOut,
            EvalFold::Validation => Split::Validation,
        }
    }
}

/// The task family `cfg` trains and evaluates on.
pub(crate) fn task_of(cfg: &RunConfig) -> TaskSpec {
    TaskSpec {
        template: cfg.template.clone(),
        difficulty: cfg.difficulty,
        posed: None,
    }
}

/// The largest sim-to-real budget accepted: a billion real steps is days of a fast env, and a
/// typo such as `u64::MAX` must be refused rather than run without end.
pub const MAX_REAL_BUDGET: u64 = 1_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_defaults_file_is_the_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/run-defaults.ron");
        let text = std::fs::read_to_string(path).unwrap();
        let parsed: RunConfig = ron::from_str(&text).unwrap();
        assert_eq!(parsed, RunConfig::default());
    }

    #[test]
    fn a_partial_loss_block_keeps_the_other_defaults() {
        let c: RunConfig = ron::from_str("(policy: (loss: (ent_coef: 0.02)))").unwrap();
        assert_eq!(c.policy.loss.ent_coef, 0.02);
        assert_eq!(
            c.policy.loss,
            dreamgym_policy::loss::LossConfig {
                ent_coef: 0.02,
                ..Default::default()
            }
        );
        assert!(ron::from_str::<RunConfig>("(policy: (loss: (entropy: 0.02)))").is_err());
    }
}
