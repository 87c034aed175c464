//! The small expression language inside scenario strings: literals (`at(?o, ?r)`, `not open(?c)`,
//! `?o.color = red`, `?i.price <= ?t.budget`), the items built from them (disjunction groups
//! `(a or b, c)`, `not exists(...)`, numeric fluents `disk(?h) >= 90` / `disk(?h) += 10`, and in
//! effects `when(cond => effects)` / `forall(cond => effects)`), and text templates
//! (`"take {o} from {r.name}"`, `"disk at {disk(h)}%"`).
//!
//! Grammar of a condition or effect string (`or` binds loosest inside a group):
//! ```text
//! list  := item ("," item)*
//! item  := "(" list ("or" list)* ")" | "not" "exists" "(" list ")"
//!        | ("when" | "forall") "(" list "=>" list ")" | literal
//! literal := ["not"] pred "(" terms ")" | fluent "(" terms ")" op value | term cmp term
//! ```
//! `not`, `exists`, `when`, `forall` and `or` are keywords in these positions.

/// A term in a literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    /// `?x`
    Var(String),
    /// `?x.attr` (also `?x.name`, `?x.type`)
    Attr(String, String),
    /// A bare word: an object id in atoms, a text value in comparisons.
    Word(String),
    /// A number.
    Num(f64),
    /// `"quoted text"`
    Str(String),
    /// `_` (only in delete effects: matches anything)
    Wild,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// One literal of a condition or effect.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `pred(args)` or `not pred(args)`
    Atom {
        /// Negated.
        neg: bool,
        /// Predicate name.
        pred: String,
        /// Arguments.
        args: Vec<Term>,
    },
    /// `lhs op rhs`
    Cmp {
        /// Operator.
        op: CmpOp,
        /// Left side.
        lhs: Term,
        /// Right side.
        rhs: Term,
    },
    /// `(a, b or c)`: holds when one of the alternatives (each a conjunction) holds.
    Any(Vec<Vec<(Literal, usize)>>),
    /// `not exists(a, b)`: no binding of the variables first named inside makes all of them hold.
    NotExists(Vec<(Literal, usize)>),
    /// `when(cond => effects)` (`forall: false`) or `forall(cond => effects)` (its new variables
    /// range over every binding that satisfies `cond`): effects applied where `cond` held before
    /// the action. Effects only.
    When {
        /// `forall(...)`: the condition may name new variables.
        forall: bool,
        /// The condition, evaluated in the state before the action.
        cond: Vec<(Literal, usize)>,
        /// The effects.
        effects: Vec<(Literal, usize)>,
    },
    /// `fluent(args) op value`: a numeric fluent compared.
    NumCmp {
        /// The fluent.
        fluent: FluentRef,
        /// Operator.
        op: CmpOp,
        /// Right side.
        rhs: NumTerm,
    },
    /// `fluent(args) += value` (also `-=`, `:=`): a numeric fluent changed. Effects and setup only.
    NumSet {
        /// The fluent.
        fluent: FluentRef,
        /// How it changes.
        op: SetOp,
        /// By / to what.
        rhs: NumTerm,
    },
}

/// A numeric fluent applied to its arguments, `disk(?h)`.
#[derive(Debug, Clone, PartialEq)]
pub struct FluentRef {
    /// Fluent name.
    pub name: String,
    /// Arguments (`?var` or object ids).
    pub args: Vec<Term>,
}

/// A value on the right of a numeric comparison or change.
#[derive(Debug, Clone, PartialEq)]
pub enum NumTerm {
    /// A number or an attribute (`?h.capacity`).
    Term(Term),
    /// Another fluent's value.
    Fluent(FluentRef),
}

/// How a numeric effect changes a fluent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOp {
    /// `:=`
    Assign,
    /// `+=`
    Add,
    /// `-=`
    Sub,
}

/// A parse error at a byte offset of the string.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// Byte offset into the string.
    pub offset: usize,
    /// What was expected.
    pub message: String,
}

