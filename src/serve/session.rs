//! One client's session, whatever the transport: its own env (a real one, or a model env of the
//! shared synthetic world), the episode in play, and its hand-over to the recorder.
//!
//! A session answers `reset`, `step` and `state`; a request it cannot serve (a step before a
//! reset or after the episode ended, an inadmissible action, a task the env does not have) is a
//! [`ServeError`] and leaves the session as it was, ready for the next request.

use super::protocol::{ErrorCode, ObservationOut, ResetRequest, ServeError, result_json};
use super::synthetic::SyntheticWorld;
use crate::record::recorder::{Recorder, episode_of, recorded_step};
use dreamgym_buffer::{Observation, Provenance, Step, Task};
use dreamgym_sim::{Env, EnvError, TaskSpec};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What an inadmissible action gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Inadmissible {
    /// A `VALIDATION_ERROR` naming the admissible actions; no step is taken.
    Error,
    /// Passed to the env, which fails it cleanly (state unchanged, reward 0, a feedback
    /// message) and counts the step, as the env does for its own agents.
    Step,
}

/// Where a session's env comes from.
#[derive(Clone)]
pub enum Source {
    /// A real env (`factory.open()` per session).
    Real(Arc<crate::support::envs::EnvFactory>),
    /// A model env of the shared synthetic world.
    Synthetic(Arc<SyntheticWorld>),
}

impl Source {
    /// Whether the env's calls may block for long: a bridged env waits on its child, an LLM
    /// model on its server.
    pub fn may_block(&self) -> bool {
        match self {
            Source::Real(f) => f.is_bridge(),
            Source::Synthetic(w) => w.may_block(),
        }
    }
}

/// Why an episode was written to the buffer (its `ended` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The env said done.
    Done,
    /// Cut by the step limit (or a model failure).
    Truncated,
    /// The client reset or closed in the middle of it.
    Abandoned,
    /// The session was reaped for idleness.
    Idle,
    /// The server shut down.
    Shutdown,
}

impl Ending {
    fn as_str(self) -> &'static str {
        match self {
            Ending::Done => "done",
            Ending::Truncated => "truncated",
            Ending::Abandoned => "abandoned",
            Ending::Idle => "idle",
            Ending::Shutdown => "shutdown",
        }
    }
}

struct Episode {
    id: String,
    task: Task,
    seed: u64,
    state: Observation,
    steps: Vec<Step>,
    /// Steps taken (the recorder takes `steps` when the episode ends).
    taken: usize,
    pool_id: Option<usize>,
    /// The env ended it (done or truncated): steps are refused.
    over: bool,
    /// Handed to the recorder (its steps are gone from here).
    recorded: bool,
}

/// One client's session.
pub struct Session {
    id: String,
    source: Source,
    env: Box<dyn Env>,
    env_id: String,
    recorder: Recorder,
    inadmissible: Inadmissible,
    rng: ChaCha8Rng,
    episode: Option<Episode>,
    episodes: u64,
}

impl Session {
    /// A session `id` with a fresh env from `source`; `seed` draws the instance seeds of resets
    /// that give none.
    pub fn open(
        id: String,
        source: &Source,
        recorder: Recorder,
        inadmissible: Inadmissible,
        seed: u64,
    ) -> Self {
        let (env, env_id): (Box<dyn Env>, String) = match source {
            Source::Real(f) => (f.open(), f.id().to_string()),
            Source::Synthetic(w) => (Box::new(w.open()), format!("model:{}", w.model_name())),
        };
        Self {
            id,
            source: source.clone(),
            env,
            env_id,
            recorder,
            inadmissible,
            rng: ChaCha8Rng::seed_from_u64(seed),
            episode: None,
            episodes: 0,
        }
    }

    /// The session's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Start an episode (an episode in play is recorded as abandoned first).
    pub fn reset(&mut self, req: &ResetRequest) -> Result<String, ServeError> {
        self.end(Ending::Abandoned);
        let seed = req.seed.unwrap_or_else(|| self.rng.random());
        let named = req.template.is_some() || req.difficulty.is_some();
        let (spec, pool_id) = match &self.source {
            Source::Synthetic(w) if !named => match w.choose() {
                Some(c) => (c.spec, Some(c.pool_id)),
                None => (TaskSpec::default(), None),
            },
            _ => (
                TaskSpec {
                    template: req.template.clone(),
                    difficulty: req.difficulty,
                    posed: None,
                },
                None,
            ),
        };
        let obs = self.env.reset(&spec, seed).map_err(|e| env_error(&e))?;
        let task = self
            .env
            .task()
            .cloned()
            .ok_or_else(|| ServeError::new(ErrorCode::Execution, "the env started no task"))?;
        self.episodes += 1;
        let id = req
            .episode_id
            .clone()
            .unwrap_or_else(|| format!("{}-{}", self.id, self.episodes));
        let data = result_json(&ObservationOut::new(&obs, Some(&task), &id, 0), None, false);
        self.episode = Some(Episode {
            id,
            task,
            seed,
            state: obs,
            steps: vec![],
            taken: 0,
            pool_id,
            over: false,
            recorded: false,
        });
        Ok(data)
    }

