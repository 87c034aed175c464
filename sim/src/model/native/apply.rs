//! Applying a matched rule: the next state (exact shape, recall, or read as sets), its reward
//! and the reasoning that says why.

use super::NativeModel;
use super::matching::{
    action_anchor, action_fits, bind_task, fill, fits, match_all, match_rule, unify,
};
use super::recall::RecallSources;
use super::rule::{ActionForm, Matched, Part, Query, Rule, Seg, Tok};
use super::tokens::{Tokenized, Vocab};
use crate::model::lines::{diff, line_kind};
use crate::model::{ModelContext, Prediction};
use dreamgym_buffer::Observation;
use rustc_hash::FxHashMap;
use std::collections::{HashMap, HashSet};
use std::fmt::Write;
impl NativeModel {
    /// How lines of each kind fared under actions of the query's form (see `persistence`).
    pub(super) fn persistence_of(&self, q: &Query) -> Option<&HashMap<String, (usize, usize)>> {
        self.persistence.get(&ActionForm::of(&q.action.ids))
    }

    /// Whether keeping the state's lines outside `removed` would keep a line of a kind that
    /// actions of this form always took away in training (the old place's lines on a move).
    pub(super) fn leaves_stale_lines(
        &self,
        q: &Query,
        lines: &[String],
        removed: &[usize],
    ) -> bool {
        let Some(stats) = self.persistence_of(q) else {
            return false;
        };
        lines.iter().enumerate().any(|(i, l)| {
            !removed.contains(&i)
                && stats
                    .get(line_kind(l))
                    .is_some_and(|&(kept, gone)| kept == 0 && gone > 0)
        })
    }

    /// Try rule `r`; on success the predicted observation and the bindings.
    pub(super) fn apply(
        &self,
        v: &Vocab,
        q: &Query,
        r: &Rule,
        ctx: &ModelContext,
    ) -> Option<(Observation, Vec<Option<u32>>)> {
        if q.unmatched.borrow().contains(&r.cond_group) || !action_fits(r, q) {
            return None;
        }
        let segs: Vec<(Part, Seg)> = r.segments().collect();
        let get = |p: Part| segs.iter().filter(move |(q, _)| *q == p).map(|(_, s)| *s);
        let Matched { b, used, used_adm } = match_rule(r, &segs, q)?;
        if !r.relations_hold(v, &b) || self.leaves_stale_lines(q, &ctx.state.lines, &used) {
            return None;
        }
        let added: Vec<String> = get(Part::Added)
            .map(|p| fill(v, r, p, &b))
            .collect::<Option<_>>()?;
        let adm_added: Vec<String> = get(Part::AdmAdded)
            .map(|p| fill(v, r, p, &b))
            .collect::<Option<_>>()?;
        let feedback = fill(v, r, get(Part::Feedback).next()?, &b)?;
        Some((
            Observation {
                lines: splice(&ctx.state.lines, &used, added),
                instruction: ctx.state.instruction.clone(),
                admissible: splice(&ctx.state.admissible, &used_adm, adm_added),
                feedback,
            },
            b,
        ))
    }

