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
//!    the current state; it is usable only if every variable of what it adds is bound — or
//!    *derived*: spelt from the action's words (`[diningtable_1]` from `go to dining table 1`) or
//!    looked up from a bound variable it is a function of in the examples.
//!    Lines of the state that the transition keeps but whose words show up in the outcome (the
//!    id of an option being selected) are kept as context preconditions that bind those words.
//!    Relations that hold between a rule's variables in every example (numeric order, never
//!    equal) are conditions too; a rule may not keep a line of a kind its action form always
//!    removed; among matching rules that pay differently, the one with the most similar example
//!    wins.
//! 3. **Recall** (see [`super::recall`]; tried before memory, since what a place holds is hidden
//!    until the agent gets there and differs between instances): a rule that leads to a place
//!    the agent left earlier in the episode — or to one a real episode of this task instance
//!    found on arrival (the retrieved transitions, see [`super::env::ModelEnv`]) — takes what it
//!    cannot fill (what lies there) from what was seen there; a rule whose outcome a source saw
//!    just so (a place seen empty) is confirmed; otherwise a rule's outcome gets the place's lines
//!    and the objects a source saw there, however many (shape-free). A cheap test comes first:
//!    the line the action's words alone determine must be in some source.
//! 4. **Rules read as sets** when no rule of the exact shape applies: a removed pattern takes away
//!    every line it fits, so leaving a place with three objects works with a rule learnt on one.
//! 5. **Line rewrites** when no rule applies (egocentric views, where an action rewrites every
//!    line): each `[id]` line is rewritten by what the action did to lines of its *shape* (its
//!    text with its id's words masked) in training, unless a shape present has always meant the
//!    action changes nothing (a wall in front); reward and done come from the shapes that lines
//!    naming the task's object had when episodes paid (`line_rewrite.rs`).
//! 6. **Failure semantics** (the paper's): an action that is not admissible, or that no memory and no
//!    rule explains, leaves the state unchanged with reward 0; the latter with a low confidence.
//!
//! Predicted lines keep the current state's order; added lines take the place of the first removed
//! line (or go last). Fidelity compares states as sets of lines.

use super::additive_reward::AdditiveRewards;
use super::line_rewrite::LineRewrites;
use super::recall::{self, RecallSources, ViewIndex, diff, line_kind};
use super::{ExperienceModel, ModelContext, ModelError, Prediction};
use dreamgym_buffer::{Observation, Step, Trajectory};
use rustc_hash::FxHashMap;
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

/// Most examples kept per rule (more can only generalise a rule further).
const MAX_EXAMPLES: usize = 256;

/// Most line-to-pattern attempts when matching one rule's patterns (bounds backtracking).
const MATCH_BUDGET: usize = 2_000;

#[derive(Default)]
struct Interner {
    ids: FxHashMap<String, u32>,
    words: Vec<String>,
    /// Each word as a number, if it is one.
    numbers: Vec<Option<f64>>,
}

impl Interner {
    fn id(&mut self, w: &str) -> u32 {
        if let Some(&i) = self.ids.get(w) {
            return i;
        }
        self.words.push(w.to_string());
        self.numbers.push(w.parse().ok());
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
#[derive(Clone)]
struct Vocab<'a> {
    known: &'a Interner,
    extra: Vec<String>,
    /// Index of `extra` (a web page brings thousands of unseen words: a linear search made
    /// tokenizing a state quadratic in its length).
    extra_ids: FxHashMap<String, u32>,
}

impl<'a> Vocab<'a> {
    /// The training vocabulary, no unseen words yet.
    fn new(known: &'a Interner) -> Self {
        Self {
            known,
            extra: vec![],
            extra_ids: FxHashMap::default(),
        }
    }

