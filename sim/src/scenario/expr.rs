//! The small expression language inside scenario strings: literals (`at(?o, ?r)`, `not open(?c)`,
//! `?o.color = red`, `?i.price <= ?t.budget`) and text templates (`"take {o} from {r.name}"`).

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
        Ok(Literal::Atom {
            neg,
            pred: word.to_string(),
            args,
        })
    }
    fn cmp_rest(&mut self, lhs: Term) -> Result<Literal, ParseError> {
        let Some(op) = self.op() else {
            return self.err("expected a comparison operator (=, !=, <, <=, >, >=)");
        };
        let rhs = self.term()?;
        Ok(Literal::Cmp { op, lhs, rhs })
    }
}

/// Parse a comma-separated list of literals; each comes with its byte offset in `s`.
/// An empty (or all-blank) string is the empty list.
pub fn parse_literals(s: &str) -> Result<Vec<(Literal, usize)>, ParseError> {
    let mut lx = Lexer { s, pos: 0 };
    let mut out = vec![];
    lx.skip_ws();
    if lx.pos == s.len() {
        return Ok(out);
    }
    loop {
        lx.skip_ws();
        let at = lx.pos;
        out.push((lx.literal()?, at));
        lx.skip_ws();
        if lx.pos == s.len() {
            return Ok(out);
        }
        if !lx.eat(',') {
            return lx.err("expected `,` between literals or the end of the condition");
        }
    }
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
                let piece = match inner.split_once('.') {
                    Some((v, a)) if valid(v) && valid(a) => Piece::Attr(v.into(), a.into()),
                    None if valid(inner) => Piece::Var(inner.into()),
                    _ => {
                        return Err(ParseError {
                            offset: i,
                            message: format!(
                                "expected `{{var}}` or `{{var.attr}}`, found `{{{inner}}}`"
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
