//! The native reasoning model: learns only from trajectories, never from a scenario's rules.
//!
//! 1. **Exact memory**: a (instruction, state, action) seen in training predicts what followed it
//!    (the majority outcome when the data disagree); the same state and action seen under other
//!    instructions predicts the next state when it never paid a reward or ended an episode there.
//! 2. **Lifted rules**: every training transition becomes a token sequence — the action, the
//!    instruction (for transitions that end an episode or pay a reward), the state lines it removed
//!    and added, the admissible actions it removed and added, and the feedback. Transitions of the
//!    same shape are anti-unified column by column: a column with one value everywhere is a
//!    constant, columns whose values vary are variables, and two columns that vary *together* are the
//!    same variable. So "take apple from countertop 1" and "take mug from cabinet 2" give the rule
//!    `take ?a from ?b ?c` whose removed line `[?d] item: a ?a in/on ?b ?c` binds `?d` in a new state.
//!    A rule applies when its action and instruction match and each removed line matches a line of
//!    the current state; it is usable only if every variable of what it adds is bound.
//!    Lines of the state that the transition keeps but whose words show up in the outcome (the
//!    id of an option being selected) are kept as context preconditions that bind those words.
//! 3. **History recall**: a rule that leads back to a place the agent left earlier in the episode
//!    but cannot fill some added lines (what lies there is not in the current state) takes them
//!    from the lines lost when the agent left; lines of kinds such actions usually take away go.
//! 4. **Failure semantics** (the paper's): an action that is not admissible, or that no memory and no
//!    rule explains, leaves the state unchanged with reward 0; the latter with a low confidence.
//!
//! Predicted lines keep the current state's order; added lines take the place of the first removed
//! line (or go last). Fidelity compares states as sets of lines.

use super::{ExperienceModel, ModelContext, ModelError, Prediction};
use dreamgym_buffer::{Observation, Step, Trajectory};
use rustc_hash::FxHashMap;
use std::collections::HashMap;
use std::fmt::Write;

/// Most examples kept per rule (more can only generalise a rule further).
const MAX_EXAMPLES: usize = 256;

#[derive(Default)]
struct Interner {
    ids: FxHashMap<String, u32>,
    words: Vec<String>,
}

impl Interner {
    fn id(&mut self, w: &str) -> u32 {
        if let Some(&i) = self.ids.get(w) {
            return i;
        }
        self.words.push(w.to_string());
        self.ids.insert(w.to_string(), self.words.len() as u32 - 1);
        self.words.len() as u32 - 1
    }
    fn get(&self, w: &str) -> Option<u32> {
        self.ids.get(w).copied()
    }
}

/// The parts of a transition, each a list of token sequences.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Part {
    Action,
    Instruction,
    Removed,
    Context,
    Added,
    AdmRemoved,
    AdmAdded,
    Feedback,
}

struct Example {
    segs: Vec<(Part, Vec<u32>, Vec<bool>)>,
    reward: f32,
    done: bool,
}

fn diff<'a>(a: &'a [String], b: &[String]) -> Vec<&'a String> {
    a.iter().filter(|x| !b.contains(x)).collect()
}

/// Words (letters, digits, `_`, `-`, `/`) and single punctuation marks of a text, each with
/// whether a space comes before it, so that `box,` and `box` share the word `box`.
fn tokens(s: &str) -> Vec<(&str, bool)> {
    let mut out = vec![];
    let mut space = false;
    let mut start: Option<usize> = None;
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '-' || c == '/';
    for (i, c) in s.char_indices() {
        if let Some(st) = start
            && !is_word(c)
        {
            out.push((&s[st..i], space));
            start = None;
            space = false;
        }
        if c.is_whitespace() {
            space = true;
        } else if is_word(c) {
            start.get_or_insert(i);
        } else {
            out.push((&s[i..i + c.len_utf8()], space));
            space = false;
        }
    }
    if let Some(st) = start {
        out.push((&s[st..], space));
    }
    out
}

/// Words of one prediction: the training vocabulary plus words never seen in training (which can
/// fill variables, never match constants).
struct Vocab<'a> {
    known: &'a Interner,
    extra: Vec<String>,
}

