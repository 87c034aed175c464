//! Fitting: every training transition becomes an example, joins the rule of its shape and the
//! exact memories.

use super::memory::{Remembered, fingerprint, most_seen, record_next, seen_prediction};
use super::rule::{ActionForm, Example, Part, Rule};
use super::tokens::{Interner, tokens};
use super::{MAX_EXAMPLES, NativeModel};
use crate::model::lines::{diff, line_kind};
use crate::model::{ModelContext, Prediction};
use dreamgym_buffer::{Step, Trajectory};
use rustc_hash::FxHashMap;
use std::collections::{HashMap, HashSet};
impl NativeModel {
    /// Fit on trajectories (all their steps, real or synthetic).
    pub fn fit(trajectories: &[Trajectory]) -> Self {
        Self::fit_with(trajectories, true)
    }

    /// Fit; `rules = false` keeps only the exact memory (the "without rule induction" ablation).
    pub fn fit_with(trajectories: &[Trajectory], rules_on: bool) -> Self {
        let rules = rules_on;
        let mut m = NativeModel {
            use_rules: rules,
            ..Default::default()
        };
        let mut index: HashMap<Vec<u32>, usize> = HashMap::new();
        for t in trajectories {
            for s in &t.steps {
                if !s.reward_known {
                    // dynamics only: rules and memory carry rewards, which this step lacks
                    m.learn_unrewarded(s);
                    if rules {
                        m.views.learn(&s.next_state);
                    }
                    continue;
                }
                m.learn(s, &mut index);
                if rules {
                    m.analogies.learn(s);
                    m.rewrites.learn(s);
                    m.additive.learn(s);
                    m.views.learn(&s.next_state);
                }
            }
            if rules {
                m.views.learn_returns(&t.steps);
                m.undoing.learn(&t.steps);
            }
        }
        m.always_shown = kinds_always_shown(trajectories);
        m.additive.fit();
        m.undoing.finish();
        m.views.finish();
        let words = &m.words;
        for r in &mut m.rules {
            r.derive(words);
        }
        // an instruction word's line word, pooled over the rules (None where they disagree)
        let mut pooled: FxHashMap<u32, Option<(u32, usize)>> = FxHashMap::default();
        for (_, _, map) in m.rules.iter().flat_map(|r| &r.function_candidates) {
            for (k, &(v, n)) in map {
                let e = pooled.entry(*k).or_insert(Some((v, 0)));
                *e = match *e {
                    Some((pv, pn)) if pv == v => Some((v, pn + n)),
                    _ => None,
                };
            }
        }
        for r in &mut m.rules {
            r.settle_functions(&pooled);
        }
        // rules whose action-determined line is spelt the same way share one lookup in recall;
        // rules with the same conditions share one match
        let (mut anchors, mut conds): (HashMap<String, u32>, HashMap<String, u32>) =
            Default::default();
        for r in &mut m.rules {
            if let Some(key) = r.action_anchor_key() {
                let n = anchors.len() as u32;
                r.anchor_group = *anchors.entry(key).or_insert(n);
            }
            let n = conds.len() as u32;
            r.cond_group = *conds.entry(r.conditions_key()).or_insert(n);
        }
        // candidates in preference order, so the first rule that applies is the best one
        let rules = &m.rules;
        for list in m.by_action.values_mut() {
            list.sort_by(|&a, &b| rules[b].rank().cmp(&rules[a].rank()).then(a.cmp(&b)));
        }
        if rules_on {
            m.score_successes(trajectories);
            m.analogies.calibrate(trajectories);
        }
        m
    }

    /// Tries every rule that predicts a success on each training transition of its action form
    /// and records how often the real step was a success where the rule applies: where a hidden
    /// cause decides (a restart that works after a crash and fails after a bad configuration,
    /// the two looking alike), the record shows it.
    fn score_successes(&mut self, trajectories: &[Trajectory]) {
        let succeeding: Vec<bool> = self.rules.iter().map(Rule::succeeds).collect();
        if !succeeding.contains(&true) {
            return;
        }
        let mut record = vec![(0u32, 0u32); self.rules.len()];
        for t in trajectories {
            for (i, s) in t.steps.iter().enumerate() {
                if !s.reward_known {
                    continue;
                }
                let ctx = ModelContext::at_step(t, i);
                let (vocab, query, cands) = self.query(&ctx);
                for &ri in cands.iter().filter(|&&ri| succeeding[ri]) {
                    if self.apply(&vocab, &query, &self.rules[ri], &ctx).is_some() {
                        record[ri].1 += 1;
                        record[ri].0 += u32::from(dreamgym_buffer::is_success(s.done, s.reward));
                    }
                }
            }
        }
        for (r, rec) in self.rules.iter_mut().zip(record) {
            r.record = rec;
        }
    }

