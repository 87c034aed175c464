//! Analogy: the same action in another world, its edits merged into this state. Free text
//! defeats rules of a fixed shape — "a counter that has a raw red potato, a red apple, and a
//! cookbook on it" and the same counter with a yellow potato differ in length, so no rule learnt
//! on one matches the other. But taking the cookbook edits the counter's sentence the same way in
//! both. For each line a training step of the same action changed, the model finds the line of
//! this state most like it (same kind, at least [`MIN_LIKENESS`] of its words in order) and
//! merges the two edits word by word, as `diff3` merges two branches of a file: what this world
//! differs in (the yellow potato) and what the action did (the cookbook and its comma gone) must
//! touch different words, or the example is not used. Inserted lines come as they are; a line
//! the example removed must be in this state (nearly) word for word.
//!
//! It is tried last, before the failure semantics, on admissible actions: examples that paid or
//! ended an episode are not used (rewards stay with the stages that learnt them), and among
//! examples that merge, the one whose lines differ least from this state's wins.

use super::tokens::tokens;
use crate::model::lines::{diff, line_kind};
use crate::model::{ModelContext, Prediction};
use dreamgym_buffer::{Observation, Step, Trajectory};
use rustc_hash::FxHashMap;
use std::hash::BuildHasher;

/// Most examples kept per action (each with a different change).
const MAX_PER_ACTION: usize = 24;

/// Least share of an example line's words a state line must have, in order, to stand for it.
const MIN_LIKENESS: f32 = 0.6;

/// Most other actions of the same first word whose examples are renamed for one prediction.
const MAX_RENAMED_ACTIONS: usize = 12;

/// Most examples of each such action renamed.
const MAX_RENAMED_EXAMPLES: usize = 8;

/// Longest line (in words) merged; longer lines (web pages) are left to the other stages.
const MAX_WORDS: usize = 160;

/// A line with its words: their spans, spacing and hashes (compared as numbers), and the
/// hashes sorted (for a cheap bound on how alike two lines can be).
#[derive(Debug, Clone)]
struct Text {
    text: String,
    spans: Vec<(u32, u32, bool)>,
    hashes: Vec<u64>,
    sorted: Vec<u64>,
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Text {
    fn new(text: &str) -> Self {
        let base = text.as_ptr() as usize;
        let mut spans = vec![];
        let mut hashes = vec![];
        for (w, space) in tokens(text) {
            let start = w.as_ptr() as usize - base;
            spans.push((start as u32, (start + w.len()) as u32, space));
            hashes.push(rustc_hash::FxBuildHasher.hash_one(w));
        }
        let mut sorted = hashes.clone();
        sorted.sort_unstable();
        Text {
            text: text.to_string(),
            spans,
            hashes,
            sorted,
        }
    }

    fn len(&self) -> usize {
        self.hashes.len()
    }

    fn word(&self, i: usize) -> Word<'_> {
        let (a, b, space) = self.spans[i];
        (&self.text[a as usize..b as usize], space)
    }

    fn words(&self, range: std::ops::Range<usize>) -> Vec<Word<'_>> {
        range.map(|i| self.word(i)).collect()
    }
}

/// What one training step of an action changed.
#[derive(Debug, Clone, PartialEq)]
struct Example {
    /// Pairs of a line it removed and the line of the same kind it added in its place (most
    /// alike), then removed lines with no counterpart (`None`).
    changed: Vec<(Text, Option<Text>)>,
    /// Added lines with no removed counterpart.
    added: Vec<String>,
    /// Admissible actions it took away and brought.
    admissible: (Vec<String>, Vec<String>),
    /// The feedback.
    feedback: String,
}

/// Examples of each action text's changes, from the training steps that paid nothing and did
/// not end an episode.
#[derive(Debug, Default)]
pub(super) struct Analogies {
    by_action: FxHashMap<String, Vec<Example>>,
    /// The actions with examples (and their words), by their first word.
    by_verb: FxHashMap<String, Vec<(String, Text)>>,
    /// The confidence of a merge of the same action's example and of a renamed one: the share
    /// right when each training step is predicted from the other examples ([`Self::calibrate`];
    /// 0.5 before).
    confidence: Option<[f32; 2]>,
}

/// Most training steps [`Analogies::calibrate`] predicts.
const CALIBRATION_STEPS: usize = 1000;

