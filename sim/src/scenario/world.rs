//! The compiled, checked form of a scenario file.

use super::ast::AttrValue;
use super::expr::{CmpOp, SetOp};
use petgraph::graph::{NodeIndex, UnGraph};
use std::collections::{BTreeMap, HashMap};

pub use super::facts::{Fact, FluentId, MAX_ARITY, ObjId, PredId, TypeId};

/// A term of a compiled atom.
#[derive(Debug, Clone, PartialEq)]
pub enum CTerm {
    /// Variable slot.
    Var(usize),
    /// A constant object.
    Obj(ObjId),
    /// `_`
    Wild,
}

/// A value in a compiled comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum CVal {
    /// The object bound to a variable slot (compared by identity).
    Var(usize),
    /// A constant object.
    Obj(ObjId),
    /// An attribute of the object in a variable slot.
    Attr(usize, String),
    /// A constant value.
    Lit(AttrValue),
}

/// A numeric fluent applied to its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct CFluent {
    /// Which fluent.
    pub id: FluentId,
    /// Arguments (variable slots or objects; never `_`).
    pub args: Vec<CTerm>,
}

/// A numeric value in a compiled comparison or change.
#[derive(Debug, Clone, PartialEq)]
pub enum CNum {
    /// A constant.
    Const(i64),
    /// An integer attribute of the object in a slot.
    Attr(usize, String),
    /// A fluent's value.
    Fluent(CFluent),
}

/// A compiled literal.
#[derive(Debug, Clone, PartialEq)]
pub enum CLit {
    /// A (possibly negated) atom.
    Atom {
        /// Negated.
        neg: bool,
        /// Predicate.
        pred: PredId,
        /// Arguments.
        args: Vec<CTerm>,
    },
    /// A comparison of static values.
    Cmp {
        /// Operator.
        op: CmpOp,
        /// Left.
        lhs: CVal,
        /// Right.
        rhs: CVal,
    },
    /// Alternatives: holds when one of them (each a conjunction) holds.
    Any(Vec<Vec<CLit>>),
    /// No binding of the local slots `base..base + local.len()` makes every literal hold.
    NotExists {
        /// The literals (outer slots below `base`, local ones from it).
        lits: Vec<CLit>,
        /// First local slot.
        base: usize,
        /// Types of the local slots.
        local: Vec<TypeId>,
    },
    /// A numeric fluent compared with a value.
    NumCmp {
        /// The fluent.
        fluent: CFluent,
        /// Operator.
        op: CmpOp,
        /// Right side.
        rhs: CNum,
    },
    /// A numeric fluent changed (effects and setup).
    NumSet {
        /// The fluent.
        fluent: CFluent,
        /// How.
        op: SetOp,
        /// By / to what.
        rhs: CNum,
    },
    /// A conditional effect: for every binding of the local slots under which `cond` holds
    /// before the action, `effects` apply.
    When {
        /// The condition.
        cond: Vec<CLit>,
        /// First local slot.
        base: usize,
        /// Types of the local slots (empty for `when`).
        local: Vec<TypeId>,
        /// The effects (atoms and numeric changes).
        effects: Vec<CLit>,
    },
}

fn term_slots(args: &[CTerm], v: &mut Vec<usize>) {
    v.extend(args.iter().filter_map(|a| match a {
        CTerm::Var(s) => Some(*s),
        _ => None,
    }))
}

fn num_slots(n: &CNum, v: &mut Vec<usize>) {
    match n {
        CNum::Const(_) => {}
        CNum::Attr(s, _) => v.push(*s),
        CNum::Fluent(f) => term_slots(&f.args, v),
    }
}

impl CLit {
    /// Variable slots used by the literal (for `not exists` and `when`, the outer ones only).
    pub fn vars(&self) -> Vec<usize> {
        let mut v = vec![];
        self.collect_vars(&mut v);
        v.sort_unstable();
        v.dedup();
        v
    }