    /// Number of transitions learned from.
    pub fn transitions(&self) -> usize {
        self.transitions
    }

    /// Number of induced rules.
    pub fn rules(&self) -> usize {
        self.rules.len()
    }

    pub(super) fn example(&mut self, s: &Step) -> Example {
        let mut segs = vec![];
        let tok = |words: &mut Interner, p: Part, text: &str| {
            let t = tokens(text);
            let ids: Vec<u32> = t.iter().map(|(w, _)| words.id(w)).collect();
            (p, ids, t.iter().map(|(_, sp)| *sp).collect::<Vec<bool>>())
        };
        segs.push(tok(&mut self.words, Part::Action, &s.action));
        if s.done || s.reward != 0.0 {
            segs.push(tok(
                &mut self.words,
                Part::Instruction,
                &s.state.instruction,
            ));
        }
        for l in diff(&s.state.lines, &s.next_state.lines) {
            segs.push(tok(&mut self.words, Part::Removed, l));
        }
        // unchanged lines that explain words of the outcome found nowhere else (e.g. the id of an
        // option line when selecting it): they become preconditions that bind those words
        let explained: std::collections::HashSet<u32> = segs
            .iter()
            .flat_map(|(_, t, _)| t.iter().copied())
            .collect();
        let outcome_words: Vec<u32> = diff(&s.next_state.lines, &s.state.lines)
            .into_iter()
            .chain(diff(&s.next_state.admissible, &s.state.admissible))
            .chain(std::iter::once(&s.next_state.feedback))
            .flat_map(|l| tokens(l).into_iter().map(|(w, _)| w).collect::<Vec<_>>())
            .filter_map(|w| self.words.get(w))
            .filter(|t| !explained.contains(t))
            .collect();
        let mut context = 0;
        let removed: HashSet<&str> = diff(&s.state.lines, &s.next_state.lines)
            .into_iter()
            .map(String::as_str)
            .collect();
        for l in s
            .state
            .lines
            .iter()
            .filter(|l| !removed.contains(l.as_str()))
        {
            if context == 4 {
                break;
            }
            // a paying or ending step depends on the instruction: lines sharing its words (the
            // options selected before buying) become preconditions of the reward
            let instruction_words: &[u32] = if s.done || s.reward != 0.0 {
                &segs[1].1
            } else {
                &[]
            };
            if tokens(l).iter().any(|(w, _)| {
                self.words.get(w).is_some_and(|t| {
                    outcome_words.contains(&t) || (instruction_words.contains(&t) && w.len() > 3)
                })
            }) {
                segs.push(tok(&mut self.words, Part::Context, l));
                context += 1;
            }
        }
        for l in diff(&s.next_state.lines, &s.state.lines) {
            segs.push(tok(&mut self.words, Part::Added, l));
        }
        for a in diff(&s.state.admissible, &s.next_state.admissible) {
            segs.push(tok(&mut self.words, Part::AdmRemoved, a));
        }
        for a in diff(&s.next_state.admissible, &s.state.admissible) {
            segs.push(tok(&mut self.words, Part::AdmAdded, a));
        }
        segs.push(tok(&mut self.words, Part::Feedback, &s.next_state.feedback));
        Example {
            segs,
            reward: s.reward,
            done: s.done,
        }
    }

    pub(super) fn learn_unrewarded(&mut self, s: &Step) {
        self.transitions += 1;
        let key = fingerprint(None, &s.state.lines, &s.action);
        record_next(self.unrewarded.entry(key).or_default(), s, false);
    }

    /// The next state transitions without a stated reward led to from this state and action;
    /// the reward is not known, so 0 is assumed at no more than half confidence, and said so.
    pub(super) fn predict_unrewarded(&self, ctx: &ModelContext) -> Option<Prediction> {
        let seen = self
            .unrewarded
            .get(&fingerprint(None, &ctx.state.lines, ctx.action))?;
        let (best, total) = most_seen(seen);
        Some(seen_prediction(
            ctx,
            best,
            format!(
                "Seen in data without rewards: this state and action occurred {total} time(s); {} led to the predicted state. The data states no reward, so reward 0 and not done are assumed, with low confidence.",
                best.count
            ),
            0.5 * best.count as f32 / total as f32,
        ))
    }

