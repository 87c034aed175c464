//! An ensemble of experience models that refuses to be exploited (issue 31, part 2; MOReL's
//! HALT, ME-TRPO's ensembles).
//!
//! The members are fit on bootstrap resamples of the seed *episodes* ([`bootstrap`]), so they
//! agree where many episodes say the same and disagree where the data are thin — a rule learnt
//! from one episode, an outcome a hidden cause decides. Each synthetic episode plays one member
//! (drawn when it starts); every step, all members predict and [`Ensemble::play`] compares them
//! with the playing one:
//!
//! 1. a member **dissents** when its reward, `done` or success differs from the playing
//!    member's (or it gave no prediction);
//! 2. more than [`HaltRule::dissent`] dissenting members **halt** the episode there: the
//!    step ends it with reward 0 and no success, as an absorbing state (the learner bootstraps
//!    no value) — so a success is paid only where at least K − `dissent` members predict it;
//! 3. with [`HaltRule::next_state`], a majority of the other members predicting another next
//!    state halts it too (the data do not say where the episode goes);
//! 4. the step's confidence is the share of the other members that agree with the playing one
//!    in everything (what `uncertainty_penalty` multiplies).

use super::{ExperienceModel, ModelContext, ModelError, Prediction};
use dreamgym_buffer::{Observation, Trajectory};
use rand::{RngExt, SeedableRng};
use std::sync::Arc;

/// When the members' disagreement ends a synthetic episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HaltRule {
    /// How many other members may dissent on reward, `done` or success before the episode
    /// halts (1 with 5 members: a success needs 4 of 5).
    pub dissent: usize,
    /// Halt where most of the other members predict another next state.
    pub next_state: bool,
}

impl Default for HaltRule {
    /// One dissent tolerated; next states not judged (`RunConfig`'s defaults: halting on next
    /// states cut household's episodes where the data leave a place's contents open, and lost).
    fn default() -> Self {
        Self {
            dissent: 1,
            next_state: false,
        }
    }
}

/// Why an ensemble ended a synthetic episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Halt {
    /// Members dissented on reward, `done` or success.
    Outcome {
        /// How many of the other members dissented.
        dissenting: usize,
        /// How many other members there are.
        of: usize,
    },
    /// Most of the other members predicted another next state.
    NextState {
        /// How many of the other members predicted another next state.
        differing: usize,
        /// How many other members there are.
        of: usize,
    },
}

impl std::fmt::Display for Halt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Halt::Outcome { dissenting, of } => write!(
                f,
                "{dissenting} of {of} other members predict another reward or end"
            ),
            Halt::NextState { differing, of } => {
                write!(
                    f,
                    "{differing} of {of} other members predict another next state"
                )
            }
        }
    }
}

/// The ensemble's judgement of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// Where the step ends the episode, why.
    pub halt: Option<Halt>,
    /// The share of the other members that agree with the playing one in everything (1 with a
    /// single member).
    pub agreement: f32,
}

/// K experience models that predict every step together; one of them plays an episode.
pub struct Ensemble {
    members: Vec<Arc<dyn ExperienceModel>>,
    rule: HaltRule,
    name: String,
    /// The member that plays every episode, where one is fixed ([`Self::judged`]).
    player: Option<usize>,
}

impl Ensemble {
    /// An ensemble of `members` (at least one) that halts by `rule`.
    pub fn new(members: Vec<Arc<dyn ExperienceModel>>, rule: HaltRule) -> Self {
        assert!(!members.is_empty(), "an ensemble needs a member");
        let name = format!("{}x{}", members[0].name(), members.len());
        Self {
            members,
            rule,
            name,
            player: None,
        }
    }

    /// `player` plays every episode and `judges` (at least one) judge it: the halts and the
    /// agreement count only the judges (a model fit on all the data plays, models fit on
    /// bootstrap resamples say where the data are thin).
    pub fn judged(
        player: Arc<dyn ExperienceModel>,
        judges: Vec<Arc<dyn ExperienceModel>>,
        rule: HaltRule,
    ) -> Self {
        assert!(!judges.is_empty(), "an ensemble needs a judge");
        let name = format!("{}+{}judges", player.name(), judges.len());
        let members = std::iter::once(player).chain(judges).collect();
        Self {
            members,
            rule,
            name,
            player: Some(0),
        }
    }

    /// The member that plays every episode, where one is fixed; `None`: one drawn per episode.
    pub fn player(&self) -> Option<usize> {
        self.player
    }

    /// Number of members (K).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the ensemble has no member (never: [`Self::new`] refuses).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Short name for reports: the first member's name and K (`nativex5`, `native+5judges`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every member's prediction of `ctx`, in member order.
    pub fn predict_all(&self, ctx: &ModelContext) -> Vec<Result<Prediction, ModelError>> {
        self.members.iter().map(|m| m.predict(ctx)).collect()
    }

