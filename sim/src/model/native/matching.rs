//! Matching a rule's patterns against a query: unification with variable bindings, the
//! conditions of a rule, and filling what it adds from the bindings. Free functions: none reads
//! the model.

use super::MATCH_BUDGET;
use super::rule::{Derivation, Matched, Part, Query, Rule, Seg, Tok};
use super::tokens::{Tokenized, Vocab};
/// Whether a pattern matches a tokenized text given bindings `b` (unbound variables match
/// anything, the same word wherever they repeat). Binds nothing.
pub(super) fn fits(pat: Seg, text: &Tokenized, b: &[Option<u32>]) -> bool {
    fits_with(pat, text, b, false)
}

/// [`Self::fits`]; with `loose`, derived words match anything too.
pub(super) fn fits_with(pat: Seg, text: &Tokenized, b: &[Option<u32>], loose: bool) -> bool {
    if text.ids.len() != pat.toks.len() || text.spacing != pat.spacing {
        return false;
    }
    for (j, (&t, p)) in text.ids.iter().zip(pat.toks).enumerate() {
        let ok = match p {
            Tok::Const(c) => *c == t,
            Tok::Var(x) => match b[*x as usize] {
                Some(y) => y == t,
                // an unbound variable seen earlier in the pattern must take the same word
                None => pat.toks[..j]
                    .iter()
                    .zip(&text.ids)
                    .all(|(q, &u)| q != p || u == t),
            },
            // derived words only occur in what a rule adds
            Tok::Derived(_) => loose,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Match a pattern against a tokenized text, extending `b` (and recording each variable it
/// binds on `trail`); on failure `b` is unchanged.
pub(super) fn bind(
    pat: Seg,
    text: &Tokenized,
    b: &mut [Option<u32>],
    trail: &mut Vec<u32>,
) -> bool {
    if !fits(pat, text, b) {
        return false;
    }
    for (&t, p) in text.ids.iter().zip(pat.toks) {
        if let Tok::Var(x) = p
            && b[*x as usize].is_none()
        {
            b[*x as usize] = Some(t);
            trail.push(*x);
        }
    }
    true
}

/// Match a pattern against a tokenized text, extending `b`; on failure `b` is unchanged.
pub(super) fn unify(pat: Seg, text: &Tokenized, b: &mut [Option<u32>]) -> bool {
    if !fits(pat, text, b) {
        return false;
    }
    for (&t, p) in text.ids.iter().zip(pat.toks) {
        if let Tok::Var(x) = p {
            b[*x as usize] = Some(t);
        }
    }
    true
}

/// Rule `r`'s action-determined added line (see [`Rule::action_anchor`]) for the query's
/// action: `None` when the action does not fit the rule, `Some(None)` when the rule has no
/// such line.
pub(super) fn action_anchor(v: &Vocab, q: &Query, r: &Rule) -> Option<Option<String>> {
    if !action_fits(r, q) {
        return None;
    }
    let Some(i) = r.action_anchor else {
        return Some(None);
    };
    let mut buf = [None; 64];
    let mut heap;
    let b: &mut [Option<u32>] = match buf.get_mut(..r.nvars as usize) {
        Some(b) => b,
        None => {
            heap = vec![None; r.nvars as usize];
            &mut heap
        }
    };
    let (_, action) = r.segments().next()?;
    if !unify(action, &q.action, b) {
        return None;
    }
    let seg = r.segments().filter(|(p, _)| *p == Part::Added).nth(i)?.1;
    fill(v, r, seg, b).map(Some)
}

/// Whether the rule's action pattern fits the query's action (a cheap first filter).
pub(super) fn action_fits(r: &Rule, q: &Query) -> bool {
    const UNBOUND: [Option<u32>; 64] = [None; 64];
    let n = r.shape.first().map_or(0, |s| s.1);
    let seg = Seg {
        toks: &r.pattern[..n],
        spacing: &r.spacing[..n],
    };
    if (r.nvars as usize) > UNBOUND.len() {
        return fits(seg, &q.action, &vec![None; r.nvars as usize]);
    }
    fits(seg, &q.action, &UNBOUND[..r.nvars as usize])
}

/// Match each of `pats` to a distinct item of `items` (backtracking); records the matches.
pub(super) fn match_all(
    pats: &[Seg],
    items: &[Tokenized],
    used: &mut Vec<usize>,
    b: &mut Vec<Option<u32>>,
) -> bool {
    let mut trail = Vec::new();
    let mut budget = MATCH_BUDGET;
    match_rest(pats, items, used, b, &mut trail, &mut budget)
}

pub(super) fn match_rest(
    pats: &[Seg],
    items: &[Tokenized],
    used: &mut Vec<usize>,
    b: &mut Vec<Option<u32>>,
    trail: &mut Vec<u32>,
    budget: &mut usize,
) -> bool {
    let Some((first, rest)) = pats.split_first() else {
        return true;
    };
    for (i, item) in items.iter().enumerate() {
        if used.contains(&i) || item.ids.len() != first.toks.len() {
            continue;
        }
        // many similar lines can make backtracking explode: give up (the rule does not apply)
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        let mark = trail.len();
        if bind(*first, item, b, trail) {
            used.push(i);
            if match_rest(rest, items, used, b, trail, budget) {
                return true;
            }
            used.pop();
            for x in trail.drain(mark..) {
                b[x as usize] = None;
            }
        }
    }
    false
}

/// A rule that removes lines of some form must remove every line of that form: no line it
/// leaves may fit one of its removed patterns (else it was learnt where fewer such lines were).
pub(super) fn exhaustive(
    removed: &[Seg],
    lines: &[Tokenized],
    used: &[usize],
    b: &[Option<u32>],
) -> bool {
    lines
        .iter()
        .enumerate()
        .filter(|(i, _)| !used.contains(i))
        .all(|(_, l)| !removed.iter().any(|p| fits(*p, l, b)))
}

pub(super) fn fill(v: &Vocab, r: &Rule, pat: Seg, b: &[Option<u32>]) -> Option<String> {
    let word = |t: &Tok| match t {
        Tok::Const(c) => Some(*c),
        Tok::Var(x) => b[*x as usize],
        Tok::Derived(_) => None,
    };
    let mut out = String::new();
    for (t, &sp) in pat.toks.iter().zip(pat.spacing) {
        if sp {
            out.push(' ');
        }
        match t {
            Tok::Derived(k) => match &r.derived[*k as usize] {
                Derivation::Join(parts) => {
                    for (sep, p) in parts {
                        out.push_str(sep);
                        out.push_str(v.word(word(p)?));
                    }
                }
                Derivation::Lookup { from, map } => {
                    out.push_str(v.word(*map.get(&b[*from as usize]?)?));
                }
            },
            t => out.push_str(v.word(word(t)?)),
        }
    }
    Some(out)
}

/// The bindings of rule `r`'s action and (for paying rules) instruction patterns, matched
/// against the query; `None` when either does not match.
pub(super) fn bind_task(r: &Rule, segs: &[(Part, Seg)], q: &Query) -> Option<Vec<Option<u32>>> {
    let mut b: Vec<Option<u32>> = vec![None; r.nvars as usize];
    for (part, seg) in segs {
        let text = match part {
            Part::Action => &q.action,
            Part::Instruction => &q.instruction,
            _ => continue,
        };
        if !unify(*seg, text, &mut b) {
            return None;
        }
    }
    Some(b)
}

/// Match the conditions of rule `r` (action, instruction, removed lines — exhaustively —,
/// context lines, removed admissible actions) against a query.
pub(super) fn match_rule(r: &Rule, segs: &[(Part, Seg)], q: &Query) -> Option<Matched> {
    if q.unmatched.borrow().contains(&r.cond_group) {
        return None;
    }
    let m = match_conditions(r, segs, q);
    if m.is_none() {
        q.unmatched.borrow_mut().insert(r.cond_group);
    }
    m
}

pub(super) fn match_conditions(r: &Rule, segs: &[(Part, Seg)], q: &Query) -> Option<Matched> {
    let enough = |&(kind, n): &(u32, u32)| q.line_kinds.iter().any(|&(k, m)| k == kind && m >= n);
    if !r.line_kinds.iter().all(enough) {
        return None;
    }
    let get = |p: Part| segs.iter().filter(move |(x, _)| *x == p).map(|(_, s)| *s);
    let mut b = bind_task(r, segs, q)?;
    let removed: Vec<Seg> = get(Part::Removed).collect();
    let mut used = vec![];
    if !match_all(&removed, &q.lines, &mut used, &mut b)
        || !exhaustive(&removed, &q.lines, &used, &b)
    {
        return None;
    }
    let context: Vec<Seg> = get(Part::Context).collect();
    let mut taken = used.clone();
    if !match_all(&context, &q.lines, &mut taken, &mut b) {
        return None;
    }
    let adm_removed: Vec<Seg> = get(Part::AdmRemoved).collect();
    let mut used_adm = vec![];
    if !match_all(&adm_removed, &q.admissible, &mut used_adm, &mut b) {
        return None;
    }
    Some(Matched { b, used, used_adm })
}
