//! The prediction: the stages as one ordered list ([`STAGES`], numbered as in the module docs
//! of `native`), what they share ([`Attempt`]), and the query the rule stages read.

use super::memory::{Remembered, SeenNext, fingerprint, most_seen, seen_prediction};
use super::recall::RecallSources;
use super::rule::{ActionForm, Query};
use super::tokens::{Tokenized, Vocab, count_kind, line_kind_word};
use super::{NativeModel, recall};
use crate::model::fidelity::same_set;
use crate::model::lines::{diff, line_kind};
use crate::model::{ExperienceModel, ModelContext, ModelError, Prediction};
use dreamgym_buffer::Observation;

/// The native model's stages, in the order a prediction tries them, numbered as in the module
/// docs of `native` and docs/native-model.md; stage 10, the failure semantics, answers what none
/// of them explains.
const STAGES: [Stage; 9] = [
    Stage::Recall,
    Stage::RecallPlace,
    Stage::Instance,
    Stage::Memory,
    Stage::Rules,
    Stage::RulesAsSets,
    Stage::Unrewarded,
    Stage::LineRewrites,
    Stage::Analogy,
];

/// One stage of the native prediction (see [`STAGES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Stage 1: A rule that leads to a place seen in this episode, or by a real episode of this
    /// instance, filled or confirmed by what was seen there.
    Recall,
    /// Stage 2: A place some source saw that no rule of the right shape recalls.
    RecallPlace,
    /// Stage 3: This instance's own real steps, where memory's outcomes differ only in what they show.
    Instance,
    /// Stage 4: Exact memory.
    Memory,
    /// Stage 5: Lifted rules of the exact shape.
    Rules,
    /// Stage 6: Lifted rules with removed lines read as sets.
    RulesAsSets,
    /// Stage 7: Transitions imported without rewards: the next state, reward 0.
    Unrewarded,
    /// Stage 8: Every line rewritten by what the action did to lines of its shape.
    LineRewrites,
    /// Stage 9: The same action in another world, its edits merged into this state.
    Analogy,
}

