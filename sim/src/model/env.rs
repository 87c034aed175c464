//! `ModelEnv`: any experience model posing as an [`Env`], so a learner rolls out in it exactly as
//! in a real environment.
//!
//! **Initial states** come from real data: `reset(spec, seed)` draws (by `seed`) one of the real
//! trajectories whose task matches `spec` (template and difficulty, where given) and starts from
//! its first observation; [`ModelEnv::reset_to`] starts a given task from its own real initial
//! state, or — for a task never seen — from the initial state of the real task whose instruction is
//! the most similar (cosine of hashed n-gram embeddings), with the new task's instruction.
//!
//! **Generated tasks** (a [`TaskSpec`] with `posed`: an instruction an LLM wrote for the
//! curriculum) start from the real initial state of the task they were written for.
//!
//! **Rejected predictions** (an LLM reply cut at `max_tokens` or not valid) end the synthetic
//! episode as truncated with the state unchanged and no reward; they are never recorded as
//! experience. **Dead ends** (a predicted state that is not `done` but offers no admissible
//! action, a model error) end it as truncated too (`info.dead_end`), so that one bad prediction
//! never stops the loop. Both are counted in [`ModelFailures`], which the envs of one loop share.
//!
//! **Retrieval**: each step passes the model the real transitions [`Retrieval`] chose for the
//! instance when its episode started (by default those of the same task instance, so what a real
//! episode of this instance saw somewhere is what the model shows there; `Similar` adds the
//! nearest other instances', so an instance without real data gets experience too; see
//! [`super::retrieval`]). [`ModelEnv::set_retrieval`] turns it off (the "without retrieval"
//! ablation); [`ModelEnv::with_retrieval`] shares one index among a loop's envs.
//! [`ModelEnv::keep_episodes_in`] hands every synthetic episode that ends (done or truncated;
//! never one cut by a rejected prediction) to a sink, from which a loop whose retrieval admits
//! synthetic episodes adds them to the shared index between iterations.
//!
//! **Sampled worlds** ([`ModelEnv::sample_worlds`], issue 31): what a place holds is hidden
//! until the agent arrives, and an instance's real data show only the places its episodes
//! visited. Where they are silent — or, with probability `evidence_dropout`, for the whole
//! episode, so that a training instance is no easier than a new one — the episode plays a world
//! drawn from [`super::world::WorldPrior`] when it starts, passed to the model as retrieved
//! arrivals; the draw is seeded by the env's seed, the task and the reset seed, so a GRPO group
//! (one reset seed) shares one world.
//!
//! **Ensembles** ([`ModelEnv::play_ensemble`], issue 31): each episode plays one member of an
//! [`Ensemble`] drawn when it starts (seeded like the world); every step all members predict,
//! and where they disagree ([`Ensemble::play`]) the step *halts* the episode: reward 0, no
//! success, `done` (an absorbing state: the learner bootstraps no value), `info.halt` saying
//! why; the step's confidence is the members' agreement. Halts are counted in
//! [`ModelFailures`].
//!
//! **Branched rollouts** ([`ModelEnv::branch_from`], issue 32): a share of the episodes start
//! mid-way through a real episode of the data ([`super::branch`]): its real prefix is the
//! history the model and retrieval see, the agent is told the prefix's actions
//! ([`Env::joined_after`]), and the branch is cut (truncated, so the learner bootstraps it)
//! after the loop's horizon; only the steps from the branch point on are handed to the sink.

use super::branch::{Branch, Branching};
use super::ensemble::Ensemble;
use super::lines::line_id;
use super::retrieval::{Retrieval, RetrievalMode};
use super::world::WorldPrior;
use super::{ExperienceModel, ModelContext};
use crate::env::{Env, EnvError, PosedTask, StepResult, TaskSpec, fnv1a};
use dreamgym_buffer::{Embedder, HashedNgramEmbedder, Observation, Step, Task, Trajectory};
use rand::{RngExt, SeedableRng};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

/// A retrieval index shared by the envs of a loop, which may add episodes to it between
/// iterations ([`Retrieval::add`]).
pub type SharedRetrieval = Arc<RwLock<Retrieval>>;

/// Where model envs put the synthetic episodes they finish, in the order they finish.
pub type EpisodeSink = Arc<Mutex<Vec<Trajectory>>>;