    /// Member `playing`'s prediction of `ctx`, judged against the other members' (see the
    /// module docs).
    pub fn play(
        &self,
        playing: usize,
        ctx: &ModelContext,
    ) -> (Result<Prediction, ModelError>, Judgement) {
        let mut all = self.predict_all(ctx);
        let j = judge(self.rule, playing, &all);
        (all.swap_remove(playing), j)
    }
}

/// As a model (for fidelity, e.g. `dreamgym model eval --ensemble K`): the player's prediction
/// (the fixed player, else the first member) with the members' agreement as its confidence; no
/// halts (a halt is the env's decision).
impl ExperienceModel for Ensemble {
    fn name(&self) -> &str {
        &self.name
    }

    fn predict(&self, ctx: &ModelContext) -> Result<Prediction, ModelError> {
        let (p, j) = self.play(self.player.unwrap_or(0), ctx);
        let mut p = p?;
        p.confidence = j.agreement;
        Ok(p)
    }
}

/// The judgement of [`Ensemble::play`]: member `playing`'s prediction in `all` against the
/// others', by `rule`.
pub fn judge(rule: HaltRule, playing: usize, all: &[Result<Prediction, ModelError>]) -> Judgement {
    let others = all.len().saturating_sub(1);
    let Some(Ok(p)) = all.get(playing) else {
        return Judgement {
            halt: None,
            agreement: 0.0,
        };
    };
    let (mut dissenting, mut differing, mut agreeing) = (0, 0, 0);
    for (i, o) in all.iter().enumerate() {
        if i == playing {
            continue;
        }
        let Ok(o) = o else {
            dissenting += 1;
            differing += 1;
            continue;
        };
        let outcome =
            (o.reward - p.reward).abs() <= 1e-4 && o.done == p.done && o.success == p.success;
        let state = same_state(&o.next_state, &p.next_state);
        dissenting += usize::from(!outcome);
        differing += usize::from(!state);
        agreeing += usize::from(outcome && state);
    }
    let halt = if dissenting > rule.dissent {
        Some(Halt::Outcome {
            dissenting,
            of: others,
        })
    } else if rule.next_state && 2 * differing > others {
        Some(Halt::NextState {
            differing,
            of: others,
        })
    } else {
        None
    };
    Judgement {
        halt,
        agreement: if others == 0 {
            1.0
        } else {
            agreeing as f32 / others as f32
        },
    }
}

/// Whether two predicted states are the same: the same lines as sets (fidelity's comparison)
/// and the same feedback.
fn same_state(a: &Observation, b: &Observation) -> bool {
    if a.feedback != b.feedback || a.lines.len() != b.lines.len() {
        return false;
    }
    let mut x: Vec<&String> = a.lines.iter().collect();
    let mut y: Vec<&String> = b.lines.iter().collect();
    x.sort_unstable();
    y.sort_unstable();
    x == y
}