    fn id(&mut self, w: &str) -> u32 {
        if let Some(i) = self.known.get(w) {
            return i;
        }
        if let Some(&i) = self.extra_ids.get(w) {
            return i;
        }
        let id = (self.known.words.len() + self.extra.len()) as u32;
        self.extra.push(w.to_string());
        self.extra_ids.insert(w.to_string(), id);
        id
    }
    /// The word as a number, if it is one.
    fn number(&self, id: u32) -> Option<f64> {
        match self.known.numbers.get(id as usize) {
            Some(n) => *n,
            None => self.word(id).parse().ok(),
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
    /// Condition groups (see `Rule::cond_group`) already found not to match this query.
    unmatched: std::cell::RefCell<rustc_hash::FxHashSet<u32>>,
    /// How many state lines have each kind word (see `Rule::line_kinds`).
    line_kinds: Vec<(u32, u32)>,
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
    /// A value the rule's conditions do not bind but computes from what they bind
    /// (`Rule::derived`).
    Derived(u32),
}

/// How a rule computes a word its conditions do not bind.
#[derive(Clone, Debug, PartialEq)]
enum Derivation {
    /// Words of the action joined, each after a separator: `fridge_1` from `go to fridge 1`,
    /// `diningtable_1` from `go to dining table 1`.
    Join(Vec<(&'static str, Tok)>),
    /// A function of a bound variable seen in the examples (`middle` -> `room_b`).
    Lookup { from: u32, map: FxHashMap<u32, u32> },
}

/// How two variables of a rule relate in every example.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Relation {
    /// Both numbers, the first less than the second.
    Less,
    /// Both numbers, the first greater than the second.
    Greater,
    /// Never the same word.
    Differ,
}

/// Separators tried between joined words.
const JOIN_SEPARATORS: [&str; 3] = ["", "_", "-"];

/// Find how `value` is spelt from consecutive `words` (a start, then each word after one of
/// [`JOIN_SEPARATORS`]); the separators and the span, or `None`.
fn spell(value: &str, words: &[&str]) -> Option<(usize, Vec<&'static str>)> {
    for start in 0..words.len() {
        let Some(mut rest) = value.strip_prefix(words[start]) else {
            continue;
        };
        let mut seps = vec![""];
        for w in &words[start + 1..] {
            if rest.is_empty() {
                break;
            }
            let Some((sep, r)) = JOIN_SEPARATORS.iter().find_map(|sep| {
                rest.strip_prefix(sep)
                    .and_then(|r| r.strip_prefix(w))
                    .map(|r| (*sep, r))
            }) else {
                break;
            };
            seps.push(sep);
            rest = r;
        }
        if rest.is_empty() && seps.len() > 1 {
            return Some((start, seps));
        }
    }
    None
}

/// The kind word of a tokenized `[id] kind: ...` line (`None` for lines of other forms, or a
/// token that is not a known word).
fn line_kind_word(mut toks: impl Iterator<Item = Option<u32>>, words: &Interner) -> Option<u32> {
    let is = |t: Option<u32>, w: &str| t.is_some() && t == words.get(w);
    let (t0, _, t2, kind, t4) = (
        toks.next()?,
        toks.next()?,
        toks.next()?,
        toks.next()?,
        toks.next()?,
    );
    (is(t0, "[") && is(t2, "]") && is(t4, ":"))
        .then_some(kind)
        .flatten()
}

/// Count one more line of `kind` (if it has one) in `counts`.
fn count_kind(counts: &mut Vec<(u32, u32)>, kind: Option<u32>) {
    let Some(kind) = kind else { return };
    match counts.iter_mut().find(|(k, _)| *k == kind) {
        Some(e) => e.1 += 1,
        None => counts.push((kind, 1)),
    }
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
    /// Some added line is fully bound: history recall has a line to look for.
    anchored: bool,
    /// The first added line (its index among the added lines) that the action's words alone
    /// determine: where the action leads, to look up in recall sources before any matching.
    action_anchor: Option<usize>,
    /// How many lines the rule adds, and how many of them are open.
    n_added: usize,
    n_open: usize,
    /// Rules whose action-determined line is computed alike share a group (see `fit_with`).
    anchor_group: u32,
    /// Rules with the same conditions (action, instruction, removed and context lines, removed
    /// admissible actions) share a group: they match a query alike (see `match_rule`).
    cond_group: u32,
    /// How many of the removed and context lines have each kind (`[id] kind: ...` lines with a
    /// constant kind word): a state needs at least as many (a cheap test before matching).
    line_kinds: Vec<(u32, u32)>,
    constants: usize,
    nvars: u32,
    derived: Vec<Derivation>,
    /// For each variable, the first column it occupies (its values in the examples).
    var_cols: Vec<Option<usize>>,
    /// Pairs of variables related the same way in every example: numbers ordered the same way
    /// (`?price < ?budget`), or words never equal (`?wanted_colour != ?chosen_colour`).
    relations: Vec<(u32, u32, Relation)>,
    example: String,
}

impl Rule {
    fn derive(&mut self, words: &Interner) {
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
        self.derive_unbound(words, &bound);
        self.var_cols = vec![None; self.nvars as usize];
        for (c, t) in self.pattern.iter().enumerate() {
            if let Tok::Var(v) = t {
                self.var_cols[*v as usize].get_or_insert(c);
            }
        }
        self.derive_relations(words);
        let mut at = 0;
        self.open = false;
        self.anchored = false;
        (self.n_added, self.n_open) = (0, 0);
        for &(part, n) in &self.shape {
            if part == Part::Added {
                let open = self.pattern[at..at + n]
                    .iter()
                    .any(|t| matches!(t, Tok::Var(v) if !bound.contains(v)));
                self.open |= open;
                self.anchored |= !open;
                self.n_added += 1;
                self.n_open += open as usize;
            }
            at += n;
        }
        self.action_anchor = self.find_action_anchor();
        self.line_kinds = self.count_line_kinds(words);
        self.constants = self
            .pattern
            .iter()
            .filter(|t| matches!(t, Tok::Const(_)))
            .count();
    }

    /// Pairs of variables related the same way in every example (see [`Relation`]), so a rule
    /// learnt where the price was under the budget, or where the chosen colour was not the one
    /// asked for, does not apply where it is otherwise.
    fn derive_relations(&mut self, words: &Interner) {
        let first_col = &self.var_cols;
        let numbers: Vec<Option<Vec<f64>>> = first_col
            .iter()
            .map(|c| {
                c.and_then(|c| {
                    self.columns[c]
                        .iter()
                        .map(|&t| words.words[t as usize].parse::<f64>().ok())
                        .collect()
                })
            })
            .collect();
        self.relations.clear();
        if self.columns.first().is_none_or(|c| c.len() < 2) {
            return;
        }
        for u in 0..first_col.len() {
            for w in u + 1..first_col.len() {
                let (Some(cu), Some(cw)) = (first_col[u], first_col[w]) else {
                    continue;
                };
                let order = match (&numbers[u], &numbers[w]) {
                    (Some(a), Some(b)) => {
                        let o = a[0].partial_cmp(&b[0]);
                        a.iter()
                            .zip(b)
                            .all(|(x, y)| x.partial_cmp(y) == o)
                            .then_some(o)
                            .flatten()
                    }
                    _ => None,
                };
                let relation = match order {
                    Some(std::cmp::Ordering::Less) => Some(Relation::Less),
                    Some(std::cmp::Ordering::Greater) => Some(Relation::Greater),
                    _ => self.columns[cu]
                        .iter()
                        .zip(&self.columns[cw])
                        .all(|(x, y)| x != y)
                        .then_some(Relation::Differ),
                };
                if let Some(r) = relation {
                    self.relations.push((u as u32, w as u32, r));
                }
            }
        }
    }

    /// Whether the relations of the rule hold for bindings `b` (unbound ones are not checked).
    fn relations_hold(&self, v: &Vocab, b: &[Option<u32>]) -> bool {
        self.relations.iter().all(|&(x, y, rel)| {
            let (Some(p), Some(q)) = (b[x as usize], b[y as usize]) else {
                return true;
            };
            let num = |t: u32| v.number(t);
            match rel {
                Relation::Differ => p != q,
                Relation::Less => matches!((num(p), num(q)), (Some(a), Some(b)) if a < b),
                Relation::Greater => matches!((num(p), num(q)), (Some(a), Some(b)) if a > b),
            }
        })
    }

    /// How much bindings `b` look like one of the rule's examples: the best share, over the
    /// examples, of variable pairs related alike (equal or not; for numbers, which is less).
    fn resemblance(&self, v: &Vocab, b: &[Option<u32>]) -> f64 {
        let vars: Vec<(usize, u32)> = self
            .var_cols
            .iter()
            .enumerate()
            .filter_map(|(x, c)| Some(((*c)?, b[x]?)))
            .collect();
        if vars.len() < 2 {
            return 1.0;
        }
        let relate = |p: u32, q: u32| match (v.number(p), v.number(q)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => Some(if p == q {
                std::cmp::Ordering::Equal
            } else {
                std::cmp::Ordering::Less
            }),
        };
        let examples = self.columns.first().map_or(0, Vec::len);
        let pairs = vars.len() * (vars.len() - 1) / 2;
        let mut best = 0;
        for e in 0..examples {
            let mut alike = 0;
            for (i, &(cu, qu)) in vars.iter().enumerate() {
                for &(cw, qw) in &vars[i + 1..] {
                    let ex = relate(self.columns[cu][e], self.columns[cw][e]);
                    alike += (ex == relate(qu, qw)) as usize;
                }
            }
            best = best.max(alike);
        }
        best as f64 / pairs as f64
    }

    /// Variables of the outcome that the conditions do not bind: computed from the action's words
    /// when every example spells them that way, else from a bound variable they are a function of.
    fn derive_unbound(&mut self, words: &Interner, bound: &std::collections::HashSet<u32>) {
        let n_action = self.shape.first().map_or(0, |s| s.1);
        let mut unbound: Vec<u32> = self
            .pattern
            .iter()
            .filter_map(|t| match t {
                Tok::Var(v) if !bound.contains(v) => Some(*v),
                _ => None,
            })
            .collect();
        unbound.dedup();
        unbound.sort_unstable();
        unbound.dedup();
        for v in unbound {
            let Some(col) = self.pattern.iter().position(|t| *t == Tok::Var(v)) else {
                continue;
            };
            let values = &self.columns[col];
            let examples = values.len();
            let action_words = |e: usize| -> Vec<&str> {
                (0..n_action)
                    .map(|c| words.words[self.columns[c][e] as usize].as_str())
                    .collect()
            };
            let join = spell(&words.words[values[0] as usize], &action_words(0)).filter(
                |(start, seps)| {
                    (1..examples).all(|e| {
                        let w = action_words(e);
                        let spelt: String = seps
                            .iter()
                            .zip(&w[*start..])
                            .map(|(sep, x)| format!("{sep}{x}"))
                            .collect();
                        spelt == words.words[values[e] as usize]
                    })
                },
            );
            let derivation = if let Some((start, seps)) = join {
                Some(Derivation::Join(
                    seps.iter()
                        .enumerate()
                        .map(|(i, sep)| (*sep, self.pattern[start + i].clone()))
                        .collect(),
                ))
            } else {
                // a bound variable (action first) that determines this one in every example
                let mut sources: Vec<(usize, u32)> = vec![];
                for (c, t) in self.pattern.iter().enumerate() {
                    if let Tok::Var(u) = t
                        && bound.contains(u)
                        && !sources.iter().any(|s| s.1 == *u)
                    {
                        sources.push((c, *u));
                    }
                }
                // a function shown on one example per key could be chance: ask for two per key
                sources.into_iter().find_map(|(c, u)| {
                    let mut map = FxHashMap::default();
                    let functional = self.columns[c]
                        .iter()
                        .zip(values)
                        .all(|(&k, &x)| *map.entry(k).or_insert(x) == x);
                    (functional && examples >= 2 * map.len())
                        .then_some(Derivation::Lookup { from: u, map })
                })
            };
            if let Some(d) = derivation {
                let k = self.derived.len() as u32;
                self.derived.push(d);
                for t in &mut self.pattern {
                    if *t == Tok::Var(v) {
                        *t = Tok::Derived(k);
                    }
                }
            }
        }
    }

    /// The first added line whose every word is a constant, a variable of the action or derived
    /// from those (see [`Rule::action_anchor`]).
    fn find_action_anchor(&self) -> Option<usize> {
        let action_vars: Vec<u32> = self.pattern[..self.shape.first().map_or(0, |s| s.1)]
            .iter()
            .filter_map(|t| if let Tok::Var(v) = t { Some(*v) } else { None })
            .collect();
        let from_action = |t: &Tok| match t {
            Tok::Const(_) => true,
            Tok::Var(v) => action_vars.contains(v),
            Tok::Derived(k) => match &self.derived[*k as usize] {
                Derivation::Join(parts) => parts.iter().all(|(_, t)| match t {
                    Tok::Var(v) => action_vars.contains(v),
                    _ => matches!(t, Tok::Const(_)),
                }),
                Derivation::Lookup { from, .. } => action_vars.contains(from),
            },
        };
        self.segments()
            .filter(|(p, _)| *p == Part::Added)
            .position(|(_, seg)| seg.toks.iter().all(from_action))
    }

    /// See [`Rule::line_kinds`].
    fn count_line_kinds(&self, words: &Interner) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = vec![];
        for (part, seg) in self.segments() {
            if !matches!(part, Part::Removed | Part::Context) {
                continue;
            }
            let toks = seg.toks.iter().map(|t| match t {
                Tok::Const(c) => Some(*c),
                _ => None,
            });
            count_kind(&mut out, line_kind_word(toks, words));
        }
        out
    }

    /// The rule's conditions as text, variables numbered by first occurrence in them.
    fn conditions_key(&self) -> String {
        let mut names: HashMap<u32, usize> = HashMap::new();
        let mut key = String::new();
        for (part, seg) in self.segments() {
            if !matches!(
                part,
                Part::Action | Part::Instruction | Part::Removed | Part::Context | Part::AdmRemoved
            ) {
                continue;
            }
            let _ = write!(key, "{part:?}:");
            for (t, sp) in seg.toks.iter().zip(seg.spacing) {
                let _ = match t {
                    Tok::Var(v) => {
                        let n = names.len();
                        write!(key, "{sp}v{} ", names.entry(*v).or_insert(n))
                    }
                    t => write!(key, "{sp}{t:?} "),
                };
            }
        }
        key
    }

    /// How the action-determined line is computed, as text: the action pattern, the line's
    /// pattern with derivations spelt out, and the spacing.
    fn action_anchor_key(&self) -> Option<String> {
        let i = self.action_anchor?;
        let (_, action) = self.segments().next()?;
        let (_, line) = self.segments().filter(|(p, _)| *p == Part::Added).nth(i)?;
        let toks: Vec<String> = line
            .toks
            .iter()
            .map(|t| match t {
                Tok::Derived(k) => format!("{:?}", self.derived[*k as usize]),
                t => format!("{t:?}"),
            })
            .collect();
        Some(format!(
            "{:?}|{:?}|{toks:?}|{:?}",
            action.toks, action.spacing, line.spacing
        ))
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

/// Counts `s`'s next observation (without the instruction, which other tasks differ in) among
/// those seen for its state and action; `neutral`: the step neither paid nor ended the episode.
fn record_next(seen: &mut Vec<SeenNext>, s: &Step, neutral: bool) {
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
}

/// The next observation seen most often, and how many were seen in all (`seen` is never empty:
/// entries are made by [`record_next`]).
fn most_seen(seen: &[SeenNext]) -> (&SeenNext, usize) {
    let total = seen.iter().map(|o| o.2).sum();
    (seen.iter().max_by_key(|o| o.2).expect("non-empty"), total)
}

/// A prediction of a remembered next observation, with this task's instruction, no reward and
/// not done.
fn seen_prediction(
    ctx: &ModelContext,
    best: &SeenNext,
    reasoning: String,
    confidence: f32,
) -> Prediction {
    Prediction {
        reasoning,
        next_state: Observation {
            instruction: ctx.state.instruction.clone(),
            ..best.0.clone()
        },
        reward: 0.0,
        done: false,
        success: false,
        confidence,
    }
}

/// The native reasoning model (see the module docs).
#[derive(Default)]
pub struct NativeModel {
    words: Interner,
    memory: FxHashMap<u64, Vec<Outcome>>,
    /// (state, action) -> next observations, for transitions that never paid or ended an episode.
    dynamics: FxHashMap<u64, Vec<SeenNext>>,
    /// (state, action) -> next observations of transitions whose reward the data does not state
    /// (imported without rewards): evidence about the next state only, never about rewards.
    unrewarded: FxHashMap<u64, Vec<SeenNext>>,
    rules: Vec<Rule>,
    by_action: HashMap<(usize, u32), Vec<usize>>,
    use_rules: bool,
    transitions: usize,
    /// Per action form (token count, first word): for each line kind, how often a line of that
    /// kind stayed and how often it went when such an action changed the state.
    persistence: HashMap<(usize, u32), HashMap<String, (usize, usize)>>,
    /// Per action form: the kinds of lines such actions brought into view in training.
    brings: HashMap<(usize, u32), HashSet<String>>,
    /// Per-line rewrites by line shape (egocentric worlds where every line changes).
    rewrites: LineRewrites,
    /// Partial-credit rewards of episode-ending actions as sums of criteria.
    additive: AdditiveRewards,
    /// The admissible actions of each set of state lines seen (for recalled states).
    views: ViewIndex,
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
                    m.rewrites.learn(s);
                    m.additive.learn(s);
                    m.views.learn(&s.next_state);
                }
            }
            if rules {
                m.views.learn_returns(&t.steps);
            }
        }
        m.additive.fit();
        m.views.finish();
        let words = &m.words;
        for r in &mut m.rules {
            r.derive(words);
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

    fn learn_unrewarded(&mut self, s: &Step) {
        self.transitions += 1;
        let key = fingerprint(None, &s.state.lines, &s.action);
        record_next(self.unrewarded.entry(key).or_default(), s, false);
    }

    /// The next state transitions without a stated reward led to from this state and action;
    /// the reward is not known, so 0 is assumed at no more than half confidence, and said so.
    fn predict_unrewarded(&self, ctx: &ModelContext) -> Option<Prediction> {
        let seen = self
            .unrewarded
            .get(&fingerprint(None, &ctx.state.lines, ctx.action))?;
        let (best, total) = most_seen(seen);
        Some(seen_prediction(
            ctx,
            best,
            format!(
                "Seen in data without rewards: this state and action occurred {total} time(s); {} led to the predicted state. The data states no reward, so reward 0 and not done are assumed, with low confidence.",
                best.2
            ),
            0.5 * best.2 as f32 / total as f32,
        ))
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
        record_next(self.dynamics.entry(dyn_key).or_default(), s, neutral);
        if !self.use_rules {
            return;
        }
        if s.state.lines != s.next_state.lines {
            let t = tokens(&s.action);
            let key = (
                t.len(),
                t.first().map_or(u32::MAX, |(w, _)| self.words.id(w)),
            );
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

    /// Whether a pattern matches a tokenized text given bindings `b` (unbound variables match
    /// anything, the same word wherever they repeat). Binds nothing.
    fn fits(pat: Seg, text: &Tokenized, b: &[Option<u32>]) -> bool {
        Self::fits_with(pat, text, b, false)
    }

    /// [`Self::fits`]; with `loose`, derived words match anything too.
    fn fits_with(pat: Seg, text: &Tokenized, b: &[Option<u32>], loose: bool) -> bool {
        if text.ids.len() != pat.toks.len() || text.spacing != pat.spacing {
            return false;
        }
        for (j, (&t, p)) in text.ids.iter().zip(pat.toks).enumerate() {
            let ok = match p {
                Tok::Const(c) => *c == t,
                Tok::Var(x) => match b[*x as usize] {
                    Some(y) => y == t,
                    // an unbound variable seen earlier in the pattern must take the same word
                    None => pat.toks[..j]
                        .iter()
                        .zip(&text.ids)
                        .all(|(q, &u)| q != p || u == t),
                },
                // derived words only occur in what a rule adds
                Tok::Derived(_) => loose,
            };
            if !ok {
                return false;
            }
        }
        true
    }

    /// Match a pattern against a tokenized text, extending `b` (and recording each variable it
    /// binds on `trail`); on failure `b` is unchanged.
    fn bind(pat: Seg, text: &Tokenized, b: &mut [Option<u32>], trail: &mut Vec<u32>) -> bool {
        if !Self::fits(pat, text, b) {
            return false;
        }
        for (&t, p) in text.ids.iter().zip(pat.toks) {
            if let Tok::Var(x) = p
                && b[*x as usize].is_none()
            {
                b[*x as usize] = Some(t);
                trail.push(*x);
            }
        }
        true
    }

    /// Match a pattern against a tokenized text, extending `b`; on failure `b` is unchanged.
    fn unify(pat: Seg, text: &Tokenized, b: &mut [Option<u32>]) -> bool {
        if !Self::fits(pat, text, b) {
            return false;
        }
        for (&t, p) in text.ids.iter().zip(pat.toks) {
            if let Tok::Var(x) = p {
                b[*x as usize] = Some(t);
            }
        }
        true
    }

    /// Rule `r`'s action-determined added line (see [`Rule::action_anchor`]) for the query's
    /// action: `None` when the action does not fit the rule, `Some(None)` when the rule has no
    /// such line.
    fn action_anchor(&self, v: &Vocab, q: &Query, r: &Rule) -> Option<Option<String>> {
        if !Self::action_fits(r, q) {
            return None;
        }
        let Some(i) = r.action_anchor else {
            return Some(None);
        };
        let mut buf = [None; 64];
        let mut heap;
        let b: &mut [Option<u32>] = match buf.get_mut(..r.nvars as usize) {
            Some(b) => b,
            None => {
                heap = vec![None; r.nvars as usize];
                &mut heap
            }
        };
        let (_, action) = r.segments().next()?;
        if !Self::unify(action, &q.action, b) {
            return None;
        }
        let seg = r.segments().filter(|(p, _)| *p == Part::Added).nth(i)?.1;
        Self::fill(v, r, seg, b).map(Some)
    }

    /// Whether the rule's action pattern fits the query's action (a cheap first filter).
    fn action_fits(r: &Rule, q: &Query) -> bool {
        const UNBOUND: [Option<u32>; 64] = [None; 64];
        let n = r.shape.first().map_or(0, |s| s.1);
        let seg = Seg {
            toks: &r.pattern[..n],
            spacing: &r.spacing[..n],
        };
        if (r.nvars as usize) > UNBOUND.len() {
            return Self::fits(seg, &q.action, &vec![None; r.nvars as usize]);
        }
        Self::fits(seg, &q.action, &UNBOUND[..r.nvars as usize])
    }

    /// Match each of `pats` to a distinct item of `items` (backtracking); records the matches.
    fn match_all(
        pats: &[Seg],
        items: &[Tokenized],
        used: &mut Vec<usize>,
        b: &mut Vec<Option<u32>>,
    ) -> bool {
        let mut trail = Vec::new();
        let mut budget = MATCH_BUDGET;
        Self::match_rest(pats, items, used, b, &mut trail, &mut budget)
    }

    fn match_rest(
        pats: &[Seg],
        items: &[Tokenized],
        used: &mut Vec<usize>,
        b: &mut Vec<Option<u32>>,
        trail: &mut Vec<u32>,
        budget: &mut usize,
    ) -> bool {
        let Some((first, rest)) = pats.split_first() else {
            return true;
        };
        for (i, item) in items.iter().enumerate() {
            if used.contains(&i) || item.ids.len() != first.toks.len() {
                continue;
            }
            // many similar lines can make backtracking explode: give up (the rule does not apply)
            if *budget == 0 {
                return false;
            }
            *budget -= 1;
            let mark = trail.len();
            if Self::bind(*first, item, b, trail) {
                used.push(i);
                if Self::match_rest(rest, items, used, b, trail, budget) {
                    return true;
                }
                used.pop();
                for x in trail.drain(mark..) {
                    b[x as usize] = None;
                }
            }
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
            .all(|(_, l)| !removed.iter().any(|p| Self::fits(*p, l, b)))
    }

    fn fill(v: &Vocab, r: &Rule, pat: Seg, b: &[Option<u32>]) -> Option<String> {
        let word = |t: &Tok| match t {
            Tok::Const(c) => Some(*c),
            Tok::Var(x) => b[*x as usize],
            Tok::Derived(_) => None,
        };
        let mut out = String::new();
        for (t, &sp) in pat.toks.iter().zip(pat.spacing) {
            if sp {
                out.push(' ');
            }
            match t {
                Tok::Derived(k) => match &r.derived[*k as usize] {
                    Derivation::Join(parts) => {
                        for (sep, p) in parts {
                            out.push_str(sep);
                            out.push_str(v.word(word(p)?));
                        }
                    }
                    Derivation::Lookup { from, map } => {
                        out.push_str(v.word(*map.get(&b[*from as usize]?)?));
                    }
                },
                t => out.push_str(v.word(word(t)?)),
            }
        }
        Some(out)
    }

    /// The bindings of rule `r`'s action and (for paying rules) instruction patterns, matched
    /// against the query; `None` when either does not match.
    fn bind_task(r: &Rule, segs: &[(Part, Seg)], q: &Query) -> Option<Vec<Option<u32>>> {
        let mut b: Vec<Option<u32>> = vec![None; r.nvars as usize];
        for (part, seg) in segs {
            let text = match part {
                Part::Action => &q.action,
                Part::Instruction => &q.instruction,
                _ => continue,
            };
            if !Self::unify(*seg, text, &mut b) {
                return None;
            }
        }
        Some(b)
    }

    /// Match the conditions of rule `r` (action, instruction, removed lines — exhaustively —,
    /// context lines, removed admissible actions) against a query.
    fn match_rule(r: &Rule, segs: &[(Part, Seg)], q: &Query) -> Option<Matched> {
        if q.unmatched.borrow().contains(&r.cond_group) {
            return None;
        }
        let m = Self::match_conditions(r, segs, q);
        if m.is_none() {
            q.unmatched.borrow_mut().insert(r.cond_group);
        }
        m
    }

    fn match_conditions(r: &Rule, segs: &[(Part, Seg)], q: &Query) -> Option<Matched> {
        let enough =
            |&(kind, n): &(u32, u32)| q.line_kinds.iter().any(|&(k, m)| k == kind && m >= n);
        if !r.line_kinds.iter().all(enough) {
            return None;
        }
        let get = |p: Part| segs.iter().filter(move |(x, _)| *x == p).map(|(_, s)| *s);
        let mut b = Self::bind_task(r, segs, q)?;
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

    /// How lines of each kind fared under actions of the query's form (see `persistence`).
    fn persistence_of(&self, q: &Query) -> Option<&HashMap<String, (usize, usize)>> {
        self.persistence.get(&Self::action_form(q))
    }

    /// The form of the query's action that per-form statistics are kept by: its token count and
    /// first word.
    fn action_form(q: &Query) -> (usize, u32) {
        (
            q.action.ids.len(),
            q.action.ids.first().copied().unwrap_or(u32::MAX),
        )
    }

    /// Whether keeping the state's lines outside `removed` would keep a line of a kind that
    /// actions of this form always took away in training (the old place's lines on a move).
    fn leaves_stale_lines(&self, q: &Query, lines: &[String], removed: &[usize]) -> bool {
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
    fn apply(
        &self,
        v: &Vocab,
        q: &Query,
        r: &Rule,
        ctx: &ModelContext,
    ) -> Option<(Observation, Vec<Option<u32>>)> {
        if q.unmatched.borrow().contains(&r.cond_group) || !Self::action_fits(r, q) {
            return None;
        }
        let segs: Vec<(Part, Seg)> = r.segments().collect();
        let get = |p: Part| segs.iter().filter(move |(q, _)| *q == p).map(|(_, s)| *s);
        let Matched { b, used, used_adm } = Self::match_rule(r, &segs, q)?;
        if !r.relations_hold(v, &b) || self.leaves_stale_lines(q, &ctx.state.lines, &used) {
            return None;
        }
        let added: Vec<String> = get(Part::Added)
            .map(|p| Self::fill(v, r, p, &b))
            .collect::<Option<_>>()?;
        let adm_added: Vec<String> = get(Part::AdmAdded)
            .map(|p| Self::fill(v, r, p, &b))
            .collect::<Option<_>>()?;
        let feedback = Self::fill(v, r, get(Part::Feedback).next()?, &b)?;
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
    fn recall(
        &self,
        v: &Vocab,
        q: &Query,
        r: &Rule,
        ctx: &ModelContext,
        sources: &RecallSources,
    ) -> Option<(Observation, usize)> {
        if q.unmatched.borrow().contains(&r.cond_group) || !Self::action_fits(r, q) {
            return None;
        }
        let segs: Vec<(Part, Seg)> = r.segments().collect();
        let get = |p: Part| segs.iter().filter(move |(q, _)| *q == p).map(|(_, s)| *s);
        let Matched {
            mut b,
            used,
            used_adm,
        } = Self::match_rule(r, &segs, q)?;
        if !r.relations_hold(v, &b) {
            return None;
        }
        let added: Vec<Seg> = get(Part::Added).collect();
        let filled: Vec<Option<String>> = added.iter().map(|p| Self::fill(v, r, *p, &b)).collect();
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
        if pool.len() != open.len()
            || !pool
                .iter()
                .all(|t| open.iter().any(|p| Self::fits(*p, t, &b)))
        {
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
        if !Self::match_all(&open, &pool, &mut used_pool, &mut b) {
            return None;
        }
        let lines_back: Vec<String> = added
            .iter()
            .map(|p| Self::fill(&words, r, *p, &b))
            .collect::<Option<_>>()?;
        let adm_back: Vec<String> = get(Part::AdmAdded)
            .map(|p| Self::fill(&words, r, p, &b))
            .collect::<Option<_>>()?;
        let feedback = Self::fill(&words, r, get(Part::Feedback).next()?, &b)?;
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
    fn reward_of(&self, r: &Rule, ctx: &ModelContext, why: &mut String) -> f32 {
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
        let mut rest = cands.iter();
        for &ri in rest.by_ref() {
            let r = &self.rules[ri];
            if let Some((obs, b)) = self.apply(vocab, query, r, ctx) {
                best = Some((r, obs, b));
                break;
            }
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
            let conf = r.support as f32 / (r.support as f32 + 1.0);
            return Some(Prediction {
                reasoning: why,
                next_state: obs,
                reward,
                done: r.done,
                success: success_of(reward, r.done),
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
    fn apply_as_sets(
        &self,
        v: &Vocab,
        q: &Query,
        r: &Rule,
        ctx: &ModelContext,
    ) -> Option<(Observation, Vec<Option<u32>>, Option<usize>)> {
        if !Self::action_fits(r, q) {
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
        let mut b = Self::bind_task(r, &segs, q)?;
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
                if Self::unify(p, line, &mut lb) {
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
        if !Self::match_all(&context, &q.lines, &mut taken, &mut b) {
            return None;
        }
        if !r.relations_hold(v, &b) || self.leaves_stale_lines(q, &ctx.state.lines, &used) {
            return None;
        }
        let mut used_adm: Vec<usize> = vec![];
        for p in get(Part::AdmRemoved) {
            for (i, a) in q.admissible.iter().enumerate() {
                if !used_adm.contains(&i) && Self::fits(p, a, &b) {
                    used_adm.push(i);
                }
            }
        }
        let feedback = Self::fill(v, r, get(Part::Feedback).next()?, &b)?;
        let added: Vec<String> = get(Part::Added)
            .filter_map(|p| Self::fill(v, r, p, &b))
            .collect();
        let mut adm_added: Vec<String> = get(Part::AdmAdded)
            .filter_map(|p| Self::fill(v, r, p, &b))
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
    fn by_rule_as_sets(
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
            success: r.done && r.reward >= 0.999,
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
    fn recall_any<'a>(
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
            if r.action_anchor.is_none() && !Self::action_fits(r, query) {
                continue;
            }
            if r.action_anchor.is_some() {
                let there = *seen_there.entry(r.anchor_group).or_insert_with(|| {
                    let anchor = self.action_anchor(vocab, query, r)??;
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
                    success: r.done && reward >= 0.999,
                    confidence: 0.9,
                });
            }
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
        let mut p = self.predict_by_stages(ctx);
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

    fn predict_by_stages(&self, ctx: &ModelContext) -> Prediction {
        let success_of = |reward: f32, done: bool| done && reward >= 0.999;
        let admissible = ctx.state.admissible.iter().any(|a| a == ctx.action);
        // 1. exact memory
        let key = fingerprint(Some(&ctx.state.instruction), &ctx.state.lines, ctx.action);
        let remembered = self.memory.get(&key).map(|outcomes| {
            let total: usize = outcomes.iter().map(|o| o.3).sum();
            (
                outcomes.iter().max_by_key(|o| o.3).expect("non-empty"),
                total,
            )
        });
        // 2. the same state and action under another task, where it never paid or ended an episode
        let seen_elsewhere = self
            .dynamics
            .get(&fingerprint(None, &ctx.state.lines, ctx.action))
            .filter(|seen| seen.iter().all(|o| o.1))
            .map(|seen| most_seen(seen));
        let memory_next = remembered
            .map(|(best, _)| &best.0)
            .or(seen_elsewhere.map(|(best, _)| &best.0));
        let memory = || {
            if let Some((best, total)) = remembered {
                return Some(Prediction {
                    reasoning: format!(
                        "Seen before: this exact state and action occurred {total} time(s) in the training data; {} of them led to the predicted outcome.",
                        best.3
                    ),
                    next_state: best.0.clone(),
                    reward: best.1,
                    done: best.2,
                    success: success_of(best.1, best.2),
                    confidence: best.3 as f32 / total as f32,
                });
            }
            seen_elsewhere.map(|(best, total)| {
                seen_prediction(
                    ctx,
                    best,
                    format!(
                        "Seen before under other tasks: this state and action occurred {total} time(s); {} led to the predicted state, none paid a reward or ended the episode.",
                        best.2
                    ),
                    best.2 as f32 / total as f32,
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
            self.by_rule(&vocab, &query, cands, ctx).or_else(|| {
                admissible
                    .then(|| self.by_rule_as_sets(&vocab, &query, cands, ctx))
                    .flatten()
            })
        };
        let mut by_rules = None;
        // a place some source saw, that no rule of the right shape recalls
        if let Some(s) = sources.as_ref().filter(|_| seen)
            && let Some(r) = by_rules.insert(ruled()).as_ref()
            && let Some(kinds) = self.brings.get(&Self::action_form(&query))
            && let Some(p) = recall::recall_place(s, ctx.state, r, &self.views, kinds)
        {
            return p;
        }
        if let Some(p) = memory() {
            return p;
        }
        if let Some(p) = by_rules.unwrap_or_else(ruled) {
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
                success: success_of(r.reward, r.done),
                confidence: r.confidence,
            };
        }
        // 6. failure semantics
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
    fn spell_finds_ids_joined_from_action_words() {
        assert_eq!(
            spell("diningtable_1", &["go", "to", "dining", "table", "1"]),
            Some((2, vec!["", "", "_"]))
        );
        assert_eq!(
            spell("fridge_1", &["go", "to", "fridge", "1"]),
            Some((2, vec!["", "_"]))
        );
        assert_eq!(
            spell("room_b", &["go", "to", "the", "middle", "room"]),
            None
        );
        // one word alone is the word itself, not a join
        assert_eq!(spell("fridge", &["go", "to", "fridge", "1"]), None);
    }

    const PLACES: [(&str, u32); 5] = [
        ("kitchen", 1),
        ("hall", 2),
        ("garden", 3),
        ("attic", 4),
        ("cellar", 5),
    ];

    /// At `place` with `items` lying there, in a world of the five [`PLACES`].
    fn at(place: (&str, u32), items: &[&str]) -> Observation {
        let (p, n) = place;
        let mut lines = vec![format!("[{p}_{n}] location: you are at {p} {n}")];
        let mut admissible: Vec<String> = PLACES
            .iter()
            .filter(|x| x.0 != p)
            .map(|(q, m)| format!("go to {q} {m}"))
            .collect();
        for it in items {
            lines.push(format!("[{it}_1] item: a {it} in/on {p} {n}"));
            admissible.push(format!("take {it} from {p} {n}"));
        }
        Observation {
            lines,
            instruction: "tidy up".into(),
            admissible,
            feedback: String::new(),
        }
    }

    fn go(from: Observation, to: (&str, u32)) -> Step {
        let mut next = at(to, &[]);
        next.feedback = format!("You arrive at {} {}.", to.0, to.1);
        Step {
            state: from,
            action: format!("go to {} {}", to.0, to.1),
            reward: 0.0,
            next_state: next,
            done: false,
            truncated: false,
            reasoning: None,
            provenance: dreamgym_buffer::Provenance::Real,
            reward_known: true,
        }
    }

    fn episode(steps: Vec<Step>) -> Trajectory {
        serde_json::from_value(serde_json::json!({
            "task": {"id": "t", "instruction": "tidy up"},
            "env_id": "test", "seed": 0, "provenance": "real", "policy": "test",
            "steps": steps,
            "outcome": {"success": false, "total_reward": 0.0, "length": steps.len(), "truncated": false},
        }))
        .unwrap()
    }

    #[test]
    fn moves_generalise_to_new_places_and_any_number_of_objects() {
        // trained on moves among four places, leaving places with at most one object (one of
        // three kinds)
        let mut steps = vec![];
        for (i, &a) in PLACES[..4].iter().enumerate() {
            for (j, &b) in PLACES[..4].iter().enumerate() {
                if i != j {
                    steps.push(go(at(a, &[]), b));
                    steps.push(go(at(a, &[["cup", "fork", "plate"][(i + j) % 3]]), b));
                }
            }
        }
        let model = NativeModel::fit(&[episode(steps)]);
        // leave a place with three objects for a place never seen in training
        let state = at(PLACES[0], &["cup", "fork", "bowl"]);
        let task = super::super::test_task("tidy up");
        let p = model.predict_native(&ModelContext {
            task: &task,
            history: &[],
            state: &state,
            action: "go to cellar 5",
            retrieved: &[],
        });
        assert_eq!(
            p.next_state.lines,
            at(PLACES[4], &[]).lines,
            "{}",
            p.reasoning
        );
        let mut adm = p.next_state.admissible.clone();
        let mut want = at(PLACES[4], &[]).admissible;
        adm.sort();
        want.sort();
        assert_eq!(adm, want, "{}", p.reasoning);
        assert_eq!(p.next_state.feedback, "You arrive at cellar 5.");
        assert_eq!((p.reward, p.done), (0.0, false));
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
