//! Task instances: run a template's setup with a seeded RNG, then ground the world into a compact
//! form (fact bitsets, ground actions, ground render lines, ground goal) that the engine steps fast.

pub use super::facts::{Conj, Dnf, bit, dnf_holds};
use super::ground_cond::CondGrounder;
use super::grounding::{GroundAction, Grounding, show};
use super::solve::{Facts, Solver, ground_atom};
use super::world::{
    CCount, CLit, CSetup, Cond, Fact, Level, ObjId, PlaceWhat, TaskTemplate, World,
};
use dreamgym_buffer::{Task, TaskOrigin};
use rand::RngExt;
use rand::seq::SliceRandom;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// A setup that could not be carried out (e.g. no object satisfies a `Choose`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("task template `{template}` (difficulty {difficulty}): {message}")]
pub struct SetupError {
    /// Template id.
    pub template: String,
    /// Level difficulty.
    pub difficulty: u32,
    /// What went wrong.
    pub message: String,
}

/// A task instance: the world's shared grounding, masked to the instance's active objects, plus
/// the instance's own initial state and goal.
#[derive(Debug, Clone)]
pub struct Instance {
    /// The task.
    pub task: Task,
    /// The world's grounding (shared by all instances).
    pub g: Arc<Grounding>,
    /// Facts of this instance's initial state that no action or render rule mentions
    /// (ids continue after the grounding's facts).
    pub extra: Vec<Fact>,
    /// Initial state.
    pub init: Vec<u64>,
    /// Which ground actions exist in this instance (all their objects are active).
    pub action_on: Vec<bool>,
    /// Which ground render lines exist in this instance.
    pub line_on: Vec<bool>,
    /// Goal.
    pub goal: Dnf,
    /// Terminal failure condition.
    pub ends_when: Option<Dnf>,
    /// Partial-credit conditions.
    pub partial: Vec<Dnf>,
    /// Step limit.
    pub max_steps: u32,
    /// Words in a state: the fact bits, then one word per ground fluent.
    pub words: usize,
    /// Words of fact bits at the start of a state.
    pub fact_words: usize,
}

/// Picks the template and level for a request.
pub fn choose_level<'w>(
    w: &'w World,
    template: Option<&str>,
    difficulty: Option<u32>,
    rng: &mut impl rand::Rng,
) -> Result<(&'w TaskTemplate, &'w Level), String> {
    let cands: Vec<(&TaskTemplate, &Level)> = w
        .tasks
        .iter()
        .filter(|t| template.is_none_or(|id| t.id == id))
        .flat_map(|t| t.levels.iter().map(move |l| (t, l)))
        .filter(|(_, l)| difficulty.is_none_or(|d| l.difficulty == d))
        .collect();
    if cands.is_empty() {
        let avail: Vec<String> = w
            .tasks
            .iter()
            .map(|t| {
                format!(
                    "{} (difficulties {:?})",
                    t.id,
                    t.levels.iter().map(|l| l.difficulty).collect::<Vec<_>>()
                )
            })
            .collect();
        return Err(format!(
            "no task template matches template={} difficulty={}; available: {}",
            template.unwrap_or("any"),
            difficulty.map_or("any".into(), |d| d.to_string()),
            avail.join(", ")
        ));
    }
    Ok(cands[rng.random_range(0..cands.len())])
}

struct Setup<'a> {
    w: &'a World,
    t: &'a TaskTemplate,
    level: &'a Level,
    facts: HashSet<Fact>,
    /// Fluent values set so far (the others have their default).
    values: HashMap<Fact, i64>,
    active: Vec<bool>,
    binding: Vec<Option<ObjId>>,
}

/// During setup every fact and fluent value is known.
impl Facts for Setup<'_> {
    fn holds(&self, f: &Fact) -> Option<bool> {
        Some(self.facts.contains(f))
    }
    fn value(&self, f: &Fact) -> Option<i64> {
        Some(
            self.values
                .get(f)
                .copied()
                .unwrap_or(self.w.fluents[f.pred as usize].default),
        )
    }
}