/// `k` bootstrap resamples of `episodes` (each as many episodes as `episodes`, drawn with
/// replacement), seeded by `seed`. With `k == 1` the one "resample" is `episodes` itself, so a
/// one-member ensemble is the model fit on all the data.
pub fn bootstrap(episodes: &[Trajectory], k: usize, seed: u64) -> Vec<Vec<Trajectory>> {
    if k <= 1 {
        return vec![episodes.to_vec()];
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xb007_57a9);
    (0..k)
        .map(|_| {
            (0..episodes.len())
                .map(|_| episodes[rng.random_range(0..episodes.len())].clone())
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Ensemble, HaltRule, bootstrap, judge};
    use crate::model::{ExperienceModel, ModelContext, test_task};
    use std::sync::Arc;

    /// Predicts its state unchanged, paying `reward`.
    struct Pays(f32);

    impl ExperienceModel for Pays {
        fn name(&self) -> &str {
            "pays"
        }
        fn predict(&self, ctx: &ModelContext) -> Result<Prediction, ModelError> {
            Ok(Prediction {
                reasoning: String::new(),
                next_state: ctx.state.clone(),
                reward: self.0,
                done: false,
                success: false,
                confidence: 1.0,
            })
        }
    }

    #[test]
    fn as_a_model_an_ensemble_answers_with_its_player_and_the_judges_agreement() {
        let e = Ensemble::judged(
            Arc::new(Pays(0.5)),
            vec![
                Arc::new(Pays(0.5)),
                Arc::new(Pays(0.0)),
                Arc::new(Pays(0.5)),
                Arc::new(Pays(0.5)),
            ],
            HaltRule::default(),
        );
        assert_eq!(e.name(), "pays+4judges");
        let task = test_task("do it");
        let state = test_observation(&["[a] here"], "do it");
        let ctx = ModelContext {
            task: &task,
            history: &[],
            state: &state,
            action: "wait",
            retrieved: &[],
        };
        let p = e.predict(&ctx).unwrap();
        assert_eq!((p.reward, p.confidence), (0.5, 0.75));
    }

    use crate::model::{ModelError, Prediction, test_observation};
    use dreamgym_buffer::Trajectory;

    fn pred(lines: &[&str], reward: f32, done: bool) -> Result<Prediction, ModelError> {
        Ok(Prediction {
            reasoning: String::new(),
            next_state: test_observation(lines, "do it"),
            reward,
            done,
            success: done && reward > 0.0,
            confidence: 1.0,
        })
    }

    #[test]
    fn a_success_is_paid_only_where_all_but_one_member_predicts_it() {
        let rule = HaltRule::default();
        let win = || pred(&["[a] done"], 1.0, true);
        let lose = || pred(&["[a] done"], 0.0, false);
        // 4 of 5 predict the success: paid, one dissent tolerated
        let j = judge(rule, 0, &[win(), win(), win(), win(), lose()]);
        assert_eq!(j.halt, None);
        assert!((j.agreement - 0.75).abs() < 1e-6);
        // 3 of 5: halted
        let j = judge(rule, 0, &[win(), win(), win(), lose(), lose()]);
        assert_eq!(
            j.halt,
            Some(super::Halt::Outcome {
                dissenting: 2,
                of: 4
            })
        );
        // the playing member alone predicts nothing where the rest pay: halted too
        let j = judge(rule, 4, &[win(), win(), win(), lose(), lose()]);
        assert!(j.halt.is_some());
    }

    #[test]
    fn most_members_predicting_another_state_halt_the_episode() {
        let rule = HaltRule {
            next_state: true,
            ..HaltRule::default()
        };
        let here = || pred(&["[a] here", "[b] there"], 0.0, false);
        let reordered = || pred(&["[b] there", "[a] here"], 0.0, false);
        let elsewhere = || pred(&["[a] elsewhere"], 0.0, false);
        // lines compared as sets: a reordering agrees
        let j = judge(rule, 0, &[here(), reordered(), reordered(), here(), here()]);
        assert_eq!((j.halt, j.agreement), (None, 1.0));
        // two of four others elsewhere: not most
        let j = judge(rule, 0, &[here(), elsewhere(), elsewhere(), here(), here()]);
        assert_eq!(j.halt, None);
        // three of four: halted, unless the rule ignores next states
        let all = [here(), elsewhere(), elsewhere(), elsewhere(), here()];
        assert!(matches!(
            judge(rule, 0, &all).halt,
            Some(super::Halt::NextState {
                differing: 3,
                of: 4
            })
        ));
        let lenient = HaltRule {
            next_state: false,
            ..rule
        };
        assert_eq!(judge(lenient, 0, &all).halt, None);
        // a member without a prediction dissents
        let failed = || Err(ModelError::Config("down".into()));
        let j = judge(rule, 0, &[here(), failed(), failed(), here(), here()]);
        assert!(matches!(j.halt, Some(super::Halt::Outcome { .. })));
        // one member: never halts
        assert_eq!(judge(rule, 0, &[here()]).halt, None);
    }

    #[test]
    fn bootstrap_resamples_episodes_reproducibly() {
        let episodes: Vec<Trajectory> = (0..20)
            .map(|i| Trajectory {
                task: test_task("do it"),
                env_id: "test".into(),
                seed: i,
                provenance: Default::default(),
                policy: String::new(),
                steps: vec![],
                outcome: Trajectory::outcome_from_steps(&[], false),
            })
            .collect();
        let a = bootstrap(&episodes, 5, 7);
        assert_eq!(a.len(), 5);
        assert!(a.iter().all(|r| r.len() == 20));
        let seeds = |r: &Vec<Trajectory>| r.iter().map(|t| t.seed).collect::<Vec<_>>();
        assert_eq!(seeds(&a[0]), seeds(&bootstrap(&episodes, 5, 7)[0]));
        assert_ne!(seeds(&a[0]), seeds(&a[1]), "members see different data");
        // with replacement: some episode is drawn twice, another left out
        let mut s = seeds(&a[0]);
        s.sort_unstable();
        s.dedup();
        assert!(s.len() < 20);
        // one member: all the data
        assert_eq!(
            seeds(&bootstrap(&episodes, 1, 7)[0]),
            (0..20).collect::<Vec<_>>()
        );
    }
}