    fn collect_vars(&self, v: &mut Vec<usize>) {
        match self {
            CLit::Atom { args, .. } => term_slots(args, v),
            CLit::Cmp { lhs, rhs, .. } => {
                for x in [lhs, rhs] {
                    if let CVal::Var(s) | CVal::Attr(s, _) = x {
                        v.push(*s);
                    }
                }
            }
            CLit::Any(alts) => alts.iter().flatten().for_each(|l| l.collect_vars(v)),
            CLit::NotExists { lits, base, .. } => {
                let mut inner = vec![];
                lits.iter().for_each(|l| l.collect_vars(&mut inner));
                v.extend(inner.into_iter().filter(|s| s < base));
            }
            CLit::When {
                cond,
                base,
                effects,
                ..
            } => {
                let mut inner = vec![];
                cond.iter()
                    .chain(effects)
                    .for_each(|l| l.collect_vars(&mut inner));
                v.extend(inner.into_iter().filter(|s| s < base));
            }
            CLit::NumCmp { fluent, rhs, .. } | CLit::NumSet { fluent, rhs, .. } => {
                term_slots(&fluent.args, v);
                num_slots(rhs, v);
            }
        }
    }
}

/// A piece of a compiled text template.
#[derive(Debug, Clone, PartialEq)]
pub enum TPiece {
    /// Literal text.
    Text(String),
    /// The id of the object in a slot.
    Id(usize),
    /// An attribute (`name`, `type` or declared) of the object in a slot.
    Attr(usize, String),
    /// The value of a numeric fluent (render lines and action messages only).
    Fluent(CFluent),
}

/// A compiled text template.
pub type Template = Vec<TPiece>;

/// A compiled condition with its variable scope (slots beyond the bound ones are existential).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cond {
    /// The literals.
    pub lits: Vec<CLit>,
    /// Types of all variable slots of the scope (bound ones first).
    pub var_types: Vec<TypeId>,
}

/// A type.
#[derive(Debug, Clone)]
pub struct TypeInfo {
    /// Name.
    pub name: String,
    /// Parent type.
    pub parent: Option<TypeId>,
}

/// A predicate.
#[derive(Debug, Clone)]
pub struct PredInfo {
    /// Name.
    pub name: String,
    /// Argument types.
    pub params: Vec<TypeId>,
    /// True when no action effect changes it.
    pub is_static: bool,
}

/// An object.
#[derive(Debug, Clone)]
pub struct ObjInfo {
    /// Id.
    pub id: String,
    /// Type.
    pub ty: TypeId,
    /// Display name.
    pub name: String,
    /// Attributes.
    pub attrs: BTreeMap<String, AttrValue>,
}

/// A compiled action schema.
#[derive(Debug, Clone)]
pub struct ActionSchema {
    /// Name.
    pub name: String,
    /// Variable names and types (text parameters first, then bound-only ones).
    pub vars: Vec<(String, TypeId)>,
    /// Number of text parameters.
    pub nparams: usize,
    /// Action text.
    pub text: Template,
    /// Preconditions with their failure messages.
    pub pre: Vec<(CLit, Option<Template>)>,
    /// Default failure message.
    pub otherwise: Option<Template>,
    /// Effects (negated atoms delete).
    pub effects: Vec<CLit>,
    /// Success feedback.
    pub message: Option<Template>,
}

/// A compiled render rule.
#[derive(Debug, Clone)]
pub struct RenderRule {
    /// Condition (all its variables are free).
    pub when: Cond,
    /// Line template.
    pub line: Template,
}

/// A compiled count.
#[derive(Debug, Clone)]
pub enum CCount {
    /// Fixed.
    Fixed(u32),
    /// A knob of the level.
    Knob(String),
}

/// What a `Place` statement places.
#[derive(Debug, Clone)]
pub enum PlaceWhat {
    /// The object in a task variable slot.
    Var(usize),
    /// Every active, not yet placed object of a type.
    Type(TypeId),
}