/// The first observation of each real trajectory, with its task: where a model env can start.
pub fn initial_states(real: &[Trajectory]) -> Vec<(Task, Observation)> {
    real.iter()
        .filter_map(|t| t.steps.first().map(|s| (t.task.clone(), s.state.clone())))
        .collect()
}

/// Steps a model env could not use, counted across the envs that share it (see the module docs).
/// With a limit ([`Self::with_limit`]), the envs stop with an error as soon as more than that
/// share of the last [`FAILURE_WINDOW`] steps failed (judged from [`FAILURE_JUDGED`] steps on):
/// a model server that fails every request ends a run after 20 requests, not after the whole
/// synthetic phase.
#[derive(Debug, Default)]
pub struct ModelFailures {
    /// Steps whose prediction the model rejected.
    pub rejected: std::sync::atomic::AtomicU64,
    /// Predicted states without an admissible action (episode cut).
    pub dead_ends: std::sync::atomic::AtomicU64,
    /// Steps predicted and used.
    pub predicted: std::sync::atomic::AtomicU64,
    /// Of those, steps where an ensemble's members disagreed and the episode halted (not a
    /// failure: the halt is the prediction).
    pub halted: std::sync::atomic::AtomicU64,
    /// The largest share of failed steps over the window before the envs stop (none: never).
    limit: Option<f64>,
    /// Whether each of the last steps failed, and how many did.
    recent: std::sync::Mutex<(std::collections::VecDeque<bool>, usize)>,
}

/// Steps over which [`ModelFailures::with_limit`] judges the failure share.
pub const FAILURE_WINDOW: usize = 100;

/// Steps in the window before the share is judged at all.
pub const FAILURE_JUDGED: usize = 20;

impl ModelFailures {
    /// Counts that stop the envs once more than `max_share` of the last [`FAILURE_WINDOW`]
    /// steps failed (judged once [`FAILURE_JUDGED`] steps are in the window).
    pub fn with_limit(max_share: f64) -> Self {
        Self {
            limit: Some(max_share),
            ..Self::default()
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> FailureCounts {
        use std::sync::atomic::Ordering::Relaxed;
        FailureCounts {
            rejected: self.rejected.load(Relaxed),
            dead_ends: self.dead_ends.load(Relaxed),
            predicted: self.predicted.load(Relaxed),
            halted: self.halted.load(Relaxed),
        }
    }

    /// Records whether a step failed; the error once the window's share passes the limit.
    fn record(&self, failed: bool) -> Result<(), String> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let (window, failures) = &mut *recent;
        window.push_back(failed);
        *failures += failed as usize;
        if window.len() > FAILURE_WINDOW {
            *failures -= window.pop_front().unwrap_or(false) as usize;
        }
        let share = *failures as f64 / window.len() as f64;
        if window.len() >= FAILURE_JUDGED && share > limit {
            let c = self.counts();
            return Err(format!(
                "the experience model failed on {failures} of the last {} steps asked of it ({:.0}% > max_model_failure_share {:.0}%; {} rejected replies, {} states without an admissible action, {} usable predictions so far): stopped now rather than train on a model that cannot answer",
                window.len(),
                100.0 * share,
                100.0 * limit,
                c.rejected,
                c.dead_ends,
                c.predicted
            ));
        }
        Ok(())
    }
}

/// A snapshot of [`ModelFailures`]: steps of the experience model that could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FailureCounts {
    /// Predictions the model rejected (an LLM's cut or invalid reply).
    pub rejected: u64,
    /// Predicted states without an admissible action.
    pub dead_ends: u64,
    /// Predictions used.
    pub predicted: u64,
    /// Of those, steps where an ensemble halted the episode.
    pub halted: u64,
}

impl FailureCounts {
    /// Rejected and dead-end steps as a share of all steps asked of the model.
    pub fn share(&self) -> f64 {
        let failed = self.rejected + self.dead_ends;
        failed as f64 / (failed + self.predicted).max(1) as f64
    }
}