impl Vocab<'_> {
    fn id(&mut self, w: &str) -> u32 {
        if let Some(i) = self.known.get(w) {
            return i;
        }
        let base = self.known.words.len() as u32;
        match self.extra.iter().position(|x| x == w) {
            Some(i) => base + i as u32,
            None => {
                self.extra.push(w.to_string());
                base + self.extra.len() as u32 - 1
            }
        }
    }
    fn word(&self, id: u32) -> &str {
        let n = self.known.words.len() as u32;
        if id < n {
            &self.known.words[id as usize]
        } else {
            &self.extra[(id - n) as usize]
        }
    }
}

/// A text as word ids (in a prediction's vocabulary) and where spaces go.
struct Tokenized {
    ids: Vec<u32>,
    spacing: Vec<bool>,
}

impl Tokenized {
    fn new(v: &mut Vocab, text: &str) -> Self {
        let t = tokens(text);
        Tokenized {
            ids: t.iter().map(|(w, _)| v.id(w)).collect(),
            spacing: t.iter().map(|(_, sp)| *sp).collect(),
        }
    }
}

/// What matching a rule's conditions bound and used.
struct Matched {
    /// Variable bindings.
    b: Vec<Option<u32>>,
    /// State lines the rule removes.
    used: Vec<usize>,
    /// Admissible actions the rule removes.
    used_adm: Vec<usize>,
}

/// The query of one prediction, tokenized once.
struct Query {
    action: Tokenized,
    instruction: Tokenized,
    lines: Vec<Tokenized>,
    admissible: Vec<Tokenized>,
}

/// One segment of a rule's pattern: its tokens and where spaces go.
#[derive(Clone, Copy)]
struct Seg<'a> {
    toks: &'a [Tok],
    spacing: &'a [bool],
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Const(u32),
    Var(u32),
}

/// A lifted rule.
struct Rule {
    shape: Vec<(Part, usize)>,
    spacing: Vec<bool>,
    columns: Vec<Vec<u32>>,
    support: usize,
    reward: f32,
    done: bool,
    pattern: Vec<Tok>,
    /// Some added line has a variable nothing binds (history recall can fill it).
    open: bool,
    constants: usize,
    nvars: u32,
    example: String,
}

impl Rule {
    fn derive(&mut self) {
        let mut var_of: HashMap<&Vec<u32>, u32> = HashMap::new();
        self.pattern = self
            .columns
            .iter()
            .map(|col| {
                if col.iter().all(|&t| t == col[0]) {
                    Tok::Const(col[0])
                } else {
                    let n = var_of.len() as u32;
                    Tok::Var(*var_of.entry(col).or_insert(n))
                }
            })
            .collect();
        self.nvars = var_of.len() as u32;
        // variables of added lines that nothing the rule matches can bind
        let mut bound = std::collections::HashSet::new();
        let mut at = 0;
        for &(part, n) in &self.shape {
            if matches!(
                part,
                Part::Action | Part::Instruction | Part::Removed | Part::Context | Part::AdmRemoved
            ) {
                bound.extend(
                    self.pattern[at..at + n]
                        .iter()
                        .filter_map(|t| if let Tok::Var(v) = t { Some(*v) } else { None }),
                );
            }
            at += n;
        }
        let mut at = 0;
        self.open = false;
        for &(part, n) in &self.shape {
            if part == Part::Added {
                self.open |= self.pattern[at..at + n]
                    .iter()
                    .any(|t| matches!(t, Tok::Var(v) if !bound.contains(v)));
            }
            at += n;
        }
        self.constants = self
            .pattern
            .iter()
            .filter(|t| matches!(t, Tok::Const(_)))
            .count();
    }

    /// Preference among matching rules: rules seen more than once (generalisations), then the
    /// most specific, then the best supported.
    fn rank(&self) -> (bool, usize, usize) {
        (self.support > 1, self.constants, self.support)
    }

