//! Actions, render rules and task templates compiled: parameters and effects, setup steps and
//! their counts, levels, and the goal's contradiction check.

use super::*;

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

impl Cx<'_> {
    pub(super) fn action(&self, a: &ast::ActionDef) -> R<ActionSchema> {
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
            for l in self.literals(anchors, p, &mut scope, false, Role::Cond)? {
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
            effects.extend(self.literals(anchors, e, &mut scope, false, Role::Effect)?);
        }
        let otherwise = a
            .otherwise
            .as_ref()
            .map(|m| self.template(anchors, m, &scope))
            .transpose()?;
        let message = a
            .message
            .as_ref()
            .map(|m| self.template_live(anchors, m, &scope))
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

    pub(super) fn render(&self, r: &ast::RenderDef) -> R<RenderRule> {
        let anchors: &[&str] = &["render", &r.when];
        let when = self.cond(anchors, std::slice::from_ref(&r.when), &Scope::default())?;
        let mut sc = Scope::default();
        self.literals(anchors, &r.when, &mut sc, true, Role::Cond)?;
        let line = self.template_live(&["render", &r.when], &r.line, &sc)?;
        Ok(RenderRule { when, line })
    }

    pub(super) fn count(&self, c: &Count, anchors: &[&str], levels: &[ast::LevelDef]) -> R<CCount> {
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

    pub(super) fn setup(
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
                    self.setup_choose(var, ty, filter.as_ref(), scope, anchors)?
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
                } => self.setup_place(what, pred, among, filter.as_ref(), scope, anchors)?,
                SetupStep::Assert(facts) => {
                    let mut lits = vec![];
                    for f in facts {
                        lits.extend(self.literals(
                            anchors,
                            f,
                            &mut scope.clone(),
                            false,
                            Role::Assert,
                        )?);
                    }
                    CSetup::Assert(lits)
                }
                SetupStep::OneOf(alts) => self.setup_one_of(alts, scope, anchors, levels)?,
                SetupStep::Repeat { times, steps } => CSetup::Repeat {
                    times: self.count(times, anchors, levels)?,
                    steps: self.setup(steps, scope, anchors, levels)?,
                },
            });
        }
        Ok(out)
    }

    /// `OneOf([[..], [..]])`: alternatives that must choose the same variables (so what follows
    /// can name them whichever ran).
    fn setup_one_of(
        &self,
        alts: &[Vec<SetupStep>],
        scope: &mut Scope,
        anchors: &[&str],
        levels: &[ast::LevelDef],
    ) -> R<CSetup> {
        if alts.is_empty() {
            return Err(self.loc.error(
                anchors,
                "OneOf",
                0,
                "OneOf needs at least one alternative",
            ));
        }
        let before = scope.vars.len();
        let mut chosen: Option<Vec<(String, TypeId)>> = None;
        let mut out = vec![];
        for (i, alt) in alts.iter().enumerate() {
            let mut sc = scope.clone();
            out.push(self.setup(alt, &mut sc, anchors, levels)?);
            let new = sc.vars[before..].to_vec();
            match &chosen {
                None => chosen = Some(new),
                Some(first) if *first != new => {
                    let show = |v: &[(String, TypeId)]| {
                        v.iter()
                            .map(|(n, _)| format!("?{n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    return Err(self.loc.error(
                        anchors,
                        "OneOf",
                        0,
                        format!(
                            "OneOf alternative {} chooses [{}] but alternative 1 chooses [{}]: every alternative must choose the same variables, of the same types, in the same order",
                            i + 1,
                            show(&new),
                            show(first)
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        scope.vars.extend(chosen.unwrap_or_default());
        Ok(CSetup::OneOf(out))
    }

    /// `Choose(var, type, where)`: a new task variable of a type, optionally filtered.
    fn setup_choose(
        &self,
        var: &str,
        ty: &str,
        filter: Option<&String>,
        scope: &mut Scope,
        anchors: &[&str],
    ) -> R<CSetup> {
        if scope.slot(var).is_some() {
            return Err(self.loc.error(
                anchors,
                var,
                0,
                format!("task variable `{var}` chosen twice"),
            ));
        }
        let t = self.ty(ty, anchors)?;
        scope.vars.push((var.to_string(), t));
        let filter = filter
            .map(|f| self.cond(anchors, std::slice::from_ref(f), scope))
            .transpose()?;
        Ok(CSetup::Choose {
            slot: scope.vars.len() - 1,
            ty: t,
            filter,
        })
    }

    /// `Place(what, pred, among, where)`: a task variable (`?v`) or every object of a type put
    /// in relation `pred` with one of `among`, where `?it` and `?at` name the two.
    fn setup_place(
        &self,
        what: &str,
        pred: &str,
        among: &str,
        filter: Option<&String>,
        scope: &Scope,
        anchors: &[&str],
    ) -> R<CSetup> {
        let among_t = self.ty(among, anchors)?;
        let p = self.pred(pred, anchors, pred, 0)?;
        let base = scope.vars.len();
        let (what_c, it_t) = match what.strip_prefix('?') {
            Some(v) => {
                let slot = scope.slot(v).ok_or_else(|| {
                    self.loc
                        .error(anchors, what, 0, format!("unknown task variable `{what}`"))
                })?;
                (PlaceWhat::Var(slot), scope.vars[slot].1)
            }
            None => {
                let t = self.ty(what, anchors)?;
                (PlaceWhat::Type(t), t)
            }
        };
        let pt = &self.w.preds[p as usize].params;
        if pt.len() != 2 || !self.w.is_subtype(it_t, pt[0]) || !self.w.is_subtype(among_t, pt[1]) {
            return Err(self.loc.error(
                anchors,
                pred,
                0,
                format!("type mismatch: Place needs `{pred}` to take ({what}, {among})"),
            ));
        }
        let mut sc = scope.clone();
        sc.vars.push(("it".into(), it_t));
        sc.vars.push(("at".into(), among_t));
        let filter = filter
            .map(|f| self.cond(anchors, std::slice::from_ref(f), &sc))
            .transpose()?;
        Ok(CSetup::Place {
            what: what_c,
            pred: p,
            among: among_t,
            filter,
            base,
        })
    }

    pub(super) fn template_def(
        &self,
        t: &ast::TaskTemplateDef,
        default_max: u32,
    ) -> R<TaskTemplate> {
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
        let mut levels: Vec<Level> = vec![];
        for l in &t.levels {
            if levels.iter().any(|k| k.difficulty == l.difficulty) {
                return Err(self.loc.error(
                    anchors,
                    &t.id,
                    0,
                    format!(
                        "two levels with difficulty {}: each level of a template needs a difficulty of its own (a run or a curriculum names a level by it)",
                        l.difficulty
                    ),
                ));
            }
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
                instruction: l
                    .instruction
                    .as_ref()
                    .map(|i| self.template(anchors, i, &sc))
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