    /// Rule `r` leads somewhere the sources saw (see [`RecallSources`]): the lines it fills
    /// (the place's own line) were all there, and everything else seen there is what its unfilled
    /// lines stand for (what lies on a table the agent walks back to) — or nothing, when the rule
    /// fills every line and the place was seen empty. The prediction and the source's index.
    pub(super) fn recall(
        &self,
        v: &Vocab,
        q: &Query,
        r: &Rule,
        ctx: &ModelContext,
        sources: &RecallSources,
    ) -> Option<(Observation, usize)> {
        if q.unmatched.borrow().contains(&r.cond_group) || !action_fits(r, q) {
            return None;
        }
        let segs: Vec<(Part, Seg)> = r.segments().collect();
        let get = |p: Part| segs.iter().filter(move |(q, _)| *q == p).map(|(_, s)| *s);
        let Matched {
            mut b,
            used,
            used_adm,
        } = match_rule(r, &segs, q)?;
        if !r.relations_hold(v, &b) {
            return None;
        }
        let added: Vec<Seg> = get(Part::Added).collect();
        let filled: Vec<Option<String>> = added.iter().map(|p| fill(v, r, *p, &b)).collect();
        let anchors: Vec<&String> = filled.iter().flatten().collect();
        if anchors.is_empty() {
            return None;
        }
        let k = sources.find(&anchors, &ctx.state.lines)?;
        // everything else seen there then must be what the rule's unfilled lines stand for:
        // none of it when the rule fills every line (a place seen empty)
        let open: Vec<Seg> = added
            .iter()
            .zip(&filled)
            .filter(|(_, f)| f.is_none())
            .map(|(p, _)| *p)
            .collect();
        let mut words = v.clone();
        let pool: Vec<Tokenized> = sources
            .lines_back(k, &self.views)
            .iter()
            .filter(|l| !anchors.contains(l))
            .map(|l| Tokenized::new(&mut words, l))
            .collect();
        if pool.len() != open.len() || !pool.iter().all(|t| open.iter().any(|p| fits(*p, t, &b))) {
            return None;
        }
        if open.is_empty() {
            // the rule's own outcome, seen just so there (a place seen empty) — for moves to
            // somewhere else only
            if !sources.elsewhere(&anchors) {
                return None;
            }
            let obs = self
                .apply(v, q, r, ctx)
                .map(|(obs, _)| obs)
                .or_else(|| self.apply_as_sets(v, q, r, ctx).map(|(obs, ..)| obs))?;
            return (!diff(&ctx.state.lines, &obs.lines).is_empty()).then_some((obs, k));
        }
        let mut used_pool = vec![];
        if !match_all(&open, &pool, &mut used_pool, &mut b) {
            return None;
        }
        let lines_back: Vec<String> = added
            .iter()
            .map(|p| fill(&words, r, *p, &b))
            .collect::<Option<_>>()?;
        let adm_back: Vec<String> = get(Part::AdmAdded)
            .map(|p| fill(&words, r, p, &b))
            .collect::<Option<_>>()?;
        let feedback = fill(&words, r, get(Part::Feedback).next()?, &b)?;
        // lines of kinds that such actions usually take away (the old place's) go too
        let stats = self.persistence_of(q);
        let gone: Vec<usize> = (0..ctx.state.lines.len())
            .filter(|&i| {
                used.contains(&i)
                    || stats
                        .and_then(|st| st.get(line_kind(&ctx.state.lines[i])))
                        .is_some_and(|&(kept, gone)| kept < gone)
            })
            .collect();
        let kept: Vec<String> = (0..ctx.state.lines.len())
            .filter(|i| !gone.contains(i))
            .map(|i| ctx.state.lines[i].clone())
            .collect();
        Some((
            Observation {
                lines: self.views.merge(kept, lines_back),
                instruction: ctx.state.instruction.clone(),
                admissible: splice(&ctx.state.admissible, &used_adm, adm_back),
                feedback,
            },
            k,
        ))
    }

    /// The reward of rule `r`'s outcome here: the rule's, or — for partial credit — the sum of
    /// the criteria this state meets, where such a model reproduces (nearly) every training
    /// transition of the action (said in `why`).
    pub(super) fn reward_of(&self, r: &Rule, ctx: &ModelContext, why: &mut String) -> f32 {
        if r.done
            && let Some(x) = self.additive.reward(ctx.state, ctx.action)
            && x != r.reward
        {
            let _ = write!(
                why,
                " The additive reward model of `{}` (criteria between the instruction and the state, reproducing 99.5% of its training transitions or more) gives {x} instead.",
                ctx.action
            );
            return x;
        }
        r.reward
    }

