//! States as bitsets of ground facts, and the conditions checked on them: what the grounding
//! compiles action preconditions to and what an instance's goal is checked with.

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
