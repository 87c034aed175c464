//! Compiled conditions and effects ground under a binding of their variables.
//!
//! A condition becomes a DNF over state bits: fixed facts and static comparisons are decided here
//! (a false one drops the conjunction), alternatives (`(a or b)`) multiply out, `not exists(...)`
//! becomes conjunctions that must not hold, and numeric comparisons become tests on the fluent
//! words of a state. An effect list becomes deletes, adds, numeric changes and conditional
//! effects (one per binding of a `forall`'s variables and per alternative of its condition).
//! Shared by the world's grounding (actions, render lines) and each instance (goal, `ends_when`,
//! partial credit), so every place reads a condition the same way.

use super::facts::{Conj, Dnf, Fact, FluentSlot, NumEffect, NumTest, NumVal, ObjId};
use super::grounding::CondEffect;
use super::solve::{Holds, Solver, ground_atom};
use super::world::{CFluent, CLit, CNum, CTerm, World};
use std::collections::HashMap;

/// The bit of a dynamic fact: `None` when the fact cannot occur (then a positive literal on it
/// never holds). The world's grounding gives every fact it meets a bit; an instance only looks up.
pub type FactIds<'a> = dyn FnMut(Fact) -> Option<u32> + 'a;

/// Grounds conditions and effects of one world.
pub struct CondGrounder<'a> {
    /// The world, with the objects that take part.
    pub solver: &'a Solver<'a>,
    /// What is known without a state: the fixed facts (dynamic ones answer `None`).
    pub holds: &'a Holds<'a>,
    /// The state slot of every ground fluent.
    pub fluent_slot: &'a HashMap<Fact, FluentSlot>,
}

/// A ground effect list.
#[derive(Debug, Default)]
pub struct GroundEffects {
    /// Facts deleted.
    pub del: Vec<u32>,
    /// Facts added.
    pub add: Vec<u32>,
    /// Numeric changes in order.
    pub num: Vec<NumEffect>,
    /// Conditional effects.
    pub when: Vec<CondEffect>,
    /// `not p(_)` deletes: predicate and argument pattern (`None`: any), resolved once every fact
    /// is known.
    pub wildcard: Vec<(u16, Vec<Option<ObjId>>)>,
}

