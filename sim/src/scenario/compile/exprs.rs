//! The scenario's small languages compiled: literals (`holding(?o)`, `not open(?d)`,
//! `?k.color = ?d.color`, `disk(?h) >= 90`) and the items built from them (alternatives,
//! `not exists`, `when`/`forall` effects) with their variables typed and every name resolved,
//! conditions, and text templates (`the {o.name}`, `{disk(h)}`).

use super::*;
use crate::scenario::expr::{FluentRef, NumTerm};

/// Where a literal list stands, which decides what it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// A condition: atoms, comparisons, alternatives, `not exists`, numeric comparisons.
    Cond,
    /// An action's effects: atoms, numeric changes, `when`/`forall`.
    Effect,
    /// The effects inside a `when`/`forall`: atoms without `_`, numeric changes.
    WhenEffect,
    /// A setup `Assert`: atoms and numeric changes.
    Assert,
    /// `init`: positive atoms and fluent values.
    Init,
}

/// The first item of `lits` (recursively) that `role` does not allow: its offset and why.
fn check_role(lits: &[(Literal, usize)], role: Role) -> Result<(), (usize, String)> {
    use Role::*;
    for (l, off) in lits {
        let bad = |m: &str| Err((*off, m.to_string()));
        match (role, l) {
            (Cond, Literal::Atom { .. } | Literal::Cmp { .. } | Literal::NumCmp { .. }) => {}
            (Cond, Literal::Any(alts)) => {
                for a in alts {
                    check_role(a, Cond)?;
                }
            }
            (Cond, Literal::NotExists(inner)) => check_role(inner, Cond)?,
            (Cond, Literal::NumSet { .. }) => {
                return bad(
                    "a numeric change (`:=`, `+=`, `-=`) belongs in effects; a condition compares (`disk(?h) >= 90`)",
                );
            }
            (Cond, Literal::When { .. }) => {
                return bad("`when(...)` and `forall(...)` belong in effects");
            }
            (WhenEffect, Literal::Atom { args, .. }) if args.contains(&Term::Wild) => {
                return bad(
                    "`_` deletes cannot appear inside when/forall: name the variable, e.g. `forall(p(?x) => not p(?x))`",
                );
            }
            (Effect | WhenEffect | Assert, Literal::Atom { .. } | Literal::NumSet { .. }) => {}
            (Effect, Literal::When { cond, effects, .. }) => {
                check_role(cond, Cond)?;
                check_role(effects, WhenEffect)?;
            }
            (WhenEffect, Literal::When { .. }) => {
                return bad("when/forall cannot nest: join their conditions in one");
            }
            (Effect | WhenEffect, _) => {
                return bad(
                    "effects must be atoms (`pred(..)` adds, `not pred(..)` deletes), numeric changes (`disk(?h) += 10`) or `when(cond => effects)` / `forall(cond => effects)`",
                );
            }
            (Assert, _) => {
                return bad(
                    "Assert takes atoms (`pred(..)` or `not pred(..)`) and numeric changes (`disk(?h) := 40`)",
                );
            }
            (Init, Literal::Atom { neg: false, .. }) => {}
            (
                Init,
                Literal::NumCmp {
                    op: CmpOp::Eq,
                    rhs: NumTerm::Term(Term::Num(_)),
                    ..
                }
                | Literal::NumSet {
                    op: expr::SetOp::Assign,
                    rhs: NumTerm::Term(Term::Num(_)),
                    ..
                },
            ) => {}
            (Init, _) => {
                return bad(
                    "init facts must be positive ground atoms like `at(apple, table)` or fluent values like `disk(web_01) = 40`",
                );
            }
        }
    }
    Ok(())
}

