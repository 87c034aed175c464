//! Task instances: run a template's setup with a seeded RNG, then ground the world into a compact
//! form (fact bitsets, ground actions, ground render lines, ground goal) that the engine steps fast.

use super::solve::{Solver, ground_atom};
use super::world::{CCount, CLit, CSetup, CTerm, Cond, Fact, Level, ObjId, PlaceWhat, TaskTemplate, World};
use dreamgym_buffer::{Task, TaskOrigin};
use rand::RngExt;
use rand::seq::SliceRandom;
use std::collections::{BTreeMap, HashMap, HashSet};

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

/// A conjunction of dynamic facts (by index in the instance's fact universe).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conj {
    /// Facts that must hold.
    pub pos: Vec<u32>,
    /// Facts that must not hold.
    pub neg: Vec<u32>,
}

impl Conj {
    /// Whether the conjunction holds in `state`.
    #[inline]
    pub fn holds(&self, state: &[u64]) -> bool {
        self.pos.iter().all(|&f| bit(state, f)) && !self.neg.iter().any(|&f| bit(state, f))
    }
}

/// Whether fact `f` is set in a state bitset.
#[inline]
pub fn bit(state: &[u64], f: u32) -> bool {
    state[(f >> 6) as usize] >> (f & 63) & 1 == 1
}

/// A disjunction of conjunctions (existential variables ground out).
pub type Dnf = Vec<Conj>;

/// Whether a DNF holds.
pub fn dnf_holds(d: &Dnf, state: &[u64]) -> bool {
    d.iter().any(|c| c.holds(state))
}

/// A ground action.
#[derive(Debug, Clone)]
pub struct GroundAction {
    /// Its text (several ground actions may share one).
    pub text: String,
    /// Dynamic preconditions.
    pub pre: Conj,
    /// Failure message for each failing precondition, in precondition order: (fact, positive, message).
    pub fail: Vec<(u32, bool, String)>,
    /// Message when no keyed failure message applies.
    pub otherwise: Option<String>,
    /// Facts deleted.
    pub del: Vec<u32>,
    /// Facts added.
    pub add: Vec<u32>,
    /// Success feedback.
    pub message: String,
}

/// A ground render line.
#[derive(Debug, Clone)]
pub struct GroundLine {
    /// When the line shows.
    pub when: Conj,
    /// The text.
    pub text: String,
}

/// A grounded task instance.
#[derive(Debug, Clone)]
pub struct Instance {
    /// The task.
    pub task: Task,
    /// Fact universe (index = bit).
    pub facts: Vec<Fact>,
    /// Initial state.
    pub init: Vec<u64>,
    /// Ground actions in schema, then binding order.
    pub actions: Vec<GroundAction>,
    /// Ground actions by text.
    pub by_text: HashMap<String, Vec<u32>>,
    /// Ground actions whose first positive precondition is each fact.
    pub triggered: Vec<Vec<u32>>,
    /// Ground actions with no positive dynamic precondition.
    pub untriggered: Vec<u32>,
    /// Render lines in rule, then binding order.
    pub lines: Vec<GroundLine>,
    /// Goal.
    pub goal: Dnf,
    /// Terminal failure condition.
    pub ends_when: Option<Dnf>,
    /// Partial-credit conditions.
    pub partial: Vec<Dnf>,
    /// Step limit.
    pub max_steps: u32,
    /// Words in a state bitset.
    pub words: usize,
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
            .map(|t| format!("{} (difficulties {:?})", t.id, t.levels.iter().map(|l| l.difficulty).collect::<Vec<_>>()))
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
    active: Vec<bool>,
    binding: Vec<Option<ObjId>>,
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