/// A word and whether a space comes before it.
type Word<'a> = (&'a str, bool);

/// One side's edit of a base text: base words `start..end` become `with`.
#[derive(Debug, Clone, PartialEq)]
struct Edit<'a> {
    start: usize,
    end: usize,
    with: Vec<Word<'a>>,
}

impl Analogies {
    /// Keeps what a training step changed, if it paid nothing, ended nothing and changed some
    /// lines but not most: a step that replaced most of the state (a move to another place)
    /// says nothing about another state's lines, which go too (rules read as sets, recall and
    /// undoing handle those).
    pub(super) fn learn(&mut self, s: &Step) {
        if s.reward != 0.0 || s.done || s.state.lines == s.next_state.lines {
            return;
        }
        if 2 * diff(&s.state.lines, &s.next_state.lines).len() > s.state.lines.len() {
            return;
        }
        let list = self.by_action.entry(s.action.clone()).or_insert_with(|| {
            let verb = tokens(&s.action).first().map_or("", |w| w.0).to_string();
            let action = (s.action.clone(), Text::new(&s.action));
            self.by_verb.entry(verb).or_default().push(action);
            vec![]
        });
        if list.len() >= MAX_PER_ACTION {
            return;
        }
        let example = Example::of(s);
        if !list.contains(&example) {
            list.push(example);
        }
    }

    /// The state after the action, by the example of it that merges into this state with the
    /// fewest differences (see the module docs); `None` when no example merges.
    pub(super) fn predict(&self, ctx: &ModelContext) -> Option<Prediction> {
        let (cost, best, lines, like) = self.merged(&ctx.state.lines, ctx.action, None)?;
        let mut admissible: Vec<String> = ctx
            .state
            .admissible
            .iter()
            .filter(|a| !best.admissible.0.contains(a))
            .cloned()
            .collect();
        for a in &best.admissible.1 {
            if !admissible.contains(a) {
                admissible.push(a.clone());
            }
        }
        admissible.sort();
        Some(Prediction {
            reasoning: format!(
                "No rule of this state's shape explains `{}`; a training step of {} changed lines like these, and its edits merge word by word into this state's ({cost} word(s) differ). Reward 0.",
                ctx.action,
                like.as_ref()
                    .map_or("the same action".to_string(), |a| format!(
                        "`{a}` (its words renamed to this action's)"
                    ))
            ),
            next_state: Observation {
                lines,
                admissible,
                feedback: best.feedback.clone(),
                instruction: ctx.state.instruction.clone(),
            },
            reward: 0.0,
            done: false,
            success: false,
            confidence: self.confidence.map_or(0.5, |c| c[like.is_some() as usize]),
        })
    }

    /// The best merge for `action` from a state of `lines`: the same action's examples (but
    /// `exclude`) first, then renamed ones (the other action is returned with those).
    fn merged(
        &self,
        lines: &[String],
        action: &str,
        exclude: Option<&Example>,
    ) -> Option<(usize, Example, Vec<String>, Option<String>)> {
        let state: Vec<Text> = lines.iter().map(|l| Text::new(l)).collect();
        let same = self.by_action.get(action).and_then(|examples| {
            best_merge(examples.iter().filter(|e| Some(*e) != exclude), &state)
        });
        match same {
            Some((cost, e, lines)) => Some((cost, e.clone(), lines, None)),
            None => {
                // then the most alike actions of the same verb, their words renamed to this one's
                let (cost, e, lines, other) = self.renamed_merge(action, &state)?;
                Some((cost, e, lines, Some(other)))
            }
        }
    }

    /// Sets the confidence of each kind of merge to the share of training steps it predicts
    /// right from the other examples (each step's own change left out, as where the stage is
    /// used no memory or rule knew it; Laplace-smoothed), over up to [`CALIBRATION_STEPS`]
    /// steps spread over the data.
    pub(super) fn calibrate(&mut self, trajectories: &[Trajectory]) {
        let usable = |s: &&Step| {
            s.reward_known && s.reward == 0.0 && !s.done && s.state.lines != s.next_state.lines
        };
        let total = trajectories
            .iter()
            .flat_map(|t| &t.steps)
            .filter(usable)
            .count();
        let stride = total.div_ceil(CALIBRATION_STEPS).max(1);
        let mut counts = [(0u32, 0u32); 2];
        for s in trajectories
            .iter()
            .flat_map(|t| &t.steps)
            .filter(usable)
            .step_by(stride)
        {
            let own = Example::of(s);
            if let Some((_, _, lines, other)) = self.merged(&s.state.lines, &s.action, Some(&own)) {
                let c = &mut counts[other.is_some() as usize];
                c.0 += crate::model::fidelity::same_set(&lines, &s.next_state.lines) as u32;
                c.1 += 1;
            }
        }
        self.confidence = Some(counts.map(|(right, n)| (right as f32 + 1.0) / (n as f32 + 2.0)));
    }
}

