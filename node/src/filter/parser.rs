//! The parser of the filter language: a recursive descent over [`lexer`](super::lexer) tokens into an [`Expr`].
//!
//! Owns the grammar of go-bexpr's `grammar.peg` (hashicorp/go-bexpr), minus its collection (`any`/`all`),
//! `is nil` and JSON-pointer selector extensions, which Consul's filtering docs do not list:
//!
//! ```text
//! or    := and ("or" and)*
//! and   := unary ("and" unary)*
//! unary := "not" unary | "(" or ")" | match
//! match := Selector ("==" | "!=" | ["not"] "contains" | ["not"] "matches") Value
//!        | Selector "is" ["not"] "empty"
//!        | Value ["not"] "in" Selector
//! Value := Selector | String | Number | keyword      (a bare word or path is its own text)
//! ```
//!
//! It never evaluates anything; it compiles `matches` patterns so a bad regex is a parse error, and it bounds
//! nesting at [`NESTING_DEPTH_MAX`] so no input can overflow the stack (and/or chains are loops, not recursion).

use regex::{Regex, RegexBuilder};

use super::lexer::{tokenize, Keyword, Token, TokenKind};
use super::FilterError;

/// The deepest nesting of parentheses and `not`s accepted; deeper inputs are rejected with
/// [`FilterError::TooDeep`]. Not in go-bexpr; our bound, far above any filter a person writes.
pub(crate) const NESTING_DEPTH_MAX: usize = 64;

/// The largest compiled program a `matches` pattern may produce (the regex crate's `size_limit`), in bytes.
pub(crate) const REGEX_SIZE_BYTES_MAX: usize = 1 << 20;

/// A parsed boolean expression. `Or`/`And` hold two or more operands, in source order.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Match(Match),
}

/// The match operators. `contains` and `in` are one operator with its operands swapped, as in go-bexpr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MatchOp {
    Equal,
    NotEqual,
    In,
    NotIn,
    IsEmpty,
    IsNotEmpty,
    Matches,
    NotMatches,
}

/// One match expression: a selector path, an operator, and (except for `is [not] empty`) a value.
#[derive(Debug, Clone)]
pub(crate) struct Match {
    pub(crate) selector: Vec<String>,
    pub(crate) op: MatchOp,
    pub(crate) value: Option<MatchValue>,
}

/// A match value as written (go-bexpr coerces it to the selected field's type at evaluation), plus the
/// compiled pattern for `matches`.
#[derive(Debug, Clone)]
pub(crate) struct MatchValue {
    pub(crate) raw: String,
    pub(crate) regex: Option<Regex>,
}

/// Parses a whole expression (the caller has already bounded its length).
pub(crate) fn parse(expr: &str) -> Result<Expr, FilterError> {
    let tokens = tokenize(expr)?;
    let end_column = expr.chars().count() + 1;
    let mut parser = Parser { tokens, pos: 0, depth: 0, end_column };
    let parsed = parser.or()?;
    if let Some(token) = parser.peek() {
        return Err(unexpected(token, "\"and\", \"or\" or the end of the expression"));
    }
    debug_assert_eq!(parser.depth, 0, "every nesting level entered was left");
    Ok(parsed)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Current nesting of parentheses and `not`s.
    depth: usize,
    /// The column just past the last character, reported for errors at the end of input.
    end_column: usize,
}