    pub(super) fn learn(&mut self, s: &Step, index: &mut HashMap<Vec<u32>, usize>) {
        self.transitions += 1;
        let key = fingerprint(Some(&s.state.instruction), &s.state.lines, &s.action);
        let outcomes = self.memory.entry(key).or_default();
        match outcomes
            .iter_mut()
            .find(|o| o.next == s.next_state && o.reward == s.reward && o.done == s.done)
        {
            Some(o) => o.count += 1,
            None => outcomes.push(Remembered {
                next: s.next_state.clone(),
                reward: s.reward,
                done: s.done,
                count: 1,
            }),
        }
        let dyn_key = fingerprint(None, &s.state.lines, &s.action);
        let neutral = s.reward == 0.0 && !s.done;
        record_next(self.dynamics.entry(dyn_key).or_default(), s, neutral);
        if !self.use_rules {
            return;
        }
        if s.state.lines != s.next_state.lines {
            let t = tokens(&s.action);
            let key = ActionForm::new(t.len(), t.first().map(|(w, _)| self.words.id(w)));
            let brings = self.brings.entry(key).or_default();
            for l in diff(&s.next_state.lines, &s.state.lines) {
                if !brings.contains(line_kind(l)) {
                    brings.insert(line_kind(l).to_string());
                }
            }
            let stats = self.persistence.entry(key).or_default();
            let removed: HashSet<&str> = diff(&s.state.lines, &s.next_state.lines)
                .into_iter()
                .map(String::as_str)
                .collect();
            for l in &s.state.lines {
                let e = stats.entry(line_kind(l).to_string()).or_default();
                if !removed.contains(l.as_str()) {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
            }
        }
        let ex = self.example(s);
        let shape: Vec<(Part, usize)> = ex.segs.iter().map(|(p, t, _)| (*p, t.len())).collect();
        let spacing: Vec<bool> = ex
            .segs
            .iter()
            .flat_map(|(_, _, sp)| sp.iter().copied())
            .collect();
        let mut key: Vec<u32> = shape
            .iter()
            .flat_map(|&(p, n)| [p as u32, n as u32])
            .collect();
        key.extend(spacing.iter().map(|&b| b as u32));
        key.push(ex.segs[0].1.first().copied().unwrap_or(u32::MAX));
        key.push(ex.reward.to_bits());
        key.push(ex.done as u32);
        let tokens: Vec<u32> = ex
            .segs
            .iter()
            .flat_map(|(_, t, _)| t.iter().copied())
            .collect();
        let id = *index.entry(key).or_insert_with(|| {
            self.rules.push(Rule {
                shape: shape.clone(),
                spacing: spacing.clone(),
                columns: vec![vec![]; tokens.len()],
                support: 0,
                reward: ex.reward,
                done: ex.done,
                pattern: vec![],
                open: false,
                anchored: false,
                action_anchor: None,
                n_added: 0,
                n_open: 0,
                anchor_group: 0,
                cond_group: 0,
                line_kinds: vec![],
                constants: 0,
                nvars: 0,
                derived: vec![],
                var_cols: vec![],
                relations: vec![],
                functions: vec![],
                function_candidates: vec![],
                example: s.action.clone(),
                record: (0, 0),
            });
            let r = self.rules.len() - 1;
            let form = ActionForm::new(shape[0].1, ex.segs[0].1.first().copied());
            self.by_action.entry(form).or_default().push(r);
            r
        });
        let rule = &mut self.rules[id];
        rule.support += 1;
        if rule.columns.first().is_none_or(|c| c.len() < MAX_EXAMPLES) {
            for (c, t) in rule.columns.iter_mut().zip(tokens) {
                c.push(t);
            }
        }
    }
}

/// The kinds of line every state of `trajectories` shows, sorted (none without states).
fn kinds_always_shown(trajectories: &[Trajectory]) -> Vec<String> {
    let mut states = trajectories.iter().flat_map(|t| &t.steps).map(|s| &s.state);
    let Some(first) = states.next() else {
        return vec![];
    };
    let mut kinds: Vec<String> = first
        .lines
        .iter()
        .map(|l| line_kind(l).to_string())
        .collect();
    kinds.sort();
    kinds.dedup();
    for state in states {
        kinds.retain(|k| state.lines.iter().any(|l| line_kind(l) == k));
    }
    kinds
}