/// A compiled setup statement.
#[derive(Debug, Clone)]
pub enum CSetup {
    /// See [`SetupStep::Choose`].
    Choose {
        /// Slot.
        slot: usize,
        /// Type.
        ty: TypeId,
        /// Filter (scope: task slots + free).
        filter: Option<Cond>,
    },
    /// See [`SetupStep::Limit`].
    Limit {
        /// Type.
        ty: TypeId,
        /// Count.
        keep: CCount,
    },
    /// See [`SetupStep::LimitPlaces`].
    LimitPlaces {
        /// Count.
        count: CCount,
    },
    /// See [`SetupStep::Place`].
    Place {
        /// What.
        what: PlaceWhat,
        /// Predicate.
        pred: PredId,
        /// Candidate type.
        among: TypeId,
        /// Filter (scope: task slots, `it`, `at`, free).
        filter: Option<Cond>,
        /// Number of task slots at this point (`it` is this slot, `at` the next).
        base: usize,
    },
    /// Facts to add / remove, fluents to set.
    Assert(Vec<CLit>),
    /// Run one of the alternatives, chosen uniformly at random.
    OneOf(Vec<Vec<CSetup>>),
    /// Repeat.
    Repeat {
        /// Times.
        times: CCount,
        /// Steps.
        steps: Vec<CSetup>,
    },
}

/// A difficulty level.
#[derive(Debug, Clone)]
pub struct Level {
    /// Difficulty.
    pub difficulty: u32,
    /// Knobs.
    pub knobs: BTreeMap<String, u32>,
    /// Extra setup.
    pub setup: Vec<CSetup>,
    /// Step limit.
    pub max_steps: u32,
    /// Conditions the set-up instance must satisfy.
    pub require: Option<Cond>,
    /// The level's own instruction (else the template's).
    pub instruction: Option<Template>,
}

/// A compiled task template.
#[derive(Debug, Clone)]
pub struct TaskTemplate {
    /// Id.
    pub id: String,
    /// Task variables (name, type) in slot order.
    pub vars: Vec<(String, TypeId)>,
    /// Instruction.
    pub instruction: Template,
    /// Setup.
    pub setup: Vec<CSetup>,
    /// Goal.
    pub goal: Cond,
    /// Terminal failure condition.
    pub ends_when: Option<Cond>,
    /// Partial-credit conditions.
    pub partial: Vec<Cond>,
    /// Levels.
    pub levels: Vec<Level>,
}

/// The place graph.
#[derive(Debug, Clone)]
pub struct PlaceGraph {
    /// Places as nodes, links as edges (weight: the door, if any).
    pub graph: UnGraph<ObjId, Option<ObjId>>,
    /// Node of each place object.
    pub node: HashMap<ObjId, NodeIndex>,
    /// Place type.
    pub ty: TypeId,
    /// Places in declaration order.
    pub order: Vec<ObjId>,
}

/// A numeric fluent: an integer per binding of its parameters, kept within `[min, max]`.
#[derive(Debug, Clone)]
pub struct FluentInfo {
    /// Name.
    pub name: String,
    /// Argument types.
    pub params: Vec<TypeId>,
    /// Smallest value (changes are clamped to it).
    pub min: i64,
    /// Largest value (changes are clamped to it).
    pub max: i64,
    /// Value where nothing sets one.
    pub default: i64,
}

/// A compiled scenario.
#[derive(Debug, Clone)]
pub struct World {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Default step limit.
    pub max_steps: u32,
    /// What a failed action says when nothing more specific does.
    pub default_fail: String,
    /// Types.
    pub types: Vec<TypeInfo>,
    /// Predicates.
    pub preds: Vec<PredInfo>,
    /// Objects.
    pub objects: Vec<ObjInfo>,
    /// Object index by id.
    pub obj_index: HashMap<String, ObjId>,
    /// Place graph.
    pub places: Option<PlaceGraph>,
    /// Initial facts.
    pub init: Vec<Fact>,
    /// Numeric fluents.
    pub fluents: Vec<FluentInfo>,
    /// Initial fluent values (a `Fact` whose `pred` is the fluent id).
    pub init_values: Vec<(Fact, i64)>,
    /// Actions.
    pub actions: Vec<ActionSchema>,
    /// Render rules.
    pub render: Vec<RenderRule>,
    /// Task templates.
    pub tasks: Vec<TaskTemplate>,
    /// Objects of each type (subtypes included).
    pub objects_of: Vec<Vec<ObjId>>,
    /// The shared grounding, built on first use.
    pub grounding: std::sync::OnceLock<std::sync::Arc<super::grounding::Grounding>>,
}