    fn holds_fn(&self) -> impl Fn(&Fact) -> Option<bool> + '_ {
        |f: &Fact| Some(self.facts.contains(f))
    }

    fn cond_ok(&self, c: &Cond, b: &[Option<ObjId>]) -> bool {
        let s = Solver { w: self.w, active: &self.active };
        s.exists(&c.lits, &c.var_types, b, &self.holds_fn())
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
                        return Err(self.err(format!("no active `{}` object satisfies the Choose of `{}`", self.w.types[*ty as usize].name, self.t.vars[*slot].0)));
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
                CSetup::Place { what, pred, among, filter, base } => {
                    let objs: Vec<ObjId> = match what {
                        PlaceWhat::Var(s) => vec![self.binding[*s].expect("bound by an earlier Choose")],
                        PlaceWhat::Type(t) => self.w.objects_of[*t as usize]
                            .iter()
                            .copied()
                            .filter(|&o| self.active[o as usize] && !self.facts.iter().any(|f| f.pred == *pred && f.args[0] == o))
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
                            return Err(self.err(format!("no place for `{}` satisfies the Place filter", self.w.objects[it as usize].id)));
                        }
                        let at = cands[rng.random_range(0..cands.len())];
                        self.facts.insert(Fact::new(*pred, &[it, at]));
                    }
                }
                CSetup::Assert(lits) => {
                    for l in lits {
                        if let CLit::Atom { neg, pred, args } = l {
                            let f = ground_atom(*pred, args, &self.binding).expect("Assert atoms are ground after substitution");
                            if *neg {
                                self.facts.remove(&f);
                            } else {
                                self.facts.insert(f);
                            }
                        }
                    }
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
            active: vec![true; w.objects.len()],
            binding: vec![None; t.vars.len()],
        };
        s.run(&t.setup, rng)?;
        s.run(&level.setup, rng)?;
        match &level.require {
            Some(req) if !s.cond_ok(req, &s.binding) => {
                attempt += 1;
                if attempt >= ATTEMPTS {
                    return Err(s.err(format!("no setup satisfying the level's `require` in {ATTEMPTS} draws")));
                }
            }
            _ => break s,
        }
    };
    let active = s.active.clone();
    let facts: HashSet<Fact> = s.facts.iter().copied().filter(|f| f.args().iter().all(|&o| active[o as usize])).collect();
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
        params.insert(format!("?{name}"), w.objects[binding[i] as usize].id.clone());
    }
    let task = Task {
        id: format!("{}/{}/d{}/s{}", w.name, t.id, level.difficulty, seed),
        instruction: w.fill(&t.instruction, &binding),
        params,
        difficulty: level.difficulty,
        origin: TaskOrigin::Seed,
    };
    Ok(ground(w, t, level, task, &active, &facts, &s.binding))
}