/// An experience model as an environment.
pub struct ModelEnv {
    id: String,
    model: Arc<dyn ExperienceModel>,
    starts: Vec<(Task, Observation)>,
    embedder: HashedNgramEmbedder,
    max_steps: u32,
    task: Option<Task>,
    state: Option<Observation>,
    history: Vec<Step>,
    over: bool,
    /// The data retrieval draws on.
    retrieval: SharedRetrieval,
    /// Where finished episodes go, if anywhere.
    sink: Option<EpisodeSink>,
    /// Subtracted from the reward, times one minus the model's confidence (0: none).
    uncertainty_penalty: f32,
    /// What the episode in play is shown (chosen when it started).
    retrieved: Vec<Step>,
    /// Retrieval switched off (the ablation), whatever the index.
    no_retrieval: bool,
    failures: Arc<ModelFailures>,
    /// Where the model is shown a sampled world (see [`Self::sample_worlds`]).
    worlds: Option<WorldSampling>,
    /// Episodes started, for the draws of starts that come without a seed.
    started: u64,
    /// Where episodes play a member of an ensemble: the ensemble and the seed of the draws.
    ensemble: Option<(Arc<Ensemble>, u64)>,
    /// The member playing the episode in play.
    member: usize,
    /// Where episodes may branch from real episodes' middles (see [`Self::branch_from`]).
    branching: Option<Branching>,
    /// Where the episode in play joined a real episode mid-way: the actions of the real steps
    /// that open its history (`None`: it started at its task's beginning).
    joined: Option<Vec<String>>,
}

/// How a model env samples what the data leave open (see [`ModelEnv::sample_worlds`]).
#[derive(Debug, Clone)]
pub struct WorldSampling {
    /// The prior the worlds are drawn from.
    pub prior: Arc<WorldPrior>,
    /// Probability that an episode of an instance with real evidence of its own ignores it (so
    /// that training instances are no easier than new ones).
    pub evidence_dropout: f64,
    /// Seed of the draws (with the episode's reset seed: a GRPO group, reset with one seed,
    /// shares one world).
    pub seed: u64,
}

impl ModelEnv {
    /// A model env whose initial states come from `real` trajectories; episodes are cut after
    /// `max_steps` steps.
    pub fn new(model: Arc<dyn ExperienceModel>, real: &[Trajectory], max_steps: u32) -> Self {
        let retrieval = Arc::new(RwLock::new(Retrieval::new(real, RetrievalMode::Instance)));
        Self::with_retrieval(model, real, max_steps, retrieval)
    }

    /// [`Self::new`] retrieving from `retrieval` (one index, with its mode, shared by the envs
    /// of a loop or a server).
    pub fn with_retrieval(
        model: Arc<dyn ExperienceModel>,
        real: &[Trajectory],
        max_steps: u32,
        retrieval: SharedRetrieval,
    ) -> Self {
        let starts = initial_states(real);
        Self {
            id: format!("model:{}", model.name()),
            model,
            starts,
            embedder: HashedNgramEmbedder::default(),
            max_steps,
            task: None,
            state: None,
            history: vec![],
            retrieval,
            sink: None,
            uncertainty_penalty: 0.0,
            retrieved: vec![],
            no_retrieval: false,
            over: false,
            failures: Arc::default(),
            worlds: None,
            started: 0,
            ensemble: None,
            member: 0,
            branching: None,
            joined: None,
        }
    }

    /// Real steps at the start of the history, before the episode in play joined it (0: it
    /// started at its task's beginning).
    fn branch_at(&self) -> usize {
        self.joined.as_ref().map_or(0, Vec::len)
    }

    /// Start a share of the episodes mid-way through a real episode of `branching`, cut after
    /// its horizon (see the module docs); `reset` draws whether and where by its seed.
    pub fn branch_from(&mut self, branching: Branching) {
        self.branching = (!branching.is_empty() && branching.share > 0.0).then_some(branching);
    }

    /// Play every episode in one member of `ensemble`, drawn when it starts (by `seed`, the
    /// task and the reset seed, as the world), halting where the members disagree (see the
    /// module docs). Replaces the model the env was built with.
    pub fn play_ensemble(&mut self, ensemble: Arc<Ensemble>, seed: u64) {
        self.id = format!("model:{}", ensemble.name());
        self.ensemble = Some((ensemble, seed));
    }

