//! A lifted rule: transitions of one shape anti-unified column by column into a pattern with
//! variables, derived words and relations; and the pieces of a query matched against it.

use super::tokens::{Interner, Tokenized, Vocab, count_kind, line_kind_word, spell};
use rustc_hash::FxHashMap;
use std::collections::HashMap;
use std::fmt::Write;
/// The parts of a transition, each a list of token sequences.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Part {
    Action,
    Instruction,
    Removed,
    Context,
    Added,
    AdmRemoved,
    AdmAdded,
    Feedback,
}

pub(super) struct Example {
    pub(super) segs: Vec<(Part, Vec<u32>, Vec<bool>)>,
    pub(super) reward: f32,
    pub(super) done: bool,
}

/// What matching a rule's conditions bound and used.
pub(super) struct Matched {
    /// Variable bindings.
    pub(super) b: Vec<Option<u32>>,
    /// State lines the rule removes.
    pub(super) used: Vec<usize>,
    /// Admissible actions the rule removes.
    pub(super) used_adm: Vec<usize>,
}

/// The query of one prediction, tokenized once.
pub(super) struct Query {
    pub(super) action: Tokenized,
    pub(super) instruction: Tokenized,
    pub(super) lines: Vec<Tokenized>,
    pub(super) admissible: Vec<Tokenized>,
    /// Condition groups (see `Rule::cond_group`) already found not to match this query.
    pub(super) unmatched: std::cell::RefCell<rustc_hash::FxHashSet<u32>>,
    /// How many state lines have each kind word (see `Rule::line_kinds`).
    pub(super) line_kinds: Vec<(u32, u32)>,
}

/// One segment of a rule's pattern: its tokens and where spaces go.
#[derive(Clone, Copy)]
pub(super) struct Seg<'a> {
    pub(super) toks: &'a [Tok],
    pub(super) spacing: &'a [bool],
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    Const(u32),
    Var(u32),
    /// A value the rule's conditions do not bind but computes from what they bind
    /// (`Rule::derived`).
    Derived(u32),
}

/// How a rule computes a word its conditions do not bind.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Derivation {
    /// Words of the action joined, each after a separator: `fridge_1` from `go to fridge 1`,
    /// `diningtable_1` from `go to dining table 1`.
    Join(Vec<(&'static str, Tok)>),
    /// A function of a bound variable seen in the examples (`middle` -> `room_b`).
    Lookup { from: u32, map: FxHashMap<u32, u32> },
}

/// How two variables of a rule relate in every example.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Relation {
    /// Both numbers, the first less than the second.
    Less,
    /// Both numbers, the first greater than the second.
    Greater,
    /// Never the same word.
    Differ,
    /// The same word but for case, as the action's `west` and a line's `West`: a rule about the
    /// door to the west must not open the one to the south.
    SameFolded,
}

/// A candidate function of [`Rule::function_candidates`]: per instruction word, its line word
/// and how many examples showed them together.
pub(super) type FunctionSeen = FxHashMap<u32, (u32, usize)>;

/// A lifted rule.
pub(super) struct Rule {
    pub(super) shape: Vec<(Part, usize)>,
    pub(super) spacing: Vec<bool>,
    pub(super) columns: Vec<Vec<u32>>,
    pub(super) support: usize,
    pub(super) reward: f32,
    pub(super) done: bool,
    pub(super) pattern: Vec<Tok>,
    /// Some added line has a variable nothing binds (history recall can fill it).
    pub(super) open: bool,
    /// Some added line is fully bound: history recall has a line to look for.
    pub(super) anchored: bool,
    /// The first added line (its index among the added lines) that the action's words alone
    /// determine: where the action leads, to look up in recall sources before any matching.
    pub(super) action_anchor: Option<usize>,
    /// How many lines the rule adds, and how many of them are open.
    pub(super) n_added: usize,
    pub(super) n_open: usize,
    /// Rules whose action-determined line is computed alike share a group (see `fit_with`).
    pub(super) anchor_group: u32,
    /// Rules with the same conditions (action, instruction, removed and context lines, removed
    /// admissible actions) share a group: they match a query alike (see `match_rule`).
    pub(super) cond_group: u32,
    /// How many of the removed and context lines have each kind (`[id] kind: ...` lines with a
    /// constant kind word): a state needs at least as many (a cheap test before matching).
    pub(super) line_kinds: Vec<(u32, u32)>,
    pub(super) constants: usize,
    pub(super) nvars: u32,
    pub(super) derived: Vec<Derivation>,
    /// For each variable, the first column it occupies (its values in the examples).
    pub(super) var_cols: Vec<Option<usize>>,
    /// Pairs of variables related the same way in every example: numbers ordered the same way
    /// (`?price < ?budget`), or words never equal (`?wanted_colour != ?chosen_colour`).
    pub(super) relations: Vec<(u32, u32, Relation)>,
    /// Variables of the removed or kept lines that are a function of a variable of the
    /// instruction in every example (`heat` → `hot`, `cool` → `cold`): (instruction variable,
    /// line variable, the function). Where the instruction's word was seen, the line's must be
    /// its value: a rule learnt on hot things put away for "heat" tasks does not pay for a cold
    /// thing put away for a "heat" task.
    pub(super) functions: Vec<(u32, u32, FxHashMap<u32, u32>)>,
    /// The candidates: each function with the number of examples of each instruction word,
    /// settled against every other rule's by [`Rule::settle_functions`].
    pub(super) function_candidates: Vec<(u32, u32, FunctionSeen)>,
    pub(super) example: String,
    /// For a rule whose outcome is a success: over the training transitions where it applies,
    /// how many were successes, of how many (`NativeModel::score_successes`). A success that
    /// the same visible state often did not bring (a hidden cause decided) is weak.
    pub(super) record: (u32, u32),
}

