//! Grounding a world: every action schema and render rule over all objects, fixed predicates
//! evaluated and pruned, every other fact given a bit (the result is a [`Grounding`]).

use super::facts::{Conj, Fact, FluentSlot, ObjId};
use super::ground_cond::CondGrounder;
use super::grounding::{GroundAction, GroundLine, Grounding};
use super::solve::Solver;
use super::world::{CLit, CSetup, CTerm, World};
use std::collections::{HashMap, HashSet};

impl World {
    /// The world's grounding (built once, then shared).
    pub fn grounding(&self) -> &std::sync::Arc<Grounding> {
        self.grounding
            .get_or_init(|| std::sync::Arc::new(Grounding::build(self)))
    }
}

fn setup_preds(steps: &[CSetup], out: &mut HashSet<u16>) {
    for s in steps {
        match s {
            CSetup::Place { pred, .. } => {
                out.insert(*pred);
            }
            CSetup::Assert(lits) => {
                for l in lits {
                    if let CLit::Atom { pred, .. } = l {
                        out.insert(*pred);
                    }
                }
            }
            CSetup::Repeat { steps, .. } => setup_preds(steps, out),
            CSetup::OneOf(alts) => alts.iter().for_each(|a| setup_preds(a, out)),
            _ => {}
        }
    }
}

fn objects_of(b: &[Option<ObjId>], lits: impl IntoIterator<Item = CLit>) -> Vec<ObjId> {
    let mut objs: Vec<ObjId> = b.iter().flatten().copied().collect();
    for l in lits {
        if let CLit::Atom { args, .. } = l {
            objs.extend(args.iter().filter_map(|a| {
                if let CTerm::Obj(o) = a {
                    Some(*o)
                } else {
                    None
                }
            }));
        }
    }
    objs.sort_unstable();
    objs.dedup();
    objs
}

impl Grounding {
    /// Ground `w` over all its objects.
    pub fn build(w: &World) -> Grounding {
        let fixed = fixed_predicates(w);
        let fixed_facts: HashSet<Fact> = w
            .init
            .iter()
            .copied()
            .filter(|f| fixed[f.pred as usize])
            .collect();
        let active = vec![true; w.objects.len()];
        let solver = Solver { w, active: &active };
        let holds = |f: &Fact| fixed[f.pred as usize].then(|| fixed_facts.contains(f));
        let fluents = ground_fluents(w);
        let fluent_slot: HashMap<Fact, FluentSlot> = fluents
            .iter()
            .enumerate()
            .map(|(k, (f, _))| (*f, (fluents.len() - k) as FluentSlot))
            .collect();
        let cg = CondGrounder {
            solver: &solver,
            holds: &holds,
            fluent_slot: &fluent_slot,
        };
        let mut table = FactTable::default();
        // state facts of the world's initial state first, in a stable order
        let mut init: Vec<Fact> = w
            .init
            .iter()
            .copied()
            .filter(|f| !fixed[f.pred as usize])
            .collect();
        init.sort();
        for f in init {
            table.intern(f);
        }
        let (mut actions, wildcard_deletes) = ground_actions(w, &cg, &mut table);
        let lines = ground_lines(w, &cg, &mut table);
        // `not p(_)` deletes every state fact that matches (all facts are known now)
        for (ai, pred, pat) in wildcard_deletes {
            for (i, f) in table.facts.iter().enumerate() {
                if f.pred == pred
                    && pat
                        .iter()
                        .zip(f.args())
                        .all(|(p, a)| p.is_none_or(|p| p == *a))
                {
                    actions[ai].del.push(i as u32);
                }
            }
        }
        let mut by_text: HashMap<String, Vec<u32>> = HashMap::new();
        let mut triggered = vec![vec![]; table.facts.len()];
        let mut untriggered = vec![];
        for (i, a) in actions.iter().enumerate() {
            by_text.entry(a.text.clone()).or_default().push(i as u32);
            match a.pre.pos.first() {
                Some(&f) => triggered[f as usize].push(i as u32),
                None => untriggered.push(i as u32),
            }
        }
        Grounding {
            default_fail: w.default_fail.clone(),
            facts: table.facts,
            index: table.index,
            actions,
            by_text,
            triggered,
            untriggered,
            lines,
            fixed,
            fixed_facts,
            fluents,
            fluent_slot,
        }
    }
}

/// Every ground fluent (each fluent over every tuple of objects of its parameter types) with its
/// default value, in declaration, then object order.
fn ground_fluents(w: &World) -> Vec<(Fact, i64)> {
    fn tuples(w: &World, params: &[u16], prefix: &mut Vec<ObjId>, out: &mut Vec<Vec<ObjId>>) {
        let Some((&t, rest)) = params.split_first() else {
            out.push(prefix.clone());
            return;
        };
        for &o in &w.objects_of[t as usize] {
            prefix.push(o);
            tuples(w, rest, prefix, out);
            prefix.pop();
        }
    }
    let mut out = vec![];
    for (id, f) in w.fluents.iter().enumerate() {
        let mut all = vec![];
        tuples(w, &f.params, &mut vec![], &mut all);
        out.extend(
            all.iter()
                .map(|args| (Fact::new(id as u16, args), f.default)),
        );
    }
    out
}

