//! The scenario compiler: RON source text to a [`World`], checked as it goes. Every name is
//! resolved (types, predicates, objects, variables, attributes), every literal and text template
//! parsed and typed, every task template's goal checked for contradictions and — for a few seeds
//! of every level — for reachability under the delete relaxation. Errors are
//! [`ScenarioError`]s located at `file:line:col` of the offending entry.

mod exprs;
mod tasks;

use super::ast::{self, AttrValue, Count, ScenarioFile, SetupStep};
use super::error::{Locator, ScenarioError};
use super::expr::{self, CmpOp, Literal, Piece, Term};
use super::world::*;
use exprs::Role;
use petgraph::graph::UnGraph;
use std::collections::{HashMap, HashSet};
use std::path::Path;

impl World {
    /// Read and compile a scenario file.
    pub fn load(path: &Path) -> Result<World, ScenarioError> {
        let src = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            message: format!("cannot read scenario: {e}"),
        })?;
        Self::from_str(path, &src)
    }

    /// Compile scenario source text (`path` names it in errors).
    pub fn from_str(path: &Path, src: &str) -> Result<World, ScenarioError> {
        compile(path, src)
    }
}

/// Compile scenario source text (`path` names it in errors).
fn compile(path: &Path, src: &str) -> Result<World, ScenarioError> {
    let loc = Locator::new(path, src);
    let file: ScenarioFile = ron::from_str(src).map_err(|e| ScenarioError {
        file: path.to_path_buf(),
        line: e.span.start.line,
        col: e.span.start.col,
        message: format!(
            "{} (expected the Scenario(...) structure described in docs/scenarios.md)",
            e.code
        ),
    })?;
    Compiler { loc: &loc }.compile(file)
}

/// A variable scope while compiling.
#[derive(Clone, Default)]
struct Scope {
    vars: Vec<(String, TypeId)>,
}

impl Scope {
    fn slot(&self, name: &str) -> Option<usize> {
        self.vars.iter().position(|(n, _)| n == name)
    }
}

struct Compiler<'a> {
    loc: &'a Locator<'a>,
}

type R<T> = Result<T, ScenarioError>;