    /// The prediction of the best rule that applies (lifted rules, see the module docs).
    pub(super) fn by_rule(
        &self,
        vocab: &Vocab,
        query: &Query,
        cands: &[usize],
        ctx: &ModelContext,
    ) -> Option<Prediction> {
        let admissible = ctx.state.admissible.iter().any(|a| a == ctx.action);
        let mut best: Option<(&Rule, Observation, Vec<Option<u32>>)> = None;
        // a weak success (one its visible state often did not bring) only when nothing else applies
        let mut weak = None;
        let mut rest = cands.iter();
        for &ri in rest.by_ref() {
            let r = &self.rules[ri];
            if let Some((obs, b)) = self.apply(vocab, query, r, ctx) {
                if r.weak_success() {
                    weak = weak.or(Some((r, obs, b)));
                    continue;
                }
                best = Some((r, obs, b));
                break;
            }
        }
        if best.is_none() {
            best = weak;
        }
        // a paying or ending step: rules that pay differently may match too (partial credit is
        // a sum of criteria); take the one with an example most like the query
        if let Some((r0, _, b0)) = &best
            && (r0.reward != 0.0 || r0.done)
        {
            let r0: &Rule = r0;
            let mut score = r0.resemblance(vocab, b0);
            for &ri in rest {
                let r = &self.rules[ri];
                // only rules that end the episode alike and pay otherwise
                if r.done != r0.done || r.reward == r0.reward {
                    continue;
                }
                if let Some((obs, b)) = self.apply(vocab, query, r, ctx) {
                    let s = r.resemblance(vocab, &b);
                    if s > score {
                        score = s;
                        best = Some((r, obs, b));
                    }
                }
            }
        }
        if let Some((r, obs, b)) = best {
            let mut why = format!(
                "Rule induced from {} transition(s) like `{}`: {}.",
                r.support,
                r.example,
                if admissible {
                    "the action is admissible here"
                } else {
                    "the action is not admissible here"
                }
            );
            let bound: Vec<String> = b
                .iter()
                .enumerate()
                .filter_map(|(i, x)| x.map(|t| format!("?{i}={}", vocab.word(t))))
                .collect();
            if !bound.is_empty() {
                let _ = write!(why, " Bindings: {}.", bound.join(", "));
            }
            let gone = diff(&ctx.state.lines, &obs.lines);
            let new = diff(&obs.lines, &ctx.state.lines);
            if !gone.is_empty() || !new.is_empty() {
                let _ = write!(why, " It removes {gone:?} and adds {new:?}.");
            }
            let _ = write!(
                why,
                " Reward {}{}.",
                r.reward,
                if r.done { ", episode ends" } else { "" }
            );
            if let Some(e) = ctx.retrieved.first() {
                let _ = write!(why, " Nearest retrieved transition: `{}`.", e.action);
            }
            let reward = self.reward_of(r, ctx, &mut why);
            let mut conf = r.support as f32 / (r.support as f32 + 1.0);
            if r.succeeds() && r.record.1 > 0 {
                let (held, tried) = r.record;
                let _ = write!(
                    why,
                    " Where this rule applies in training, {held} of {tried} such steps succeeded{}.",
                    if r.weak_success() {
                        "; no other rule explains this step, so it is predicted with that as its confidence"
                    } else {
                        ""
                    }
                );
                conf *= r.record_share();
            }
            return Some(Prediction {
                reasoning: why,
                next_state: obs,
                reward,
                done: r.done,
                success: dreamgym_buffer::is_success(r.done, reward),
                confidence: conf,
            });
        }
        None
    }