    fn segments(&self) -> impl Iterator<Item = (Part, Seg<'_>)> {
        let mut at = 0;
        self.shape.iter().map(move |&(p, n)| {
            let s = Seg {
                toks: &self.pattern[at..at + n],
                spacing: &self.spacing[at..at + n],
            };
            at += n;
            (p, s)
        })
    }
}

/// A 64-bit fingerprint of an (instruction, state lines, action) situation: memory is keyed by it
/// so a lookup needs no copies (a collision among n keys has probability about n²/2⁶⁵).
fn fingerprint(instruction: Option<&str>, lines: &[String], action: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    instruction.hash(&mut h);
    lines.hash(&mut h);
    action.hash(&mut h);
    h.finish()
}
/// A recorded outcome: next observation, reward, done, how often.
type Outcome = (Observation, f32, bool, usize);
/// A next observation seen for a (state, action): whether it never paid or ended, how often.
type SeenNext = (Observation, bool, usize);

/// The native reasoning model (see the module docs).
#[derive(Default)]
pub struct NativeModel {
    words: Interner,
    memory: FxHashMap<u64, Vec<Outcome>>,
    /// (state, action) -> next observations, for transitions that never paid or ended an episode.
    dynamics: FxHashMap<u64, Vec<SeenNext>>,
    rules: Vec<Rule>,
    by_action: HashMap<(usize, u32), Vec<usize>>,
    use_rules: bool,
    transitions: usize,
    /// Per action form (token count, first word): for each line kind, how often a line of that
    /// kind stayed and how often it went when such an action changed the state.
    persistence: HashMap<(usize, u32), HashMap<String, (usize, usize)>>,
}

/// The kind of a `[id] kind: text` line (`""` for lines of another form).
fn line_kind(line: &str) -> &str {
    line.split_once("] ")
        .and_then(|(_, rest)| rest.split_once(':'))
        .map_or("", |(k, _)| k)
}

impl NativeModel {
    /// Fit on trajectories (all their steps, real or synthetic).
    pub fn fit(trajectories: &[Trajectory]) -> Self {
        Self::fit_with(trajectories, true)
    }

    /// Fit; `rules = false` keeps only the exact memory (the "without rule induction" ablation).
    pub fn fit_with(trajectories: &[Trajectory], rules: bool) -> Self {
        let mut m = NativeModel {
            use_rules: rules,
            ..Default::default()
        };
        let mut index: HashMap<Vec<u32>, usize> = HashMap::new();
        for t in trajectories {
            for s in &t.steps {
                m.learn(s, &mut index);
            }
        }
        for r in &mut m.rules {
            r.derive();
        }
        // candidates in preference order, so the first rule that applies is the best one
        let rules = &m.rules;
        for list in m.by_action.values_mut() {
            list.sort_by(|&a, &b| rules[b].rank().cmp(&rules[a].rank()).then(a.cmp(&b)));
        }
        m
    }

    /// Number of transitions learned from.
    pub fn transitions(&self) -> usize {
        self.transitions
    }

    /// Number of induced rules.
    pub fn rules(&self) -> usize {
        self.rules.len()
    }