    /// The seed of the episode starting's draws: its reset seed, else one from the episodes
    /// started so far.
    fn episode_seed(&self, draw_seed: Option<u64>) -> u64 {
        draw_seed.unwrap_or(self.started.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// Draw the member that plays the episode starting (see [`Self::play_ensemble`]).
    fn draw_member(&mut self, draw_seed: Option<u64>) {
        let (Some((e, seed)), Some(task)) = (&self.ensemble, &self.task) else {
            return;
        };
        self.member = match e.player() {
            Some(p) => p,
            None => {
                let draw_seed = self.episode_seed(draw_seed);
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
                    seed ^ fnv1a(&task.id) ^ draw_seed.rotate_left(29) ^ 0x5eed_e45e,
                );
                rng.random_range(0..e.len())
            }
        };
    }

    /// Show the model a world sampled from `sampling.prior` in every episode: what the
    /// instance's own real evidence (the retrieved transitions of its task) does not show — all
    /// of it when the instance has none, or with probability `evidence_dropout` — is drawn once
    /// when the episode starts and passed to the model as retrieved arrivals, so the recall
    /// stages show it on arrival and keep it consistent within the episode. Retrieval switched
    /// off (the ablation) switches this off too.
    pub fn sample_worlds(&mut self, sampling: WorldSampling) {
        self.worlds = (!sampling.prior.is_empty()).then_some(sampling);
    }

    /// Add the episode's sampled world to what it is shown (see [`Self::sample_worlds`]);
    /// `draw_seed` is the episode's reset seed where it has one.
    fn add_world(&mut self, draw_seed: Option<u64>) {
        let (Some(w), Some(task), Some(first)) = (&self.worlds, &self.task, &self.state) else {
            return;
        };
        if self.no_retrieval {
            return;
        }
        let draw_seed = self.episode_seed(draw_seed);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
            w.seed ^ fnv1a(&task.id) ^ draw_seed.rotate_left(17),
        );
        let own = |s: &Step| {
            s.provenance == dreamgym_buffer::Provenance::Real
                && s.state.instruction == task.instruction
        };
        let has_own = self.retrieved.iter().any(own);
        if has_own && rng.random_bool(w.evidence_dropout.clamp(0.0, 1.0)) {
            self.retrieved.retain(|s| !own(s));
        }
        // the place the episode starts at shows what it holds
        let mut covered: HashSet<String> =
            w.prior.shown_by(&first.lines).map(str::to_string).collect();
        let mut known: HashSet<String> = first
            .lines
            .iter()
            .filter_map(|l| line_id(l).map(str::to_string))
            .collect();
        // what the episode's real prefix saw (a branch) is the instance's own evidence too
        for s in self
            .retrieved
            .iter()
            .chain(&self.history)
            .filter(|s| own(s))
        {
            covered.insert(s.action.clone());
            for l in s.state.lines.iter().chain(&s.next_state.lines) {
                if let Some(id) = line_id(l) {
                    known.insert(id.to_string());
                }
            }
        }
        let world = w.prior.draw(task, &mut rng, &covered, &known);
        self.retrieved.extend(world);
    }

    /// Counts this env's failures in `failures` (shared by the envs of one training loop).
    pub fn count_failures_in(&mut self, failures: Arc<ModelFailures>) {
        self.failures = failures;
    }

    /// Adds a real initial state (e.g. of a task a curriculum generated, read from a real env's
    /// reset, which costs no interaction) that `reset` can start from.
    pub fn add_start(&mut self, task: Task, obs: Observation) {
        self.starts.push((task, obs));
    }

    /// Penalise the reward the learner gets by `penalty` x (1 - the model's confidence), as MOPO
    /// penalises model-based rewards by their uncertainty: a transition the model is unsure of
    /// pays less, so a policy is not drawn to where the model's errors are. The episode's
    /// history (what the model is shown next) keeps the model's own reward; the step's
    /// `info.uncertainty_penalty` says what was taken off and `info.model_reward` what the model
    /// predicted (what a recording keeps).
    pub fn set_uncertainty_penalty(&mut self, penalty: f32) {
        self.uncertainty_penalty = penalty.max(0.0);
    }

    /// Hand every episode that ends to `sink` (see the module docs).
    pub fn keep_episodes_in(&mut self, sink: EpisodeSink) {
        self.sink = Some(sink);
    }

