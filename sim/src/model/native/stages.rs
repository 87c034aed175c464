//! The prediction: the stages tried in order (see the module docs of `native`), and the query
//! every stage reads.

use super::*;
use crate::model::fidelity::same_set;

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

    pub(super) fn predict_by_stages(&self, ctx: &ModelContext) -> Prediction {
        let admissible = ctx.state.admissible.iter().any(|a| a == ctx.action);
        // 1. exact memory
        let key = fingerprint(Some(&ctx.state.instruction), &ctx.state.lines, ctx.action);
        let outcomes = self.memory.get(&key);
        let remembered = outcomes.map(|outcomes| {
            let total: usize = outcomes.iter().map(|o| o.count).sum();
            (
                outcomes.iter().max_by_key(|o| o.count).expect("non-empty"),
                total,
            )
        });
        // 2. the same state and action under another task, where it never paid or ended an episode
        let seen_elsewhere = self
            .dynamics
            .get(&fingerprint(None, &ctx.state.lines, ctx.action))
            .filter(|seen| seen.iter().all(|o| o.neutral))
            .map(|seen| most_seen(seen));
        let memory_next = remembered
            .map(|(best, _)| &best.next)
            .or(seen_elsewhere.map(|(best, _)| &best.next));
        let memory = || {
            if let Some((best, total)) = remembered {
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
            seen_elsewhere.map(|(best, total)| {
                seen_prediction(
                    ctx,
                    best,
                    format!(
                        "Seen before under other tasks: this state and action occurred {total} time(s); {} led to the predicted state, none paid a reward or ended the episode.",
                        best.count
                    ),
                    best.count as f32 / total as f32,
                )
            })
        };
        // recall needs a source about where the action leads; where memory knows the outcome,
        // something it shows must be mentioned by one (a cheap test before any matching)
        let sources = RecallSources::new(ctx).filter(|s| {
            admissible
                && memory_next.is_none_or(|m| s.mentions_any(&diff(&m.lines, &ctx.state.lines)))
        });
        // back to a place seen earlier in this episode, or one a real episode of this task
        // instance saw: what was seen there beats a guess from other episodes, whose hidden
        // parts differ
        let mut q = None;
        let mut seen = false;
        if let Some(s) = &sources
            && let Some(p) = self.recall_any(ctx, s, &mut q, &mut seen)
        {
            return p;
        }
        let (vocab, query, cands) = q.unwrap_or_else(|| self.query(ctx));
        // 3. lifted rules: generalisations first, then the most specific, then the best supported;
        // 4. the same rules with removed lines read as sets (admissible actions only)
        let ruled = || {
            self.by_rule(&vocab, &query, cands, ctx)
                .map(|p| (p, false))
                .or_else(|| {
                    admissible
                        .then(|| self.by_rule_as_sets(&vocab, &query, cands, ctx))
                        .flatten()
                        .map(|p| (p, true))
                })
        };
        let mut by_rules = None;
        // a place some source saw, that no rule of the right shape recalls
        if let Some(s) = sources.as_ref().filter(|_| seen)
            && let Some((r, _)) = by_rules.insert(ruled()).as_ref()
            && let Some(kinds) = self.brings.get(&ActionForm::of(&query.action.ids))
            && let Some(p) = recall::recall_place(s, ctx.state, r, &self.views, kinds)
        {
            return p;
        }
        // where the training data disagree only about what this exact step shows (what a
        // hidden part of the world held), this instance's own real experience of it decides
        if admissible
            && outcomes.is_some_and(|o| disagree_on_what_is_shown(o, &ctx.state.lines))
            && let Some(p) = Self::by_instance(ctx)
        {
            return p;
        }
        if let Some(p) = memory() {
            return p;
        }
        if let Some((p, as_sets)) = by_rules.unwrap_or_else(ruled) {
            // a rule read as sets drops what it cannot fill: where that leaves out a kind of
            // line every training state showed (the inventory it rewrites) and it pays
            // nothing, the same action's edits merged into this state's lines say more, when
            // they merge
            let lacks_a_kind = || {
                self.always_shown
                    .iter()
                    .any(|k| !p.next_state.lines.iter().any(|l| line_kind(l) == k))
            };
            if as_sets
                && p.reward == 0.0
                && !p.done
                && lacks_a_kind()
                && let Some(a) = self.analogies.predict(ctx)
                && !same_set(&a.next_state.lines, &p.next_state.lines)
            {
                return a;
            }
            return p;
        }
        if let Some(p) = self.predict_unrewarded(ctx) {
            return p;
        }
        // 5. every line rewritten by its shape (admissible actions only)
        if admissible && let Some(r) = self.rewrites.predict(ctx.state, ctx.action) {
            return Prediction {
                reasoning: r.reasoning,
                next_state: r.next,
                reward: r.reward,
                done: r.done,
                success: dreamgym_buffer::is_success(r.done, r.reward),
                confidence: r.confidence,
            };
        }
        // 6. the same action in another world, its edits merged into this state
        if admissible && let Some(p) = self.analogies.predict(ctx) {
            return p;
        }
        // 7. failure semantics
        Self::failure(ctx, admissible)
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