    /// Apply rule `r` with its removed lines read as *sets* (see the module docs; tried when no
    /// rule of the exact shape applies): each removed pattern takes away every line it fits, its own
    /// variables free per line and the rest bound as one, so a rule learnt leaving a place with
    /// one object applies to a place with three. Removed admissible-action patterns likewise.
    /// Added lines the bindings cannot fill are what a place visited for the first time holds:
    /// taken from the episode's history when the agent left that place before, else left out.
    /// `None` when some removed pattern fits no line, when a line of a kind such actions always
    /// take away would stay, or when the feedback cannot be filled.
    pub(super) fn apply_as_sets(
        &self,
        v: &Vocab,
        q: &Query,
        r: &Rule,
        ctx: &ModelContext,
    ) -> Option<(Observation, Vec<Option<u32>>, Option<usize>)> {
        if !action_fits(r, q) {
            return None;
        }
        let segs: Vec<(Part, Seg)> = r.segments().collect();
        let get = |p: Part| segs.iter().filter(move |(x, _)| *x == p).map(|(_, s)| *s);
        let vars = |seg: &Seg| -> Vec<u32> {
            let mut out: Vec<u32> = seg
                .toks
                .iter()
                .filter_map(|t| if let Tok::Var(x) = t { Some(*x) } else { None })
                .collect();
            out.sort_unstable();
            out.dedup();
            out
        };
        // in how many segments (admissible-action changes aside) each variable occurs
        let mut occurs = vec![0usize; r.nvars as usize];
        for (part, seg) in &segs {
            if !matches!(part, Part::AdmRemoved | Part::AdmAdded) {
                for x in vars(seg) {
                    occurs[x as usize] += 1;
                }
            }
        }
        let mut b = bind_task(r, &segs, q)?;
        let mut used: Vec<usize> = vec![];
        for p in get(Part::Removed) {
            let own: Vec<u32> = vars(&p)
                .into_iter()
                .filter(|&x| occurs[x as usize] == 1)
                .collect();
            let mut any = false;
            for (i, line) in q.lines.iter().enumerate() {
                if used.contains(&i) {
                    continue;
                }
                let mut lb = b.clone();
                for &x in &own {
                    lb[x as usize] = None;
                }
                // (a line's own words are checked against the rule's functions here: they are
                // not kept in the bindings)
                if unify(p, line, &mut lb) && r.functions_hold(&lb) {
                    for (x, val) in lb.into_iter().enumerate() {
                        if !own.contains(&(x as u32)) {
                            b[x] = val;
                        }
                    }
                    used.push(i);
                    any = true;
                }
            }
            if !any {
                return None;
            }
        }
        let context: Vec<Seg> = get(Part::Context).collect();
        let mut taken = used.clone();
        if !match_all(&context, &q.lines, &mut taken, &mut b) {
            return None;
        }
        if !r.relations_hold(v, &b) || self.leaves_stale_lines(q, &ctx.state.lines, &used) {
            return None;
        }
        let mut used_adm: Vec<usize> = vec![];
        for p in get(Part::AdmRemoved) {
            for (i, a) in q.admissible.iter().enumerate() {
                if !used_adm.contains(&i) && fits(p, a, &b) {
                    used_adm.push(i);
                }
            }
        }
        let feedback = fill(v, r, get(Part::Feedback).next()?, &b)?;
        let added: Vec<String> = get(Part::Added).filter_map(|p| fill(v, r, p, &b)).collect();
        let mut adm_added: Vec<String> = get(Part::AdmAdded)
            .filter_map(|p| fill(v, r, p, &b))
            .collect();
        let mut lines = added;
        // back at a place left earlier: everything lost on leaving it comes back
        let back = (!lines.is_empty())
            .then(|| {
                ctx.history.iter().enumerate().rev().find(|(_, h)| {
                    let gone = diff(&h.state.lines, &h.next_state.lines);
                    lines.iter().all(|a| gone.contains(&a))
                })
            })
            .flatten();
        if let Some((_, h)) = back {
            for l in diff(&h.state.lines, &h.next_state.lines) {
                if !lines.contains(l) {
                    lines.push(l.clone());
                }
            }
            for a in diff(&h.state.admissible, &h.next_state.admissible) {
                if !adm_added.contains(a) {
                    adm_added.push(a.clone());
                }
            }
        }
        let kept_adm: Vec<usize> = (0..ctx.state.admissible.len())
            .filter(|i| adm_added.contains(&ctx.state.admissible[*i]))
            .collect();
        used_adm.retain(|i| !kept_adm.contains(i));
        adm_added.retain(|a| !ctx.state.admissible.contains(a));
        Some((
            Observation {
                lines: splice(&ctx.state.lines, &used, lines),
                instruction: ctx.state.instruction.clone(),
                admissible: splice(&ctx.state.admissible, &used_adm, adm_added),
                feedback,
            },
            b,
            back.map(|(k, _)| k),
        ))
    }

    /// The prediction of the best rule that applies with its removed lines read as sets.
    pub(super) fn by_rule_as_sets(
        &self,
        vocab: &Vocab,
        query: &Query,
        cands: &[usize],
        ctx: &ModelContext,
    ) -> Option<Prediction> {
        let (r, obs, back) = cands.iter().find_map(|&ri| {
            let r = &self.rules[ri];
            self.apply_as_sets(vocab, query, r, ctx)
                .map(|(obs, _, back)| (r, obs, back))
        })?;
        let gone = diff(&ctx.state.lines, &obs.lines);
        let new = diff(&obs.lines, &ctx.state.lines);
        let mut why = format!(
            "Rule induced from {} transition(s) like `{}`, applied to every line of the forms it removes: it removes {gone:?} and adds {new:?}.",
            r.support, r.example
        );
        match back {
            Some(k) => {
                let _ = write!(
                    why,
                    " Back at a place left at step {k}: recalled what was there."
                );
            }
            None if r.open => {
                let _ = write!(
                    why,
                    " What this place holds was never seen in this episode: predicting nothing more."
                );
            }
            None => {}
        }
        let _ = write!(
            why,
            " Reward {}{}.",
            r.reward,
            if r.done { ", episode ends" } else { "" }
        );
        Some(Prediction {
            reasoning: why,
            next_state: obs,
            reward: r.reward,
            done: r.done,
            success: dreamgym_buffer::is_success(r.done, r.reward),
            confidence: 0.5 * r.support as f32 / (r.support as f32 + 1.0),
        })
    }