/// Examples of an instruction word behind its value in a learnt function (see
/// [`Rule::functions`]).
const FUNCTION_EXAMPLES: usize = 3;

/// A success rule tried on at least this many training transitions...
const MIN_TRIED: u32 = 5;
/// ...that succeeded on fewer than this share of them is weak: it is predicted only when no other
/// rule explains the step, and then with its record as confidence.
const STRONG_SUCCESS: f32 = 0.9;

impl Rule {
    /// Whether the rule predicts a success.
    pub(super) fn succeeds(&self) -> bool {
        dreamgym_buffer::is_success(self.done, self.reward)
    }

    /// The share of the transitions it applies to that went as it says (1 without a record).
    pub(super) fn record_share(&self) -> f32 {
        let (held, tried) = self.record;
        if tried == 0 {
            1.0
        } else {
            held as f32 / tried as f32
        }
    }

    /// A success the same visible state often did not bring (see `record`).
    pub(super) fn weak_success(&self) -> bool {
        self.succeeds() && self.record.1 >= MIN_TRIED && self.record_share() < STRONG_SUCCESS
    }

    pub(super) fn derive(&mut self, words: &Interner) {
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
    pub(super) fn derive_relations(&mut self, words: &Interner) {
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
                let folded = |x: &u32, y: &u32| {
                    words.words[*x as usize].eq_ignore_ascii_case(&words.words[*y as usize])
                };
                let same_folded = self.columns[cu]
                    .iter()
                    .zip(&self.columns[cw])
                    .all(|(x, y)| x != y && folded(x, y));
                let relation = match order {
                    Some(std::cmp::Ordering::Less) => Some(Relation::Less),
                    Some(std::cmp::Ordering::Greater) => Some(Relation::Greater),
                    _ if same_folded => Some(Relation::SameFolded),
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
        self.derive_functions();
    }

    /// The candidate functions from instruction variables to line variables (see
    /// [`Rule::functions`]): each instruction word always with one word of the line variable,
    /// at least two instruction words and two line words ([`Rule::settle_functions`] keeps
    /// those every rule agrees on).
    fn derive_functions(&mut self) {
        self.functions.clear();
        self.function_candidates.clear();
        let mut part_of = Vec::with_capacity(self.pattern.len());
        for &(part, n) in &self.shape {
            part_of.extend(std::iter::repeat_n(part, n));
        }
        let col_part = |c: usize| part_of.get(c).copied();
        for (u, cu) in self.var_cols.iter().enumerate() {
            let Some(cu) = *cu else { continue };
            if col_part(cu) != Some(Part::Instruction) {
                continue;
            }
            for (w, cw) in self.var_cols.iter().enumerate() {
                let Some(cw) = *cw else { continue };
                if !matches!(col_part(cw), Some(Part::Removed | Part::Context)) {
                    continue;
                }
                let mut map: FxHashMap<u32, (u32, usize)> = FxHashMap::default();
                let functional = self.columns[cu]
                    .iter()
                    .zip(&self.columns[cw])
                    .all(|(x, y)| {
                        let e = map.entry(*x).or_insert((*y, 0));
                        e.1 += 1;
                        e.0 == *y
                    });
                let values: std::collections::HashSet<u32> = map.values().map(|v| v.0).collect();
                if functional && map.len() >= 2 && values.len() >= 2 {
                    self.function_candidates.push((u as u32, w as u32, map));
                }
            }
        }
    }

    /// Keep the candidate functions whose instruction words mean one line word in every rule
    /// that learnt them (`pooled`: per instruction word, its line word and examples over all
    /// rules, `None` where rules disagree), with [`FUNCTION_EXAMPLES`] examples at least:
    /// `heat` → `hot` holds in every rule, while a rule that saw `countertop` only with
    /// `countertop_2` learnt a coincidence another rule contradicts.
    pub(super) fn settle_functions(&mut self, pooled: &FxHashMap<u32, Option<(u32, usize)>>) {
        self.functions = self
            .function_candidates
            .iter()
            .filter_map(|(u, w, map)| {
                let f: FxHashMap<u32, u32> = map
                    .iter()
                    .filter(|(k, (v, _))| {
                        pooled
                            .get(k)
                            .copied()
                            .flatten()
                            .is_some_and(|(pv, n)| pv == *v && n >= FUNCTION_EXAMPLES)
                    })
                    .map(|(k, (v, _))| (*k, *v))
                    .collect();
                (!f.is_empty()).then_some((*u, *w, f))
            })
            .collect();
    }

    /// Whether the rule's functions (see [`Rule::functions`]) hold for bindings `b` (unbound
    /// variables, and instruction words the examples never had, are not checked).
    pub(super) fn functions_hold(&self, b: &[Option<u32>]) -> bool {
        self.functions
            .iter()
            .all(|(x, y, f)| match (b[*x as usize], b[*y as usize]) {
                (Some(p), Some(q)) => f.get(&p).is_none_or(|want| *want == q),
                _ => true,
            })
    }

    /// Whether the relations of the rule hold for bindings `b` (unbound ones are not checked).
    pub(super) fn relations_hold(&self, v: &Vocab, b: &[Option<u32>]) -> bool {
        self.functions_hold(b)
            && self.relations.iter().all(|&(x, y, rel)| {
                let (Some(p), Some(q)) = (b[x as usize], b[y as usize]) else {
                    return true;
                };
                let num = |t: u32| v.number(t);
                match rel {
                    Relation::Differ => p != q,
                    Relation::Less => matches!((num(p), num(q)), (Some(a), Some(b)) if a < b),
                    Relation::Greater => matches!((num(p), num(q)), (Some(a), Some(b)) if a > b),
                    Relation::SameFolded => v.word(p).eq_ignore_ascii_case(v.word(q)),
                }
            })
    }

    /// How much bindings `b` look like one of the rule's examples: the best share, over the
    /// examples, of variable pairs related alike (equal or not; for numbers, which is less).
    pub(super) fn resemblance(&self, v: &Vocab, b: &[Option<u32>]) -> f64 {
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
    pub(super) fn derive_unbound(
        &mut self,
        words: &Interner,
        bound: &std::collections::HashSet<u32>,
    ) {
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
    pub(super) fn find_action_anchor(&self) -> Option<usize> {
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
    pub(super) fn count_line_kinds(&self, words: &Interner) -> Vec<(u32, u32)> {
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
    pub(super) fn conditions_key(&self) -> String {
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
    pub(super) fn action_anchor_key(&self) -> Option<String> {
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
    pub(super) fn rank(&self) -> (bool, usize, usize) {
        (self.support > 1, self.constants, self.support)
    }

    pub(super) fn segments(&self) -> impl Iterator<Item = (Part, Seg<'_>)> {
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

/// The form of an action that the rule index and the per-form line statistics are kept by: its
/// token count and its first word (`take apple from table 1` and `take mug from shelf 2` share
/// one). One definition for fitting and predicting alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct ActionForm {
    tokens: usize,
    first: u32,
}

impl ActionForm {
    /// The form of an action of `tokens` tokens whose first word has id `first`.
    pub(super) fn new(tokens: usize, first: Option<u32>) -> Self {
        Self {
            tokens,
            first: first.unwrap_or(u32::MAX),
        }
    }

    /// The form of an action given as word ids.
    pub(super) fn of(ids: &[u32]) -> Self {
        Self::new(ids.len(), ids.first().copied())
    }
}