/// The example of the fewest differing words that merges into the state, with its lines.
fn best_merge<'e>(
    examples: impl Iterator<Item = &'e Example>,
    state: &[Text],
) -> Option<(usize, &'e Example, Vec<String>)> {
    let mut matched: Vec<(usize, &Example, Vec<usize>)> = examples
        .filter_map(|e| {
            let (lines, cost) = match_example(e, state)?;
            Some((cost, e, lines))
        })
        .collect();
    matched.sort_by_key(|(cost, ..)| *cost);
    matched
        .into_iter()
        .find_map(|(cost, e, at)| Some((cost, e, apply_example(e, state, &at)?)))
}

impl Analogies {
    /// The best merge among examples of other actions of the same first word, each renamed:
    /// the words its action has where this action has others (`cookbook` for `red apple`) are
    /// replaced by this action's throughout its lines. Actions that differ by words one lacks,
    /// examples whose changed lines do not show the words renamed, and renamings that would
    /// collide (this action's words already in the example) are not used, and lines of this
    /// state that show the example's words are not matched.
    fn renamed_merge(
        &self,
        action_text: &str,
        state: &[Text],
    ) -> Option<(usize, Example, Vec<String>, String)> {
        let action = Text::new(action_text);
        if action.len() == 0 {
            return None;
        }
        let others = self.by_verb.get(action.word(0).0)?;
        let mut ranked: Vec<(usize, &String, &Text)> = others
            .iter()
            .filter(|(a, _)| a != action_text)
            .map(|(a, t)| (common_len(&t.hashes, &action.hashes), a, t))
            .collect();
        ranked.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(y.1)));
        // the removed lines of each usable example renamed and matched first (most are not
        // like this state's); the rest of an example is renamed only when its turn comes
        let mut renamings: Vec<(&String, Renames)> = vec![];
        let mut matched: Vec<(usize, usize, &Example, Vec<usize>)> = vec![];
        for (_, other, other_text) in ranked.into_iter().take(MAX_RENAMED_ACTIONS) {
            let renames: Renames = edits(other_text, &action)
                .into_iter()
                .map(|e| {
                    (
                        Text::new(&render(&other_text.words(e.start..e.end))),
                        Text::new(&render(&e.with)),
                    )
                })
                .collect();
            if renames
                .iter()
                .any(|(from, to)| from.len() == 0 || to.len() == 0)
            {
                continue;
            }
            // a line of this state that names what the example named stands for nothing
            // renamed (the fridge beside the cupboard): such lines are not matched
            let forbidden: Vec<&str> = renames.iter().map(|(from, _)| from.text.as_str()).collect();
            for e in self.by_action[other].iter().take(MAX_RENAMED_EXAMPLES) {
                if e.collides(&renames) || !e.mentions(&renames) {
                    continue;
                }
                let removed: Vec<Text> =
                    e.changed.iter().map(|(r, _)| r.renamed(&renames)).collect();
                let paired = e.changed.iter().map(|(_, a)| a.is_some());
                if let Some((at, cost)) = match_lines(removed.iter().zip(paired), state, &forbidden)
                {
                    matched.push((cost, renamings.len(), e, at));
                }
            }
            renamings.push((other, renames));
        }
        matched.sort_by_key(|(cost, ..)| *cost);
        matched.into_iter().find_map(|(cost, k, e, at)| {
            let (other, renames) = &renamings[k];
            let e = e.renamed(renames);
            let lines = apply_example(&e, state, &at)?;
            Some((cost, e, lines, (*other).clone()))
        })
    }
}

/// Pairs of words of another action and the words this action has in their place.
type Renames = Vec<(Text, Text)>;