struct Lexer<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            offset: self.pos,
            message: message.into(),
        })
    }
    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }
    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }
    fn ident(&mut self) -> Option<&'a str> {
        self.skip_ws();
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        (self.pos > start).then(|| &self.s[start..self.pos])
    }
    fn expect_ident(&mut self, what: &str) -> Result<&'a str, ParseError> {
        match self.ident() {
            Some(i) => Ok(i),
            None => self.err(format!("expected {what}")),
        }
    }
    fn term(&mut self) -> Result<Term, ParseError> {
        self.skip_ws();
        match self.peek() {
            Some('?') => {
                self.pos += 1;
                let v = self.expect_ident("a variable name after `?`")?.to_string();
                if self.peek() == Some('.') {
                    self.pos += 1;
                    let a = self
                        .expect_ident("an attribute name after `.`")?
                        .to_string();
                    Ok(Term::Attr(v, a))
                } else {
                    Ok(Term::Var(v))
                }
            }
            Some('"') => {
                self.pos += 1;
                let start = self.pos;
                match self.s[start..].find('"') {
                    Some(end) => {
                        self.pos = start + end + 1;
                        Ok(Term::Str(self.s[start..start + end].to_string()))
                    }
                    None => self.err("unterminated string"),
                }
            }
            Some(c) if c.is_ascii_digit() || c == '-' => {
                let start = self.pos;
                self.pos += 1;
                while let Some(c) = self.peek() {
                    if c.is_ascii_digit() || c == '.' {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                match self.s[start..self.pos].parse::<f64>() {
                    Ok(x) => Ok(Term::Num(x)),
                    Err(_) => {
                        self.pos = start;
                        self.err("expected a number")
                    }
                }
            }
            _ => match self.ident() {
                Some("_") => Ok(Term::Wild),
                Some(w) => Ok(Term::Word(w.to_string())),
                None => self.err(
                    "expected a term: `?var`, `?var.attr`, an object id, a number or \"text\"",
                ),
            },
        }
    }
    fn op(&mut self) -> Option<CmpOp> {
        self.skip_ws();
        let rest = &self.s[self.pos..];
        let (op, n) = if rest.starts_with("!=") {
            (CmpOp::Ne, 2)
        } else if rest.starts_with("<=") {
            (CmpOp::Le, 2)
        } else if rest.starts_with(">=") {
            (CmpOp::Ge, 2)
        } else if rest.starts_with("==") {
            (CmpOp::Eq, 2)
        } else if rest.starts_with("=>") {
            return None;
        } else if rest.starts_with('=') {
            (CmpOp::Eq, 1)
        } else if rest.starts_with('<') {
            (CmpOp::Lt, 1)
        } else if rest.starts_with('>') {
            (CmpOp::Gt, 1)
        } else {
            return None;
        };
        self.pos += n;
        Some(op)
    }
    /// `:=`, `+=` or `-=`.
    fn set_op(&mut self) -> Option<SetOp> {
        self.skip_ws();
        let rest = &self.s[self.pos..];
        let op = if rest.starts_with(":=") {
            SetOp::Assign
        } else if rest.starts_with("+=") {
            SetOp::Add
        } else if rest.starts_with("-=") {
            SetOp::Sub
        } else {
            return None;
        };
        self.pos += 2;
        Some(op)
    }
    /// Consume the keyword `k` when it is the next word.
    fn keyword(&mut self, k: &str) -> bool {
        let save = self.pos;
        if self.ident() == Some(k) {
            return true;
        }
        self.pos = save;
        false
    }
    /// The argument list after `name(` up to `)`.
    fn args(&mut self) -> Result<Vec<Term>, ParseError> {
        let mut args = vec![];
        if !self.eat(')') {
            loop {
                args.push(self.term()?);
                if self.eat(')') {
                    break;
                }
                if !self.eat(',') {
                    return self.err("expected `,` or `)` in the argument list");
                }
            }
        }
        Ok(args)
    }
    /// A list of items, up to (not including) `)`, `or`, `=>` or the end of the string.
    fn list(&mut self, depth: usize) -> Result<Vec<(Literal, usize)>, ParseError> {
        let mut out = vec![];
        loop {
            self.skip_ws();
            let at = self.pos;
            out.push((self.item(depth)?, at));
            if !self.eat(',') {
                return Ok(out);
            }
        }
    }
    /// One item: a group of alternatives, `not exists(..)`, `when(..)`/`forall(..)` or a literal.
    fn item(&mut self, depth: usize) -> Result<Literal, ParseError> {
        const MAX_DEPTH: usize = 8;
        if depth > MAX_DEPTH {
            return self.err(format!(
                "conditions nest too deeply (at most {MAX_DEPTH} levels)"
            ));
        }
        if self.eat('(') {
            let mut alts = vec![self.list(depth + 1)?];
            while self.keyword("or") {
                alts.push(self.list(depth + 1)?);
            }
            if !self.eat(')') {
                return self.err("expected `,`, `or` or `)` in the group");
            }
            return Ok(Literal::Any(alts));
        }
        let save = self.pos;
        match self.ident() {
            Some("not") if self.keyword("exists") => {
                if !self.eat('(') {
                    return self.err("expected `(` after `not exists`");
                }
                let inner = self.list(depth + 1)?;
                if !self.eat(')') {
                    return self.err("expected `,` or `)` closing `not exists(`");
                }
                return Ok(Literal::NotExists(inner));
            }
            Some(w @ ("when" | "forall")) if self.eat('(') => {
                let cond = self.list(depth + 1)?;
                self.skip_ws();
                if !self.s[self.pos..].starts_with("=>") {
                    return self.err(format!(
                        "expected `,` or `=>` between the condition and the effects of `{w}(...)`"
                    ));
                }
                self.pos += 2;
                let effects = self.list(depth + 1)?;
                if !self.eat(')') {
                    return self.err(format!("expected `,` or `)` closing `{w}(`"));
                }
                return Ok(Literal::When {
                    forall: w == "forall",
                    cond,
                    effects,
                });
            }
            _ => self.pos = save,
        }
        self.literal()
    }
    fn literal(&mut self) -> Result<Literal, ParseError> {
        self.skip_ws();
        let start = self.pos;
        if self.peek() == Some('?')
            || self.peek() == Some('"')
            || self.peek().is_some_and(|c| c.is_ascii_digit())
        {
            let lhs = self.term()?;
            return self.cmp_rest(lhs);
        }
        let mut word =
            self.expect_ident("a literal: `pred(args)`, `not pred(args)` or a comparison")?;
        let mut neg = false;
        if word == "not" {
            neg = true;
            word = self.expect_ident("a predicate name after `not`")?;
        }
        if !self.eat('(') {
            if !neg {
                // a comparison starting with a bare word, e.g. `red = ?o.color`
                self.pos = start;
                let lhs = self.term()?;
                return self.cmp_rest(lhs);
            }
            return self.err(format!("expected `(` after predicate `{word}`"));
        }
        let args = self.args()?;
        let fluent = || FluentRef {
            name: word.to_string(),
            args: args.clone(),
        };
        let op_at = self.pos;
        if let Some(op) = self.set_op() {
            if neg {
                self.pos = op_at;
                return self.err("`not` cannot apply to a numeric change");
            }
            let rhs = self.num_term()?;
            return Ok(Literal::NumSet {
                fluent: fluent(),
                op,
                rhs,
            });
        }
        if let Some(op) = self.op() {
            if neg {
                self.pos = op_at;
                return self.err("`not` cannot apply to a comparison (use the opposite operator)");
            }
            let rhs = self.num_term()?;
            return Ok(Literal::NumCmp {
                fluent: fluent(),
                op,
                rhs,
            });
        }
        Ok(Literal::Atom {
            neg,
            pred: word.to_string(),
            args,
        })
    }
    /// The value after a numeric operator: a fluent `f(args)` or a term.
    fn num_term(&mut self) -> Result<NumTerm, ParseError> {
        let save = self.pos;
        if let Some(name) = self.ident()
            && self.eat('(')
        {
            let args = self.args()?;
            return Ok(NumTerm::Fluent(FluentRef {
                name: name.to_string(),
                args,
            }));
        }
        self.pos = save;
        Ok(NumTerm::Term(self.term()?))
    }
    fn cmp_rest(&mut self, lhs: Term) -> Result<Literal, ParseError> {
        let Some(op) = self.op() else {
            return self.err("expected a comparison operator (=, !=, <, <=, >, >=)");
        };
        match self.num_term()? {
            NumTerm::Term(rhs) => Ok(Literal::Cmp { op, lhs, rhs }),
            // `90 <= disk(?h)` is `disk(?h) >= 90`
            NumTerm::Fluent(fluent) => Ok(Literal::NumCmp {
                fluent,
                op: op.flipped(),
                rhs: NumTerm::Term(lhs),
            }),
        }
    }
}

impl CmpOp {
    /// The operator with its sides swapped (`a < b` is `b > a`).
    pub fn flipped(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            other => other,
        }
    }
}