    /// Pass the model retrieved real transitions (on by default).
    pub fn set_retrieval(&mut self, on: bool) {
        self.no_retrieval = !on;
    }

    /// Choose what the episode of instance `id` (instruction, first observation) is shown.
    fn retrieve_for(&mut self, id: &str, instruction: &str, first: &Observation) {
        self.retrieved = if self.no_retrieval {
            vec![]
        } else {
            // a poisoned lock means another env panicked mid-add; the index is still whole
            let index = self.retrieval.read().unwrap_or_else(|e| e.into_inner());
            index.for_instance(id, instruction, first)
        };
    }

    /// Number of initial states available.
    pub fn starts(&self) -> usize {
        self.starts.len()
    }

    /// Start `task` from `obs`, shown the instance's own retrieved transitions.
    fn start(&mut self, task: Task, obs: Observation, draw_seed: Option<u64>) -> Observation {
        self.retrieve_for(&task.id, &task.instruction, &obs);
        self.begin(task, obs, draw_seed, vec![])
    }

    /// Join the real episode of `branch` after its prefix, shown its instance's retrieved
    /// transitions (asked with the episode's first observation, as a start from the beginning).
    fn start_branch(&mut self, branch: Branch, draw_seed: u64) -> Observation {
        let Branch {
            task,
            first,
            prefix,
            state,
        } = branch;
        self.retrieve_for(&task.id, &task.instruction, &first);
        self.begin(task, state, Some(draw_seed), prefix)
    }

    /// Start `task` from `obs` after the real steps `prefix` (none: at the task's beginning)
    /// with what `self.retrieved` holds, plus the episode's sampled world.
    fn begin(
        &mut self,
        task: Task,
        obs: Observation,
        draw_seed: Option<u64>,
        prefix: Vec<Step>,
    ) -> Observation {
        self.task = Some(task);
        self.state = Some(obs.clone());
        self.joined =
            (!prefix.is_empty()).then(|| prefix.iter().map(|s| s.action.clone()).collect());
        self.history = prefix;
        self.over = false;
        self.started += 1;
        self.add_world(draw_seed);
        self.draw_member(draw_seed);
        obs
    }

    /// Start a generated task from the real initial state of its base task, with the new
    /// instruction. Its id is the base's with `/posed/` and a hash of the instruction; its
    /// retrieved experience is the base instance's real transitions (the same world, another goal).
    pub fn reset_posed(&mut self, posed: &PosedTask) -> Result<Observation, EnvError> {
        let Some((base, obs)) = self
            .starts
            .iter()
            .find(|(t, _)| t.id == posed.base)
            .cloned()
        else {
            return Err(EnvError::Task {
                env: self.id.clone(),
                message: format!(
                    "the generated task's base {:?} has no real initial state here",
                    posed.base
                ),
            });
        };
        let task = Task {
            id: format!("{}/posed/{:016x}", base.id, fnv1a(&posed.instruction)),
            instruction: posed.instruction.clone(),
            params: base.params.clone(),
            difficulty: base.difficulty,
            origin: dreamgym_buffer::TaskOrigin::GeneratedFrom {
                parent: base.id.clone(),
            },
        };
        let obs = Observation {
            instruction: posed.instruction.clone(),
            ..obs
        };
        // the same world, another goal: the base instance's experience
        self.retrieve_for(
            &base.id,
            &base.instruction,
            &Observation {
                instruction: base.instruction.clone(),
                ..obs.clone()
            },
        );
        Ok(self.begin(task, obs, None, vec![]))
    }

    /// Start `task` from its real initial state, or from the most similar real task's.
    pub fn reset_to(&mut self, task: &Task) -> Result<Observation, EnvError> {
        if let Some((_, obs)) = self.starts.iter().find(|(t, _)| t.id == task.id) {
            let obs = obs.clone();
            return Ok(self.start(task.clone(), obs, None));
        }
        let q = self.embedder.embed(&task.instruction);
        let best = self
            .starts
            .iter()
            .map(|(t, o)| {
                let e = self.embedder.embed(&t.instruction);
                (q.iter().zip(&e).map(|(a, b)| a * b).sum::<f32>(), o)
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, o)| o.clone())
            .ok_or_else(|| EnvError::Task {
                env: self.id.clone(),
                message: "no real trajectories to take initial states from".into(),
            })?;
        let obs = Observation {
            instruction: task.instruction.clone(),
            ..best
        };
        Ok(self.start(task.clone(), obs, None))
    }
}