impl Example {
    /// What a training step changed.
    fn of(s: &Step) -> Example {
        let removed = diff(&s.state.lines, &s.next_state.lines);
        let mut added: Vec<Text> = diff(&s.next_state.lines, &s.state.lines)
            .into_iter()
            .map(|l| Text::new(l))
            .collect();
        let mut changed = vec![];
        for r in removed {
            let r = Text::new(r);
            // its counterpart, if some added line of its kind is alike enough to be one
            let best = added
                .iter()
                .enumerate()
                .filter(|(_, a)| line_kind(&a.text) == line_kind(&r.text))
                .map(|(i, a)| (i, likeness(&r, a)))
                .filter(|(_, like)| *like >= MIN_LIKENESS)
                .max_by(|x, y| x.1.total_cmp(&y.1));
            let partner = best.map(|(i, _)| added.remove(i));
            changed.push((r, partner));
        }
        Example {
            changed,
            added: added.into_iter().map(|t| t.text).collect(),
            admissible: (
                diff(&s.state.admissible, &s.next_state.admissible)
                    .into_iter()
                    .cloned()
                    .collect(),
                diff(&s.next_state.admissible, &s.state.admissible)
                    .into_iter()
                    .cloned()
                    .collect(),
            ),
            feedback: s.next_state.feedback.clone(),
        }
    }

    /// The lines it changed: each removed line, and its counterpart where it has one.
    fn changed_lines(&self) -> impl Iterator<Item = &Text> {
        self.changed
            .iter()
            .flat_map(|(r, a)| std::iter::once(r).chain(a.iter()))
    }

    /// Whether a new name is already in this example's lines (the renamed text would be
    /// ambiguous).
    fn collides(&self, renames: &Renames) -> bool {
        self.changed_lines().any(|l| {
            renames
                .iter()
                .any(|(_, to)| l.text.contains(to.text.as_str()))
        })
    }

    /// Whether each renamed span occurs in a line this example changed: renaming words its
    /// lines do not show would apply another action's change unrenamed.
    fn mentions(&self, renames: &Renames) -> bool {
        renames.iter().all(|(from, _)| {
            self.changed_lines().any(|l| {
                l.hashes
                    .windows(from.len())
                    .any(|w| w == from.hashes.as_slice())
            })
        })
    }

    /// This example with `renames` applied to its lines, admissible actions and feedback.
    fn renamed(&self, renames: &Renames) -> Example {
        let all = |v: &[String]| v.iter().map(|x| rename(x, renames)).collect::<Vec<_>>();
        Example {
            changed: self
                .changed
                .iter()
                .map(|(r, a)| (r.renamed(renames), a.as_ref().map(|a| a.renamed(renames))))
                .collect(),
            added: all(&self.added),
            admissible: (all(&self.admissible.0), all(&self.admissible.1)),
            feedback: rename(&self.feedback, renames),
        }
    }
}

impl Text {
    /// This text with every whole-word occurrence of each rename's first words replaced by
    /// its second.
    fn renamed(&self, renames: &Renames) -> Text {
        let mut out: Vec<Word> = Vec::with_capacity(self.len());
        let mut changed = false;
        let mut i = 0;
        'words: while i < self.len() {
            for (from, to) in renames {
                if self.hashes[i..].starts_with(&from.hashes) {
                    let space = self.word(i).1;
                    for k in 0..to.len() {
                        let (w, sp) = to.word(k);
                        out.push((w, if k == 0 { space } else { sp }));
                    }
                    i += from.len();
                    changed = true;
                    continue 'words;
                }
            }
            out.push(self.word(i));
            i += 1;
        }
        if changed {
            Text::new(&render(&out))
        } else {
            self.clone()
        }
    }
}

/// `text` renamed (see [`Text::renamed`]).
fn rename(text: &str, renames: &Renames) -> String {
    Text::new(text).renamed(renames).text
}

/// For each line an example changed, the line of this state that stands for it (the most
/// alike unused line of the same kind, bounded cheaply before the exact count), and how many
/// words they differ in, in all; `None` when a line has no counterpart here.
fn match_example(e: &Example, state: &[Text]) -> Option<(Vec<usize>, usize)> {
    match_lines(e.changed.iter().map(|(r, a)| (r, a.is_some())), state, &[])
}