/// What the stages of one prediction share: the memory lookups and recall sources (computed
/// first: cheap), the tokenized query and the rules' answer (computed once, by the first stage
/// that needs them), and whether some source saw where the action leads.
struct Attempt<'m, 'c> {
    ctx: &'c ModelContext<'c>,
    admissible: bool,
    /// Memory's outcomes of this exact (instruction, state, action).
    outcomes: Option<&'m [Remembered]>,
    /// The most frequent of them, with their total count.
    remembered: Option<(&'m Remembered, usize)>,
    /// The same state and action under other tasks, where it never paid or ended an episode.
    seen_elsewhere: Option<(&'m SeenNext, usize)>,
    /// Where recall may look, when some source can be about where the action leads.
    sources: Option<RecallSources<'c>>,
    query: Option<(Vocab<'m>, Query, &'m [usize])>,
    /// Some recall source saw the place the action leads to.
    seen: bool,
    /// The rules' answer (`true`: read as sets), once computed.
    ruled: Option<Option<(Prediction, bool)>>,
}

impl<'m, 'c> Attempt<'m, 'c> {
    fn new(model: &'m NativeModel, ctx: &'c ModelContext<'c>) -> Self {
        let admissible = ctx.state.admissible.iter().any(|a| a == ctx.action);
        let key = fingerprint(Some(&ctx.state.instruction), &ctx.state.lines, ctx.action);
        let outcomes = model.memory.get(&key).map(Vec::as_slice);
        let remembered = outcomes.map(|outcomes| {
            let total: usize = outcomes.iter().map(|o| o.count).sum();
            (
                outcomes.iter().max_by_key(|o| o.count).expect("non-empty"),
                total,
            )
        });
        let seen_elsewhere = model
            .dynamics
            .get(&fingerprint(None, &ctx.state.lines, ctx.action))
            .filter(|seen| seen.iter().all(|o| o.neutral))
            .map(|seen| most_seen(seen));
        let memory_next = remembered
            .map(|(best, _)| &best.next)
            .or(seen_elsewhere.map(|(best, _)| &best.next));
        // recall needs a source about where the action leads; where memory knows the outcome,
        // something it shows must be mentioned by one (a cheap test before any matching)
        let sources = RecallSources::new(ctx).filter(|s| {
            admissible
                && memory_next.is_none_or(|m| s.mentions_any(&diff(&m.lines, &ctx.state.lines)))
        });
        Attempt {
            ctx,
            admissible,
            outcomes,
            remembered,
            seen_elsewhere,
            sources,
            query: None,
            seen: false,
            ruled: None,
        }
    }
}

impl NativeModel {
    /// The native prediction (never fails: unexplained actions get the failure semantics).
    pub fn predict_native(&self, ctx: &ModelContext) -> Prediction {
        let mut p = self.predict_by_stages(ctx);
        // an action that undoes a change this episode made shows what the episode showed before
        // (what the stages guessed from other episodes may be another world's); the reward and
        // `done` stay the stages'
        if p.reward == 0.0
            && !p.done
            && self.use_rules
            && ctx.state.admissible.iter().any(|a| a == ctx.action)
            && let Some(u) = self.undoing.predict(ctx)
            && !same_set(&u.next_state.lines, &p.next_state.lines)
        {
            p = u;
        }
        // the admissible actions of a state are those a training state with the same lines
        // always had (rules only know the changes they saw)
        if p.next_state.lines != ctx.state.lines
            && let Some(a) = self.views.admissible(&p.next_state.lines)
            && *a != p.next_state.admissible
        {
            p.next_state.admissible = a.clone();
        }
        p
    }

    /// The stages of [`STAGES`] tried in order: the first that explains the action answers;
    /// what none explains gets the failure semantics (stage 10).
    pub(super) fn predict_by_stages(&self, ctx: &ModelContext) -> Prediction {
        let mut a = Attempt::new(self, ctx);
        for stage in STAGES {
            if let Some(p) = self.try_stage(stage, &mut a) {
                return p;
            }
        }
        Self::failure(ctx, a.admissible)
    }

    /// One stage of a prediction.
    fn try_stage<'m>(&'m self, stage: Stage, a: &mut Attempt<'m, '_>) -> Option<Prediction> {
        match stage {
            Stage::Recall => self.recall_stage(a),
            Stage::RecallPlace => self.recall_place_stage(a),
            Stage::Instance => self.instance_stage(a),
            Stage::Memory => Self::memory_stage(a),
            Stage::Rules => self.rules_stage(a, false),
            Stage::RulesAsSets => self.rules_stage(a, true),
            Stage::Unrewarded => self.predict_unrewarded(a.ctx),
            Stage::LineRewrites => self.line_rewrites_stage(a),
            Stage::Analogy => a
                .admissible
                .then(|| self.analogies.predict(a.ctx))
                .flatten(),
        }
    }

    /// Stage 1: Recall: back to a place seen earlier in this episode, or one a real episode of this
    /// task instance saw: what was seen there beats a guess from other episodes, whose hidden
    /// parts differ (computes the query, and whether some source saw where the action leads).
    fn recall_stage<'m>(&'m self, a: &mut Attempt<'m, '_>) -> Option<Prediction> {
        let sources = a.sources.as_ref()?;
        self.recall_any(a.ctx, sources, &mut a.query, &mut a.seen)
    }