fn ground(
    w: &World,
    t: &TaskTemplate,
    level: &Level,
    task: Task,
    active: &[bool],
    facts: &HashSet<Fact>,
    task_binding: &[Option<ObjId>],
) -> Instance {
    let solver = Solver { w, active };
    let is_static = |f: &Fact| w.preds[f.pred as usize].is_static;
    let static_holds = |f: &Fact| if is_static(f) { Some(facts.contains(f)) } else { None };

    // 1. ground actions over facts (universe not known yet)
    struct Raw {
        text: String,
        pos: Vec<Fact>,
        neg: Vec<Fact>,
        fail: Vec<(Fact, bool, String)>,
        otherwise: Option<String>,
        add: Vec<Fact>,
        del: Vec<Fact>,
        del_patterns: Vec<(u16, Vec<Option<ObjId>>)>,
        message: String,
    }
    let mut raws: Vec<Raw> = vec![];
    for a in &w.actions {
        let lits: Vec<CLit> = a.pre.iter().map(|(l, _)| l.clone()).collect();
        let types: Vec<u16> = a.vars.iter().map(|v| v.1).collect();
        let mut b = vec![None; types.len()];
        solver.solve(&lits, &types, &mut b, &static_holds, &mut |b| {
            let full: Vec<ObjId> = b.iter().map(|x| x.expect("all slots bound")).collect();
            let mut r = Raw {
                text: w.fill(&a.text, &full),
                pos: vec![],
                neg: vec![],
                fail: vec![],
                otherwise: a.otherwise.as_ref().map(|m| w.fill(m, &full)),
                add: vec![],
                del: vec![],
                del_patterns: vec![],
                message: a.message.as_ref().map_or_else(String::new, |m| w.fill(m, &full)),
            };
            for (l, msg) in &a.pre {
                if let CLit::Atom { neg, pred, args } = l {
                    let f = ground_atom(*pred, args, b).expect("preconditions have no `_`");
                    if is_static(&f) {
                        continue;
                    }
                    if *neg { r.neg.push(f) } else { r.pos.push(f) }
                    if let Some(m) = msg {
                        r.fail.push((f, !*neg, w.fill(m, &full)));
                    }
                }
            }
            for e in &a.effects {
                if let CLit::Atom { neg, pred, args } = e {
                    match ground_atom(*pred, args, b) {
                        Some(f) if *neg => r.del.push(f),
                        Some(f) => r.add.push(f),
                        None => r.del_patterns.push((
                            *pred,
                            args.iter()
                                .map(|x| match x {
                                    CTerm::Var(s) => b[*s],
                                    CTerm::Obj(o) => Some(*o),
                                    CTerm::Wild => None,
                                })
                                .collect(),
                        )),
                    }
                }
            }
            raws.push(r);
            true
        });
    }

    // 2. the fact universe: dynamic initial facts and everything an action can add
    let mut universe: Vec<Fact> = facts.iter().copied().filter(|f| !is_static(f)).collect();
    universe.sort();
    let mut index: HashMap<Fact, u32> = universe.iter().enumerate().map(|(i, f)| (*f, i as u32)).collect();
    for r in &raws {
        for f in &r.add {
            if !index.contains_key(f) {
                index.insert(*f, universe.len() as u32);
                universe.push(*f);
            }
        }
    }
    let words = universe.len().div_ceil(64).max(1);
    let id = |f: &Fact| index.get(f).copied();

    // 3. ground actions by index; drop those needing a fact that can never hold
    let mut actions = vec![];
    for r in raws {
        let Some(pos) = r.pos.iter().map(id).collect::<Option<Vec<u32>>>() else { continue };
        let neg: Vec<u32> = r.neg.iter().filter_map(id).collect();
        let mut del: Vec<u32> = r.del.iter().filter_map(id).collect();
        for (pred, pat) in &r.del_patterns {
            for (i, f) in universe.iter().enumerate() {
                if f.pred == *pred && pat.iter().zip(f.args()).all(|(p, a)| p.is_none_or(|p| p == *a)) {
                    del.push(i as u32);
                }
            }
        }
        let fail = r.fail.iter().filter_map(|(f, p, m)| Some((id(f).unwrap_or(u32::MAX), *p, m.clone()))).collect();
        actions.push(GroundAction {
            text: r.text,
            pre: Conj { pos, neg },
            fail,
            otherwise: r.otherwise,
            del,
            add: r.add.iter().map(|f| index[f]).collect(),
            message: r.message,
        });
    }
    let mut by_text: HashMap<String, Vec<u32>> = HashMap::new();
    let mut triggered = vec![vec![]; universe.len()];
    let mut untriggered = vec![];
    for (i, a) in actions.iter().enumerate() {
        by_text.entry(a.text.clone()).or_default().push(i as u32);
        match a.pre.pos.first() {
            Some(&f) => triggered[f as usize].push(i as u32),
            None => untriggered.push(i as u32),
        }
    }

    // 4. conditions with existential variables become DNFs over the universe
    let dnf = |c: &Cond| -> Dnf {
        let mut out = vec![];
        let mut b: Vec<Option<ObjId>> = task_binding.to_vec();
        b.resize(c.var_types.len().max(b.len()), None);
        solver.solve(&c.lits, &c.var_types, &mut b, &static_holds, &mut |b| {
            let mut conj = Conj::default();
            for l in &c.lits {
                if let CLit::Atom { neg, pred, args } = l {
                    let f = ground_atom(*pred, args, b).expect("conditions have no `_`");
                    if is_static(&f) {
                        continue;
                    }
                    match (id(&f), neg) {
                        (Some(i), false) => conj.pos.push(i),
                        (Some(i), true) => conj.neg.push(i),
                        (None, false) => return true, // can never hold
                        (None, true) => {}
                    }
                }
            }
            if !out.contains(&conj) {
                out.push(conj);
            }
            true
        });
        out
    };
    let goal = dnf(&t.goal);
    let ends_when = t.ends_when.as_ref().map(&dnf);
    let partial = t.partial.iter().map(&dnf).collect();

    // 5. render lines
    let mut lines = vec![];
    for r in &w.render {
        let mut b = vec![];
        solver.solve(&r.when.lits, &r.when.var_types, &mut b, &static_holds, &mut |b| {
            let full: Vec<ObjId> = b.iter().map(|x| x.unwrap_or(0)).collect();
            let mut conj = Conj::default();
            for l in &r.when.lits {
                if let CLit::Atom { neg, pred, args } = l {
                    let f = ground_atom(*pred, args, b).expect("render conditions have no `_`");
                    if is_static(&f) {
                        continue;
                    }
                    match (id(&f), neg) {
                        (Some(i), false) => conj.pos.push(i),
                        (Some(i), true) => conj.neg.push(i),
                        (None, false) => return true,
                        (None, true) => {}
                    }
                }
            }
            lines.push(GroundLine {
                when: conj,
                text: w.fill(&r.line, &full),
            });
            true
        });
    }

    let mut init = vec![0u64; words];
    for f in facts {
        if let Some(i) = id(f) {
            init[(i >> 6) as usize] |= 1 << (i & 63);
        }
    }
    Instance {
        task,
        facts: universe,
        init,
        actions,
        by_text,
        triggered,
        untriggered,
        lines,
        goal,
        ends_when,
        partial,
        max_steps: level.max_steps,
        words,
    }
}

