//! Backtracking search for the bindings that satisfy a list of literals.

use super::expr::CmpOp;
use super::world::{CFluent, CLit, CNum, CTerm, CVal, Fact, ObjId, TypeId, World, compare};

/// What is known of a state while solving: whether a fact holds and a fluent's value, `None`
/// where the caller cannot tell (the literal is deferred). Any `Fn(&Fact) -> Option<bool>` is one
/// that knows no fluent values.
pub trait Facts {
    /// Whether the fact holds, if known.
    fn holds(&self, f: &Fact) -> Option<bool>;
    /// The ground fluent's value, if known.
    fn value(&self, _fluent: &Fact) -> Option<i64> {
        None
    }
}

impl<F: Fn(&Fact) -> Option<bool>> Facts for F {
    fn holds(&self, f: &Fact) -> Option<bool> {
        self(f)
    }
}

/// The state knowledge solvers take.
pub type Holds<'a> = dyn Facts + 'a;

/// Enumerates bindings of variable slots over the active objects of each slot's type.
pub struct Solver<'a> {
    /// The world.
    pub w: &'a World,
    /// Which objects take part in the current instance.
    pub active: &'a [bool],
}

/// The ground fact of an atom under a full binding of its variables (`None` with a `_`).
pub fn ground_atom(pred: u16, args: &[CTerm], b: &[Option<ObjId>]) -> Option<Fact> {
    let mut objs = [0; super::world::MAX_ARITY];
    for (i, a) in args.iter().enumerate() {
        objs[i] = match a {
            CTerm::Var(s) => b[*s]?,
            CTerm::Obj(o) => *o,
            CTerm::Wild => return None,
        };
    }
    Some(Fact::new(pred, &objs[..args.len()]))
}

