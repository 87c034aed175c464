//! The RON scenario file as written by authors (see `docs/scenarios.md`).
//!
//! These types mirror the file one to one; `World` (world.rs) is the checked, compiled form.

use serde::Deserialize;
use std::collections::BTreeMap;

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename = "Scenario")]
pub struct ScenarioFile {
    /// Short name (used in task ids).
    pub name: String,
    /// What the world is, for humans.
    #[serde(default)]
    pub description: String,
    /// Step limit of an episode (a level may override it).
    pub max_steps: u32,
    /// What a failed action says when nothing more specific does: an action whose failing
    /// precondition has no `fail` entry and which has no `otherwise`, or a text no action has
    /// (default "Nothing happens.").
    #[serde(default)]
    pub default_fail: Option<String>,
    /// Object types, optionally with a parent type.
    pub types: Vec<TypeDef>,
    /// Predicates (relations) the state is made of.
    pub predicates: Vec<PredicateDef>,
    /// Numeric fluents: integers per binding of their parameters (disk use, counts, prices).
    #[serde(default)]
    pub fluents: Vec<FluentDef>,
    /// The objects of the world.
    pub objects: Vec<ObjectDef>,
    /// Places connected as a graph (optional).
    #[serde(default)]
    pub places: Option<PlacesDef>,
    /// Facts true at the start of every task (before the task's setup).
    #[serde(default)]
    pub init: Vec<String>,
    /// Action schemas.
    pub actions: Vec<ActionDef>,
    /// How a state renders as lines.
    pub render: Vec<RenderDef>,
    /// Task templates.
    pub tasks: Vec<TaskTemplateDef>,
}

/// An object type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename = "Type")]
pub struct TypeDef {
    /// Type name.
    pub name: String,
    /// Parent type: objects of this type are also of the parent type.
    #[serde(default)]
    pub parent: Option<String>,
}

/// A predicate: a named relation over typed objects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename = "Predicate")]
pub struct PredicateDef {
    /// Predicate name.
    pub name: String,
    /// Type of each argument.
    #[serde(default)]
    pub params: Vec<String>,
}

/// A numeric fluent: `disk(host)` holds an integer in `[min, max]` for every host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename = "Fluent")]
pub struct FluentDef {
    /// Fluent name (distinct from every predicate's).
    pub name: String,
    /// Type of each argument.
    #[serde(default)]
    pub params: Vec<String>,
    /// Smallest value: changes that would go below it stop at it.
    pub min: i64,
    /// Largest value: changes that would go above it stop at it.
    pub max: i64,
    /// The value where neither `init` nor a setup sets one (default 0; must lie in the range).
    #[serde(default)]
    pub default: i64,
}

/// An attribute value of an object.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum AttrValue {
    /// true / false.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number.
    Float(f64),
    /// Text.
    Str(String),
}

impl std::fmt::Display for AttrValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttrValue::Bool(b) => write!(f, "{b}"),
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::Float(x) => write!(f, "{x}"),
            AttrValue::Str(s) => f.write_str(s),
        }
    }
}

/// An object of the world.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename = "Object")]
pub struct ObjectDef {
    /// Unique id (appears in state lines as `[id]` and in action texts through templates).
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: String,
    /// Display name (defaults to the id with `_` as spaces).
    #[serde(default)]
    pub name: Option<String>,
    /// Static attributes, usable in conditions (`?o.color = red`) and templates (`{o.color}`).
    #[serde(default)]
    pub attrs: BTreeMap<String, AttrValue>,
}

/// Places connected as an undirected graph.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename = "Places")]
pub struct PlacesDef {
    /// Type of the place objects.
    #[serde(rename = "type")]
    pub ty: String,
    /// Predicate `adjacent(place, place)` filled in both directions for every link.
    pub adjacency: String,
    /// Predicate `door(place, place, door)` filled in both directions for links with a door.
    #[serde(default)]
    pub via: Option<String>,
    /// The links.
    pub links: Vec<LinkDef>,
}

/// One link between two places.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename = "Link")]
pub struct LinkDef {
    /// One end.
    pub from: String,
    /// The other end.
    pub to: String,
    /// The door object between them, if any.
    #[serde(default)]
    pub via: Option<String>,
}