impl Instance {
    /// Indices of the applicable ground actions in `state`, in ground order.
    pub fn applicable(&self, state: &[u64], out: &mut Vec<u32>) {
        out.clear();
        for (wi, &word) in state.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let f = wi * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(list) = self.triggered.get(f) {
                    out.extend(list.iter().copied().filter(|&a| self.actions[a as usize].pre.holds(state)));
                }
            }
        }
        out.extend(self.untriggered.iter().copied().filter(|&a| self.actions[a as usize].pre.holds(state)));
        out.sort_unstable();
    }

    /// Apply a ground action to a state (deletes first, then adds).
    #[inline]
    pub fn apply(&self, a: u32, state: &mut [u64]) {
        let a = &self.actions[a as usize];
        for &f in &a.del {
            state[(f >> 6) as usize] &= !(1 << (f & 63));
        }
        for &f in &a.add {
            state[(f >> 6) as usize] |= 1 << (f & 63);
        }
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
        self.partial.iter().filter(|d| dnf_holds(d, state)).count() as f32 / self.partial.len() as f32
    }

    /// The state lines of `state`.
    pub fn render(&self, state: &[u64]) -> Vec<String> {
        self.lines.iter().filter(|l| l.when.holds(state)).map(|l| l.text.clone()).collect()
    }

    /// Why the ground actions with this text cannot be applied in `state` (first failing message).
    pub fn failure_message(&self, text: &str, state: &[u64]) -> String {
        let Some(list) = self.by_text.get(text) else {
            return "Nothing happens.".into();
        };
        let a = &self.actions[list[0] as usize];
        for (f, positive, m) in &a.fail {
            let holds = *f != u32::MAX && bit(state, *f);
            if holds != *positive {
                return m.clone();
            }
        }
        a.otherwise.clone().unwrap_or_else(|| "Nothing happens.".into())
    }
}