impl Env for ModelEnv {
    fn id(&self) -> &str {
        &self.id
    }

    fn reset(&mut self, spec: &TaskSpec, seed: u64) -> Result<Observation, EnvError> {
        if let Some(posed) = &spec.posed {
            return self.reset_posed(posed);
        }
        if let Some(branch) = self.branching.as_ref().and_then(|b| b.draw(spec, seed)) {
            return Ok(self.start_branch(branch, seed));
        }
        let matching: Vec<usize> = (0..self.starts.len())
            .filter(|&i| spec.admits(&self.starts[i].0))
            .collect();
        if matching.is_empty() {
            return Err(EnvError::Task {
                env: self.id.clone(),
                message: format!("no real initial state matches {spec}"),
            });
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (task, obs) = self.starts[matching[rng.random_range(0..matching.len())]].clone();
        Ok(self.start(task, obs, Some(seed)))
    }

    fn step(&mut self, action: &str) -> Result<StepResult, EnvError> {
        let (Some(task), Some(state)) = (&self.task, &self.state) else {
            return Err(EnvError::NotReset {
                env: self.id.clone(),
            });
        };
        if self.over {
            return Err(EnvError::EpisodeOver {
                env: self.id.clone(),
            });
        }
        // the whole episode (bounded by max_steps): the native model recalls places left long
        // ago; the LLM prompt shows the last few steps
        let ctx = ModelContext {
            task,
            history: &self.history,
            state,
            action,
            retrieved: &self.retrieved,
        };
        let (predicted, judgement) = match &self.ensemble {
            None => (self.model.predict(&ctx), None),
            Some((e, _)) => {
                let (p, j) = e.play(self.member, &ctx);
                (p, Some(j))
            }
        };
        let mut p = match predicted {
            Ok(p) => p,
            // a reply the model rejected (an LLM's cut or invalid reply) is never taken as
            // experience: the synthetic episode is cut here, the state unchanged, nothing recorded
            Err(e) => {
                self.over = true;
                self.failures
                    .rejected
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.failures
                    .record(true)
                    .map_err(|message| EnvError::Other {
                        env: self.id.clone(),
                        message: format!("{message}; the latest: {e}"),
                    })?;
                let mut info = BTreeMap::new();
                info.insert("rejected".into(), e.to_string());
                return Ok(StepResult {
                    observation: state.clone(),
                    reward: 0.0,
                    done: false,
                    truncated: true,
                    success: false,
                    info,
                });
            }
        };
        // where the members disagree the episode halts: nothing paid, nothing to bootstrap
        let mut halted = None;
        if let Some(j) = judgement {
            p.confidence = j.agreement;
            if let Some(why) = j.halt {
                p.reward = 0.0;
                p.done = true;
                p.success = false;
                p.reasoning = format!("{}\nHALT: {why}", p.reasoning);
                halted = Some(why);
                self.failures
                    .halted
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        // a state the agent cannot act in is a model error: the episode is cut there
        let dead_end = !p.done && p.next_state.admissible.is_empty();
        let counter = if dead_end {
            &self.failures.dead_ends
        } else {
            &self.failures.predicted
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.failures
            .record(dead_end)
            .map_err(|message| EnvError::Other {
                env: self.id.clone(),
                message,
            })?;
        // a branch is cut after its horizon, as any episode at the real env's step limit
        let branch_at = self.branch_at();
        let cut_branch = self.joined.is_some()
            && self
                .branching
                .as_ref()
                .is_some_and(|b| (self.history.len() - branch_at) as u32 + 1 >= b.horizon.get());
        let truncated = dead_end
            || (!p.done && (cut_branch || self.history.len() as u32 + 1 >= self.max_steps));
        let step = Step {
            state: state.clone(),
            action: action.to_string(),
            reward: p.reward,
            next_state: p.next_state.clone(),
            done: p.done,
            truncated,
            reasoning: Some(p.reasoning.clone()),
            provenance: dreamgym_buffer::Provenance::Synthetic,
            reward_known: true,
        };
        self.history.push(step);
        self.state = Some(p.next_state.clone());
        self.over = p.done || truncated;
        if self.over
            && let Some(sink) = &self.sink
        {
            let t = Trajectory {
                task: task.clone(),
                env_id: self.id.clone(),
                seed: 0,
                provenance: dreamgym_buffer::Provenance::Synthetic,
                policy: "learner".into(),
                outcome: Trajectory::outcome_from_steps(&self.history[branch_at..], p.success),
                // a branch's real prefix is not synthetic experience
                steps: self.history[branch_at..].to_vec(),
            };
            sink.lock().unwrap_or_else(|e| e.into_inner()).push(t);
        }
        let mut info = BTreeMap::new();
        info.insert("confidence".into(), format!("{:.3}", p.confidence));
        if let Some(why) = &halted {
            info.insert("halt".into(), why.to_string());
        }
        if dead_end {
            info.insert(
                "dead_end".into(),
                "the predicted state offers no admissible action".into(),
            );
        }
        info.insert("reasoning".into(), p.reasoning);
        let penalty = self.uncertainty_penalty * (1.0 - p.confidence.clamp(0.0, 1.0));
        if penalty > 0.0 {
            info.insert("uncertainty_penalty".into(), format!("{penalty:.4}"));
            // what the model predicted, for records of experience (whose success is read off
            // the reward): the penalty shapes learning, it is not what happened
            info.insert("model_reward".into(), p.reward.to_string());
        }
        Ok(StepResult {
            observation: p.next_state,
            reward: p.reward - penalty,
            done: p.done,
            truncated,
            success: p.success,
            info,
        })
    }

    fn task(&self) -> Option<&Task> {
        self.task.as_ref()
    }

    fn joined_after(&self) -> Option<&[String]> {
        self.joined.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{Env, TaskSpec};
    use crate::model::{ModelError, Prediction};

    /// A model whose every next state offers no action and is not done (a model error).
    struct DeadEnds;

    impl ExperienceModel for DeadEnds {
        fn name(&self) -> &str {
            "dead-ends"
        }
        fn predict(&self, ctx: &crate::model::ModelContext) -> Result<Prediction, ModelError> {
            Ok(Prediction {
                reasoning: "nowhere to go".into(),
                next_state: Observation {
                    admissible: vec![],
                    ..ctx.state.clone()
                },
                reward: 0.0,
                done: false,
                success: false,
                confidence: 0.5,
            })
        }
    }

    /// A model env of [`DeadEnds`] with one start, counting into `failures`.
    fn dead_end_env(failures: &Arc<ModelFailures>) -> ModelEnv {
        let obs = Observation {
            lines: vec!["[a] thing: a".into()],
            instruction: "do it".into(),
            admissible: vec!["go".into()],
            feedback: String::new(),
        };
        let mut env = ModelEnv::new(Arc::new(DeadEnds), &[], 10);
        env.count_failures_in(failures.clone());
        env.add_start(crate::model::test_task("do it"), obs);
        env
    }

    #[test]
    fn a_state_without_actions_ends_the_episode_as_a_counted_dead_end() {
        let failures = Arc::new(ModelFailures::default());
        let mut env = dead_end_env(&failures);
        env.reset(&TaskSpec::default(), 0).unwrap();
        let r = env.step("go").unwrap();
        assert!(
            r.truncated && !r.done,
            "the episode ends, as cut, not as done"
        );
        assert!(r.info.contains_key("dead_end"), "{:?}", r.info);
        assert!(env.step("go").is_err(), "the episode is over");
        let c = failures.counts();
        assert_eq!((c.dead_ends, c.rejected, c.predicted), (1, 0, 0));
        // the next episode starts normally
        env.reset(&TaskSpec::default(), 1).unwrap();
    }

    /// A model that stays where it is and says how much history it was shown.
    struct Counting;

    impl ExperienceModel for Counting {
        fn name(&self) -> &str {
            "counting"
        }
        fn predict(&self, ctx: &crate::model::ModelContext) -> Result<Prediction, ModelError> {
            Ok(Prediction {
                reasoning: String::new(),
                next_state: Observation {
                    lines: vec![format!("history {}", ctx.history.len())],
                    ..ctx.state.clone()
                },
                reward: 0.0,
                done: false,
                success: false,
                confidence: 1.0,
            })
        }
    }

    #[test]
    fn a_branch_joins_a_real_episode_after_its_prefix_and_is_cut_after_its_horizon() {
        use crate::model::branch::{BranchHorizon, Branching};
        let place = |p: &str| Observation {
            lines: vec![format!("at {p}")],
            instruction: "walk".into(),
            admissible: vec!["walk on".into()],
            feedback: String::new(),
        };
        let places = ["p0", "p1", "p2", "p3", "p4", "p5"];
        let steps: Vec<Step> = places
            .windows(2)
            .map(|w| Step {
                state: place(w[0]),
                action: format!("to {}", w[1]),
                reward: 0.0,
                next_state: place(w[1]),
                done: false,
                truncated: false,
                reasoning: None,
                provenance: dreamgym_buffer::Provenance::Real,
                reward_known: true,
            })
            .collect();
        let real = vec![Trajectory {
            task: crate::model::test_task("walk"),
            env_id: "real".into(),
            seed: 0,
            provenance: dreamgym_buffer::Provenance::Real,
            policy: "random".into(),
            outcome: Trajectory::outcome_from_steps(&steps, false),
            steps: steps.clone(),
        }];
        let sink = EpisodeSink::default();
        let mut env = ModelEnv::new(Arc::new(Counting), &real, 50);
        env.keep_episodes_in(sink.clone());
        let horizon = BranchHorizon::new(2);
        env.branch_from(Branching::new(&real, 1.0, horizon.clone(), 3));
        for seed in 0..10 {
            let first = env.reset(&TaskSpec::default(), seed).unwrap();
            let joined = env.joined_after().expect("every episode branches").to_vec();
            let at = joined.len();
            assert!((1..5).contains(&at));
            assert_eq!(first, steps[at].state, "the real state after the prefix");
            let prefix: Vec<String> = steps[..at].iter().map(|s| s.action.clone()).collect();
            assert_eq!(joined, prefix);
            // the model sees the real prefix as the episode's history
            let r = env.step("walk on").unwrap();
            assert_eq!(r.observation.lines, vec![format!("history {at}")]);
            assert!(!r.truncated && !r.done);
            let r = env.step("walk on").unwrap();
            assert!(r.truncated && !r.done, "cut after 2 steps, not terminal");
            let kept = sink.lock().unwrap().pop().unwrap();
            assert_eq!(
                kept.steps.len(),
                2,
                "only the branch is synthetic experience"
            );
            assert_eq!(kept.steps[0].state, steps[at].state);
        }
        // the horizon the loop sets holds from the next branch on
        horizon.set(3);
        env.reset(&TaskSpec::default(), 0).unwrap();
        let played = (0..3)
            .map(|_| env.step("walk on").unwrap())
            .take_while(|r| !r.truncated)
            .count();
        assert_eq!(played, 2, "the third step is cut");
        // without branching the episode starts at the beginning and says so
        let mut plain = ModelEnv::new(Arc::new(Counting), &real, 50);
        assert_eq!(
            plain.reset(&TaskSpec::default(), 0).unwrap(),
            steps[0].state
        );
        assert!(plain.joined_after().is_none());
    }

    #[test]
    fn a_model_that_fails_every_step_stops_the_envs_within_one_window() {
        let failures = Arc::new(ModelFailures::with_limit(0.5));
        let mut env = dead_end_env(&failures);
        let mut stopped = None;
        for episode in 0..(2 * FAILURE_WINDOW) as u64 {
            env.reset(&TaskSpec::default(), episode).unwrap();
            if let Err(e) = env.step("go") {
                stopped = Some((episode, e.to_string()));
                break;
            }
        }
        let (at, e) = stopped.expect("the envs stop");
        assert_eq!(
            at as usize,
            FAILURE_JUDGED - 1,
            "as soon as the share is judged"
        );
        assert!(e.contains("failed on 20 of the last 20 steps"), "{e}");
        // without a limit (serve) the envs go on
        let mut env = dead_end_env(&Arc::new(ModelFailures::default()));
        for episode in 0..(2 * FAILURE_WINDOW) as u64 {
            env.reset(&TaskSpec::default(), episode).unwrap();
            assert!(env.step("go").is_ok());
        }
    }
}