/// [`match_example`] over an example's removed lines, each with whether it has a counterpart.
fn match_lines<'t>(
    changed: impl ExactSizeIterator<Item = (&'t Text, bool)>,
    state: &[Text],
    forbidden: &[&str],
) -> Option<(Vec<usize>, usize)> {
    let mut at = Vec::with_capacity(changed.len());
    let mut cost = 0;
    for (removed, paired) in changed {
        if removed.len() > MAX_WORDS {
            return None;
        }
        let kind = line_kind(&removed.text);
        // candidates by their bound (shared words over the longer line's), best first: the exact
        // count stops once no bound can beat the best found
        let mut bounds: Vec<(f32, usize)> = state
            .iter()
            .enumerate()
            .filter(|(i, t)| {
                !at.contains(i)
                    && t.len() <= MAX_WORDS
                    && line_kind(&t.text) == kind
                    && !forbidden.iter().any(|f| t.text.contains(f))
            })
            .map(|(i, t)| {
                let longer = removed.len().max(t.len()) as f32;
                (shared(&removed.sorted, &t.sorted) as f32 / longer, i)
            })
            .filter(|(bound, _)| *bound >= MIN_LIKENESS)
            .collect();
        bounds.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
        let mut best: Option<(usize, f32, usize)> = None;
        for (bound, i) in bounds {
            if best.is_some_and(|b| bound <= b.1) {
                break;
            }
            let t = &state[i];
            let common = common_len(&removed.hashes, &t.hashes);
            let like = common as f32 / removed.len().max(t.len()) as f32;
            if like >= MIN_LIKENESS && best.is_none_or(|b| like > b.1 || (like == b.1 && i < b.0)) {
                best = Some((i, like, common));
            }
        }
        let (i, like, common) = best?;
        // a removed line must be this one, near enough word for word
        if !paired && like < 0.9 {
            return None;
        }
        at.push(i);
        cost += removed.len() + state[i].len() - 2 * common;
    }
    Some((at, cost))
}

/// The state with an example's changes merged into the lines `at` stands for them; `None` when
/// an edit of this world and one of the action's touch the same words.
fn apply_example(e: &Example, state: &[Text], at: &[usize]) -> Option<Vec<String>> {
    let mut lines: Vec<Option<String>> = state.iter().map(|t| Some(t.text.clone())).collect();
    for ((removed, added), &i) in e.changed.iter().zip(at) {
        lines[i] = match added {
            None => None,
            Some(added) => {
                let (ours, theirs) = (edits(removed, &state[i]), edits(removed, added));
                Some(render(&merge(removed, ours, theirs)?))
            }
        };
    }
    let mut out: Vec<String> = lines.into_iter().flatten().collect();
    for a in &e.added {
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    Some(out)
}

/// How many words two sorted word lists share (counted with multiplicity): a bound on their
/// longest common subsequence.
fn shared(a: &[u64], b: &[u64]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// The share of the longer line's words that a longest common subsequence keeps.
fn likeness(a: &Text, b: &Text) -> f32 {
    if a.len() == 0 {
        return 0.0;
    }
    common_len(&a.hashes, &b.hashes) as f32 / a.len().max(b.len()) as f32
}

/// The length of a longest common subsequence of two word lists (two rows of the table: most
/// calls only rank lines).
fn common_len(a: &[u64], b: &[u64]) -> usize {
    let mut prev = vec![0u16; b.len() + 1];
    let mut row = vec![0u16; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            row[j + 1] = if x == y {
                prev[j] + 1
            } else {
                row[j].max(prev[j + 1])
            };
        }
        std::mem::swap(&mut prev, &mut row);
    }
    prev[b.len()] as usize
}

/// The pairs of positions of a longest common subsequence of two word lists.
fn common(a: &[u64], b: &[u64]) -> Vec<(usize, usize)> {
    let (n, m) = (a.len(), b.len());
    // suffix lengths: len[i][j] = LCS of a[i..] and b[j..]
    let mut len = vec![0u16; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            len[at(i, j)] = if a[i] == b[j] {
                len[at(i + 1, j + 1)] + 1
            } else {
                len[at(i + 1, j)].max(len[at(i, j + 1)])
            };
        }
    }
    let (mut i, mut j, mut pairs) = (0, 0, vec![]);
    while i < n && j < m {
        if a[i] == b[j] {
            pairs.push((i, j));
            i += 1;
            j += 1;
        } else if len[at(i + 1, j)] >= len[at(i, j + 1)] {
            i += 1;
        } else {
            j += 1;
        }
    }
    pairs
}

