//! The world's grounding, computed once per scenario and shared by every task instance.
//!
//! Every action schema, render rule and their conditions are ground over *all* objects. Predicates
//! that neither actions nor task setups ever change ("fixed": the place graph, catalogues, ...)
//! are evaluated here and pruned away; every other fact gets a bit in the state. An instance then
//! only masks out the ground actions and lines that involve objects it does not use, which makes a
//! reset cost microseconds instead of a full grounding. (How it is computed: `ground.rs`.)

use super::facts::{Conj, Dnf, Fact, FluentSlot, NumEffect, ObjId, value};
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
    /// Failure messages in precondition order: the precondition (ground) and its message.
    pub fail: Vec<(Dnf, String)>,
    /// Message when no keyed failure message applies.
    pub otherwise: Option<String>,
    /// Facts deleted.
    pub del: Vec<u32>,
    /// Facts added.
    pub add: Vec<u32>,
    /// Numeric changes, in order, after the deletes and adds.
    pub num: Vec<NumEffect>,
    /// Conditional effects (their conditions read the state before the action).
    pub when: Vec<CondEffect>,
    /// Success feedback (fluent values filled in from the state after the action).
    pub message: String,
    /// Where fluent values go in `message`.
    pub message_values: Vec<(usize, FluentSlot)>,
}

/// A ground conditional effect of an action.
#[derive(Debug, Clone, PartialEq)]
pub struct CondEffect {
    /// When it fires: any of these, checked before the action changes anything (it fires once
    /// even when several hold).
    pub when: Dnf,
    /// Facts deleted.
    pub del: Vec<u32>,
    /// Facts added.
    pub add: Vec<u32>,
    /// Numeric changes.
    pub num: Vec<NumEffect>,
}

/// `text` with the fluent values of `state` inserted at `values`' byte offsets.
pub fn show(text: &str, values: &[(usize, FluentSlot)], state: &[u64]) -> String {
    if values.is_empty() {
        return text.to_string();
    }
    let mut s = String::with_capacity(text.len() + 4 * values.len());
    let mut at = 0;
    for &(pos, slot) in values {
        s.push_str(&text[at..pos]);
        s.push_str(&value(state, slot).to_string());
        at = pos;
    }
    s.push_str(&text[at..]);
    s
}

/// A ground render line.
#[derive(Debug, Clone)]
pub struct GroundLine {
    /// When it shows (any of these).
    pub when: Dnf,
    /// The objects it involves.
    pub objects: Vec<ObjId>,
    /// The text.
    pub text: String,
    /// Where fluent values go in the text.
    pub values: Vec<(usize, FluentSlot)>,
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
    /// Every ground fluent, with its default value, in slot order: the `k`-th has slot
    /// `fluents.len() - k` (counted from the end of a state).
    pub fluents: Vec<(Fact, i64)>,
    /// The slot of each ground fluent.
    pub fluent_slot: HashMap<Fact, FluentSlot>,
}