fn unexpected(token: &Token, expected: &'static str) -> FilterError {
    FilterError::UnexpectedToken { found: token.text.clone(), column: token.column, expected }
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn peek_keyword(&self, keyword: Keyword) -> bool {
        matches!(self.peek(), Some(Token { kind: TokenKind::Keyword(k), .. }) if *k == keyword)
    }

    /// The next token, or an "unexpected end" error saying what was `expected`.
    fn next(&mut self, expected: &'static str) -> Result<Token, FilterError> {
        match self.tokens.get(self.pos) {
            Some(token) => {
                self.pos += 1;
                Ok(token.clone())
            }
            None => Err(FilterError::UnexpectedEnd { column: self.end_column, expected }),
        }
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut operands = vec![self.and()?];
        while self.peek_keyword(Keyword::Or) {
            self.pos += 1;
            operands.push(self.and()?);
        }
        Ok(if operands.len() == 1 { operands.remove(0) } else { Expr::Or(operands) })
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut operands = vec![self.unary()?];
        while self.peek_keyword(Keyword::And) {
            self.pos += 1;
            operands.push(self.unary()?);
        }
        Ok(if operands.len() == 1 { operands.remove(0) } else { Expr::And(operands) })
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        let (kind, column) = match self.peek() {
            Some(token) => (token.kind.clone(), token.column),
            None => return Err(FilterError::UnexpectedEnd { column: self.end_column, expected: "a selector" }),
        };
        match kind {
            TokenKind::Keyword(Keyword::Not) => {
                self.enter(column)?;
                self.pos += 1;
                let operand = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Not(Box::new(operand)))
            }
            TokenKind::LParen => {
                self.enter(column)?;
                self.pos += 1;
                let inner = self.or()?;
                let close = self.next("\")\" to close the group")?;
                if close.kind != TokenKind::RParen {
                    return Err(unexpected(&close, "\")\" to close the group"));
                }
                self.depth -= 1;
                Ok(inner)
            }
            _ => self.match_expr().map(Expr::Match),
        }
    }

    fn enter(&mut self, column: usize) -> Result<(), FilterError> {
        if self.depth >= NESTING_DEPTH_MAX {
            return Err(FilterError::TooDeep { column, max_depth: NESTING_DEPTH_MAX });
        }
        self.depth += 1;
        Ok(())
    }

    fn match_expr(&mut self) -> Result<Match, FilterError> {
        let first = self.next("a selector")?;
        let selector = match first.kind {
            TokenKind::Path(segments) => segments,
            TokenKind::Str(_) | TokenKind::Number => return self.value_in_selector(first),
            _ => return Err(unexpected(&first, "a selector")),
        };
        const OPERATOR: &str = "a match operator (==, !=, contains, matches, in, is empty, or a \"not\" form)";
        let operator = self.next(OPERATOR)?;
        let (op, needs_value) = match operator.kind {
            TokenKind::Eq => (MatchOp::Equal, true),
            TokenKind::Ne => (MatchOp::NotEqual, true),
            TokenKind::Keyword(Keyword::Contains) => (MatchOp::In, true),
            TokenKind::Keyword(Keyword::Matches) => (MatchOp::Matches, true),
            TokenKind::Keyword(Keyword::In) => {
                self.pos -= 1;
                return self.value_in_selector(first_as_value(first.text, selector));
            }
            TokenKind::Keyword(Keyword::Is) => (self.emptiness()?, false),
            TokenKind::Keyword(Keyword::Not) => {
                let negated = self.next("\"contains\", \"matches\" or \"in\" after \"not\"")?;
                match negated.kind {
                    TokenKind::Keyword(Keyword::Contains) => (MatchOp::NotIn, true),
                    TokenKind::Keyword(Keyword::Matches) => (MatchOp::NotMatches, true),
                    TokenKind::Keyword(Keyword::In) => {
                        self.pos -= 2;
                        return self.value_in_selector(first_as_value(first.text, selector));
                    }
                    _ => return Err(unexpected(&negated, "\"contains\", \"matches\" or \"in\" after \"not\"")),
                }
            }
            _ => return Err(unexpected(&operator, OPERATOR)),
        };
        let value = if needs_value { Some(self.value(op)?) } else { None };
        Ok(Match { selector, op, value })
    }

    /// After `is`: `empty` or `not empty`.
    fn emptiness(&mut self) -> Result<MatchOp, FilterError> {
        const EXPECTED: &str = "\"empty\" or \"not empty\" after \"is\"";
        let mut token = self.next(EXPECTED)?;
        let negated = token.kind == TokenKind::Keyword(Keyword::Not);
        if negated {
            token = self.next(EXPECTED)?;
        }
        match (token.kind, negated) {
            (TokenKind::Keyword(Keyword::Empty), false) => Ok(MatchOp::IsEmpty),
            (TokenKind::Keyword(Keyword::Empty), true) => Ok(MatchOp::IsNotEmpty),
            (kind, _) => Err(unexpected(&Token { kind, ..token }, EXPECTED)),
        }
    }

    /// `Value ["not"] "in" Selector`, with the value already read as `value`.
    fn value_in_selector(&mut self, value: Token) -> Result<Match, FilterError> {
        const EXPECTED: &str = "\"in\" or \"not in\" after a value";
        let mut token = self.next(EXPECTED)?;
        let negated = token.kind == TokenKind::Keyword(Keyword::Not);
        if negated {
            token = self.next("\"in\" after \"not\"")?;
        }
        if token.kind != TokenKind::Keyword(Keyword::In) {
            return Err(unexpected(&token, if negated { "\"in\" after \"not\"" } else { EXPECTED }));
        }
        let target = self.next("a selector")?;
        let TokenKind::Path(selector) = target.kind else {
            return Err(unexpected(&target, "a selector"));
        };
        let op = if negated { MatchOp::NotIn } else { MatchOp::In };
        Ok(Match { selector, op, value: Some(MatchValue { raw: value_text(&value), regex: None }) })
    }

    /// The value after an operator; for `matches`, compiled as a regular expression.
    fn value(&mut self, op: MatchOp) -> Result<MatchValue, FilterError> {
        let token = self.next("a value")?;
        if matches!(token.kind, TokenKind::LParen | TokenKind::RParen | TokenKind::Eq | TokenKind::Ne) {
            return Err(unexpected(&token, "a value"));
        }
        let raw = value_text(&token);
        let regex = match op {
            MatchOp::Matches | MatchOp::NotMatches => Some(compile(&raw, token.column)?),
            _ => None,
        };
        Ok(MatchValue { raw, regex })
    }
}

