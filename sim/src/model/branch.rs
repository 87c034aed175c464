//! Branched rollouts (MBPO, DreamerV3): a synthetic episode that starts mid-way through a
//! *real* episode of the replay buffer instead of at its task's initial state, and is cut
//! (truncated, not terminal) after a short horizon, so the model's errors compound over a few
//! steps instead of the whole task.
//!
//! [`Branching::draw`] chooses, for a reset with a spec and a seed, whether the episode branches
//! (probability `share`) and from where: a real episode whose task the spec admits, and a step
//! of it that is not its first. The episode's prefix (the real steps before the branch point)
//! is the history the model and retrieval see; the policy is told the prefix's actions
//! ([`crate::env::Env::joined_after`]) so its memory holds them as in the real env. The draw is
//! seeded by the branching's seed and the reset seed, so a GRPO group (one reset seed) shares one
//! branch point. The horizon is shared by the envs of a loop, which grows it over training
//! ([`BranchHorizon`]).

use crate::env::TaskSpec;
use dreamgym_buffer::{Observation, Provenance, Step, Task, Trajectory};
use rand::{RngExt, SeedableRng};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// The horizon cap of branched episodes, shared by a loop's envs and grown by the loop.
#[derive(Debug, Clone, Default)]
pub struct BranchHorizon(Arc<AtomicU32>);

impl BranchHorizon {
    /// A horizon of `steps` (at least 1).
    pub fn new(steps: u32) -> Self {
        Self(Arc::new(AtomicU32::new(steps.max(1))))
    }

    /// Sets the horizon of the branches that start from now on (at least 1).
    pub fn set(&self, steps: u32) {
        self.0.store(steps.max(1), Ordering::Relaxed);
    }

    /// The horizon now.
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed).max(1)
    }

    /// The horizon at iteration `i` of `n` (0-based) of a schedule from `start` to `end`:
    /// linear, `start` at the first iteration, `end` at the last.
    pub fn scheduled(start: u32, end: u32, i: usize, n: usize) -> u32 {
        if n <= 1 {
            return end.max(1);
        }
        let frac = i.min(n - 1) as f64 / (n - 1) as f64;
        let h = f64::from(start) + (f64::from(end) - f64::from(start)) * frac;
        (h.round() as u32).max(1)
    }
}

/// Where a model env's episodes may branch from (see the module docs).
#[derive(Debug, Clone)]
pub struct Branching {
    /// The real episodes branches start in (those with at least two steps).
    episodes: Arc<Vec<Trajectory>>,
    /// Probability that an episode branches.
    pub share: f64,
    /// How many steps a branch plays before it is cut.
    pub horizon: BranchHorizon,
    /// Seed of the draws.
    pub seed: u64,
}

/// A branch drawn for one episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    /// The real episode's task.
    pub task: Task,
    /// Its first observation (what retrieval is asked with).
    pub first: Observation,
    /// The real steps before the branch point (the history the model sees).
    pub prefix: Vec<Step>,
    /// The state the branch starts in: the real state after the prefix.
    pub state: Observation,
}

impl Branching {
    /// Branches from the real episodes of `real` (synthetic ones and episodes of fewer than two
    /// steps are left out: there is no real state mid-way through them).
    pub fn new(real: &[Trajectory], share: f64, horizon: BranchHorizon, seed: u64) -> Self {
        let episodes = real
            .iter()
            .filter(|t| t.provenance == Provenance::Real && t.steps.len() >= 2)
            .cloned()
            .collect();
        Self {
            episodes: Arc::new(episodes),
            share: share.clamp(0.0, 1.0),
            horizon,
            seed,
        }
    }

    /// The same branches (sharing the episodes, not copying them) drawn with `seed`: one
    /// `Branching` per loop, one seed per env.
    pub fn with_seed(&self, seed: u64) -> Self {
        Self {
            seed,
            ..self.clone()
        }
    }

    /// Real episodes a branch can start in.
    pub fn len(&self) -> usize {
        self.episodes.len()
    }

    /// Whether no branch can start anywhere.
    pub fn is_empty(&self) -> bool {
        self.episodes.is_empty()
    }

