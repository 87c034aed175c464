//! The scenario's small languages compiled: literals (`holding(?o)`, `not open(?d)`,
//! `?k.color = ?d.color`) with their variables typed and every name resolved, conditions, and text
//! templates (`the {o.name}`).

use super::*;

impl Cx<'_> {
    /// Compile a literal list. `open`: unknown variables become new (existential) slots typed by
    /// the first atom they appear in; otherwise they are errors.
    pub(super) fn literals(
        &self,
        anchors: &[&str],
        s: &str,
        scope: &mut Scope,
        open: bool,
    ) -> R<Vec<CLit>> {
        let lits = expr::parse_literals(s).map_err(|e| {
            self.loc
                .error(anchors, s, e.offset, format!("syntax: {}", e.message))
        })?;
        let at = Within { anchors, s, open };
        if open {
            self.declare_vars(&at, &lits, scope)?;
        }
        let mut out = vec![];
        for (l, off) in lits {
            out.push(match l {
                Literal::Atom { neg, pred, args } => {
                    self.atom(&at, off, scope, neg, &pred, &args)?
                }
                Literal::Cmp { op, lhs, rhs } => {
                    self.comparison(&at, off, scope, op, &lhs, &rhs)?
                }
            });
        }
        Ok(out)
    }

    /// Declares the new variables of `lits`'s positive atoms, typed by the predicate's parameters.
    fn declare_vars(&self, at: &Within, lits: &[(Literal, usize)], scope: &mut Scope) -> R<()> {
        for (l, off) in lits {
            if let Literal::Atom {
                neg: false,
                pred,
                args,
            } = l
            {
                let p = self.pred(pred, at.anchors, at.s, *off)?;
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
        Ok(())
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
        let p = self.pred(pred, at.anchors, at.s, off)?;
        let info = &self.w.preds[p as usize];
        if args.len() != info.params.len() {
            return Err(at.err(
                self,
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
                Term::Wild if neg => cargs.push(CTerm::Wild),
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
        Ok(CLit::Atom {
            neg,
            pred: p,
            args: cargs,
        })
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
            lits.extend(self.literals(anchors, s, &mut sc, true)?);
        }
        Ok(Cond {
            lits,
            var_types: sc.vars.iter().map(|v| v.1).collect(),
        })
    }

    pub(super) fn template(&self, anchors: &[&str], s: &str, scope: &Scope) -> R<Template> {
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