    /// Recall (see the module docs; tried before memory and lifted rules): a rule that leads to a
    /// place the agent left earlier in this episode, or that a real episode of this task instance
    /// showed on arrival (`ctx.retrieved`, as [`super::env::ModelEnv`] passes them), filled with
    /// the lines seen there, or confirmed by them. The episode's own history wins over retrieved
    /// experience (see [`RecallSources`]). `seen` tells whether some source saw where the action
    /// leads.
    /// The query (tokenized state and candidate rules) is computed into `q` when recall gets that
    /// far, for the later stages to reuse.
    pub(super) fn recall_any<'a>(
        &'a self,
        ctx: &ModelContext,
        sources: &RecallSources,
        q: &mut Option<(Vocab<'a>, Query, &'a [usize])>,
        seen: &mut bool,
    ) -> Option<Prediction> {
        let (vocab, query, cands) = q.get_or_insert_with(|| self.query(ctx));
        let lost_set: HashSet<&str> = sources.lost.iter().flatten().map(|l| l.as_str()).collect();
        let mut seen_there: FxHashMap<u32, Option<(usize, usize)>> = FxHashMap::default();
        for &ri in cands.iter().filter(|&&ri| self.rules[ri].anchored) {
            let r = &self.rules[ri];
            // where the action leads, as the action alone says: some source must have seen it,
            // with about as many lines as the rule adds
            if r.action_anchor.is_none() && !action_fits(r, query) {
                continue;
            }
            if r.action_anchor.is_some() {
                let there = *seen_there.entry(r.anchor_group).or_insert_with(|| {
                    let anchor = action_anchor(vocab, query, r)??;
                    if !lost_set.contains(anchor.as_str()) {
                        return None;
                    }
                    sources
                        .find(&[&anchor], &ctx.state.lines)
                        .map(|k| (sources.lines_there(k).count(), sources.lost[k].len()))
                });
                let Some((there, lost)) = there else { continue };
                *seen = true;
                // the rule's open lines are what is there besides its own lines, which were all
                // there (some may be shown here now)
                if there < r.n_open + 1 || there > r.n_added || lost < r.n_added {
                    continue;
                }
            }
            *seen = true;
            if let Some((obs, k)) = self.recall(vocab, query, r, ctx, sources) {
                let source = format!("leads to {}", sources.describe(k));
                let found = match diff(&obs.lines, &ctx.state.lines).len() {
                    n if r.open => format!("recalled what was seen there ({n} line(s))"),
                    _ => "nothing else was seen there".to_string(),
                };
                let mut why = format!(
                    "Rule induced from {} transition(s) like `{}` {source}; {found}. Reward {}{}.",
                    r.support,
                    r.example,
                    r.reward,
                    if r.done { ", episode ends" } else { "" }
                );
                let reward = self.reward_of(r, ctx, &mut why);
                return Some(Prediction {
                    reasoning: why,
                    next_state: obs,
                    reward,
                    done: r.done,
                    success: dreamgym_buffer::is_success(r.done, reward),
                    confidence: 0.9,
                });
            }
        }
        None
    }
}

/// `items` without the indices in `removed`, with `added` where the first removed item was.
pub(super) fn splice(items: &[String], removed: &[usize], added: Vec<String>) -> Vec<String> {
    let at = removed.iter().min().copied().unwrap_or(items.len());
    let mut out = Vec::with_capacity(items.len() + added.len());
    let mut added = Some(added);
    for (i, x) in items.iter().enumerate() {
        if i == at {
            out.extend(added.take().unwrap_or_default());
        }
        if !removed.contains(&i) {
            out.push(x.clone());
        }
    }
    out.extend(added.unwrap_or_default());
    out
}