    /// Stage 2: A place some source saw, that no rule of the right shape recalls: the rules' outcome
    /// with the place's lines as the source saw them.
    fn recall_place_stage<'m>(&'m self, a: &mut Attempt<'m, '_>) -> Option<Prediction> {
        if !a.seen || a.sources.is_none() {
            return None;
        }
        self.rules_once(a);
        let (r, _) = a.ruled.as_ref()?.as_ref()?;
        let (_, query, _) = a.query.as_ref()?;
        let kinds = self.brings.get(&ActionForm::of(&query.action.ids))?;
        recall::recall_place(a.sources.as_ref()?, a.ctx.state, r, &self.views, kinds)
    }

    /// Stage 3: Where the training data disagree only about what this exact step shows (what a
    /// hidden part of the world held), this instance's own real experience of it decides.
    fn instance_stage(&self, a: &mut Attempt<'_, '_>) -> Option<Prediction> {
        let disagree = a
            .outcomes
            .is_some_and(|o| disagree_on_what_is_shown(o, &a.ctx.state.lines));
        (a.admissible && disagree)
            .then(|| Self::by_instance(a.ctx))
            .flatten()
    }

    /// Stage 4: Exact memory: this (instruction, state, action) seen in training, or the same state
    /// and action under other tasks where that never paid a reward or ended an episode.
    fn memory_stage(a: &mut Attempt<'_, '_>) -> Option<Prediction> {
        if let Some((best, total)) = a.remembered {
            return Some(Prediction {
                reasoning: format!(
                    "Seen before: this exact state and action occurred {total} time(s) in the training data; {} of them led to the predicted outcome.",
                    best.count
                ),
                next_state: best.next.clone(),
                reward: best.reward,
                done: best.done,
                success: dreamgym_buffer::is_success(best.done, best.reward),
                confidence: best.count as f32 / total as f32,
            });
        }
        a.seen_elsewhere.map(|(best, total)| {
            seen_prediction(
                a.ctx,
                best,
                format!(
                    "Seen before under other tasks: this state and action occurred {total} time(s); {} led to the predicted state, none paid a reward or ended the episode.",
                    best.count
                ),
                best.count as f32 / total as f32,
            )
        })
    }

    /// The lifted rules' answer, computed once: generalisations first, then the most specific,
    /// then the best supported (5); failing that, the same rules with removed lines read as
    /// sets, for admissible actions only (6).
    fn rules_once<'m>(&'m self, a: &mut Attempt<'m, '_>) {
        if a.ruled.is_some() {
            return;
        }
        let (vocab, query, cands) = a.query.get_or_insert_with(|| self.query(a.ctx));
        let ruled = self
            .by_rule(vocab, query, cands, a.ctx)
            .map(|p| (p, false))
            .or_else(|| {
                a.admissible
                    .then(|| self.by_rule_as_sets(vocab, query, cands, a.ctx))
                    .flatten()
                    .map(|p| (p, true))
            });
        a.ruled = Some(ruled);
    }

    /// Stage 5: Lifted rules of the exact shape (`as_sets` false), or 6. the rules read as sets. A
    /// rule read as sets drops what it cannot fill: where that leaves out a kind of line every
    /// training state showed (the inventory it rewrites) and it pays nothing, the same action's
    /// edits merged into this state's lines (analogy) say more, when they merge.
    fn rules_stage<'m>(&'m self, a: &mut Attempt<'m, '_>, as_sets: bool) -> Option<Prediction> {
        self.rules_once(a);
        if a.ruled
            .as_ref()
            .is_some_and(|r| r.as_ref().is_some_and(|(_, s)| *s != as_sets))
        {
            return None;
        }
        let (p, _) = a.ruled.take().flatten()?;
        let lacks_a_kind = || {
            self.always_shown
                .iter()
                .any(|k| !p.next_state.lines.iter().any(|l| line_kind(l) == k))
        };
        if as_sets
            && p.reward == 0.0
            && !p.done
            && lacks_a_kind()
            && let Some(a) = self.analogies.predict(a.ctx)
            && !same_set(&a.next_state.lines, &p.next_state.lines)
        {
            return Some(a);
        }
        Some(p)
    }

    /// Stage 8: Every line rewritten by its shape (admissible actions only).
    fn line_rewrites_stage(&self, a: &mut Attempt<'_, '_>) -> Option<Prediction> {
        if !a.admissible {
            return None;
        }
        let r = self.rewrites.predict(a.ctx.state, a.ctx.action)?;
        Some(Prediction {
            reasoning: r.reasoning,
            next_state: r.next,
            reward: r.reward,
            done: r.done,
            success: dreamgym_buffer::is_success(r.done, r.reward),
            confidence: r.confidence,
        })
    }

    /// The failure state: nothing changes, reward 0 — confident for an action that is not
    /// admissible, barely for an admissible one that nothing in the training data explains.
    fn failure(ctx: &ModelContext, admissible: bool) -> Prediction {
        let (why, conf) = if admissible {
            (
                "No training transition explains this admissible action here; predicting the failure state (nothing changes, reward 0) with low confidence.",
                0.1,
            )
        } else {
            (
                "The action is not admissible in this state: failure state, nothing changes, reward 0.",
                0.9,
            )
        };
        Prediction {
            reasoning: why.into(),
            next_state: Self::unchanged(ctx, "Nothing happens."),
            reward: 0.0,
            done: false,
            success: false,
            confidence: conf,
        }
    }

    /// Explain a transition by an induced rule only (no memory of the exact situation): the
    /// generalising trace used for SFT reasoning. `None` when no rule applies.
    pub fn explain(&self, ctx: &ModelContext) -> Option<Prediction> {
        let (vocab, query, cands) = self.query(ctx);
        self.by_rule(&vocab, &query, cands, ctx)
    }

    pub(super) fn query<'a>(&'a self, ctx: &ModelContext) -> (Vocab<'a>, Query, &'a [usize]) {
        let mut vocab = Vocab::new(&self.words);
        let mut query = Query {
            action: Tokenized::new(&mut vocab, ctx.action),
            instruction: Tokenized::new(&mut vocab, &ctx.state.instruction),
            lines: ctx
                .state
                .lines
                .iter()
                .map(|l| Tokenized::new(&mut vocab, l))
                .collect(),
            admissible: ctx
                .state
                .admissible
                .iter()
                .map(|l| Tokenized::new(&mut vocab, l))
                .collect(),
            unmatched: Default::default(),
            line_kinds: vec![],
        };
        for l in &query.lines {
            let kind = line_kind_word(l.ids.iter().map(|&t| Some(t)), &self.words);
            count_kind(&mut query.line_kinds, kind);
        }
        // a first word never seen in training indexes no rule
        let first = query
            .action
            .ids
            .first()
            .copied()
            .filter(|&t| (t as usize) < self.words.words.len());
        let cands = self
            .by_action
            .get(&ActionForm::new(query.action.ids.len(), first))
            .map_or(&[][..], |v| v.as_slice());
        (vocab, query, cands)
    }

    pub(super) fn unchanged(ctx: &ModelContext, feedback: &str) -> Observation {
        Observation {
            feedback: feedback.to_string(),
            ..ctx.state.clone()
        }
    }
}

impl ExperienceModel for NativeModel {
    fn name(&self) -> &str {
        if self.use_rules {
            "native"
        } else {
            "native-memory-only"
        }
    }

    fn predict(&self, ctx: &ModelContext) -> Result<Prediction, ModelError> {
        Ok(self.predict_native(ctx))
    }
}

/// Whether the outcomes remembered for one state and action take away the same lines of it and
/// differ only in what they add (what a container held): a hidden part of the world decided what
/// is shown, not whether the action worked.
fn disagree_on_what_is_shown(outcomes: &[Remembered], state: &[String]) -> bool {
    let Some((first, rest)) = outcomes.split_first() else {
        return false;
    };
    let removed = diff(state, &first.next.lines);
    !rest.is_empty()
        && !removed.is_empty()
        && rest.iter().all(|o| {
            diff(state, &o.next.lines) == removed
                && o.reward == first.reward
                && o.done == first.done
        })
}
