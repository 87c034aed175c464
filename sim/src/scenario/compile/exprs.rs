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