/// The edits that turn `base` into `other`, from their longest common subsequence.
fn edits<'a>(base: &Text, other: &'a Text) -> Vec<Edit<'a>> {
    let mut out = vec![];
    let (mut i, mut j) = (0, 0);
    let pairs = common(&base.hashes, &other.hashes);
    for (bi, oj) in pairs.into_iter().chain([(base.len(), other.len())]) {
        if bi > i || oj > j {
            out.push(Edit {
                start: i,
                end: bi,
                with: other.words(j..oj),
            });
        }
        (i, j) = (bi + 1, oj + 1);
    }
    out
}

/// The three-way merge of two sides' edits of `base`: `None` when they touch the same words
/// (an insertion inside the other side's replaced words counts); insertions at one place go
/// ours first.
fn merge<'a>(base: &'a Text, ours: Vec<Edit<'a>>, theirs: Vec<Edit<'a>>) -> Option<Vec<Word<'a>>> {
    for o in &ours {
        for t in &theirs {
            if o == t {
                continue;
            }
            // (an insertion strictly inside words the other side replaces touches them)
            let touches = |p: usize, e: &Edit| e.start < p && p < e.end;
            let overlap = o.start < t.end && t.start < o.end;
            let point = (o.start == o.end && touches(o.start, t))
                || (t.start == t.end && touches(t.start, o));
            if overlap || point {
                return None;
            }
        }
    }
    let mut all: Vec<(Edit, u8)> = ours.into_iter().map(|e| (e, 0)).collect();
    for t in theirs {
        if !all.iter().any(|(e, _)| *e == t) {
            all.push((t, 1));
        }
    }
    all.sort_by_key(|(e, side)| (e.start, e.end, *side));
    let mut out = vec![];
    let mut p = 0;
    for (e, _) in all {
        if e.start < p {
            return None;
        }
        out.extend(base.words(p..e.start));
        out.extend(e.with);
        p = e.end;
    }
    out.extend(base.words(p..base.len()));
    Some(out)
}