impl Solver<'_> {
    /// Evaluate a literal whose variables are all bound; `None` when deferred.
    pub fn check(&self, l: &CLit, b: &[Option<ObjId>], holds: &Holds) -> Option<bool> {
        match l {
            CLit::Atom { neg, pred, args } => {
                let f = ground_atom(*pred, args, b)?;
                holds.holds(&f).map(|h| h != *neg)
            }
            CLit::Any(alts) => {
                let mut unknown = false;
                for alt in alts {
                    match self.check_all(alt, b, holds) {
                        Some(true) => return Some(true),
                        Some(false) => {}
                        None => unknown = true,
                    }
                }
                if unknown { None } else { Some(false) }
            }
            CLit::NotExists { lits, base, local } => {
                let mut inner: Vec<Option<ObjId>> = b[..*base].to_vec();
                inner.resize(base + local.len(), None);
                let mut unknown = false;
                let mut found = false;
                self.each_binding(local, *base, &mut inner, &mut |bi| {
                    match self.check_all(lits, bi, holds) {
                        Some(true) => found = true,
                        Some(false) => {}
                        None => unknown = true,
                    }
                    !found
                });
                if found {
                    Some(false)
                } else if unknown {
                    None
                } else {
                    Some(true)
                }
            }
            CLit::NumCmp { fluent, op, rhs } => {
                let a = self.fluent_value(fluent, b, holds)?;
                let c = self.num_value(rhs, b, holds)?;
                Some(super::facts::compare_ints(*op, a, c))
            }
            // effects: never conditions
            CLit::NumSet { .. } | CLit::When { .. } => Some(true),
            CLit::Cmp { op, lhs, rhs } => {
                let obj = |v: &CVal| match v {
                    CVal::Var(s) => b[*s],
                    CVal::Obj(o) => Some(*o),
                    _ => None,
                };
                if let (Some(x), Some(y)) = (obj(lhs), obj(rhs)) {
                    return Some(if *op == CmpOp::Eq { x == y } else { x != y });
                }
                let val = |v: &CVal| match v {
                    CVal::Attr(s, a) => b[*s].and_then(|o| self.w.attr(o, a)),
                    CVal::Lit(x) => Some(x.clone()),
                    _ => None,
                };
                Some(match (val(lhs), val(rhs)) {
                    (Some(x), Some(y)) => compare(*op, &x, &y),
                    _ => false,
                })
            }
        }
    }

    /// All literals at once: true when all hold, false when one fails, `None` otherwise.
    pub fn check_all(&self, lits: &[CLit], b: &[Option<ObjId>], holds: &Holds) -> Option<bool> {
        let mut unknown = false;
        for l in lits {
            match self.check(l, b, holds) {
                Some(true) => {}
                Some(false) => return Some(false),
                None => unknown = true,
            }
        }
        if unknown { None } else { Some(true) }
    }

    /// Every binding of the slots `base..` (types `local`) over the active objects; `f` returns
    /// false to stop.
    fn each_binding(
        &self,
        local: &[TypeId],
        base: usize,
        b: &mut Vec<Option<ObjId>>,
        f: &mut dyn FnMut(&[Option<ObjId>]) -> bool,
    ) -> bool {
        let Some(i) = (0..local.len()).find(|&i| b[base + i].is_none()) else {
            return f(b);
        };
        for &o in &self.w.objects_of[local[i] as usize] {
            if !self.active[o as usize] {
                continue;
            }
            b[base + i] = Some(o);
            let go_on = self.each_binding(local, base, b, f);
            b[base + i] = None;
            if !go_on {
                return false;
            }
        }
        true
    }

    /// The ground fluent under a binding (`None` while an argument is unbound).
    pub fn ground_fluent(&self, f: &CFluent, b: &[Option<ObjId>]) -> Option<Fact> {
        ground_atom(f.id, &f.args, b)
    }

    fn fluent_value(&self, f: &CFluent, b: &[Option<ObjId>], holds: &Holds) -> Option<i64> {
        holds.value(&self.ground_fluent(f, b)?)
    }

    /// A numeric value under a binding, if known.
    pub fn num_value(&self, n: &CNum, b: &[Option<ObjId>], holds: &Holds) -> Option<i64> {
        match n {
            CNum::Const(c) => Some(*c),
            CNum::Attr(s, a) => self.w.int_attr((*b.get(*s)?)?, a),
            CNum::Fluent(f) => self.fluent_value(f, b, holds),
        }
    }

    /// Call `f` with every full binding of `var_types` (extending `b`) under which no checkable
    /// literal is false. `f` returns false to stop the search. Returns false when stopped.
    pub fn solve(
        &self,
        lits: &[CLit],
        var_types: &[TypeId],
        b: &mut Vec<Option<ObjId>>,
        holds: &Holds,
        f: &mut dyn FnMut(&[Option<ObjId>]) -> bool,
    ) -> bool {
        if b.len() < var_types.len() {
            b.resize(var_types.len(), None);
        }
        let vars: Vec<Vec<usize>> = lits.iter().map(|l| l.vars()).collect();
        self.go(lits, &vars, var_types, b, holds, f)
    }

    fn go(
        &self,
        lits: &[CLit],
        vars: &[Vec<usize>],
        var_types: &[TypeId],
        b: &mut Vec<Option<ObjId>>,
        holds: &Holds,
        f: &mut dyn FnMut(&[Option<ObjId>]) -> bool,
    ) -> bool {
        for (l, vs) in lits.iter().zip(vars) {
            if vs.iter().all(|&s| b[s].is_some()) && self.check(l, b, holds) == Some(false) {
                return true;
            }
        }
        let Some(slot) = (0..var_types.len()).find(|&s| b[s].is_none()) else {
            return f(b);
        };
        for &o in &self.w.objects_of[var_types[slot] as usize] {
            if !self.active[o as usize] {
                continue;
            }
            b[slot] = Some(o);
            let go_on = self.go(lits, vars, var_types, b, holds, f);
            b[slot] = None;
            if !go_on {
                return false;
            }
        }
        true
    }

    /// Whether some binding satisfies every literal (all checkable).
    pub fn exists(
        &self,
        lits: &[CLit],
        var_types: &[TypeId],
        b: &[Option<ObjId>],
        holds: &Holds,
    ) -> bool {
        let mut b = b.to_vec();
        let mut found = false;
        self.solve(lits, var_types, &mut b, holds, &mut |_| {
            found = true;
            false
        });
        found
    }
}