/// A selector read before `in` is a bare-word value: keep its token with the path's text.
fn first_as_value(text: String, segments: Vec<String>) -> Token {
    Token { kind: TokenKind::Path(segments), text, column: 0 }
}

/// The raw text of a value token: a string's contents, a number's digits, a path's segments joined by `.`
/// (as go-bexpr's `Selector.String()`), a keyword's word.
fn value_text(token: &Token) -> String {
    match &token.kind {
        TokenKind::Str(s) => s.clone(),
        TokenKind::Path(segments) => segments.join("."),
        _ => token.text.clone(),
    }
}

fn compile(pattern: &str, column: usize) -> Result<Regex, FilterError> {
    RegexBuilder::new(pattern).size_limit(REGEX_SIZE_BYTES_MAX).build().map_err(|e| {
        // The regex crate's syntax errors draw the pattern over several lines; keep the final "error: ..." line.
        let message = e.to_string();
        let reason = message.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("invalid pattern");
        FilterError::InvalidRegex { pattern: pattern.to_string(), column, reason: reason.trim().to_string() }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact rendering of the tree, so tests show structure and precedence at a glance.
    fn sexpr(expr: &Expr) -> String {
        let list = |name: &str, operands: &[Expr]| {
            let inner: Vec<String> = operands.iter().map(sexpr).collect();
            format!("({name} {})", inner.join(" "))
        };
        match expr {
            Expr::Or(operands) => list("or", operands),
            Expr::And(operands) => list("and", operands),
            Expr::Not(operand) => format!("(not {})", sexpr(operand)),
            Expr::Match(m) => {
                let value = m.value.as_ref().map(|v| format!(" {:?}", v.raw)).unwrap_or_default();
                format!("[{} {:?}{value}]", m.selector.join("."), m.op)
            }
        }
    }

    fn tree(expr: &str) -> String {
        sexpr(&parse(expr).expect("parses"))
    }

    fn error(expr: &str) -> String {
        parse(expr).expect_err("must not parse").to_string()
    }

    #[test]
    fn every_operator_parses() {
        assert_eq!(tree("A == x"), r#"[A Equal "x"]"#);
        assert_eq!(tree("A != \"x\""), r#"[A NotEqual "x"]"#);
        assert_eq!(tree("A contains x"), r#"[A In "x"]"#);
        assert_eq!(tree("A not contains x"), r#"[A NotIn "x"]"#);
        assert_eq!(tree("x in A"), r#"[A In "x"]"#);
        assert_eq!(tree("\"x y\" not in A.B"), r#"[A.B NotIn "x y"]"#);
        assert_eq!(tree("A matches `^a.*`"), r#"[A Matches "^a.*"]"#);
        assert_eq!(tree("A not matches \"b$\""), r#"[A NotMatches "b$"]"#);
        assert_eq!(tree("A is empty"), "[A IsEmpty]");
        assert_eq!(tree("A is not empty"), "[A IsNotEmpty]");
        assert_eq!(tree("8080 in Ports"), r#"[Ports In "8080"]"#);
    }

    #[test]
    fn values_keep_their_text_for_later_coercion() {
        assert_eq!(tree("A == 8080"), r#"[A Equal "8080"]"#);
        assert_eq!(tree("A == -1.5"), r#"[A Equal "-1.5"]"#);
        assert_eq!(tree("A == true"), r#"[A Equal "true"]"#);
        assert_eq!(tree("A == b.c[\"d\"]"), r#"[A Equal "b.c.d"]"#);
        assert_eq!(tree("A == empty"), r#"[A Equal "empty"]"#, "a keyword in value position is a bare word");
        assert_eq!(tree("A==x"), r#"[A Equal "x"]"#);
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        assert_eq!(
            tree("A == 1 and not B == 2 or C == 3"),
            r#"(or (and [A Equal "1"] (not [B Equal "2"])) [C Equal "3"])"#
        );
        assert_eq!(
            tree("A == 1 or B == 2 and C == 3"),
            r#"(or [A Equal "1"] (and [B Equal "2"] [C Equal "3"]))"#
        );
        assert_eq!(
            tree("(A == 1 or B == 2) and C == 3"),
            r#"(and (or [A Equal "1"] [B Equal "2"]) [C Equal "3"])"#
        );
        assert_eq!(tree("not not A is empty"), "(not (not [A IsEmpty]))");
        assert_eq!(tree("not (A == 1 and B == 2)"), r#"(not (and [A Equal "1"] [B Equal "2"]))"#);
        assert_eq!(tree(" ( ( A == 1 ) ) "), r#"[A Equal "1"]"#);
    }

    #[test]
    fn errors_name_token_column_and_expectation() {
        assert_eq!(error("A == x or == 1"), r#"filter: unexpected token "==" at column 11, expected a selector"#);
        assert_eq!(error("not and"), r#"filter: unexpected token "and" at column 5, expected a selector"#);
        assert_eq!(error("== 1"), r#"filter: unexpected token "==" at column 1, expected a selector"#);
        assert_eq!(error(""), "filter: unexpected end of expression at column 1, expected a selector");
        assert_eq!(error("A =="), "filter: unexpected end of expression at column 5, expected a value");
        assert_eq!(error("A == )"), r#"filter: unexpected token ")" at column 6, expected a value"#);
        assert_eq!(
            error("A"),
            "filter: unexpected end of expression at column 2, expected a match operator \
             (==, !=, contains, matches, in, is empty, or a \"not\" form)"
        );
        assert_eq!(
            error("A B"),
            "filter: unexpected token \"B\" at column 3, expected a match operator \
             (==, !=, contains, matches, in, is empty, or a \"not\" form)"
        );
        assert_eq!(
            error("A is full"),
            r#"filter: unexpected token "full" at column 6, expected "empty" or "not empty" after "is""#
        );
        assert_eq!(
            error("A not equals x"),
            r#"filter: unexpected token "equals" at column 7, expected "contains", "matches" or "in" after "not""#
        );
        assert_eq!(
            error("\"x\" == A"),
            r#"filter: unexpected token "==" at column 5, expected "in" or "not in" after a value"#
        );
        assert_eq!(error("\"x\" in \"A\""), r#"filter: unexpected token "\"A\"" at column 8, expected a selector"#);
        assert_eq!(
            error("A == 1 B == 2"),
            r#"filter: unexpected token "B" at column 8, expected "and", "or" or the end of the expression"#
        );
        assert_eq!(
            error("(A == 1"),
            r#"filter: unexpected end of expression at column 8, expected ")" to close the group"#
        );
        assert_eq!(
            error("A == 1)"),
            r#"filter: unexpected token ")" at column 7, expected "and", "or" or the end of the expression"#
        );
        assert_eq!(error("A == 1 and"), "filter: unexpected end of expression at column 11, expected a selector");
    }

    #[test]
    fn bad_regex_is_a_parse_error() {
        assert_eq!(
            error("A matches \"(unclosed\""),
            r#"filter: invalid regular expression "(unclosed" at column 11: error: unclosed group"#
        );
    }

    #[test]
    fn nesting_is_bounded_without_overflowing_the_stack() {
        let ok = format!("{}A == 1{}", "(".repeat(NESTING_DEPTH_MAX), ")".repeat(NESTING_DEPTH_MAX));
        assert_eq!(tree(&ok), r#"[A Equal "1"]"#);
        let deep = format!("{}A == 1{}", "(".repeat(NESTING_DEPTH_MAX + 1), ")".repeat(NESTING_DEPTH_MAX + 1));
        assert_eq!(error(&deep), "filter: expression nested deeper than 64 levels at column 65");
        assert_eq!(error(&"(".repeat(10_000)), "filter: expression nested deeper than 64 levels at column 65");
        let nots = format!("{}A is empty", "not ".repeat(NESTING_DEPTH_MAX + 1));
        assert_eq!(error(&nots), "filter: expression nested deeper than 64 levels at column 257");
        // Long and/or chains are loops, not nesting.
        let chain = vec!["A == 1"; 500].join(" and ");
        assert!(matches!(parse(&chain), Ok(Expr::And(operands)) if operands.len() == 500));
    }
}