/// Parse a comma-separated list of items; each comes with its byte offset in `s`.
/// An empty (or all-blank) string is the empty list.
pub fn parse_literals(s: &str) -> Result<Vec<(Literal, usize)>, ParseError> {
    let mut lx = Lexer { s, pos: 0 };
    lx.skip_ws();
    if lx.pos == s.len() {
        return Ok(vec![]);
    }
    let out = lx.list(0)?;
    lx.skip_ws();
    if lx.pos == s.len() {
        return Ok(out);
    }
    let save = lx.pos;
    if lx.keyword("or") {
        lx.pos = save;
        return lx.err("a disjunction needs parentheses: `(a or b)`");
    }
    lx.err("expected `,` between literals or the end of the condition")
}

/// A piece of a text template.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// `{x}`: the id of the object bound to `x`.
    Var(String),
    /// `{x.attr}`: an attribute (`name`, `type` or a declared attribute) of the object bound to `x`.
    Attr(String, String),
    /// `{disk(h)}`: the value of a numeric fluent (arguments: variables or object ids).
    Fluent(String, Vec<String>),
}

/// Parse a text template with `{var}` / `{var.attr}` holes (`{{` and `}}` are literal braces).
pub fn parse_template(s: &str) -> Result<Vec<(Piece, usize)>, ParseError> {
    let mut out = vec![];
    let mut text = String::new();
    let mut text_at = 0;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' if b.get(i + 1) == Some(&b'{') => {
                text.push('{');
                i += 2;
            }
            b'}' if b.get(i + 1) == Some(&b'}') => {
                text.push('}');
                i += 2;
            }
            b'{' => {
                let Some(end) = s[i..].find('}') else {
                    return Err(ParseError {
                        offset: i,
                        message: "unclosed `{` in template".into(),
                    });
                };
                if !text.is_empty() {
                    out.push((Piece::Text(std::mem::take(&mut text)), text_at));
                }
                let inner = s[i + 1..i + end].trim().trim_start_matches('?');
                let valid =
                    |w: &str| !w.is_empty() && w.chars().all(|c| c.is_alphanumeric() || c == '_');
                let fluent = inner.strip_suffix(')').and_then(|x| x.split_once('('));
                let piece = match inner.split_once('.') {
                    _ if fluent.is_some() => {
                        let (name, args) = fluent.unwrap();
                        let args: Vec<String> = args
                            .split(',')
                            .map(|a| a.trim().trim_start_matches('?').to_string())
                            .filter(|a| !a.is_empty())
                            .collect();
                        let ids_ok = args.iter().all(|a| {
                            a.chars()
                                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
                        });
                        if !valid(name.trim()) || !ids_ok {
                            return Err(ParseError {
                                offset: i,
                                message: format!(
                                    "expected `{{fluent(var, ...)}}`, found `{{{inner}}}`"
                                ),
                            });
                        }
                        Piece::Fluent(name.trim().into(), args)
                    }
                    Some((v, a)) if valid(v) && valid(a) => Piece::Attr(v.into(), a.into()),
                    None if valid(inner) => Piece::Var(inner.into()),
                    _ => {
                        return Err(ParseError {
                            offset: i,
                            message: format!(
                                "expected `{{var}}`, `{{var.attr}}` or `{{fluent(var)}}`, found `{{{inner}}}`"
                            ),
                        });
                    }
                };
                out.push((piece, i));
                i += end + 1;
                text_at = i;
            }
            b'}' => {
                return Err(ParseError {
                    offset: i,
                    message: "unmatched `}` in template (write `}}` for a literal brace)".into(),
                });
            }
            _ => {
                let c = s[i..].chars().next().unwrap();
                text.push(c);
                i += c.len_utf8();
            }
        }
    }
    if !text.is_empty() {
        out.push((Piece::Text(text), text_at));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_atoms_negations_and_comparisons() {
        let l =
            parse_literals("at(?o, ?r), not open( ?r ), ?o.color = red, ?i.price <= 30, ?a != ?b")
                .unwrap();
        assert_eq!(l.len(), 5);
        assert_eq!(
            l[1].0,
            Literal::Atom {
                neg: true,
                pred: "open".into(),
                args: vec![Term::Var("r".into())]
            }
        );
        assert_eq!(l[1].1, 12);
        assert_eq!(
            l[3].0,
            Literal::Cmp {
                op: CmpOp::Le,
                lhs: Term::Attr("i".into(), "price".into()),
                rhs: Term::Num(30.0)
            }
        );
        assert!(parse_literals("  ").unwrap().is_empty());
        assert_eq!(parse_literals("done()").unwrap().len(), 1);
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = parse_literals("at(?o ?r)").unwrap_err();
        assert_eq!(e.offset, 6);
        assert!(e.message.contains("`,` or `)`"));
        let e = parse_literals("at(?o), ").unwrap_err();
        assert_eq!(e.offset, 8);
        let e = parse_literals("not ?x").unwrap_err();
        assert!(e.message.contains("predicate name"), "{e:?}");
        let e = parse_template("go to {r.}").unwrap_err();
        assert_eq!(e.offset, 6);
    }

    #[test]
    fn templates() {
        let t = parse_template("take {o} from {r.name} {{x}}").unwrap();
        assert_eq!(t[0].0, Piece::Text("take ".into()));
        assert_eq!(t[1].0, Piece::Var("o".into()));
        assert_eq!(t[3].0, Piece::Attr("r".into(), "name".into()));
        assert_eq!(t[4].0, Piece::Text(" {x}".into()));
    }

    fn ident() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9_]{0,6}".prop_filter("not a keyword", |s| s != "not")
    }

    fn term() -> impl Strategy<Value = Term> {
        prop_oneof![
            ident().prop_map(Term::Var),
            (ident(), ident()).prop_map(|(a, b)| Term::Attr(a, b)),
            ident().prop_map(Term::Word),
            (0u32..1000).prop_map(|n| Term::Num(n as f64)),
        ]
    }

    fn show(t: &Term) -> String {
        match t {
            Term::Var(v) => format!("?{v}"),
            Term::Attr(v, a) => format!("?{v}.{a}"),
            Term::Word(w) => w.clone(),
            Term::Num(n) => format!("{n}"),
            Term::Str(s) => format!("\"{s}\""),
            Term::Wild => "_".into(),
        }
    }

    proptest! {
        /// Printing a literal list and parsing it back gives the same literals.
        #[test]
        fn print_parse_round_trip(lits in proptest::collection::vec(
            (any::<bool>(), ident(), proptest::collection::vec(term(), 0..4)), 1..5))
        {
            let text: Vec<String> = lits.iter().map(|(neg, p, args)| {
                format!("{}{}({})", if *neg { "not " } else { "" }, p, args.iter().map(show).collect::<Vec<_>>().join(", "))
            }).collect();
            let parsed = parse_literals(&text.join(", ")).unwrap();
            prop_assert_eq!(parsed.len(), lits.len());
            for ((lit, _), (neg, p, args)) in parsed.iter().zip(&lits) {
                prop_assert_eq!(lit, &Literal::Atom { neg: *neg, pred: p.clone(), args: args.clone() });
            }
        }

        /// The parsers never panic, and error offsets stay inside the input.
        #[test]
        fn no_panics_on_arbitrary_input(s in ".{0,40}") {
            if let Err(e) = parse_literals(&s) { prop_assert!(e.offset <= s.len()); }
            if let Err(e) = parse_template(&s) { prop_assert!(e.offset <= s.len()); }
        }
    }
}