    /// The branch the episode reset with `spec` and `seed` starts from, or `None` where it
    /// starts at a task's beginning (drawn with probability `1 - share`, or no real episode of a
    /// task `spec` admits has a state to branch from).
    pub fn draw(&self, spec: &TaskSpec, seed: u64) -> Option<Branch> {
        if self.share <= 0.0 || spec.posed.is_some() {
            return None;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
            self.seed ^ seed.rotate_left(23) ^ 0xb7a4_c4ed_5eed_0001,
        );
        if !rng.random_bool(self.share) {
            return None;
        }
        let candidates: Vec<&Trajectory> = self
            .episodes
            .iter()
            .filter(|t| spec.admits(&t.task))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let t = candidates[rng.random_range(0..candidates.len())];
        // a step after the first, in a state the agent can act in
        let at = rng.random_range(1..t.steps.len());
        let state = t.steps[at].state.clone();
        if state.admissible.is_empty() {
            return None;
        }
        Some(Branch {
            task: t.task.clone(),
            first: t.steps[0].state.clone(),
            prefix: t.steps[..at].to_vec(),
            state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{BranchHorizon, Branching};
    use crate::env::TaskSpec;
    use dreamgym_buffer::{Observation, Provenance, Step, Task, Trajectory};

    fn obs(place: &str) -> Observation {
        Observation {
            lines: vec![format!("you are at {place}")],
            instruction: "find it".into(),
            admissible: vec!["go on".into()],
            feedback: String::new(),
        }
    }

    fn episode(id: &str, places: &[&str], provenance: Provenance) -> Trajectory {
        let steps: Vec<Step> = places
            .windows(2)
            .map(|w| Step {
                state: obs(w[0]),
                action: format!("go to {}", w[1]),
                reward: 0.0,
                next_state: obs(w[1]),
                done: false,
                truncated: false,
                reasoning: None,
                provenance,
                reward_known: true,
            })
            .collect();
        Trajectory {
            task: Task {
                id: id.into(),
                ..crate::model::test_task("find it")
            },
            env_id: "test".into(),
            seed: 0,
            provenance,
            policy: "random".into(),
            outcome: Trajectory::outcome_from_steps(&steps, false),
            steps,
        }
    }

    #[test]
    fn a_branch_starts_in_the_real_state_after_its_prefix() {
        let real = vec![episode(
            "a",
            &["p0", "p1", "p2", "p3", "p4"],
            Provenance::Real,
        )];
        let b = Branching::new(&real, 1.0, BranchHorizon::new(3), 7);
        for seed in 0..50 {
            let br = b
                .draw(&TaskSpec::default(), seed)
                .expect("share 1 branches");
            let at = br.prefix.len();
            assert!((1..4).contains(&at), "never at the first step: {at}");
            assert_eq!(br.prefix, real[0].steps[..at]);
            assert_eq!(
                br.state, real[0].steps[at].state,
                "the state the prefix led to"
            );
            assert_eq!(br.first, real[0].steps[0].state);
            assert_eq!(br.task, real[0].task);
            // the same reset seed draws the same branch
            assert_eq!(b.draw(&TaskSpec::default(), seed), Some(br));
        }
    }

    #[test]
    fn branches_come_only_from_real_episodes_with_a_middle_and_at_the_share() {
        let real = vec![
            episode("short", &["p0", "p1"], Provenance::Real),
            episode("dream", &["q0", "q1", "q2", "q3"], Provenance::Synthetic),
            episode("long", &["r0", "r1", "r2", "r3"], Provenance::Real),
        ];
        let b = Branching::new(&real, 0.5, BranchHorizon::new(3), 1);
        assert_eq!(b.len(), 1, "one real episode of two steps or more");
        let drawn: Vec<_> = (0..400)
            .filter_map(|s| b.draw(&TaskSpec::default(), s))
            .collect();
        assert!(drawn.iter().all(|br| br.task.id == "long"));
        assert!(
            (160..240).contains(&drawn.len()),
            "about half branch: {}",
            drawn.len()
        );
        let none = Branching::new(&real, 0.0, BranchHorizon::new(3), 1);
        assert!((0..100).all(|s| none.draw(&TaskSpec::default(), s).is_none()));
        // a spec no real episode matches starts at the beginning
        let spec = TaskSpec {
            template: Some("elsewhere".into()),
            ..TaskSpec::default()
        };
        let all = Branching::new(&real, 1.0, BranchHorizon::new(3), 1);
        assert!((0..20).all(|s| all.draw(&spec, s).is_none()));
    }

    #[test]
    fn the_horizon_grows_linearly_from_start_to_end() {
        assert_eq!(BranchHorizon::scheduled(5, 15, 0, 11), 5);
        assert_eq!(BranchHorizon::scheduled(5, 15, 5, 11), 10);
        assert_eq!(BranchHorizon::scheduled(5, 15, 10, 11), 15);
        assert_eq!(BranchHorizon::scheduled(5, 15, 30, 11), 15);
        assert_eq!(BranchHorizon::scheduled(5, 15, 0, 1), 15);
        let h = BranchHorizon::new(0);
        assert_eq!(h.get(), 1, "at least one step");
        h.set(9);
        assert_eq!(h.clone().get(), 9, "shared by clones");
    }
}