/// The variable names a parsed `when`'s condition mentions (to say when one is new).
fn mentioned_vars(lits: &[(Literal, usize)], out: &mut Vec<(String, usize)>) {
    let term = |t: &Term, off: usize, out: &mut Vec<(String, usize)>| {
        if let Term::Var(v) | Term::Attr(v, _) = t {
            out.push((v.clone(), off));
        }
    };
    for (l, off) in lits {
        match l {
            Literal::Atom { args, .. } => args.iter().for_each(|a| term(a, *off, out)),
            Literal::Cmp { lhs, rhs, .. } => {
                term(lhs, *off, out);
                term(rhs, *off, out);
            }
            Literal::NumCmp { fluent, rhs, .. } | Literal::NumSet { fluent, rhs, .. } => {
                fluent.args.iter().for_each(|a| term(a, *off, out));
                match rhs {
                    NumTerm::Term(t) => term(t, *off, out),
                    NumTerm::Fluent(f) => f.args.iter().for_each(|a| term(a, *off, out)),
                }
            }
            Literal::Any(alts) => alts.iter().for_each(|a| mentioned_vars(a, out)),
            // its own variables are local
            Literal::NotExists(_) | Literal::When { .. } => {}
        }
    }
}

impl Cx<'_> {
    /// Compile a literal list in its `role`. `open`: unknown variables become new (existential)
    /// slots typed by the first atom they appear in; otherwise they are errors.
    pub(super) fn literals(
        &self,
        anchors: &[&str],
        s: &str,
        scope: &mut Scope,
        open: bool,
        role: Role,
    ) -> R<Vec<CLit>> {
        let lits = expr::parse_literals(s).map_err(|e| {
            self.loc
                .error(anchors, s, e.offset, format!("syntax: {}", e.message))
        })?;
        check_role(&lits, role).map_err(|(off, m)| self.loc.error(anchors, s, off, m))?;
        let at = Within { anchors, s, open };
        self.list(&at, &lits, scope)
    }

    /// Compile parsed items (declaring new variables first when `at.open`).
    fn list(&self, at: &Within, lits: &[(Literal, usize)], scope: &mut Scope) -> R<Vec<CLit>> {
        if at.open {
            self.declare_vars(at, lits, scope)?;
        }
        lits.iter()
            .map(|(l, off)| self.item(at, *off, l, scope))
            .collect()
    }

    fn item(&self, at: &Within, off: usize, l: &Literal, scope: &mut Scope) -> R<CLit> {
        Ok(match l {
            Literal::Atom { neg, pred, args } => self.atom(at, off, scope, *neg, pred, args)?,
            Literal::Cmp { op, lhs, rhs } => self.comparison(at, off, scope, *op, lhs, rhs)?,
            Literal::Any(alts) => CLit::Any(
                alts.iter()
                    .map(|alt| self.list(at, alt, scope))
                    .collect::<R<_>>()?,
            ),
            Literal::NotExists(inner) => {
                let base = scope.vars.len();
                let mut sc = scope.clone();
                let lits = self.list(&Within { open: true, ..*at }, inner, &mut sc)?;
                CLit::NotExists {
                    lits,
                    base,
                    local: sc.vars[base..].iter().map(|v| v.1).collect(),
                }
            }
            Literal::When {
                forall,
                cond,
                effects,
            } => {
                if !forall {
                    let mut named = vec![];
                    mentioned_vars(cond, &mut named);
                    if let Some((v, o)) = named.iter().find(|(v, _)| scope.slot(v).is_none()) {
                        return Err(at.err(
                            self,
                            *o,
                            format!("`when(...)` cannot name new variables (`?{v}`); use `forall(...)` to apply the effects for every `?{v}`"),
                        ));
                    }
                }
                let base = scope.vars.len();
                let mut sc = scope.clone();
                let cond = self.list(&Within { open: true, ..*at }, cond, &mut sc)?;
                let effects = self.list(&Within { open: false, ..*at }, effects, &mut sc)?;
                CLit::When {
                    cond,
                    base,
                    local: sc.vars[base..].iter().map(|v| v.1).collect(),
                    effects,
                }
            }
            Literal::NumCmp { fluent, op, rhs } => CLit::NumCmp {
                fluent: self.fluent(at, off, scope, fluent)?,
                op: *op,
                rhs: self.num_term(at, off, scope, rhs)?,
            },
            Literal::NumSet { fluent, op, rhs } => CLit::NumSet {
                fluent: self.fluent(at, off, scope, fluent)?,
                op: *op,
                rhs: self.num_term(at, off, scope, rhs)?,
            },
        })
    }

    /// Declares the new variables of `lits`'s positive atoms and compared fluents, typed by the
    /// parameters they fill.
    fn declare_vars(&self, at: &Within, lits: &[(Literal, usize)], scope: &mut Scope) -> R<()> {
        for (l, off) in lits {
            let (params, args) = match l {
                Literal::Atom {
                    neg: false,
                    pred,
                    args,
                } => {
                    let p = self.pred_or_fluent_hint(at, *off, pred)?;
                    (&self.w.preds[p as usize].params, args)
                }
                Literal::NumCmp { fluent, .. } => {
                    let f = self.fluent_id(at, *off, &fluent.name)?;
                    (&self.w.fluents[f as usize].params, &fluent.args)
                }
                _ => continue,
            };
            for (i, a) in args.iter().enumerate() {
                if let Term::Var(v) = a
                    && scope.slot(v).is_none()
                    && let Some(&t) = params.get(i)
                {
                    scope.vars.push((v.clone(), t));
                }
            }
        }
        Ok(())
    }

    /// A predicate by name; a fluent's name gets an error that says how to use a fluent.
    fn pred_or_fluent_hint(&self, at: &Within, off: usize, name: &str) -> R<PredId> {
        if self.fluent_index.contains_key(name) {
            return Err(at.err(
                self,
                off,
                format!("`{name}` is a numeric fluent: compare it (`{name}(..) >= 90`) or change it in effects (`{name}(..) += 10`)"),
            ));
        }
        self.pred(name, at.anchors, at.s, off)
    }

    fn fluent_id(&self, at: &Within, off: usize, name: &str) -> R<FluentId> {
        self.fluent_index.get(name).copied().ok_or_else(|| {
            let what = if self.pred_index.contains_key(name) {
                format!("`{name}` is a predicate, not a numeric fluent")
            } else {
                format!("unknown numeric fluent `{name}`")
            };
            at.err(
                self,
                off,
                format!("{what} (declared fluents: {})", names(self.fluent_index)),
            )
        })
    }

    /// A fluent applied to its arguments, typed like an atom's.
    fn fluent(&self, at: &Within, off: usize, scope: &Scope, f: &FluentRef) -> R<CFluent> {
        let id = self.fluent_id(at, off, &f.name)?;
        let params = &self.w.fluents[id as usize].params;
        let args = self.args(at, off, scope, &f.name, params, &f.args, false)?;
        Ok(CFluent { id, args })
    }

    /// The value side of a numeric comparison or change: an integer, an attribute or a fluent.
    fn num_term(&self, at: &Within, off: usize, scope: &Scope, t: &NumTerm) -> R<CNum> {
        match t {
            NumTerm::Fluent(f) => Ok(CNum::Fluent(self.fluent(at, off, scope, f)?)),
            NumTerm::Term(Term::Num(x)) if x.fract() == 0.0 => Ok(CNum::Const(*x as i64)),
            NumTerm::Term(Term::Num(x)) => Err(at.err(
                self,
                off,
                format!("fluents hold integers; found {x}"),
            )),
            NumTerm::Term(Term::Attr(v, a)) => {
                let slot = self.var(at, off, scope, v)?;
                let t = scope.vars[slot].1;
                self.known_attr(t, a).map_err(|m| at.err(self, off, m))?;
                let not_number = self.w.objects_of[t as usize].iter().find(|&&o| {
                    self.w.objects[o as usize]
                        .attrs
                        .get(a)
                        .is_some_and(|v| !matches!(v, AttrValue::Int(_) | AttrValue::Float(_)))
                });
                if let Some(&o) = not_number {
                    return Err(at.err(
                        self,
                        off,
                        format!(
                            "attribute `{a}` of `{}` is not a number",
                            self.w.objects[o as usize].id
                        ),
                    ));
                }
                Ok(CNum::Attr(slot, a.clone()))
            }
            NumTerm::Term(other) => Err(at.err(
                self,
                off,
                format!("expected a number, an attribute (`?h.capacity`) or a fluent (`disk(?h)`), found {other:?}"),
            )),
        }
    }

    /// The slot of variable `v`, or an error that says how to declare it.
    fn var(&self, at: &Within, off: usize, scope: &Scope, v: &str) -> R<usize> {
        scope.slot(v).ok_or_else(|| {
            at.err(self, off, if at.open {
                format!("variable `?{v}` must appear in a positive atom of this condition (or be declared) so its type is known")
            } else {
                format!("unknown variable `?{v}` (declared here: {})", scope.vars.iter().map(|(n, _)| format!("?{n}")).collect::<Vec<_>>().join(", "))
            })
        })
    }

    /// A (possibly negated) atom, its arguments typed against the predicate's parameters.
    fn atom(
        &self,
        at: &Within,
        off: usize,
        scope: &Scope,
        neg: bool,
        pred: &str,
        args: &[Term],
    ) -> R<CLit> {
        let p = self.pred_or_fluent_hint(at, off, pred)?;
        let params = &self.w.preds[p as usize].params;
        Ok(CLit::Atom {
            neg,
            pred: p,
            args: self.args(at, off, scope, pred, params, args, neg)?,
        })
    }

    /// Arguments typed against parameters (`_` only where `wild` allows it).
    #[allow(clippy::too_many_arguments)]
    fn args(
        &self,
        at: &Within,
        off: usize,
        scope: &Scope,
        pred: &str,
        params: &[TypeId],
        args: &[Term],
        wild: bool,
    ) -> R<Vec<CTerm>> {
        if args.len() != params.len() {
            return Err(at.err(
                self,
                off,
                format!(
                    "`{pred}` takes {} arguments, found {}",
                    params.len(),
                    args.len()
                ),
            ));
        }
        let mut cargs = vec![];
        for (a, &pt) in args.iter().zip(params) {
            let tname = &self.w.types[pt as usize].name;
            match a {
                Term::Var(v) => {
                    let slot = self.var(at, off, scope, v)?;
                    let vt = scope.vars[slot].1;
                    if !self.w.is_subtype(vt, pt) && !self.w.is_subtype(pt, vt) {
                        return Err(at.err(
                            self,
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
                    let o = self.obj(id, at.anchors, at.s, off)?;
                    let ot = self.w.objects[o as usize].ty;
                    if !self.w.is_subtype(ot, pt) {
                        return Err(at.err(
                            self,
                            off,
                            format!(
                                "type mismatch: `{id}` is a `{}` but `{pred}` expects a `{tname}` here",
                                self.w.types[ot as usize].name
                            ),
                        ));
                    }
                    cargs.push(CTerm::Obj(o));
                }
                Term::Wild if wild => cargs.push(CTerm::Wild),
                Term::Wild => {
                    return Err(at.err(
                        self,
                        off,
                        "`_` is only allowed in `not ...` effects".into(),
                    ));
                }
                _ => {
                    return Err(at.err(
                        self,
                        off,
                        format!("atom arguments must be `?var` or object ids, found {a:?}"),
                    ));
                }
            }
        }
        Ok(cargs)
    }

    /// A comparison: objects with objects (`=`, `!=`), values (attributes, words, numbers) with
    /// values.
    fn comparison(
        &self,
        at: &Within,
        off: usize,
        scope: &Scope,
        op: CmpOp,
        lhs: &Term,
        rhs: &Term,
    ) -> R<CLit> {
        let val = |t: &Term, other_is_attr: bool| -> R<CVal> {
            Ok(match t {
                Term::Var(v) => CVal::Var(self.var(at, off, scope, v)?),
                Term::Attr(v, a) => {
                    let slot = self.var(at, off, scope, v)?;
                    self.known_attr(scope.vars[slot].1, a)
                        .map_err(|m| at.err(self, off, m))?;
                    CVal::Attr(slot, a.clone())
                }
                Term::Word(w) if !other_is_attr => CVal::Obj(self.obj(w, at.anchors, at.s, off)?),
                Term::Word(w) | Term::Str(w) => CVal::Lit(AttrValue::Str(w.clone())),
                Term::Num(n) => CVal::Lit(AttrValue::Float(*n)),
                Term::Wild => return Err(at.err(self, off, "`_` cannot be compared".into())),
            })
        };
        let la = matches!(lhs, Term::Attr(..));
        let ra = matches!(rhs, Term::Attr(..));
        let (l, r) = (val(lhs, ra)?, val(rhs, la)?);
        let is_obj = |v: &CVal| matches!(v, CVal::Var(_) | CVal::Obj(_));
        if is_obj(&l) != is_obj(&r) {
            return Err(at.err(self, off, "a comparison must compare objects with objects (`?a = ?b`) or values with values (`?a.color = red`)".into()));
        }
        if is_obj(&l) && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
            return Err(at.err(
                self,
                off,
                "objects can only be compared with `=` or `!=`".into(),
            ));
        }
        Ok(CLit::Cmp { op, lhs: l, rhs: r })
    }

    pub(super) fn cond(&self, anchors: &[&str], strings: &[String], scope: &Scope) -> R<Cond> {
        let mut sc = scope.clone();
        let mut lits = vec![];
        for s in strings {
            lits.extend(self.literals(anchors, s, &mut sc, true, Role::Cond)?);
        }
        Ok(Cond {
            lits,
            var_types: sc.vars.iter().map(|v| v.1).collect(),
        })
    }

    /// A text template that shows no fluent values (action texts, failure messages,
    /// instructions: fixed when the action or task is made).
    pub(super) fn template(&self, anchors: &[&str], s: &str, scope: &Scope) -> R<Template> {
        self.template_in(anchors, s, scope, false)
    }

    /// A text template that may show fluent values (render lines, action messages).
    pub(super) fn template_live(&self, anchors: &[&str], s: &str, scope: &Scope) -> R<Template> {
        self.template_in(anchors, s, scope, true)
    }

    fn template_in(&self, anchors: &[&str], s: &str, scope: &Scope, live: bool) -> R<Template> {
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
                    Piece::Fluent(..) if !live => {
                        return Err(self.loc.error(anchors, s, off, "fluent values can be shown in render lines and action messages only (this text is fixed when the action or task is made)"));
                    }
                    Piece::Fluent(name, args) => {
                        let args = args
                            .into_iter()
                            .map(|a| {
                                if scope.slot(&a).is_some() {
                                    Term::Var(a)
                                } else {
                                    Term::Word(a)
                                }
                            })
                            .collect();
                        let at = Within {
                            anchors,
                            s,
                            open: false,
                        };
                        TPiece::Fluent(self.fluent(&at, off, scope, &FluentRef { name, args })?)
                    }
                })
            })
            .collect()
    }

    /// Whether an object of type `t` can have attribute `a` (`name`, `type`, `id`, or one some
    /// object of the type declares): a misspelt attribute is an error, not a condition that is
    /// silently never true.
    pub(super) fn known_attr(&self, t: TypeId, a: &str) -> Result<(), String> {
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
}

/// Where a literal list is being compiled: for located errors, and whether it may declare
/// variables (`open`).
#[derive(Clone, Copy)]
struct Within<'a> {
    anchors: &'a [&'a str],
    s: &'a str,
    open: bool,
}

impl Within<'_> {
    fn err(&self, cx: &Cx, off: usize, message: String) -> ScenarioError {
        cx.loc.error(self.anchors, self.s, off, message)
    }
}