impl CondGrounder<'_> {
    fn w(&self) -> &World {
        self.solver.w
    }

    fn slot(&self, f: &CFluent, b: &[Option<ObjId>]) -> FluentSlot {
        let fact = self
            .solver
            .ground_fluent(f, b)
            .expect("fluent arguments are bound");
        self.fluent_slot[&fact]
    }

    /// A numeric value under a binding; `None` for a missing attribute.
    fn num(&self, n: &CNum, b: &[Option<ObjId>]) -> Option<NumVal> {
        match n {
            CNum::Fluent(f) => Some(NumVal::Fluent(self.slot(f, b))),
            other => self
                .solver
                .num_value(other, b, self.holds)
                .map(NumVal::Const),
        }
    }

    /// The DNF of a conjunction of literals under a full binding of their variables (empty: it
    /// can never hold).
    pub fn dnf(&self, lits: &[CLit], b: &[Option<ObjId>], ids: &mut FactIds) -> Dnf {
        let mut out: Dnf = vec![Conj::default()];
        for l in lits {
            match l {
                CLit::Atom { neg, pred, args } => {
                    let f = ground_atom(*pred, args, b).expect("conditions have no `_`");
                    if let Some(h) = self.holds.holds(&f) {
                        if h == *neg {
                            return vec![];
                        }
                        continue;
                    }
                    match (ids(f), neg) {
                        (Some(i), false) => out.iter_mut().for_each(|c| c.pos.push(i)),
                        (Some(i), true) => out.iter_mut().for_each(|c| c.neg.push(i)),
                        (None, false) => return vec![],
                        (None, true) => {}
                    }
                }
                CLit::Cmp { .. } => {
                    if self.solver.check(l, b, self.holds) == Some(false) {
                        return vec![];
                    }
                }
                CLit::NumCmp { fluent, op, rhs } => {
                    let Some(rhs) = self.num(rhs, b) else {
                        return vec![];
                    };
                    let t = NumTest {
                        fluent: self.slot(fluent, b),
                        op: *op,
                        rhs,
                    };
                    out.iter_mut().for_each(|c| c.num.push(t));
                }
                CLit::Any(alts) => {
                    let mut next: Dnf = vec![];
                    for alt in alts {
                        for a in self.dnf(alt, b, ids) {
                            for c in &out {
                                let both = c.and(&a);
                                if !next.contains(&both) {
                                    next.push(both);
                                }
                            }
                        }
                    }
                    if next.is_empty() {
                        return next;
                    }
                    out = next;
                }
                CLit::NotExists { lits, base, local } => {
                    let Some(forbid) = self.forbidden(lits, *base, local, b, ids) else {
                        return vec![];
                    };
                    for c in &mut out {
                        c.forbid.extend(forbid.iter().cloned());
                    }
                }
                CLit::NumSet { .. } | CLit::When { .. } => {
                    unreachable!("effects are rejected in conditions when compiled")
                }
            }
        }
        out
    }

    /// The conjunctions a `not exists` forbids, one per binding of its local variables and
    /// alternative; `None` when one of them holds whatever the state (the condition is false).
    fn forbidden(
        &self,
        lits: &[CLit],
        base: usize,
        local: &[u16],
        b: &[Option<ObjId>],
        ids: &mut FactIds,
    ) -> Option<Vec<Conj>> {
        let mut forbid: Vec<Conj> = vec![];
        let mut always = false;
        self.each_local(lits, base, local, b, &mut |bi| {
            for c in self.dnf(lits, bi, ids) {
                if c.is_true() {
                    always = true;
                    return false;
                }
                if !forbid.contains(&c) {
                    forbid.push(c);
                }
            }
            true
        });
        (!always).then_some(forbid)
    }

    /// Every binding of the local slots `base..` (the outer ones from `b`) under which no
    /// literal is already known to be false.
    fn each_local(
        &self,
        lits: &[CLit],
        base: usize,
        local: &[u16],
        b: &[Option<ObjId>],
        f: &mut dyn FnMut(&[Option<ObjId>]) -> bool,
    ) {
        let mut types = vec![0; base];
        types.extend_from_slice(local);
        let mut bi: Vec<Option<ObjId>> = b[..base].to_vec();
        bi.resize(base + local.len(), None);
        self.solver.solve(lits, &types, &mut bi, self.holds, f);
    }

    /// An effect list under a full binding of the action's variables.
    pub fn effects(&self, lits: &[CLit], b: &[Option<ObjId>], ids: &mut FactIds) -> GroundEffects {
        let mut out = GroundEffects::default();
        self.effects_into(lits, b, ids, &mut out);
        out
    }

    fn effects_into(
        &self,
        lits: &[CLit],
        b: &[Option<ObjId>],
        ids: &mut FactIds,
        out: &mut GroundEffects,
    ) {
        for e in lits {
            match e {
                CLit::Atom { neg, pred, args } => match ground_atom(*pred, args, b) {
                    Some(f) => {
                        let i = ids(f).expect("the world's grounding gives every fact a bit");
                        if *neg { &mut out.del } else { &mut out.add }.push(i);
                    }
                    None => out.wildcard.push((
                        *pred,
                        args.iter()
                            .map(|x| match x {
                                CTerm::Var(s) => b[*s],
                                CTerm::Obj(o) => Some(*o),
                                CTerm::Wild => None,
                            })
                            .collect(),
                    )),
                },
                CLit::NumSet { fluent, op, rhs } => {
                    let info = &self.w().fluents[fluent.id as usize];
                    out.num.push(NumEffect {
                        fluent: self.slot(fluent, b),
                        op: *op,
                        rhs: self.num(rhs, b).unwrap_or(NumVal::Const(0)),
                        min: info.min,
                        max: info.max,
                    });
                }
                CLit::When {
                    cond,
                    base,
                    local,
                    effects,
                } => {
                    let mut bindings = vec![];
                    self.each_local(cond, *base, local, b, &mut |bi| {
                        bindings.push(bi.to_vec());
                        true
                    });
                    for bi in bindings {
                        let when = self.dnf(cond, &bi, ids);
                        if when.is_empty() {
                            continue;
                        }
                        let eff = self.effects(effects, &bi, ids);
                        if when.iter().any(Conj::is_true) {
                            out.del.extend(&eff.del);
                            out.add.extend(&eff.add);
                            out.num.extend(&eff.num);
                        } else {
                            out.when.push(CondEffect {
                                when,
                                del: eff.del,
                                add: eff.add,
                                num: eff.num,
                            });
                        }
                    }
                }
                CLit::Cmp { .. } | CLit::NumCmp { .. } | CLit::Any(_) | CLit::NotExists { .. } => {
                    unreachable!("conditions are rejected in effects when compiled")
                }
            }
        }
    }
}