impl Setup<'_> {
    fn err(&self, message: String) -> SetupError {
        SetupError {
            template: self.t.id.clone(),
            difficulty: self.level.difficulty,
            message,
        }
    }

    fn count(&self, c: &CCount) -> usize {
        match c {
            CCount::Fixed(n) => *n as usize,
            CCount::Knob(k) => self.level.knobs.get(k).copied().unwrap_or(0) as usize,
        }
    }

    fn cond_ok(&self, c: &Cond, b: &[Option<ObjId>]) -> bool {
        let s = Solver {
            w: self.w,
            active: &self.active,
        };
        s.exists(&c.lits, &c.var_types, b, self)
    }

    /// Facts added or removed, fluents set, as an `Assert` says.
    fn assert(&mut self, lits: &[CLit]) {
        for l in lits {
            match l {
                CLit::Atom { neg, pred, args } => {
                    let f = ground_atom(*pred, args, &self.binding)
                        .expect("Assert atoms are ground after substitution");
                    if *neg {
                        self.facts.remove(&f);
                    } else {
                        self.facts.insert(f);
                    }
                }
                CLit::NumSet { fluent, op, rhs } => {
                    let s = Solver {
                        w: self.w,
                        active: &self.active,
                    };
                    let f = s
                        .ground_fluent(fluent, &self.binding)
                        .expect("Assert fluents are ground after substitution");
                    let now = self.value(&f).unwrap_or(0);
                    let by = s.num_value(rhs, &self.binding, self).unwrap_or(0);
                    let info = &self.w.fluents[fluent.id as usize];
                    let next = super::facts::changed(*op, now, by, info.min, info.max);
                    self.values.insert(f, next);
                }
                _ => unreachable!("Assert takes atoms and fluent changes (checked when compiled)"),
            }
        }
    }

    fn run(&mut self, steps: &[CSetup], rng: &mut impl rand::Rng) -> Result<(), SetupError> {
        for s in steps {
            match s {
                CSetup::Choose { slot, ty, filter } => {
                    if self.binding.len() <= *slot {
                        self.binding.resize(slot + 1, None);
                    }
                    let taken: HashSet<ObjId> = self.binding.iter().flatten().copied().collect();
                    let mut cands = vec![];
                    for &o in &self.w.objects_of[*ty as usize] {
                        if !self.active[o as usize] || taken.contains(&o) {
                            continue;
                        }
                        let mut b = self.binding.clone();
                        b[*slot] = Some(o);
                        if filter.as_ref().is_none_or(|f| self.cond_ok(f, &b)) {
                            cands.push(o);
                        }
                    }
                    if cands.is_empty() {
                        return Err(self.err(format!(
                            "no active `{}` object satisfies the Choose of `{}`",
                            self.w.types[*ty as usize].name, self.t.vars[*slot].0
                        )));
                    }
                    self.binding[*slot] = Some(cands[rng.random_range(0..cands.len())]);
                }
                CSetup::Limit { ty, keep } => {
                    let bound: HashSet<ObjId> = self.binding.iter().flatten().copied().collect();
                    let mut free: Vec<ObjId> = self.w.objects_of[*ty as usize]
                        .iter()
                        .copied()
                        .filter(|o| self.active[*o as usize] && !bound.contains(o))
                        .collect();
                    free.shuffle(rng);
                    for &o in free.iter().skip(self.count(keep)) {
                        self.active[o as usize] = false;
                    }
                }
                CSetup::LimitPlaces { count } => {
                    let n = self.count(count);
                    let places = self.w.places.as_ref().expect("checked at compile time");
                    for &o in places.order.iter().skip(n) {
                        self.active[o as usize] = false;
                    }
                }
                CSetup::Place {
                    what,
                    pred,
                    among,
                    filter,
                    base,
                } => {
                    let objs: Vec<ObjId> = match what {
                        PlaceWhat::Var(s) => {
                            vec![self.binding[*s].expect("bound by an earlier Choose")]
                        }
                        PlaceWhat::Type(t) => self.w.objects_of[*t as usize]
                            .iter()
                            .copied()
                            .filter(|&o| {
                                self.active[o as usize]
                                    && !self.facts.iter().any(|f| f.pred == *pred && f.args[0] == o)
                            })
                            .collect(),
                    };
                    for it in objs {
                        let mut cands = vec![];
                        for &at in &self.w.objects_of[*among as usize] {
                            if !self.active[at as usize] || at == it {
                                continue;
                            }
                            let ok = filter.as_ref().is_none_or(|f| {
                                let mut b: Vec<Option<ObjId>> = self.binding[..*base].to_vec();
                                b.push(Some(it));
                                b.push(Some(at));
                                self.cond_ok(f, &b)
                            });
                            if ok {
                                cands.push(at);
                            }
                        }
                        if cands.is_empty() {
                            return Err(self.err(format!(
                                "no place for `{}` satisfies the Place filter",
                                self.w.objects[it as usize].id
                            )));
                        }
                        let at = cands[rng.random_range(0..cands.len())];
                        self.facts.insert(Fact::new(*pred, &[it, at]));
                    }
                }
                CSetup::Assert(lits) => self.assert(lits),
                CSetup::OneOf(alts) => {
                    let pick = rng.random_range(0..alts.len());
                    self.run(&alts[pick], rng)?;
                }
                CSetup::Repeat { times, steps } => {
                    for _ in 0..self.count(times) {
                        self.run(steps, rng)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Build the instance of `template`/`level` for `seed` (the RNG continues the one that chose the level).
pub fn instantiate(
    w: &World,
    t: &TaskTemplate,
    level: &Level,
    seed: u64,
    rng: &mut impl rand::Rng,
) -> Result<Instance, SetupError> {
    const ATTEMPTS: usize = 500;
    let mut attempt = 0;
    let s = loop {
        let mut s = Setup {
            w,
            t,
            level,
            facts: w.init.iter().copied().collect(),
            values: w.init_values.iter().copied().collect(),
            active: vec![true; w.objects.len()],
            binding: vec![None; t.vars.len()],
        };
        s.run(&t.setup, rng)?;
        s.run(&level.setup, rng)?;
        match &level.require {
            Some(req) if !s.cond_ok(req, &s.binding) => {
                attempt += 1;
                if attempt >= ATTEMPTS {
                    return Err(s.err(format!(
                        "no setup satisfying the level's `require` in {ATTEMPTS} draws"
                    )));
                }
            }
            _ => break s,
        }
    };
    let active = s.active.clone();
    let facts: HashSet<Fact> = s
        .facts
        .iter()
        .copied()
        .filter(|f| f.args().iter().all(|&o| active[o as usize]))
        .collect();
    for (i, b) in s.binding.iter().enumerate().take(t.vars.len()) {
        if b.is_none() {
            return Err(s.err(format!("task variable `{}` was never chosen", t.vars[i].0)));
        }
    }
    let binding: Vec<ObjId> = s.binding.iter().map(|b| b.unwrap_or(0)).collect();
    let mut params = BTreeMap::new();
    params.insert("template".to_string(), t.id.clone());
    params.insert("seed".to_string(), seed.to_string());
    for (i, (name, _)) in t.vars.iter().enumerate() {
        params.insert(
            format!("?{name}"),
            w.objects[binding[i] as usize].id.clone(),
        );
    }
    let task = Task {
        id: format!("{}/{}/d{}/s{}", w.name, t.id, level.difficulty, seed),
        instruction: w.fill(
            level.instruction.as_ref().unwrap_or(&t.instruction),
            &binding,
        ),
        params,
        difficulty: level.difficulty,
        origin: TaskOrigin::Seed,
    };
    Ok(Instance::new(
        w,
        t,
        level,
        task,
        &active,
        (&facts, &s.values),
        &s.binding,
    ))
}

impl Instance {
    fn new(
        w: &World,
        t: &TaskTemplate,
        level: &Level,
        task: Task,
        active: &[bool],
        (facts, values): (&HashSet<Fact>, &HashMap<Fact, i64>),
        task_binding: &[Option<ObjId>],
    ) -> Instance {
        let g = w.grounding().clone();
        let all_active = |objs: &[ObjId]| objs.iter().all(|&o| active[o as usize]);
        let action_on: Vec<bool> = g.actions.iter().map(|a| all_active(&a.objects)).collect();
        let line_on: Vec<bool> = g.lines.iter().map(|l| all_active(&l.objects)).collect();
        let mut extra: Vec<Fact> = vec![];
        let mut extra_index: HashMap<Fact, u32> = HashMap::new();
        let mut sorted: Vec<&Fact> = facts.iter().filter(|f| !g.fixed[f.pred as usize]).collect();
        sorted.sort();
        let n = g.facts.len() as u32;
        let mut init_ids = vec![];
        for f in sorted {
            let id = match g.index.get(f) {
                Some(&i) => i,
                None => {
                    let i = n + extra.len() as u32;
                    extra.push(*f);
                    extra_index.insert(*f, i);
                    i
                }
            };
            init_ids.push(id);
        }
        let fact_words = (g.facts.len() + extra.len()).div_ceil(64).max(1);
        let words = fact_words + g.fluents.len();
        let mut init = vec![0u64; words];
        for i in init_ids {
            init[(i >> 6) as usize] |= 1 << (i & 63);
        }
        for (k, (f, default)) in g.fluents.iter().enumerate() {
            init[fact_words + k] = values.get(f).copied().unwrap_or(*default) as u64;
        }
        let solver = Solver { w, active };
        let fixed_holds = |f: &Fact| {
            if g.fixed[f.pred as usize] {
                Some(g.fixed_facts.contains(f) && f.args().iter().all(|&o| active[o as usize]))
            } else {
                None
            }
        };
        let cg = CondGrounder {
            solver: &solver,
            holds: &fixed_holds,
            fluent_slot: &g.fluent_slot,
        };
        let id = |f: Fact| g.index.get(&f).or_else(|| extra_index.get(&f)).copied();
        let dnf = |c: &Cond| -> Dnf {
            let mut out = vec![];
            let mut b: Vec<Option<ObjId>> = task_binding.to_vec();
            b.resize(c.var_types.len().max(b.len()), None);
            solver.solve(&c.lits, &c.var_types, &mut b, &fixed_holds, &mut |b| {
                for conj in cg.dnf(&c.lits, b, &mut |f| id(f)) {
                    if !out.contains(&conj) {
                        out.push(conj);
                    }
                }
                true
            });
            out
        };
        Instance {
            goal: dnf(&t.goal),
            ends_when: t.ends_when.as_ref().map(&dnf),
            partial: t.partial.iter().map(&dnf).collect(),
            task,
            g,
            extra,
            init,
            action_on,
            line_on,
            max_steps: level.max_steps,
            words,
            fact_words,
        }
    }

    /// Number of facts a state of this instance can hold.
    pub fn num_facts(&self) -> usize {
        self.g.facts.len() + self.extra.len()
    }

    /// The fact with index `i`.
    pub fn fact(&self, i: usize) -> Fact {
        self.g
            .facts
            .get(i)
            .copied()
            .unwrap_or_else(|| self.extra[i - self.g.facts.len()])
    }

    /// All ground actions of the world (check [`action_on`](Self::action_on) for this instance).
    pub fn actions(&self) -> &[GroundAction] {
        &self.g.actions
    }

    /// Ground actions of this instance with this text, in ground order.
    pub fn with_text<'a>(&'a self, text: &str) -> impl Iterator<Item = u32> + 'a {
        self.g
            .by_text
            .get(text)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&a| self.action_on[a as usize])
    }

    /// Whether ground action `a` exists in this instance and is applicable in `state`.
    #[inline]
    pub fn can_apply(&self, a: u32, state: &[u64]) -> bool {
        self.action_on[a as usize] && self.g.actions[a as usize].pre.holds(state)
    }

    /// The first applicable ground action with this text (the one the engine runs).
    pub fn resolve(&self, text: &str, state: &[u64]) -> Option<u32> {
        self.with_text(text)
            .find(|&a| self.g.actions[a as usize].pre.holds(state))
    }

    /// Indices of the applicable ground actions in `state`, in ground order.
    pub fn applicable(&self, state: &[u64], out: &mut Vec<u32>) {
        out.clear();
        for (wi, &word) in state[..self.fact_words].iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let f = wi * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(list) = self.g.triggered.get(f) {
                    out.extend(list.iter().copied().filter(|&a| self.can_apply(a, state)));
                }
            }
        }
        out.extend(
            self.g
                .untriggered
                .iter()
                .copied()
                .filter(|&a| self.can_apply(a, state)),
        );
        out.sort_unstable();
    }

    /// Apply a ground action to a state: the conditional effects that fire are chosen on the
    /// state before it, then every delete, every add, and the numeric changes in order.
    #[inline]
    pub fn apply(&self, a: u32, state: &mut [u64]) {
        let a = &self.g.actions[a as usize];
        let del = |state: &mut [u64], fs: &[u32]| {
            for &f in fs {
                state[(f >> 6) as usize] &= !(1 << (f & 63));
            }
        };
        let add = |state: &mut [u64], fs: &[u32]| {
            for &f in fs {
                state[(f >> 6) as usize] |= 1 << (f & 63);
            }
        };
        if a.when.is_empty() {
            del(state, &a.del);
            add(state, &a.add);
            a.num.iter().for_each(|e| e.apply(state));
        } else {
            let fired: Vec<&super::grounding::CondEffect> = a
                .when
                .iter()
                .filter(|c| dnf_holds(&c.when, state))
                .collect();
            del(state, &a.del);
            fired.iter().for_each(|c| del(state, &c.del));
            add(state, &a.add);
            fired.iter().for_each(|c| add(state, &c.add));
            a.num.iter().for_each(|e| e.apply(state));
            for c in fired {
                c.num.iter().for_each(|e| e.apply(state));
            }
        }
    }

    /// The feedback of ground action `a` that has just run, reaching `state`.
    pub fn message(&self, a: u32, state: &[u64]) -> String {
        let a = &self.g.actions[a as usize];
        show(&a.message, &a.message_values, state)
    }

    /// Whether the goal holds.
    pub fn is_goal(&self, state: &[u64]) -> bool {
        dnf_holds(&self.goal, state)
    }

    /// Whether the episode ends as a failure here (terminal condition without the goal).
    pub fn is_dead_end(&self, state: &[u64]) -> bool {
        self.ends_when.as_ref().is_some_and(|d| dnf_holds(d, state)) && !self.is_goal(state)
    }

    /// Share of partial-credit conditions that hold (0 when there are none).
    pub fn partial_credit(&self, state: &[u64]) -> f32 {
        if self.partial.is_empty() {
            return 0.0;
        }
        self.partial.iter().filter(|d| dnf_holds(d, state)).count() as f32
            / self.partial.len() as f32
    }

    /// The state lines of `state`.
    pub fn render(&self, state: &[u64]) -> Vec<String> {
        self.g
            .lines
            .iter()
            .zip(&self.line_on)
            .filter(|(l, on)| **on && dnf_holds(&l.when, state))
            .map(|(l, _)| show(&l.text, &l.values, state))
            .collect()
    }

    /// Why no ground action with this text can be applied in `state` (first failing message).
    pub fn failure_message(&self, text: &str, state: &[u64]) -> String {
        let Some(a) = self.with_text(text).next() else {
            return self.g.default_fail.clone();
        };
        let a = &self.g.actions[a as usize];
        for (pre, m) in &a.fail {
            if !dnf_holds(pre, state) {
                return m.clone();
            }
        }
        a.otherwise
            .clone()
            .unwrap_or_else(|| self.g.default_fail.clone())
    }
}