impl Compiler<'_> {
    /// Every level of every template must set up, and its goal must be reachable under the delete
    /// relaxation (a necessary condition), for a few seeds.
    fn check_goals(&self, w: &World, f: &ScenarioFile) -> R<()> {
        use rand::SeedableRng;
        for (t, tf) in w.tasks.iter().zip(&f.tasks) {
            for level in &t.levels {
                for seed in 0..4u64 {
                    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                    let inst =
                        super::instance::instantiate(w, t, level, seed, &mut rng).map_err(|e| {
                            self.loc
                                .error(&["tasks", &t.id], &t.id, 0, format!("setup fails: {e}"))
                        })?;
                    if super::planner::h_add(&inst, &inst.init, &mut vec![]).is_none() {
                        let g = tf.goal.first().map(|s| s.as_str()).unwrap_or(&t.id);
                        return Err(self.loc.error(&["tasks", &t.id], g, 0, format!(
                            "unreachable goal: no sequence of actions can make it true from the initial state of task {} (difficulty {}, seed {seed})",
                            inst.task.instruction, level.difficulty)));
                    }
                }
            }
        }
        Ok(())
    }

    fn compile(&self, f: ScenarioFile) -> R<World> {
        if f.max_steps == 0 {
            return Err(self
                .loc
                .error(&[], "max_steps", 0, "max_steps must be at least 1"));
        }
        self.unique(f.types.iter().map(|t| t.name.as_str()), "types", "type")?;
        self.unique(
            f.predicates
                .iter()
                .map(|p| p.name.as_str())
                .chain(f.fluents.iter().map(|x| x.name.as_str())),
            "predicates",
            "predicate or fluent name",
        )?;
        self.unique(
            f.objects.iter().map(|o| o.id.as_str()),
            "objects",
            "object id",
        )?;
        self.unique(
            f.actions.iter().map(|a| a.name.as_str()),
            "actions",
            "action name",
        )?;
        self.unique(
            f.tasks.iter().map(|t| t.id.as_str()),
            "tasks",
            "task template id",
        )?;
        let (types, type_index) = self.types(&f)?;
        let mut w = World {
            name: f.name.clone(),
            description: f.description.clone(),
            max_steps: f.max_steps,
            default_fail: f
                .default_fail
                .clone()
                .unwrap_or_else(|| "Nothing happens.".into()),
            types,
            preds: vec![],
            objects: vec![],
            obj_index: HashMap::new(),
            places: None,
            init: vec![],
            fluents: vec![],
            init_values: vec![],
            actions: vec![],
            render: vec![],
            tasks: vec![],
            objects_of: vec![],
            grounding: Default::default(),
        };
        let ty = |name: &str, anchors: &[&str]| -> R<TypeId> {
            type_index.get(name).copied().ok_or_else(|| {
                self.loc.error(
                    anchors,
                    name,
                    0,
                    format!(
                        "unknown type `{name}` (declared types: {})",
                        names(&type_index)
                    ),
                )
            })
        };
        let pred_index = self.predicates(&f, &mut w, &ty)?;
        let fluent_index = self.fluents(&f, &mut w, &ty)?;
        self.objects(&f, &mut w, &ty)?;
        mark_dynamic_predicates(&f, &mut w, &pred_index);
        let mut init = vec![];
        w.places = {
            let cx = Cx {
                w: &w,
                loc: self.loc,
                pred_index: &pred_index,
                fluent_index: &fluent_index,
                type_index: &type_index,
            };
            f.places
                .as_ref()
                .map(|p| cx.places(p, &mut init))
                .transpose()?
        };
        let cx = Cx {
            w: &w,
            loc: self.loc,
            pred_index: &pred_index,
            fluent_index: &fluent_index,
            type_index: &type_index,
        };
        let mut init_values = vec![];
        for s in &f.init {
            init.extend(cx.init_facts(s, &mut init_values)?);
        }
        let actions = f
            .actions
            .iter()
            .map(|a| cx.action(a))
            .collect::<R<Vec<_>>>()?;
        let render = f
            .render
            .iter()
            .map(|r| cx.render(r))
            .collect::<R<Vec<_>>>()?;
        let tasks = f
            .tasks
            .iter()
            .map(|t| cx.template_def(t, f.max_steps))
            .collect::<R<Vec<_>>>()?;
        if tasks.is_empty() {
            return Err(self.loc.error(
                &[],
                "tasks",
                0,
                "a scenario needs at least one task template",
            ));
        }
        w.init = init;
        w.init_values = init_values;
        w.actions = actions;
        w.render = render;
        w.tasks = tasks;
        self.check_goals(&w, &f)?;
        Ok(w)
    }

    /// The first name of a `section` given twice is an error, located at its second entry.
    fn unique<'n>(&self, names: impl Iterator<Item = &'n str>, section: &str, what: &str) -> R<()> {
        let mut seen = HashSet::new();
        for name in names {
            if !seen.insert(name) {
                return Err(self.loc.error(
                    &[section, name],
                    name,
                    0,
                    format!("duplicate {what} `{name}`"),
                ));
            }
        }
        Ok(())
    }

    /// The types with their parents (no type its own ancestor), and their index by name.
    fn types(&self, f: &ScenarioFile) -> R<(Vec<TypeInfo>, HashMap<String, TypeId>)> {
        let type_index: HashMap<String, TypeId> = f
            .types
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i as TypeId))
            .collect();
        let mut types = vec![];
        for t in &f.types {
            let parent = match &t.parent {
                None => None,
                Some(p) => Some(*type_index.get(p).ok_or_else(|| {
                    self.loc.error(
                        &[&t.name],
                        p,
                        0,
                        format!(
                            "unknown parent type `{p}` (declared types: {})",
                            names(&type_index)
                        ),
                    )
                })?),
            };
            types.push(TypeInfo {
                name: t.name.clone(),
                parent,
            });
        }
        for i in 0..types.len() {
            let mut seen = HashSet::new();
            let mut t = Some(i as TypeId);
            while let Some(x) = t {
                if !seen.insert(x) {
                    return Err(self.loc.error(
                        &["types"],
                        &types[i].name,
                        0,
                        format!("type `{}` is its own ancestor", types[i].name),
                    ));
                }
                t = types[x as usize].parent;
            }
        }
        Ok((types, type_index))
    }

    /// The predicates (all static until an action's effect names them), and their index.
    fn predicates(
        &self,
        f: &ScenarioFile,
        w: &mut World,
        ty: &dyn Fn(&str, &[&str]) -> R<TypeId>,
    ) -> R<HashMap<String, PredId>> {
        let mut pred_index = HashMap::new();
        for p in &f.predicates {
            self.name_and_arity("predicates", "predicate", &p.name, p.params.len())?;
            let params = p
                .params
                .iter()
                .map(|t| ty(t, &["predicates", &p.name]))
                .collect::<R<Vec<_>>>()?;
            pred_index.insert(p.name.clone(), w.preds.len() as PredId);
            w.preds.push(PredInfo {
                name: p.name.clone(),
                params,
                is_static: true,
            });
        }
        Ok(pred_index)
    }

    /// A predicate's or fluent's name is not a keyword and it has at most `MAX_ARITY` parameters.
    fn name_and_arity(&self, section: &str, what: &str, name: &str, arity: usize) -> R<()> {
        let err = |m: String| Err(self.loc.error(&[section], name, 0, m));
        if KEYWORDS.contains(&name) {
            return err(format!(
                "`{name}` is a keyword of conditions and effects ({}); name the {what} otherwise",
                KEYWORDS.join(", ")
            ));
        }
        if arity > MAX_ARITY {
            return err(format!(
                "{what} `{name}` has {arity} parameters; at most {MAX_ARITY} are supported"
            ));
        }
        Ok(())
    }

    /// The numeric fluents and their index.
    fn fluents(
        &self,
        f: &ScenarioFile,
        w: &mut World,
        ty: &dyn Fn(&str, &[&str]) -> R<TypeId>,
    ) -> R<HashMap<String, FluentId>> {
        let mut index = HashMap::new();
        for x in &f.fluents {
            self.name_and_arity("fluents", "fluent", &x.name, x.params.len())?;
            if x.min > x.max || !(x.min..=x.max).contains(&x.default) {
                return Err(self.loc.error(
                    &["fluents"],
                    &x.name,
                    0,
                    format!(
                        "fluent `{}`: need min <= default <= max, found min {}, default {}, max {}",
                        x.name, x.min, x.default, x.max
                    ),
                ));
            }
            let params = x
                .params
                .iter()
                .map(|t| ty(t, &["fluents", &x.name]))
                .collect::<R<Vec<_>>>()?;
            index.insert(x.name.clone(), w.fluents.len() as FluentId);
            w.fluents.push(FluentInfo {
                name: x.name.clone(),
                params,
                min: x.min,
                max: x.max,
                default: x.default,
            });
        }
        Ok(index)
    }

    /// The objects, their index by id and the objects of each type (subtypes included).
    fn objects(
        &self,
        f: &ScenarioFile,
        w: &mut World,
        ty: &dyn Fn(&str, &[&str]) -> R<TypeId>,
    ) -> R<()> {
        for o in &f.objects {
            if o.id.is_empty()
                || !o
                    .id
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            {
                return Err(self.loc.error(
                    &["objects"],
                    &o.id,
                    0,
                    format!(
                        "object id `{}` must be non-empty letters, digits, `_` or `-`",
                        o.id
                    ),
                ));
            }
            for reserved in ["name", "type", "id"] {
                if o.attrs.contains_key(reserved) {
                    return Err(self.loc.error(
                        &[&o.id],
                        reserved,
                        0,
                        format!(
                            "attribute `{reserved}` is reserved (use the object's `name` field)"
                        ),
                    ));
                }
            }
            w.obj_index.insert(o.id.clone(), w.objects.len() as ObjId);
            w.objects.push(ObjInfo {
                id: o.id.clone(),
                ty: ty(&o.ty, &["objects", &o.id])?,
                name: o.name.clone().unwrap_or_else(|| o.id.replace('_', " ")),
                attrs: o.attrs.clone(),
            });
        }
        if w.objects.len() > ObjId::MAX as usize {
            return Err(self.loc.error_at(0, "too many objects"));
        }
        w.objects_of = (0..w.types.len())
            .map(|t| {
                (0..w.objects.len() as ObjId)
                    .filter(|&o| w.is_subtype(w.objects[o as usize].ty, t as TypeId))
                    .collect()
            })
            .collect();
        Ok(())
    }
}