/// Words back to text.
fn render(words: &[Word]) -> String {
    let mut s = String::new();
    for (i, (w, space)) in words.iter().enumerate() {
        if *space && i > 0 {
            s.push(' ');
        }
        s.push_str(w);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(base: &str, ours: &str, theirs: &str) -> Option<String> {
        let (b, o, t) = (Text::new(base), Text::new(ours), Text::new(theirs));
        merge(&b, edits(&b, &o), edits(&b, &t)).map(|w| render(&w))
    }

    #[test]
    fn a_world_difference_and_the_action_edit_merge_when_apart() {
        // taking the cookbook from a counter whose potato is another colour here
        assert_eq!(
            merged(
                "a counter that has a raw yellow potato, a red apple, and a cookbook on it",
                "a counter that has a raw red potato, a red apple, and a cookbook on it",
                "a counter that has a raw yellow potato, and a red apple on it",
            )
            .as_deref(),
            Some("a counter that has a raw red potato, and a red apple on it")
        );
        // both sides add at the end of the inventory: this world's item first
        assert_eq!(
            merged(
                "Inventory: a cookbook",
                "Inventory: a cookbook a knife",
                "Inventory: a cookbook a red potato",
            )
            .as_deref(),
            Some("Inventory: a cookbook a knife a red potato")
        );
    }

    #[test]
    fn edits_of_the_same_words_conflict() {
        assert_eq!(
            merged(
                "the fridge is closed",
                "the fridge is broken",
                "the fridge is open"
            ),
            None
        );
        // an insertion inside the words the other side replaces
        assert_eq!(merged("a b c d", "a b x c d", "a y d"), None);
    }

    #[test]
    fn the_longest_common_subsequence_by_hand() {
        let (a, b) = (Text::new("a b c b d a b"), Text::new("b d c a b a"));
        // LCS length 4 (e.g. b c a b)
        assert_eq!(common_len(&a.hashes, &b.hashes), 4);
        assert_eq!(common(&a.hashes, &b.hashes).len(), 4);
        assert_eq!(shared(&a.sorted, &b.sorted), 6);
    }

    fn step(state: &[&str], action: &str, next: &[&str]) -> Step {
        let obs = |lines: &[&str]| Observation {
            admissible: vec![action.to_string()],
            ..crate::model::test_observation(lines, "cook")
        };
        crate::model::test_step(obs(state), action, obs(next))
    }

    /// What `analogies` predicts for `action` in `state`, with no history or retrieval.
    fn predict(analogies: &Analogies, state: &Observation, action: &str) -> Option<Prediction> {
        let task = crate::model::test_task(&state.instruction);
        analogies.predict(&ModelContext {
            task: &task,
            history: &[],
            state,
            action,
            retrieved: &[],
        })
    }

    #[test]
    fn renaming_replaces_whole_words_only() {
        let renames: Renames = vec![(Text::new("red apple"), Text::new("cookbook"))];
        assert_eq!(
            rename("a red apple, a red applesauce and a red apple", &renames),
            "a cookbook, a red applesauce and a cookbook"
        );
    }

    #[test]
    fn another_action_of_the_verb_is_renamed_to_this_one() {
        let mut analogies = Analogies::default();
        analogies.learn(&step(
            &[
                "text: You are in the pantry",
                "text: a shelf that has some salt on it",
                "text: a folding chair",
                "text: a door to the west",
                "[inventory] inventory: a red apple",
            ],
            "put red apple in shelf",
            &[
                "text: You are in the pantry",
                "text: a shelf that has some salt, and a red apple on it",
                "text: a folding chair",
                "text: a door to the west",
                "[inventory] inventory: Your inventory is currently empty.",
            ],
        ));
        let state = Observation {
            admissible: vec!["put cookbook in workbench".into()],
            ..crate::model::test_observation(
                &[
                    "text: a workbench that has some flour on it",
                    "[inventory] inventory: a cookbook",
                ],
                "cook",
            )
        };
        let p = predict(&analogies, &state, "put cookbook in workbench")
            .expect("the renamed example merges");
        assert_eq!(
            p.next_state.lines,
            vec![
                "text: a workbench that has some flour, and a cookbook on it",
                "[inventory] inventory: Your inventory is currently empty.",
            ]
        );
        assert!(
            p.reasoning.contains("`put red apple in shelf`"),
            "{}",
            p.reasoning
        );
        // an action that lacks a word of the example's (`in`): the span renamed, "red apple in
        // shelf", is in none of the example's lines
        assert!(predict(&analogies, &state, "put cookbook workbench").is_none());
    }

    #[test]
    fn a_line_naming_what_the_example_named_is_left_alone() {
        let mut analogies = Analogies::default();
        analogies.learn(&step(
            &[
                "text: You are in the kitchen",
                "text: You also see a fridge that is closed",
            ],
            "open fridge",
            &[
                "text: You are in the kitchen",
                "text: You also see an open fridge, that is empty",
            ],
        ));
        let state = crate::model::test_observation(
            &[
                "text: You also see a fridge that is closed",
                "text: You also see a kitchen cupboard that is closed",
            ],
            "cook",
        );
        let p = predict(&analogies, &state, "open kitchen cupboard")
            .expect("the renamed example merges into the cupboard's line");
        assert_eq!(
            p.next_state.lines,
            vec![
                "text: You also see a fridge that is closed",
                "text: You also see an open kitchen cupboard, that is empty",
            ]
        );
    }

    #[test]
    fn an_example_of_the_action_predicts_a_state_of_another_length() {
        let mut analogies = Analogies::default();
        analogies.learn(&step(
            &[
                "text: You are in the kitchen",
                "text: a counter that has a raw yellow potato, and a cookbook on it",
                "text: a stove",
                "text: an oven",
                "[inventory] inventory: a knife",
            ],
            "take cookbook",
            &[
                "text: You are in the kitchen",
                "text: a counter that has a raw yellow potato on it",
                "text: a stove",
                "text: an oven",
                "[inventory] inventory: a knife a cookbook",
            ],
        ));
        let state = Observation {
            admissible: vec!["take cookbook".into()],
            ..crate::model::test_observation(
                &[
                    "text: a counter that has a sliced green hot pepper, and a cookbook on it",
                    "[inventory] inventory: a knife some salt",
                ],
                "cook",
            )
        };
        let p = predict(&analogies, &state, "take cookbook").expect("the example merges");
        assert_eq!(
            p.next_state.lines,
            vec![
                "text: a counter that has a sliced green hot pepper on it",
                "[inventory] inventory: a knife some salt a cookbook",
            ]
        );
        assert_eq!((p.reward, p.done), (0.0, false));
        // another action has no example
        assert!(predict(&analogies, &state, "take knife").is_none());
    }
}