impl World {
    /// Whether type `a` is `b` or a subtype of it.
    pub fn is_subtype(&self, mut a: TypeId, b: TypeId) -> bool {
        loop {
            if a == b {
                return true;
            }
            match self.types[a as usize].parent {
                Some(p) => a = p,
                None => return false,
            }
        }
    }

    /// The value of attribute `attr` of object `o` (`name`, `type`, `id` or declared).
    pub fn attr(&self, o: ObjId, attr: &str) -> Option<AttrValue> {
        let info = &self.objects[o as usize];
        match attr {
            "name" => Some(AttrValue::Str(info.name.clone())),
            "type" => Some(AttrValue::Str(self.types[info.ty as usize].name.clone())),
            "id" => Some(AttrValue::Str(info.id.clone())),
            _ => info.attrs.get(attr).cloned(),
        }
    }

    /// Fill a template with the objects bound to its slots.
    pub fn fill(&self, t: &[TPiece], binding: &[ObjId]) -> String {
        let mut s = String::new();
        for p in t {
            match p {
                TPiece::Text(x) => s.push_str(x),
                TPiece::Id(v) => s.push_str(&self.objects[binding[*v] as usize].id),
                TPiece::Attr(v, a) => {
                    if let Some(val) = self.attr(binding[*v], a) {
                        s.push_str(&val.to_string());
                    }
                }
                // compiled only where a state is known: see `fill_live`
                TPiece::Fluent(_) => {}
            }
        }
        s
    }

    /// Fill a template whose fluent values are read from the state when it is shown: the text,
    /// and where each value goes (byte offset, ground fluent).
    pub fn fill_live(&self, t: &Template, binding: &[ObjId]) -> (String, Vec<(usize, Fact)>) {
        let mut holes = vec![];
        let mut s = String::new();
        for p in t {
            if let TPiece::Fluent(f) = p {
                holes.push((s.len(), self.ground_fluent(f, binding)));
            } else {
                s.push_str(&self.fill(std::slice::from_ref(p), binding));
            }
        }
        (s, holes)
    }

    /// The ground fluent of `f` under a full binding.
    pub fn ground_fluent(&self, f: &CFluent, binding: &[ObjId]) -> Fact {
        let args: Vec<ObjId> = f
            .args
            .iter()
            .map(|a| match a {
                CTerm::Var(s) => binding[*s],
                CTerm::Obj(o) => *o,
                CTerm::Wild => unreachable!("fluent arguments are never `_`"),
            })
            .collect();
        Fact::new(f.id, &args)
    }

    /// An integer attribute's value (a number attribute rounded toward zero).
    pub fn int_attr(&self, o: ObjId, attr: &str) -> Option<i64> {
        match self.attr(o, attr)? {
            AttrValue::Int(i) => Some(i),
            AttrValue::Float(x) => Some(x as i64),
            AttrValue::Str(s) => s.parse().ok(),
            AttrValue::Bool(_) => None,
        }
    }

    /// Display a fact as `pred(a, b)`.
    pub fn show_fact(&self, f: &Fact) -> String {
        let args: Vec<&str> = f
            .args()
            .iter()
            .map(|&a| self.objects[a as usize].id.as_str())
            .collect();
        format!("{}({})", self.preds[f.pred as usize].name, args.join(", "))
    }
}

/// Compare two static values (numbers numerically, everything else as text).
pub fn compare(op: CmpOp, a: &AttrValue, b: &AttrValue) -> bool {
    let num = |v: &AttrValue| match v {
        AttrValue::Int(i) => Some(*i as f64),
        AttrValue::Float(f) => Some(*f),
        AttrValue::Str(s) => s.parse::<f64>().ok(),
        AttrValue::Bool(_) => None,
    };
    let ord = match (num(a), num(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => Some(a.to_string().cmp(&b.to_string())),
    };
    let Some(ord) = ord else { return false };
    use std::cmp::Ordering::*;
    match op {
        CmpOp::Eq => ord == Equal,
        CmpOp::Ne => ord != Equal,
        CmpOp::Lt => ord == Less,
        CmpOp::Le => ord != Greater,
        CmpOp::Gt => ord == Greater,
        CmpOp::Ge => ord != Less,
    }
}
