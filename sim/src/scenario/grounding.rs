//! The world's grounding, computed once per scenario and shared by every task instance.
//!
//! Every action schema, render rule and their conditions are ground over *all* objects. Predicates
//! that neither actions nor task setups ever change ("fixed": the place graph, catalogues, ...)
//! are evaluated here and pruned away; every other fact gets a bit in the state. An instance then
//! only masks out the ground actions and lines that involve objects it does not use, which makes a
//! reset cost microseconds instead of a full grounding. (How it is computed: `ground.rs`.)

use super::facts::{Conj, Fact, ObjId};
use std::collections::{HashMap, HashSet};

/// A ground action.
#[derive(Debug, Clone)]
pub struct GroundAction {
    /// Its text (several ground actions may share one; the first applicable runs).
    pub text: String,
    /// The objects it involves (it exists in an instance only when all are active).
    pub objects: Vec<ObjId>,
    /// Preconditions on state facts.
    pub pre: Conj,
    /// Failure messages in precondition order: (fact, must hold, message).
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
    /// When it shows.
    pub when: Conj,
    /// The objects it involves.
    pub objects: Vec<ObjId>,
    /// The text.
    pub text: String,
}

/// The shared grounding of a world.
#[derive(Debug)]
pub struct Grounding {
    /// What a failed action says when nothing more specific does (the world's `default_fail`).
    pub default_fail: String,
    /// State facts (index = bit).
    pub facts: Vec<Fact>,
    /// Index of each state fact.
    pub index: HashMap<Fact, u32>,
    /// Ground actions in schema, then binding order.
    pub actions: Vec<GroundAction>,
    /// Ground actions by text.
    pub by_text: HashMap<String, Vec<u32>>,
    /// Ground actions whose first positive precondition is each fact.
    pub triggered: Vec<Vec<u32>>,
    /// Ground actions without positive preconditions on state facts.
    pub untriggered: Vec<u32>,
    /// Render lines in rule, then binding order.
    pub lines: Vec<GroundLine>,
    /// Per predicate: fixed (never changed by actions or setups).
    pub fixed: Vec<bool>,
    /// The world's facts of fixed predicates.
    pub fixed_facts: HashSet<Fact>,
}