    fn example(&mut self, s: &Step) -> Example {
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
        for l in s
            .state
            .lines
            .iter()
            .filter(|l| s.next_state.lines.contains(l))
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

    fn learn(&mut self, s: &Step, index: &mut HashMap<Vec<u32>, usize>) {
        self.transitions += 1;
        let key = fingerprint(Some(&s.state.instruction), &s.state.lines, &s.action);
        let outcomes = self.memory.entry(key).or_default();
        match outcomes
            .iter_mut()
            .find(|o| o.0 == s.next_state && o.1 == s.reward && o.2 == s.done)
        {
            Some(o) => o.3 += 1,
            None => outcomes.push((s.next_state.clone(), s.reward, s.done, 1)),
        }
        let dyn_key = fingerprint(None, &s.state.lines, &s.action);
        let neutral = s.reward == 0.0 && !s.done;
        let seen = self.dynamics.entry(dyn_key).or_default();
        let next = Observation {
            instruction: String::new(),
            ..s.next_state.clone()
        };
        match seen.iter_mut().find(|o| o.0 == next) {
            Some(o) => {
                o.1 &= neutral;
                o.2 += 1;
            }
            None => seen.push((next, neutral, 1)),
        }
        if !self.use_rules {
            return;
        }
        if s.state.lines != s.next_state.lines {
            let t = tokens(&s.action);
            let key = (
                t.len(),
                t.first().map_or(u32::MAX, |(w, _)| self.words.id(w)),
            );
            let stats = self.persistence.entry(key).or_default();
            for l in &s.state.lines {
                let e = stats.entry(line_kind(l).to_string()).or_default();
                if s.next_state.lines.contains(l) {
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
                constants: 0,
                nvars: 0,
                example: s.action.clone(),
            });
            let r = self.rules.len() - 1;
            let first = (
                shape[0].1,
                ex.segs[0].1.first().copied().unwrap_or(u32::MAX),
            );
            self.by_action.entry(first).or_default().push(r);
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

    /// Match a pattern against a tokenized text, extending `b`.
    fn unify(pat: Seg, text: &Tokenized, b: &mut [Option<u32>]) -> bool {
        if text.ids.len() != pat.toks.len() || text.spacing != pat.spacing {
            return false;
        }
        for (&t, p) in text.ids.iter().zip(pat.toks) {
            match p {
                Tok::Const(c) if *c == t => {}
                Tok::Const(_) => return false,
                Tok::Var(x) => match b[*x as usize] {
                    Some(y) if y != t => return false,
                    Some(_) => {}
                    None => b[*x as usize] = Some(t),
                },
            }
        }
        true
    }

    /// Match each of `pats` to a distinct item of `items` (backtracking); records the matches.
    fn match_all(
        pats: &[Seg],
        items: &[Tokenized],
        used: &mut Vec<usize>,
        b: &mut Vec<Option<u32>>,
    ) -> bool {
        let Some((first, rest)) = pats.split_first() else {
            return true;
        };
        for (i, item) in items.iter().enumerate() {
            if used.contains(&i) || item.ids.len() != first.toks.len() {
                continue;
            }
            let saved = b.clone();
            if Self::unify(*first, item, b) {
                used.push(i);
                if Self::match_all(rest, items, used, b) {
                    return true;
                }
                used.pop();
            }
            *b = saved;
        }
        false
    }

    /// A rule that removes lines of some form must remove every line of that form: no line it
    /// leaves may fit one of its removed patterns (else it was learnt where fewer such lines were).
    fn exhaustive(removed: &[Seg], lines: &[Tokenized], used: &[usize], b: &[Option<u32>]) -> bool {
        lines
            .iter()
            .enumerate()
            .filter(|(i, _)| !used.contains(i))
            .all(|(_, l)| !removed.iter().any(|p| Self::unify(*p, l, &mut b.to_vec())))
    }

    fn fill(v: &Vocab, pat: Seg, b: &[Option<u32>]) -> Option<String> {
        let mut out = String::new();
        for (t, &sp) in pat.toks.iter().zip(pat.spacing) {
            if sp {
                out.push(' ');
            }
            let id = match t {
                Tok::Const(c) => *c,
                Tok::Var(x) => b[*x as usize]?,
            };
            out.push_str(v.word(id));
        }
        Some(out)
    }

    /// Match the conditions of rule `r` (action, instruction, removed lines — exhaustively —,
    /// context lines, removed admissible actions) against a query.
    fn match_rule(r: &Rule, segs: &[(Part, Seg)], q: &Query) -> Option<Matched> {
        let get = |p: Part| segs.iter().filter(move |(x, _)| *x == p).map(|(_, s)| *s);
        let mut b: Vec<Option<u32>> = vec![None; r.nvars as usize];
        if !Self::unify(get(Part::Action).next()?, &q.action, &mut b) {
            return None;
        }
        if let Some(ins) = get(Part::Instruction).next()
            && !Self::unify(ins, &q.instruction, &mut b)
        {
            return None;
        }
        let removed: Vec<Seg> = get(Part::Removed).collect();
        let mut used = vec![];
        if !Self::match_all(&removed, &q.lines, &mut used, &mut b)
            || !Self::exhaustive(&removed, &q.lines, &used, &b)
        {
            return None;
        }
        let context: Vec<Seg> = get(Part::Context).collect();
        let mut taken = used.clone();
        if !Self::match_all(&context, &q.lines, &mut taken, &mut b) {
            return None;
        }
        let adm_removed: Vec<Seg> = get(Part::AdmRemoved).collect();
        let mut used_adm = vec![];
        if !Self::match_all(&adm_removed, &q.admissible, &mut used_adm, &mut b) {
            return None;
        }
        Some(Matched { b, used, used_adm })
    }

    /// Try rule `r`; on success the predicted observation and the bindings.
    fn apply(
        &self,
        v: &Vocab,
        q: &Query,
        r: &Rule,
        ctx: &ModelContext,
    ) -> Option<(Observation, Vec<Option<u32>>)> {
        let segs: Vec<(Part, Seg)> = r.segments().collect();
        let get = |p: Part| segs.iter().filter(move |(q, _)| *q == p).map(|(_, s)| *s);
        let Matched { b, used, used_adm } = Self::match_rule(r, &segs, q)?;
        let added: Vec<String> = get(Part::Added)
            .map(|p| Self::fill(v, p, &b))
            .collect::<Option<_>>()?;
        let adm_added: Vec<String> = get(Part::AdmAdded)
            .map(|p| Self::fill(v, p, &b))
            .collect::<Option<_>>()?;
        let feedback = Self::fill(v, get(Part::Feedback).next()?, &b)?;
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

    /// Rule `r` matches but cannot fill some added lines (their words are not in the state, e.g.
    /// what lies on a table the agent walks to): fill them from the episode's history — the lines
    /// and admissible actions the agent lost when it last left the place the rule leads to.
    fn recall(
        &self,
        v: &Vocab,
        q: &Query,
        r: &Rule,
        ctx: &ModelContext,
    ) -> Option<(Observation, usize)> {
        let segs: Vec<(Part, Seg)> = r.segments().collect();
        let get = |p: Part| segs.iter().filter(move |(q, _)| *q == p).map(|(_, s)| *s);
        let Matched {
            mut b,
            used,
            used_adm,
        } = Self::match_rule(r, &segs, q)?;
        let added: Vec<Seg> = get(Part::Added).collect();
        let filled: Vec<Option<String>> = added.iter().map(|p| Self::fill(v, *p, &b)).collect();
        if filled.iter().all(Option::is_some) {
            return None; // nothing to recall: the rule applies on its own
        }
        let anchors: Vec<&String> = filled.iter().flatten().collect();
        if anchors.is_empty() {
            return None;
        }
        // the latest step that took the agent away from where the anchors hold
        let (k, step) = ctx.history.iter().enumerate().rev().find(|(_, h)| {
            let gone = diff(&h.state.lines, &h.next_state.lines);
            anchors.iter().all(|a| gone.contains(a))
        })?;
        // the lines lost then that have the form of the rule's unfilled lines, all of them
        let open: Vec<Seg> = added
            .iter()
            .zip(&filled)
            .filter(|(_, f)| f.is_none())
            .map(|(p, _)| *p)
            .collect();
        let mut words = Vocab {
            known: v.known,
            extra: v.extra.clone(),
        };
        let pool: Vec<Tokenized> = diff(&step.state.lines, &step.next_state.lines)
            .into_iter()
            .filter(|l| !anchors.contains(l))
            .map(|l| Tokenized::new(&mut words, l))
            .filter(|t| open.iter().any(|p| Self::unify(*p, t, &mut b.clone())))
            .collect();
        if pool.len() != open.len() {
            return None;
        }
        let mut used_pool = vec![];
        if !Self::match_all(&open, &pool, &mut used_pool, &mut b) {
            return None;
        }
        let lines_back: Vec<String> = added
            .iter()
            .map(|p| Self::fill(&words, *p, &b))
            .collect::<Option<_>>()?;
        let adm_back: Vec<String> = get(Part::AdmAdded)
            .map(|p| Self::fill(&words, p, &b))
            .collect::<Option<_>>()?;
        let feedback = Self::fill(&words, get(Part::Feedback).next()?, &b)?;
        // lines of kinds that such actions usually take away (the old place's) go too
        let stats = self.persistence.get(&(
            q.action.ids.len(),
            q.action.ids.first().copied().unwrap_or(u32::MAX),
        ));
        let stays = |i: usize, l: &String| {
            !used.contains(&i)
                && stats
                    .and_then(|st| st.get(line_kind(l)))
                    .is_none_or(|&(kept, gone)| kept >= gone)
        };
        let mut lines: Vec<String> = ctx
            .state
            .lines
            .iter()
            .enumerate()
            .filter(|(i, l)| stays(*i, l))
            .map(|(_, l)| l.clone())
            .collect();
        lines.extend(lines_back);
        Some((
            Observation {
                lines,
                instruction: ctx.state.instruction.clone(),
                admissible: splice(&ctx.state.admissible, &used_adm, adm_back),
                feedback,
            },
            k,
        ))
    }

    /// The prediction of the best rule that applies (stage 3 of [`ExperienceModel::predict`]).
    fn by_rule(
        &self,
        vocab: &Vocab,
        query: &Query,
        cands: &[usize],
        ctx: &ModelContext,
    ) -> Option<Prediction> {
        let success_of = |reward: f32, done: bool| done && reward >= 0.999;
        let admissible = ctx.state.admissible.iter().any(|a| a == ctx.action);
        let mut best: Option<(&Rule, Observation, Vec<Option<u32>>)> = None;
        for &ri in cands {
            let r = &self.rules[ri];
            if let Some((obs, b)) = self.apply(vocab, query, r, ctx) {
                best = Some((r, obs, b));
                break;
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
            let conf = r.support as f32 / (r.support as f32 + 1.0);
            return Some(Prediction {
                reasoning: why,
                next_state: obs,
                reward: r.reward,
                done: r.done,
                success: success_of(r.reward, r.done),
                confidence: conf,
            });
        }
        None
    }

    /// Explain a transition by an induced rule only (no memory of the exact situation): the
    /// generalising trace used for SFT reasoning. `None` when no rule applies.
    pub fn explain(&self, ctx: &ModelContext) -> Option<Prediction> {
        let (vocab, query, cands) = self.query(ctx);
        self.by_rule(&vocab, &query, cands, ctx)
    }

    fn query<'a>(&'a self, ctx: &ModelContext) -> (Vocab<'a>, Query, &'a [usize]) {
        let mut vocab = Vocab {
            known: &self.words,
            extra: vec![],
        };
        let query = Query {
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
        };
        let first = query
            .action
            .ids
            .first()
            .copied()
            .filter(|&t| (t as usize) < self.words.words.len())
            .unwrap_or(u32::MAX);
        let cands = self
            .by_action
            .get(&(query.action.ids.len(), first))
            .map_or(&[][..], |v| v.as_slice());
        (vocab, query, cands)
    }

    fn unchanged(ctx: &ModelContext, feedback: &str) -> Observation {
        Observation {
            feedback: feedback.to_string(),
            ..ctx.state.clone()
        }
    }
}

/// `items` without the indices in `removed`, with `added` where the first removed item was.
fn splice(items: &[String], removed: &[usize], added: Vec<String>) -> Vec<String> {
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

impl NativeModel {
    /// The native prediction (never fails: unexplained actions get the failure semantics).
    pub fn predict_native(&self, ctx: &ModelContext) -> Prediction {
        let success_of = |reward: f32, done: bool| done && reward >= 0.999;
        let admissible = ctx.state.admissible.iter().any(|a| a == ctx.action);
        let (vocab, query, cands) = self.query(ctx);
        // 1. exact memory
        let key = fingerprint(Some(&ctx.state.instruction), &ctx.state.lines, ctx.action);
        let remembered = self.memory.get(&key).map(|outcomes| {
            let total: usize = outcomes.iter().map(|o| o.3).sum();
            let best = outcomes.iter().max_by_key(|o| o.3).expect("non-empty");
            Prediction {
                reasoning: format!(
                    "Seen before: this exact state and action occurred {total} time(s) in the training data; {} of them led to the predicted outcome.",
                    best.3
                ),
                next_state: best.0.clone(),
                reward: best.1,
                done: best.2,
                success: success_of(best.1, best.2),
                confidence: best.3 as f32 / total as f32,
            }
        });
        // 2. the same state and action under another task, where it never paid or ended an episode
        let seen_elsewhere = self
            .dynamics
            .get(&fingerprint(None, &ctx.state.lines, ctx.action))
            .filter(|seen| seen.iter().all(|o| o.1))
            .map(|seen| {
                let total: usize = seen.iter().map(|o| o.2).sum();
                let best = seen.iter().max_by_key(|o| o.2).expect("non-empty");
                Prediction {
                    reasoning: format!(
                        "Seen before under other tasks: this state and action occurred {total} time(s); {} led to the predicted state, none paid a reward or ended the episode.",
                        best.2
                    ),
                    next_state: Observation {
                        instruction: ctx.state.instruction.clone(),
                        ..best.0.clone()
                    },
                    reward: 0.0,
                    done: false,
                    success: false,
                    confidence: best.2 as f32 / total as f32,
                }
            });
        // memory that never disagreed is taken as it is
        for p in [&remembered, &seen_elsewhere].into_iter().flatten() {
            if p.confidence >= 1.0 {
                return p.clone();
            }
        }
        // back to a place seen earlier in this episode: what the agent saw there beats a guess
        // from other episodes, whose hidden parts differ
        if admissible && !ctx.history.is_empty() {
            for &ri in cands.iter().filter(|&&ri| self.rules[ri].open) {
                let r = &self.rules[ri];
                if let Some((obs, k)) = self.recall(&vocab, &query, r, ctx) {
                    return Prediction {
                        reasoning: format!(
                            "Rule induced from {} transition(s) like `{}` leads back to a place left at step {k} of this episode; recalled what was seen there ({} line(s)). Reward {}{}.",
                            r.support,
                            r.example,
                            diff(&obs.lines, &ctx.state.lines).len(),
                            r.reward,
                            if r.done { ", episode ends" } else { "" }
                        ),
                        next_state: obs,
                        reward: r.reward,
                        done: r.done,
                        success: success_of(r.reward, r.done),
                        confidence: 0.9,
                    };
                }
            }
        }
        if let Some(p) = remembered.or(seen_elsewhere) {
            return p;
        }
        // 3. lifted rules: generalisations first, then the most specific, then the best supported
        if let Some(p) = self.by_rule(&vocab, &query, cands, ctx) {
            return p;
        }
        // 4. failure semantics
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tokens_split_punctuation_and_keep_spacing() {
        let t = tokens("[box_yellow] box: the yellow box, right");
        let words: Vec<&str> = t.iter().map(|x| x.0).collect();
        assert_eq!(
            words,
            [
                "[",
                "box_yellow",
                "]",
                "box",
                ":",
                "the",
                "yellow",
                "box",
                ",",
                "right"
            ]
        );
        assert!(t[3].1);
        assert!(!t[4].1);
    }

    proptest! {
        /// Tokens and their spacing give back the text (up to runs of whitespace).
        #[test]
        fn tokens_rebuild_the_text(s in "[a-z_\\[\\],:$ ]{0,40}") {
            let mut out = String::new();
            for (w, sp) in tokens(&s) {
                if sp && !out.is_empty() { out.push(' '); }
                out.push_str(w);
            }
            let norm: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
            prop_assert_eq!(out, norm);
        }
    }

    #[test]
    fn splice_puts_added_lines_where_removed_ones_were() {
        let items: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            splice(&items, &[1], vec!["x".into(), "y".into()]),
            ["a", "x", "y", "c"]
        );
        assert_eq!(splice(&items, &[], vec!["x".into()]), ["a", "b", "c", "x"]);
    }
}