    /// Take an action in the episode in play.
    pub fn step(&mut self, action: &str) -> Result<String, ServeError> {
        let Some(ep) = self.episode.as_ref() else {
            return Err(ServeError::invalid(
                "step before reset: send {\"type\": \"reset\"} first",
            ));
        };
        if ep.over {
            return Err(ServeError::invalid(
                "the episode is over (done); reset to start another",
            ));
        }
        if self.inadmissible == Inadmissible::Error
            && !ep.state.admissible.iter().any(|a| a == action)
        {
            return Err(ServeError::invalid(format!(
                "{action:?} is not admissible here; admissible: {:?}",
                ep.state.admissible
            )));
        }
        let r = self.env.step(action).map_err(|e| env_error(&e))?;
        let provenance = match self.source {
            Source::Real(_) => Provenance::Real,
            Source::Synthetic(_) => Provenance::Synthetic,
        };
        let ep = self.episode.as_mut().expect("checked above");
        // the state before the action moves into the step; the one after replaces it below. A
        // reply the experience model rejected (an LLM's cut or invalid reply: the state is
        // unchanged, the episode cut) is not experience and is never recorded, as in `run`
        if !r.info.contains_key("rejected") {
            ep.steps.push(recorded_step(
                &r,
                std::mem::take(&mut ep.state),
                action,
                provenance,
            ));
        }
        ep.taken += 1;
        let over = r.done || r.truncated;
        let data = result_json(
            &ObservationOut {
                truncated: r.truncated,
                success: r.success,
                info: &r.info,
                ..ObservationOut::new(&r.observation, Some(&ep.task), &ep.id, ep.taken)
            },
            Some(r.reward),
            over,
        );
        ep.state = r.observation;
        if over {
            ep.over = true;
            self.end(if r.done {
                Ending::Done
            } else {
                Ending::Truncated
            });
        }
        Ok(data)
    }

    /// The session's state (OpenEnv's `State`: `episode_id`, `step_count`, and ours).
    pub fn state(&self) -> Value {
        let ep = self.episode.as_ref();
        json!({
            "episode_id": ep.map(|e| e.id.as_str()),
            "step_count": ep.map_or(0, |e| e.taken),
            "session_id": self.id,
            "env": self.env_id,
            "task": ep.map(|e| &e.task),
            "done": ep.is_some_and(|e| e.over),
        })
    }

    /// End the session: an episode in play is recorded with `why` (once, if it has steps), and
    /// a curriculum task's outcome reported when the env ended it.
    pub fn end(&mut self, why: Ending) {
        let Some(ep) = self.episode.as_mut() else {
            return;
        };
        if ep.recorded || ep.steps.is_empty() {
            return;
        }
        ep.recorded = true;
        let t = episode_of(
            ep.task.clone(),
            self.env_id.clone(),
            ep.seed,
            format!("client:{}", self.id),
            std::mem::take(&mut ep.steps),
        );
        if let (Source::Synthetic(w), Some(id)) = (&self.source, ep.pool_id)
            && matches!(why, Ending::Done | Ending::Truncated)
        {
            w.report(id, t.outcome.success);
        }
        let tags = BTreeMap::from([
            ("session".to_string(), self.id.clone()),
            ("episode_id".to_string(), ep.id.clone()),
            ("ended".to_string(), why.as_str().to_string()),
        ]);
        self.recorder.record(t, tags);
    }
}

/// An env's error as an answer: the client's mistakes are validation errors, the env's own
/// failures execution errors.
fn env_error(e: &EnvError) -> ServeError {
    let code = match e {
        EnvError::NotReset { .. } | EnvError::EpisodeOver { .. } | EnvError::Task { .. } => {
            ErrorCode::Validation
        }
        EnvError::NoPlan { .. } | EnvError::Expert { .. } | EnvError::Other { .. } => {
            ErrorCode::Execution
        }
    };
    ServeError::new(code, e.to_string())
}
