//! Backtracking search for the bindings that satisfy a list of literals.

use super::expr::CmpOp;
use super::world::{CLit, CTerm, CVal, Fact, ObjId, TypeId, World, compare};

/// Whether a fact holds: `Some(b)` when the caller can tell, `None` to defer the literal.
pub type Holds<'a> = dyn Fn(&Fact) -> Option<bool> + 'a;

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
                holds(&f).map(|h| h != *neg)
            }
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
