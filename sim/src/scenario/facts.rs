//! Ground facts and the ids they are made of, states as bitsets of facts, and the conditions
//! checked on them: what the grounding compiles action preconditions to and what an instance's
//! goal is checked with.

/// Index of an object.
pub type ObjId = u16;
/// Index of a type.
pub type TypeId = u16;
/// Index of a predicate.
pub type PredId = u16;
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