/// Words with a meaning of their own in conditions and effects, so no predicate or fluent may
/// take them as a name.
const KEYWORDS: [&str; 5] = ["not", "exists", "when", "forall", "or"];

/// A predicate some action's effect names (conditional ones included) can change: it is not
/// static.
fn mark_dynamic_predicates(f: &ScenarioFile, w: &mut World, pred_index: &HashMap<String, PredId>) {
    fn mark(lits: &[(Literal, usize)], w: &mut World, pred_index: &HashMap<String, PredId>) {
        for (l, _) in lits {
            match l {
                Literal::Atom { pred, .. } => {
                    if let Some(&p) = pred_index.get(pred) {
                        w.preds[p as usize].is_static = false;
                    }
                }
                Literal::When { effects, .. } => mark(effects, w, pred_index),
                _ => {}
            }
        }
    }
    for e in f.actions.iter().flat_map(|a| &a.effect) {
        mark(&expr::parse_literals(e).unwrap_or_default(), w, pred_index);
    }
}

fn names<V>(m: &HashMap<String, V>) -> String {
    let mut v: Vec<&str> = m.keys().map(|s| s.as_str()).collect();
    v.sort();
    v.join(", ")
}

struct Cx<'a> {
    w: &'a World,
    loc: &'a Locator<'a>,
    pred_index: &'a HashMap<String, PredId>,
    fluent_index: &'a HashMap<String, FluentId>,
    type_index: &'a HashMap<String, TypeId>,
}