/// An action schema.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename = "Action")]
pub struct ActionDef {
    /// Name (for errors and summaries).
    pub name: String,
    /// Parameters shown in the action text, as (variable, type).
    #[serde(default)]
    pub params: Vec<(String, String)>,
    /// Extra variables bound by the preconditions but not shown in the text, as (variable, type).
    #[serde(default)]
    pub bind: Vec<(String, String)>,
    /// Action text template, e.g. `"take {o} from {r}"`.
    pub text: String,
    /// Preconditions (literals; each string may hold several separated by commas).
    #[serde(default)]
    pub pre: Vec<String>,
    /// Failure message per precondition (keyed by the precondition string as written).
    #[serde(default)]
    pub fail: BTreeMap<String, String>,
    /// Failure message when no keyed message applies.
    #[serde(default)]
    pub otherwise: Option<String>,
    /// Effects: atoms to add, `not atom` to delete (`_` deletes every match).
    pub effect: Vec<String>,
    /// Feedback shown after the action succeeds.
    #[serde(default)]
    pub message: Option<String>,
}

/// A render rule: one state line per binding of the condition's variables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename = "Render")]
pub struct RenderDef {
    /// Condition (empty = always).
    #[serde(default)]
    pub when: String,
    /// Line template, DreamGym style `"[{o}] {o.type}: {o.name}"`.
    pub line: String,
}

/// A count in a setup statement: a literal or a level knob.
#[derive(Debug, Clone, Deserialize)]
pub enum Count {
    /// A fixed number.
    Fixed(u32),
    /// The value of the named knob of the level.
    Knob(String),
}

/// One statement of a task's setup (run in order with a seeded RNG).
#[derive(Debug, Clone, Deserialize)]
pub enum SetupStep {
    /// Bind a variable to a random active object of `type` satisfying `where`.
    Choose {
        /// Variable name (without `?`).
        var: String,
        /// Object type.
        #[serde(rename = "type")]
        ty: String,
        /// Condition on `?var` (and earlier variables).
        #[serde(default, rename = "where")]
        filter: Option<String>,
    },
    /// Keep only `keep` random active objects of `type` besides those bound to variables.
    Limit {
        /// Object type.
        #[serde(rename = "type")]
        ty: String,
        /// How many unbound objects of the type stay.
        keep: Count,
    },
    /// Keep only the first `count` places (declaration order) and what lies in them.
    LimitPlaces {
        /// Number of places.
        count: Count,
    },
    /// Put `what` (a `?var` or a type: all active unplaced objects of it) at a random `among`
    /// object satisfying `where` (`?it` = the object, `?at` = the candidate), adding `pred(it, at)`.
    Place {
        /// `?var` or a type name.
        what: String,
        /// Binary predicate to add.
        pred: String,
        /// Type of the candidate locations.
        among: String,
        /// Condition on `?it` and `?at`.
        #[serde(default, rename = "where")]
        filter: Option<String>,
    },
    /// Add facts (atoms, `not atom` removes) and set fluents (`disk(?h) := 40`), with
    /// variables substituted.
    Assert(Vec<String>),
    /// Run one of the alternatives (each a list of statements), chosen uniformly at random. An
    /// alternative that chooses variables must choose the same ones, of the same types, in the
    /// same order as the others.
    OneOf(Vec<Vec<SetupStep>>),
    /// Run the inner steps `times` times (e.g. lock `Knob("locked")` random doors).
    Repeat {
        /// How many times.
        times: Count,
        /// The steps.
        steps: Vec<SetupStep>,
    },
}

/// A task template.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename = "TaskTemplate")]
pub struct TaskTemplateDef {
    /// Template id (unique in the file).
    pub id: String,
    /// Instruction template.
    pub instruction: String,
    /// Setup statements (run before the level's own).
    #[serde(default)]
    pub setup: Vec<SetupStep>,
    /// Goal condition: success when it holds (free variables are existential).
    pub goal: Vec<String>,
    /// The episode ends (as a failure) when this holds and the goal does not.
    #[serde(default)]
    pub ends_when: Option<String>,
    /// Partial credit at a failed end: the reward is the share of these conditions that hold.
    #[serde(default)]
    pub partial: Vec<String>,
    /// Difficulty levels.
    pub levels: Vec<LevelDef>,
}

/// One difficulty level of a template.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename = "Level")]
pub struct LevelDef {
    /// Difficulty (1 = easiest).
    pub difficulty: u32,
    /// Knob values used by `Count::Knob`.
    #[serde(default)]
    pub knobs: BTreeMap<String, u32>,
    /// Extra setup after the template's.
    #[serde(default)]
    pub setup: Vec<SetupStep>,
    /// Step limit override.
    #[serde(default)]
    pub max_steps: Option<u32>,
    /// Conditions the instance must satisfy after setup (setup is re-drawn until they hold).
    #[serde(default)]
    pub require: Vec<String>,
    /// The instruction at this level, instead of the template's (it may name the level's own
    /// variables): e.g. a harder level that stops naming where the object is.
    #[serde(default)]
    pub instruction: Option<String>,
}
