//! Ground facts and the ids they are made of, states as bitsets of facts, and the conditions
//! checked on them: what the grounding compiles action preconditions to and what an instance's
//! goal is checked with.

/// Index of an object.
pub type ObjId = u16;
/// Index of a type.
pub type TypeId = u16;
/// Index of a predicate.
pub type PredId = u16;
/// Index of a numeric fluent (a ground fluent is a [`Fact`] whose `pred` is this).
pub type FluentId = u16;
/// Largest predicate arity.
pub const MAX_ARITY: usize = 4;

/// A ground atom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fact {
    /// Predicate.
    pub pred: PredId,
    /// Number of arguments.
    pub n: u8,
    /// Arguments (unused slots are 0).
    pub args: [ObjId; MAX_ARITY],
}

impl Fact {
    /// A fact from a predicate and its arguments.
    pub fn new(pred: PredId, args: &[ObjId]) -> Self {
        let mut a = [0; MAX_ARITY];
        a[..args.len()].copy_from_slice(args);
        Fact {
            pred,
            n: args.len() as u8,
            args: a,
        }
    }
    /// The arguments.
    pub fn args(&self) -> &[ObjId] {
        &self.args[..self.n as usize]
    }
}

/// A conjunction of dynamic facts (by index in the instance's fact universe), numeric tests, and
/// conjunctions that must not hold (what a `not exists` grounds to).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conj {
    /// Facts that must hold.
    pub pos: Vec<u32>,
    /// Facts that must not hold.
    pub neg: Vec<u32>,
    /// Numeric tests that must hold.
    pub num: Vec<NumTest>,
    /// Conjunctions none of which may hold.
    pub forbid: Vec<Conj>,
}

impl Conj {
    /// Whether the conjunction holds in `state`.
    #[inline]
    pub fn holds(&self, state: &[u64]) -> bool {
        self.pos.iter().all(|&f| bit(state, f))
            && !self.neg.iter().any(|&f| bit(state, f))
            && self.num.iter().all(|t| t.holds(state))
            && !self.forbid.iter().any(|c| c.holds(state))
    }

    /// Whether it holds in every state (nothing to test).
    pub fn is_true(&self) -> bool {
        self.pos.is_empty() && self.neg.is_empty() && self.num.is_empty() && self.forbid.is_empty()
    }

    /// Both conjunctions at once.
    pub fn and(&self, other: &Conj) -> Conj {
        let mut c = self.clone();
        c.pos.extend(&other.pos);
        c.neg.extend(&other.neg);
        c.num.extend(other.num.iter().cloned());
        c.forbid.extend(other.forbid.iter().cloned());
        c
    }
}

/// A ground fluent's place in a state: its word counted from the end of the state vector (fluent
/// values follow the fact bits, so the position does not depend on how many facts an instance
/// adds).
pub type FluentSlot = u32;

/// The value of a fluent in a state.
#[inline]
pub fn value(state: &[u64], slot: FluentSlot) -> i64 {
    state[state.len() - slot as usize] as i64
}

/// A numeric value in a ground test or change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NumVal {
    /// A constant.
    Const(i64),
    /// A fluent's value.
    Fluent(FluentSlot),
}

impl NumVal {
    /// Its value in `state`.
    #[inline]
    pub fn get(&self, state: &[u64]) -> i64 {
        match *self {
            NumVal::Const(c) => c,
            NumVal::Fluent(s) => value(state, s),
        }
    }
}

/// A ground numeric comparison `fluent op value`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumTest {
    /// The fluent.
    pub fluent: FluentSlot,
    /// Operator.
    pub op: super::expr::CmpOp,
    /// Right side.
    pub rhs: NumVal,
}

impl NumTest {
    /// Whether it holds in `state`.
    #[inline]
    pub fn holds(&self, state: &[u64]) -> bool {
        compare_ints(self.op, value(state, self.fluent), self.rhs.get(state))
    }
}

/// `a op b` on integers.
#[inline]
pub fn compare_ints(op: super::expr::CmpOp, a: i64, b: i64) -> bool {
    use super::expr::CmpOp::*;
    match op {
        Eq => a == b,
        Ne => a != b,
        Lt => a < b,
        Le => a <= b,
        Gt => a > b,
        Ge => a >= b,
    }
}

/// A ground numeric change, clamped to the fluent's range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumEffect {
    /// The fluent.
    pub fluent: FluentSlot,
    /// How.
    pub op: super::expr::SetOp,
    /// By / to what.
    pub rhs: NumVal,
    /// Smallest value.
    pub min: i64,
    /// Largest value.
    pub max: i64,
}

impl NumEffect {
    /// Apply the change to `state` (reading the value and the right side from it as it is now).
    #[inline]
    pub fn apply(&self, state: &mut [u64]) {
        let (now, by) = (value(state, self.fluent), self.rhs.get(state));
        let next = changed(self.op, now, by, self.min, self.max);
        let i = state.len() - self.fluent as usize;
        state[i] = next as u64;
    }
}

/// A fluent's value `now` changed by `op` with `by`, kept within `[min, max]`.
pub fn changed(op: super::expr::SetOp, now: i64, by: i64, min: i64, max: i64) -> i64 {
    use super::expr::SetOp::*;
    match op {
        Assign => by,
        Add => now.saturating_add(by),
        Sub => now.saturating_sub(by),
    }
    .clamp(min, max)
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