impl Cx<'_> {
    /// The facts of one `init` entry (positive ground atoms), its fluent values into `values`.
    fn init_facts(&self, s: &str, values: &mut Vec<(Fact, i64)>) -> R<Vec<Fact>> {
        let ground_only = || {
            self.loc.error(
                &["init"],
                s,
                0,
                "init facts must be ground: object ids, no `?variables`",
            )
        };
        let objs_of = |args: &[CTerm]| -> R<Vec<ObjId>> {
            args.iter()
                .map(|a| match a {
                    CTerm::Obj(o) => Ok(*o),
                    _ => Err(ground_only()),
                })
                .collect()
        };
        let mut facts = vec![];
        for l in self.literals(&["init"], s, &mut Scope::default(), false, Role::Init)? {
            match l {
                CLit::Atom { pred, args, .. } => facts.push(Fact::new(pred, &objs_of(&args)?)),
                CLit::NumCmp {
                    fluent,
                    rhs: CNum::Const(v),
                    ..
                }
                | CLit::NumSet {
                    fluent,
                    rhs: CNum::Const(v),
                    ..
                } => {
                    let info = &self.w.fluents[fluent.id as usize];
                    if !(info.min..=info.max).contains(&v) {
                        return Err(self.loc.error(
                            &["init"],
                            s,
                            0,
                            format!(
                                "{v} is outside the range of `{}` ({}..={})",
                                info.name, info.min, info.max
                            ),
                        ));
                    }
                    values.push((Fact::new(fluent.id, &objs_of(&fluent.args)?), v));
                }
                _ => unreachable!("init items are checked by role"),
            }
        }
        Ok(facts)
    }

    fn ty(&self, name: &str, anchors: &[&str]) -> R<TypeId> {
        self.type_index.get(name).copied().ok_or_else(|| {
            self.loc.error(
                anchors,
                name,
                0,
                format!(
                    "unknown type `{name}` (declared types: {})",
                    names(self.type_index)
                ),
            )
        })
    }

    fn obj(&self, id: &str, anchors: &[&str], within: &str, offset: usize) -> R<ObjId> {
        self.w.obj_index.get(id).copied().ok_or_else(|| {
            self.loc
                .error(anchors, within, offset, format!("unknown object `{id}`"))
        })
    }

    fn places(&self, p: &ast::PlacesDef, init: &mut Vec<Fact>) -> R<PlaceGraph> {
        let pty = self.ty(&p.ty, &["places"])?;
        let adj = self.pred(&p.adjacency, &["places"], &p.adjacency, 0)?;
        let ptypes = &self.w.preds[adj as usize].params;
        if ptypes.len() != 2 || !ptypes.iter().all(|&t| self.w.is_subtype(pty, t)) {
            return Err(self.loc.error(
                &["places"],
                &p.adjacency,
                0,
                format!(
                    "adjacency predicate `{}` must take two `{}` parameters",
                    p.adjacency, p.ty
                ),
            ));
        }
        let via = match &p.via {
            Some(v) => {
                let id = self.pred(v, &["places"], v, 0)?;
                if self.w.preds[id as usize].params.len() != 3 {
                    return Err(self.loc.error(
                        &["places"],
                        v,
                        0,
                        format!("door predicate `{v}` must take (place, place, door)"),
                    ));
                }
                Some(id)
            }
            None => None,
        };
        let mut graph = UnGraph::new_undirected();
        let mut node = HashMap::new();
        let order: Vec<ObjId> = self.w.objects_of[pty as usize].clone();
        for &o in &order {
            node.insert(o, graph.add_node(o));
        }
        for l in &p.links {
            let a = self.obj(&l.from, &["places", "links"], &l.from, 0)?;
            let b = self.obj(&l.to, &["places", "links", &l.from], &l.to, 0)?;
            for (x, id) in [(a, &l.from), (b, &l.to)] {
                if !self.w.is_subtype(self.w.objects[x as usize].ty, pty) {
                    return Err(self.loc.error(
                        &["places", "links"],
                        id,
                        0,
                        format!(
                            "type mismatch: `{id}` is a `{}`, links join `{}` objects",
                            self.w.types[self.w.objects[x as usize].ty as usize].name, p.ty
                        ),
                    ));
                }
            }
            if a == b {
                return Err(self.loc.error(
                    &["places", "links"],
                    &l.from,
                    0,
                    format!("link from `{}` to itself", l.from),
                ));
            }
            let door = match &l.via {
                Some(d) => Some(self.obj(d, &["places", "links", &l.from, &l.to], d, 0)?),
                None => None,
            };
            if door.is_some() && via.is_none() {
                return Err(self.loc.error(
                    &["places", "links", &l.from, &l.to],
                    l.via.as_deref().unwrap(),
                    0,
                    "a link has a door but `places` declares no `via` predicate",
                ));
            }
            graph.add_edge(node[&a], node[&b], door);
            init.push(Fact::new(adj, &[a, b]));
            init.push(Fact::new(adj, &[b, a]));
            if let (Some(v), Some(d)) = (via, door) {
                init.push(Fact::new(v, &[a, b, d]));
                init.push(Fact::new(v, &[b, a, d]));
            }
        }
        Ok(PlaceGraph {
            graph,
            node,
            ty: pty,
            order,
        })
    }

    fn pred(&self, name: &str, anchors: &[&str], within: &str, offset: usize) -> R<PredId> {
        self.pred_index.get(name).copied().ok_or_else(|| {
            self.loc.error(
                anchors,
                within,
                offset,
                format!(
                    "unknown predicate `{name}` (declared: {})",
                    names(self.pred_index)
                ),
            )
        })
    }
}
