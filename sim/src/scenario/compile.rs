//! The scenario compiler: RON source text to a [`World`], checked as it goes. Every name is
//! resolved (types, predicates, objects, variables, attributes), every literal and text template
//! parsed and typed, every task template's goal checked for contradictions and — for a few seeds
//! of every level — for reachability under the delete relaxation. Errors are
//! [`ScenarioError`]s located at `file:line:col` of the offending entry.

use super::ast::{self, AttrValue, Count, ScenarioFile, SetupStep};
use super::error::{Locator, ScenarioError};
use super::expr::{self, CmpOp, Literal, Piece, Term};
use super::world::*;
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

/// Two literals of a conjunction that can never hold together: an atom and its negation over the
/// same terms, or `x = y` beside `x != y` (either way round). Returns their indices.
fn contradiction(lits: &[CLit]) -> Option<(usize, usize)> {
    for (i, a) in lits.iter().enumerate() {
        for (j, b) in lits.iter().enumerate().skip(i + 1) {
            let opposite = match (a, b) {
                (
                    CLit::Atom { neg, pred, args },
                    CLit::Atom {
                        neg: neg2,
                        pred: pred2,
                        args: args2,
                    },
                ) => neg != neg2 && pred == pred2 && args == args2,
                (
                    CLit::Cmp { op, lhs, rhs },
                    CLit::Cmp {
                        op: op2,
                        lhs: lhs2,
                        rhs: rhs2,
                    },
                ) => {
                    let same = (lhs == lhs2 && rhs == rhs2) || (lhs == rhs2 && rhs == lhs2);
                    same && matches!((op, op2), (CmpOp::Eq, CmpOp::Ne) | (CmpOp::Ne, CmpOp::Eq))
                }
                _ => false,
            };
            if opposite {
                return Some((i, j));
            }
        }
    }
    None
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
            f.predicates.iter().map(|p| p.name.as_str()),
            "predicates",
            "predicate",
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
            types,
            preds: vec![],
            objects: vec![],
            obj_index: HashMap::new(),
            places: None,
            init: vec![],
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
        self.objects(&f, &mut w, &ty)?;
        mark_dynamic_predicates(&f, &mut w, &pred_index);
        let mut init = vec![];
        w.places = {
            let cx = Cx {
                w: &w,
                loc: self.loc,
                pred_index: &pred_index,
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
            type_index: &type_index,
        };
        for s in &f.init {
            init.extend(cx.init_facts(s)?);
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
            if p.params.len() > MAX_ARITY {
                return Err(self.loc.error(
                    &["predicates"],
                    &p.name,
                    0,
                    format!(
                        "predicate `{}` has {} parameters; at most {MAX_ARITY} are supported",
                        p.name,
                        p.params.len()
                    ),
                ));
            }
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

/// A predicate some action's effect names can change: it is not static.
fn mark_dynamic_predicates(f: &ScenarioFile, w: &mut World, pred_index: &HashMap<String, PredId>) {
    for e in f.actions.iter().flat_map(|a| &a.effect) {
        for (l, _) in expr::parse_literals(e).unwrap_or_default() {
            if let Literal::Atom { pred, .. } = l
                && let Some(&p) = pred_index.get(&pred)
            {
                w.preds[p as usize].is_static = false;
            }
        }
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
    type_index: &'a HashMap<String, TypeId>,
}

impl Cx<'_> {
    /// The facts of one `init` entry: positive ground atoms only.
    fn init_facts(&self, s: &str) -> R<Vec<Fact>> {
        let mut facts = vec![];
        for l in self.literals(&["init"], s, &mut Scope::default(), false)? {
            let CLit::Atom {
                neg: false,
                pred,
                args,
            } = l
            else {
                return Err(self.loc.error(
                    &["init"],
                    s,
                    0,
                    "init facts must be positive ground atoms like `at(apple, table)`",
                ));
            };
            let mut objs = vec![];
            for a in args {
                let CTerm::Obj(o) = a else {
                    return Err(self.loc.error(
                        &["init"],
                        s,
                        0,
                        "init facts must be positive ground atoms like `at(apple, table)`",
                    ));
                };
                objs.push(o);
            }
            facts.push(Fact::new(pred, &objs));
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

    /// Compile a literal list. `open`: unknown variables become new (existential) slots typed by
    /// the first atom they appear in; otherwise they are errors.
    fn literals(&self, anchors: &[&str], s: &str, scope: &mut Scope, open: bool) -> R<Vec<CLit>> {
        let lits = expr::parse_literals(s).map_err(|e| {
            self.loc
                .error(anchors, s, e.offset, format!("syntax: {}", e.message))
        })?;
        let err = |off: usize, m: String| self.loc.error(anchors, s, off, m);
        // first pass: declare new variables from positive atoms
        if open {
            for (l, off) in &lits {
                if let Literal::Atom {
                    neg: false,
                    pred,
                    args,
                } = l
                {
                    let p = self.pred(pred, anchors, s, *off)?;
                    for (i, a) in args.iter().enumerate() {
                        if let Term::Var(v) = a
                            && scope.slot(v).is_none()
                            && let Some(&t) = self.w.preds[p as usize].params.get(i)
                        {
                            scope.vars.push((v.clone(), t));
                        }
                    }
                }
            }
        }
        let var = |scope: &Scope, v: &str, off: usize| -> R<usize> {
            scope.slot(v).ok_or_else(|| {
                err(off, if open {
                    format!("variable `?{v}` must appear in a positive atom of this condition (or be declared) so its type is known")
                } else {
                    format!("unknown variable `?{v}` (declared here: {})", scope.vars.iter().map(|(n, _)| format!("?{n}")).collect::<Vec<_>>().join(", "))
                })
            })
        };
        let mut out = vec![];
        for (l, off) in lits {
            match l {
                Literal::Atom { neg, pred, args } => {
                    let p = self.pred(&pred, anchors, s, off)?;
                    let info = &self.w.preds[p as usize];
                    if args.len() != info.params.len() {
                        return Err(err(
                            off,
                            format!(
                                "`{pred}` takes {} arguments, found {}",
                                info.params.len(),
                                args.len()
                            ),
                        ));
                    }
                    let mut cargs = vec![];
                    for (a, &pt) in args.iter().zip(&info.params) {
                        let tname = &self.w.types[pt as usize].name;
                        match a {
                            Term::Var(v) => {
                                let slot = var(scope, v, off)?;
                                let vt = scope.vars[slot].1;
                                if !self.w.is_subtype(vt, pt) && !self.w.is_subtype(pt, vt) {
                                    return Err(err(
                                        off,
                                        format!(
                                            "type mismatch: `?{v}` is a `{}` but `{pred}` expects a `{tname}` here",
                                            self.w.types[vt as usize].name
                                        ),
                                    ));
                                }
                                cargs.push(CTerm::Var(slot));
                            }
                            Term::Word(id) => {
                                let o = self.obj(id, anchors, s, off)?;
                                let ot = self.w.objects[o as usize].ty;
                                if !self.w.is_subtype(ot, pt) {
                                    return Err(err(
                                        off,
                                        format!(
                                            "type mismatch: `{id}` is a `{}` but `{pred}` expects a `{tname}` here",
                                            self.w.types[ot as usize].name
                                        ),
                                    ));
                                }
                                cargs.push(CTerm::Obj(o));
                            }
                            Term::Wild if neg => cargs.push(CTerm::Wild),
                            Term::Wild => {
                                return Err(err(
                                    off,
                                    "`_` is only allowed in `not ...` effects".into(),
                                ));
                            }
                            _ => {
                                return Err(err(
                                    off,
                                    format!(
                                        "atom arguments must be `?var` or object ids, found {a:?}"
                                    ),
                                ));
                            }
                        }
                    }
                    out.push(CLit::Atom {
                        neg,
                        pred: p,
                        args: cargs,
                    });
                }
                Literal::Cmp { op, lhs, rhs } => {
                    let val = |t: &Term, other_is_attr: bool| -> R<CVal> {
                        Ok(match t {
                            Term::Var(v) => CVal::Var(var(scope, v, off)?),
                            Term::Attr(v, a) => {
                                let slot = var(scope, v, off)?;
                                self.known_attr(scope.vars[slot].1, a)
                                    .map_err(|m| err(off, m))?;
                                CVal::Attr(slot, a.clone())
                            }
                            Term::Word(w) if !other_is_attr => {
                                CVal::Obj(self.obj(w, anchors, s, off)?)
                            }
                            Term::Word(w) | Term::Str(w) => CVal::Lit(AttrValue::Str(w.clone())),
                            Term::Num(n) => CVal::Lit(AttrValue::Float(*n)),
                            Term::Wild => return Err(err(off, "`_` cannot be compared".into())),
                        })
                    };
                    let la = matches!(lhs, Term::Attr(..));
                    let ra = matches!(rhs, Term::Attr(..));
                    let (l, r) = (val(&lhs, ra)?, val(&rhs, la)?);
                    let is_obj = |v: &CVal| matches!(v, CVal::Var(_) | CVal::Obj(_));
                    if is_obj(&l) != is_obj(&r) {
                        return Err(err(off, "a comparison must compare objects with objects (`?a = ?b`) or values with values (`?a.color = red`)".into()));
                    }
                    if is_obj(&l) && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                        return Err(err(
                            off,
                            "objects can only be compared with `=` or `!=`".into(),
                        ));
                    }
                    out.push(CLit::Cmp { op, lhs: l, rhs: r });
                }
            }
        }
        Ok(out)
    }

    fn cond(&self, anchors: &[&str], strings: &[String], scope: &Scope) -> R<Cond> {
        let mut sc = scope.clone();
        let mut lits = vec![];
        for s in strings {
            lits.extend(self.literals(anchors, s, &mut sc, true)?);
        }
        Ok(Cond {
            lits,
            var_types: sc.vars.iter().map(|v| v.1).collect(),
        })
    }

    fn template(&self, anchors: &[&str], s: &str, scope: &Scope) -> R<Template> {
        let pieces = expr::parse_template(s).map_err(|e| {
            self.loc
                .error(anchors, s, e.offset, format!("syntax: {}", e.message))
        })?;
        pieces
            .into_iter()
            .map(|(p, off)| {
                let slot = |v: &str| {
                    scope.slot(v).ok_or_else(|| {
                        self.loc.error(
                            anchors,
                            s,
                            off,
                            format!(
                                "unknown variable `{{{v}}}` in template (available: {})",
                                scope
                                    .vars
                                    .iter()
                                    .map(|(n, _)| n.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                    })
                };
                Ok(match p {
                    Piece::Text(t) => TPiece::Text(t),
                    Piece::Var(v) => TPiece::Id(slot(&v)?),
                    Piece::Attr(v, a) => {
                        let sl = slot(&v)?;
                        self.known_attr(scope.vars[sl].1, &a)
                            .map_err(|m| self.loc.error(anchors, s, off, m))?;
                        TPiece::Attr(sl, a)
                    }
                })
            })
            .collect()
    }

    /// Whether an object of type `t` can have attribute `a` (`name`, `type`, `id`, or one some
    /// object of the type declares): a misspelt attribute is an error, not a condition that is
    /// silently never true.
    fn known_attr(&self, t: TypeId, a: &str) -> Result<(), String> {
        let known = ["name", "type", "id"].contains(&a)
            || self.w.objects_of[t as usize]
                .iter()
                .any(|&o| self.w.objects[o as usize].attrs.contains_key(a));
        if known {
            return Ok(());
        }
        let mut declared: Vec<&str> = self.w.objects_of[t as usize]
            .iter()
            .flat_map(|&o| self.w.objects[o as usize].attrs.keys().map(String::as_str))
            .collect();
        declared.sort_unstable();
        declared.dedup();
        declared.extend(["name", "type", "id"]);
        Err(format!(
            "no `{}` object has an attribute `{a}` (known: {})",
            self.w.types[t as usize].name,
            declared.join(", ")
        ))
    }

    fn action(&self, a: &ast::ActionDef) -> R<ActionSchema> {
        let anchors: &[&str] = &["actions", &a.name];
        let mut scope = Scope::default();
        for (v, t) in a.params.iter().chain(&a.bind) {
            if scope.slot(v).is_some() {
                return Err(self.loc.error(
                    anchors,
                    v,
                    0,
                    format!("variable `{v}` declared twice"),
                ));
            }
            scope.vars.push((v.clone(), self.ty(t, anchors)?));
        }
        let text = self.template(anchors, &a.text, &scope)?;
        let mut pre = vec![];
        for p in &a.pre {
            let msg = match a.fail.get(p) {
                Some(m) => Some(self.template(anchors, m, &scope)?),
                None => None,
            };
            for l in self.literals(anchors, p, &mut scope, false)? {
                pre.push((l, msg.clone()));
            }
        }
        for k in a.fail.keys() {
            if !a.pre.contains(k) {
                return Err(self.loc.error(
                    anchors,
                    k,
                    0,
                    format!("`fail` key `{k}` is not one of the action's `pre` strings"),
                ));
            }
        }
        let mut effects = vec![];
        for e in &a.effect {
            for l in self.literals(anchors, e, &mut scope, false)? {
                if let CLit::Cmp { .. } = l {
                    return Err(self.loc.error(
                        anchors,
                        e,
                        0,
                        "effects must be atoms (`pred(..)` adds, `not pred(..)` deletes)",
                    ));
                }
                effects.push(l);
            }
        }
        let otherwise = a
            .otherwise
            .as_ref()
            .map(|m| self.template(anchors, m, &scope))
            .transpose()?;
        let message = a
            .message
            .as_ref()
            .map(|m| self.template(anchors, m, &scope))
            .transpose()?;
        Ok(ActionSchema {
            name: a.name.clone(),
            vars: scope.vars,
            nparams: a.params.len(),
            text,
            pre,
            otherwise,
            effects,
            message,
        })
    }

    fn render(&self, r: &ast::RenderDef) -> R<RenderRule> {
        let anchors: &[&str] = &["render", &r.when];
        let when = self.cond(anchors, std::slice::from_ref(&r.when), &Scope::default())?;
        let mut sc = Scope::default();
        self.literals(anchors, &r.when, &mut sc, true)?;
        let line = self.template(&["render", &r.when], &r.line, &sc)?;
        Ok(RenderRule { when, line })
    }

    fn count(&self, c: &Count, anchors: &[&str], levels: &[ast::LevelDef]) -> R<CCount> {
        Ok(match c {
            Count::Fixed(n) => CCount::Fixed(*n),
            Count::Knob(k) => {
                if let Some(l) = levels.iter().find(|l| !l.knobs.contains_key(k)) {
                    return Err(self.loc.error(
                        anchors,
                        k,
                        0,
                        format!(
                            "knob `{k}` is not set by the level with difficulty {}",
                            l.difficulty
                        ),
                    ));
                }
                CCount::Knob(k.clone())
            }
        })
    }

    fn setup(
        &self,
        steps: &[SetupStep],
        scope: &mut Scope,
        anchors: &[&str],
        levels: &[ast::LevelDef],
    ) -> R<Vec<CSetup>> {
        let mut out = vec![];
        for s in steps {
            out.push(match s {
                SetupStep::Choose { var, ty, filter } => {
                    if scope.slot(var).is_some() {
                        return Err(self.loc.error(
                            anchors,
                            var,
                            0,
                            format!("task variable `{var}` chosen twice"),
                        ));
                    }
                    let t = self.ty(ty, anchors)?;
                    scope.vars.push((var.clone(), t));
                    let filter = filter
                        .as_ref()
                        .map(|f| self.cond(anchors, std::slice::from_ref(f), scope))
                        .transpose()?;
                    CSetup::Choose {
                        slot: scope.vars.len() - 1,
                        ty: t,
                        filter,
                    }
                }
                SetupStep::Limit { ty, keep } => CSetup::Limit {
                    ty: self.ty(ty, anchors)?,
                    keep: self.count(keep, anchors, levels)?,
                },
                SetupStep::LimitPlaces { count } => {
                    if self.w.places.is_none() {
                        return Err(self.loc.error(
                            anchors,
                            "LimitPlaces",
                            0,
                            "LimitPlaces needs a `places` section",
                        ));
                    }
                    CSetup::LimitPlaces {
                        count: self.count(count, anchors, levels)?,
                    }
                }
                SetupStep::Place {
                    what,
                    pred,
                    among,
                    filter,
                } => {
                    let among_t = self.ty(among, anchors)?;
                    let p = self.pred(pred, anchors, pred, 0)?;
                    let base = scope.vars.len();
                    let (what_c, it_t) = match what.strip_prefix('?') {
                        Some(v) => {
                            let slot = scope.slot(v).ok_or_else(|| {
                                self.loc.error(
                                    anchors,
                                    what,
                                    0,
                                    format!("unknown task variable `{what}`"),
                                )
                            })?;
                            (PlaceWhat::Var(slot), scope.vars[slot].1)
                        }
                        None => {
                            let t = self.ty(what, anchors)?;
                            (PlaceWhat::Type(t), t)
                        }
                    };
                    let pt = &self.w.preds[p as usize].params;
                    if pt.len() != 2
                        || !self.w.is_subtype(it_t, pt[0])
                        || !self.w.is_subtype(among_t, pt[1])
                    {
                        return Err(self.loc.error(
                            anchors,
                            pred,
                            0,
                            format!(
                                "type mismatch: Place needs `{pred}` to take ({what}, {among})"
                            ),
                        ));
                    }
                    let mut sc = scope.clone();
                    sc.vars.push(("it".into(), it_t));
                    sc.vars.push(("at".into(), among_t));
                    let filter = filter
                        .as_ref()
                        .map(|f| self.cond(anchors, std::slice::from_ref(f), &sc))
                        .transpose()?;
                    CSetup::Place {
                        what: what_c,
                        pred: p,
                        among: among_t,
                        filter,
                        base,
                    }
                }
                SetupStep::Assert(facts) => {
                    let mut lits = vec![];
                    for f in facts {
                        for l in self.literals(anchors, f, &mut scope.clone(), false)? {
                            if !matches!(l, CLit::Atom { .. }) {
                                return Err(self.loc.error(
                                    anchors,
                                    f,
                                    0,
                                    "Assert takes atoms (`pred(..)` or `not pred(..)`)",
                                ));
                            }
                            lits.push(l);
                        }
                    }
                    CSetup::Assert(lits)
                }
                SetupStep::Repeat { times, steps } => CSetup::Repeat {
                    times: self.count(times, anchors, levels)?,
                    steps: self.setup(steps, scope, anchors, levels)?,
                },
            });
        }
        Ok(out)
    }

    fn template_def(&self, t: &ast::TaskTemplateDef, default_max: u32) -> R<TaskTemplate> {
        let anchors: &[&str] = &["tasks", &t.id];
        if t.levels.is_empty() {
            return Err(self.loc.error(
                anchors,
                &t.id,
                0,
                "a task template needs at least one level",
            ));
        }
        let mut scope = Scope::default();
        let setup = self.setup(&t.setup, &mut scope, anchors, &t.levels)?;
        let instruction = self.template(anchors, &t.instruction, &scope)?;
        let goal = self.cond(anchors, &t.goal, &scope)?;
        if goal.lits.is_empty() {
            return Err(self.loc.error(anchors, &t.id, 0, "the goal is empty"));
        }
        if let Some((a, b)) = contradiction(&goal.lits) {
            let g = t.goal.first().map(String::as_str).unwrap_or(&t.id);
            return Err(self.loc.error(
                anchors,
                g,
                0,
                format!(
                    "contradictory goal: literal {} and literal {} can never hold together, so no task of this template can be solved",
                    a + 1,
                    b + 1
                ),
            ));
        }
        let ends_when = t
            .ends_when
            .as_ref()
            .map(|e| self.cond(anchors, std::slice::from_ref(e), &scope))
            .transpose()?;
        let partial = t
            .partial
            .iter()
            .map(|p| self.cond(anchors, std::slice::from_ref(p), &scope))
            .collect::<R<Vec<_>>>()?;
        let mut levels = vec![];
        for l in &t.levels {
            if l.max_steps == Some(0) {
                return Err(self.loc.error(
                    anchors,
                    &t.id,
                    0,
                    format!(
                        "level {}: max_steps must be at least 1 (an episode of 0 steps cannot start)",
                        l.difficulty
                    ),
                ));
            }
            let mut sc = scope.clone();
            levels.push(Level {
                difficulty: l.difficulty,
                knobs: l.knobs.clone(),
                setup: self.setup(&l.setup, &mut sc, anchors, std::slice::from_ref(l))?,
                max_steps: l.max_steps.unwrap_or(default_max),
                require: (!l.require.is_empty())
                    .then(|| self.cond(anchors, &l.require, &sc))
                    .transpose()?,
            });
        }
        Ok(TaskTemplate {
            id: t.id.clone(),
            vars: scope.vars,
            instruction,
            setup,
            goal,
            ends_when,
            partial,
            levels,
        })
    }
}