/// Per predicate: fixed — never changed by an action's effect or a task's setup, so evaluated
/// once here instead of given state bits.
fn fixed_predicates(w: &World) -> Vec<bool> {
    let mut set_by_setup = HashSet::new();
    for t in &w.tasks {
        setup_preds(&t.setup, &mut set_by_setup);
        for l in &t.levels {
            setup_preds(&l.setup, &mut set_by_setup);
        }
    }
    w.preds
        .iter()
        .enumerate()
        .map(|(i, p)| p.is_static && !set_by_setup.contains(&(i as u16)))
        .collect()
}

/// The state facts met so far, each with its bit.
#[derive(Default)]
struct FactTable {
    facts: Vec<Fact>,
    index: HashMap<Fact, u32>,
}

impl FactTable {
    /// The bit of `f`, given a new one the first time.
    fn intern(&mut self, f: Fact) -> u32 {
        *self.index.entry(f).or_insert_with(|| {
            self.facts.push(f);
            self.facts.len() as u32 - 1
        })
    }
}

/// A `not p(_)` effect of action `.0`: predicate `.1` with these arguments (`None`: any).
type WildcardDelete = (usize, u16, Vec<Option<ObjId>>);

/// Every action schema ground over every binding its fixed preconditions allow (one ground action
/// per alternative of its preconditions, in order); effects with `_` are returned to be resolved
/// once all facts are known.
fn ground_actions(
    w: &World,
    cg: &CondGrounder,
    table: &mut FactTable,
) -> (Vec<GroundAction>, Vec<WildcardDelete>) {
    let mut actions = vec![];
    let mut wildcard_deletes = vec![];
    for a in &w.actions {
        let lits: Vec<CLit> = a.pre.iter().map(|(l, _)| l.clone()).collect();
        let types: Vec<u16> = a.vars.iter().map(|v| v.1).collect();
        let mut b = vec![None; types.len()];
        cg.solver.solve(&lits, &types, &mut b, cg.holds, &mut |b| {
            let full: Vec<ObjId> = b.iter().map(|x| x.expect("all slots bound")).collect();
            let ids = &mut |f: Fact| Some(table.intern(f));
            let pre = cg.dnf(&lits, b, ids);
            let mut fail = vec![];
            for (l, msg) in &a.pre {
                if let Some(m) = msg {
                    let d = cg.dnf(std::slice::from_ref(l), b, ids);
                    if !d.iter().any(Conj::is_true) {
                        fail.push((d, w.fill(m, &full)));
                    }
                }
            }
            let eff = cg.effects(&a.effects, b, ids);
            let (message, message_values) = match &a.message {
                Some(m) => live(w, cg, m, &full),
                None => (String::new(), vec![]),
            };
            let first = actions.len();
            for conj in pre {
                actions.push(GroundAction {
                    text: w.fill(&a.text, &full),
                    objects: objects_of(b, lits.iter().chain(&a.effects).cloned()),
                    pre: conj,
                    fail: fail.clone(),
                    otherwise: a.otherwise.as_ref().map(|m| w.fill(m, &full)),
                    del: eff.del.clone(),
                    add: eff.add.clone(),
                    num: eff.num.clone(),
                    when: eff.when.clone(),
                    message: message.clone(),
                    message_values: message_values.clone(),
                });
            }
            for ai in first..actions.len() {
                for (pred, pat) in &eff.wildcard {
                    wildcard_deletes.push((ai, *pred, pat.clone()));
                }
            }
            true
        });
    }
    (actions, wildcard_deletes)
}

/// A template filled for a binding, its fluent values left as holes read from the state.
fn live(
    w: &World,
    cg: &CondGrounder,
    t: &super::world::Template,
    full: &[ObjId],
) -> (String, Vec<(usize, FluentSlot)>) {
    let (text, holes) = w.fill_live(t, full);
    let holes = holes
        .into_iter()
        .map(|(at, f)| (at, cg.fluent_slot[&f]))
        .collect();
    (text, holes)
}

/// Every render rule ground over every binding its fixed conditions allow.
fn ground_lines(w: &World, cg: &CondGrounder, table: &mut FactTable) -> Vec<GroundLine> {
    let mut lines = vec![];
    for r in &w.render {
        let mut b = vec![];
        cg.solver.solve(
            &r.when.lits,
            &r.when.var_types,
            &mut b,
            cg.holds,
            &mut |b| {
                let full: Vec<ObjId> = b.iter().map(|x| x.unwrap_or(0)).collect();
                let when = cg.dnf(&r.when.lits, b, &mut |f| Some(table.intern(f)));
                if when.is_empty() {
                    return true;
                }
                let (text, values) = live(w, cg, &r.line, &full);
                lines.push(GroundLine {
                    when,
                    objects: objects_of(b, r.when.lits.iter().cloned()),
                    text,
                    values,
                });
                true
            },
        );
    }
    lines
}
