//! The lexer of the filter language: turns an expression into [`Token`]s, each with its 1-based column.
//!
//! Owns the character-level rules of go-bexpr's `grammar.peg` (hashicorp/go-bexpr): identifiers start with an
//! ASCII letter and go on with letters, digits, `_` and `/`; a selector path is written without spaces
//! (`Service.Meta["some key"].x`); numbers are `-?(0|[1-9][0-9]*)(\.[0-9]+)?` and must be followed by
//! whitespace, `)` or the end; strings are `"double quoted"` (Go escapes) or `` `raw` ``. It never decides what
//! a token means in its position: a lone keyword such as `empty` is still usable as a bare value by the parser.

use super::FilterError;

/// The longest selector path, in segments (`A.B["c"].d` has four). Not in go-bexpr; a bound so evaluation
/// depth stays small whatever the input.
pub(crate) const SELECTOR_SEGMENTS_MAX: usize = 64;

/// The words with a meaning of their own between match operands. Case-sensitive, as in go-bexpr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyword {
    And,
    Or,
    Not,
    In,
    Contains,
    Matches,
    Is,
    Empty,
}

impl Keyword {
    fn from_word(word: &str) -> Option<Keyword> {
        Some(match word {
            "and" => Keyword::And,
            "or" => Keyword::Or,
            "not" => Keyword::Not,
            "in" => Keyword::In,
            "contains" => Keyword::Contains,
            "matches" => Keyword::Matches,
            "is" => Keyword::Is,
            "empty" => Keyword::Empty,
            _ => return None,
        })
    }
}

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    /// A selector path of one or more segments (bare words, `.0` indexes, `["quoted"]` keys).
    Path(Vec<String>),
    /// A string literal, unquoted.
    Str(String),
    /// A number literal; its text is in [`Token::text`].
    Number,
    /// A reserved word written alone (not part of a longer path).
    Keyword(Keyword),
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `(`
    LParen,
    /// `)`
    RParen,
}

/// One token with its source text and the 1-based column (in characters) where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) text: String,
    pub(crate) column: usize,
}

/// Splits `expr` into tokens, or names the first character that cannot start or continue one.
pub(crate) fn tokenize(expr: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = expr.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let kind = match c {
            ' ' | '\t' | '\r' | '\n' => {
                i += 1;
                continue;
            }
            '(' => {
                i += 1;
                TokenKind::LParen
            }
            ')' => {
                i += 1;
                TokenKind::RParen
            }
            '=' | '!' if chars.get(i + 1) == Some(&'=') => {
                i += 2;
                if c == '=' { TokenKind::Eq } else { TokenKind::Ne }
            }
            '"' | '`' => {
                let (value, end) = string_literal(&chars, i)?;
                i = end;
                TokenKind::Str(value)
            }
            '-' | '0'..='9' => {
                i = number_literal(&chars, i)?;
                TokenKind::Number
            }
            c if c.is_ascii_alphabetic() => {
                let (segments, end) = path(&chars, i)?;
                i = end;
                match segments.as_slice() {
                    [word] if !chars[start..end].contains(&'[') => match Keyword::from_word(word) {
                        Some(keyword) => TokenKind::Keyword(keyword),
                        None => TokenKind::Path(segments),
                    },
                    _ => TokenKind::Path(segments),
                }
            }
            other => return Err(FilterError::UnexpectedChar { found: other, column: start + 1 }),
        };
        tokens.push(Token { kind, text: chars[start..i].iter().collect(), column: start + 1 });
    }
    Ok(tokens)
}

fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '/'
}

/// An identifier starting at `i` (an ASCII letter): returns it and the index after it.
fn identifier(chars: &[char], mut i: usize) -> (String, usize) {
    let start = i;
    while i < chars.len() && is_identifier_char(chars[i]) {
        i += 1;
    }
    (chars[start..i].iter().collect(), i)
}

/// A selector path starting at `i`: `ident ( "." ident | "." digits | "[" _? string _? "]" )*`.
fn path(chars: &[char], i: usize) -> Result<(Vec<String>, usize), FilterError> {
    let (first, mut i) = identifier(chars, i);
    let mut segments = vec![first];
    loop {
        match (chars.get(i), chars.get(i + 1)) {
            (Some('.'), Some(c)) if c.is_ascii_alphabetic() => {
                let (segment, end) = identifier(chars, i + 1);
                segments.push(segment);
                i = end;
            }
            (Some('.'), Some(c)) if c.is_ascii_digit() => {
                let start = i + 1;
                i = start;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                segments.push(chars[start..i].iter().collect());
            }
            (Some('['), _) => {
                let (segment, end) = index(chars, i)?;
                segments.push(segment);
                i = end;
            }
            _ => break,
        }
        if segments.len() > SELECTOR_SEGMENTS_MAX {
            return Err(FilterError::SelectorTooLong { column: i + 1, max_segments: SELECTOR_SEGMENTS_MAX });
        }
    }
    Ok((segments, i))
}

/// An index expression `[ "key" ]` starting at the `[` at `open`.
fn index(chars: &[char], open: usize) -> Result<(String, usize), FilterError> {
    let mut i = skip_whitespace(chars, open + 1);
    if !matches!(chars.get(i), Some('"') | Some('`')) {
        return Err(unexpected_at(chars, i, "a quoted map key after \"[\""));
    }
    let (key, end) = string_literal(chars, i)?;
    i = skip_whitespace(chars, end);
    if chars.get(i) != Some(&']') {
        return Err(unexpected_at(chars, i, "\"]\" to close the index"));
    }
    Ok((key, i + 1))
}

fn skip_whitespace(chars: &[char], mut i: usize) -> usize {
    while matches!(chars.get(i), Some(' ' | '\t' | '\r' | '\n')) {
        i += 1;
    }
    i
}

/// The error for character `i` not being what was `expected` (or for the input ending there).
fn unexpected_at(chars: &[char], i: usize, expected: &'static str) -> FilterError {
    match chars.get(i) {
        Some(c) => FilterError::UnexpectedToken { found: c.to_string(), column: i + 1, expected },
        None => FilterError::UnexpectedEnd { column: i + 1, expected },
    }
}

/// A number literal starting at `i`; returns the index after it.
fn number_literal(chars: &[char], start: usize) -> Result<usize, FilterError> {
    let digits_from = |mut i: usize| {
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = start;
    if chars[i] == '-' {
        i += 1;
    }
    let integer_start = i;
    i = match chars.get(i) {
        Some('0') => i + 1,
        Some(c) if c.is_ascii_digit() => digits_from(i),
        _ => return Err(FilterError::UnexpectedChar { found: chars[start], column: start + 1 }),
    };
    if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
        i = digits_from(i + 1);
    }
    let well_ended = match chars.get(i) {
        None => true,
        Some(c) => matches!(c, ' ' | '\t' | '\r' | '\n' | ')'),
    };
    if !well_ended || i == integer_start {
        // Report the whole run up to the next delimiter, as a reader would see the bad literal.
        let mut end = i;
        while end < chars.len() && !matches!(chars[end], ' ' | '\t' | '\r' | '\n' | '(' | ')') {
            end += 1;
        }
        return Err(FilterError::InvalidNumber { text: chars[start..end].iter().collect(), column: start + 1 });
    }
    Ok(i)
}

/// A `"double"` (Go escapes) or `` `raw` `` string literal starting at its opening quote.
/// Returns the unquoted value and the index after the closing quote.
fn string_literal(chars: &[char], open: usize) -> Result<(String, usize), FilterError> {
    let quote = chars[open];
    let mut value = String::new();
    let mut i = open + 1;
    while let Some(&c) = chars.get(i) {
        if c == quote {
            return Ok((value, i + 1));
        }
        if c == '\\' && quote == '"' {
            let (unescaped, end) = escape(chars, i)?;
            value.push(unescaped);
            i = end;
            continue;
        }
        // Go's strconv.Unquote drops carriage returns from raw strings.
        if !(c == '\r' && quote == '`') {
            value.push(c);
        }
        i += 1;
    }
    Err(FilterError::UnterminatedString { column: open + 1 })
}

/// The escape sequence at `i` (a backslash), as Go's `strconv.Unquote` reads it. `\"` is accepted too
/// (go-bexpr ends a string at the first `"` whatever precedes it, so it rejects every input that has one).
fn escape(chars: &[char], i: usize) -> Result<(char, usize), FilterError> {
    let invalid = |end: usize| FilterError::InvalidEscape {
        escape: chars[i..end.min(chars.len())].iter().collect(),
        column: i + 1,
    };
    let simple = match chars.get(i + 1) {
        None => return Err(FilterError::UnterminatedString { column: i + 1 }),
        Some('a') => Some('\u{07}'),
        Some('b') => Some('\u{08}'),
        Some('f') => Some('\u{0c}'),
        Some('n') => Some('\n'),
        Some('r') => Some('\r'),
        Some('t') => Some('\t'),
        Some('v') => Some('\u{0b}'),
        Some('\\') => Some('\\'),
        Some('"') => Some('"'),
        Some('\'') => Some('\''),
        Some(_) => None,
    };
    if let Some(c) = simple {
        return Ok((c, i + 2));
    }
    let (radix, digits, first) = match chars.get(i + 1) {
        Some('x') => (16, 2, i + 2),
        Some('u') => (16, 4, i + 2),
        Some('U') => (16, 8, i + 2),
        Some('0'..='7') => (8, 3, i + 1),
        _ => return Err(invalid(i + 2)),
    };
    let end = first + digits;
    let text: String = chars.get(first..end).ok_or_else(|| invalid(end))?.iter().collect();
    let code = u32::from_str_radix(&text, radix).map_err(|_| invalid(end))?;
    if radix == 8 && code > 0xff {
        return Err(invalid(end));
    }
    let c = char::from_u32(code).ok_or_else(|| invalid(end))?;
    Ok((c, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(expr: &str) -> Vec<TokenKind> {
        tokenize(expr).expect("lexes").into_iter().map(|t| t.kind).collect()
    }

    fn path(segments: &[&str]) -> TokenKind {
        TokenKind::Path(segments.iter().map(|s| s.to_string()).collect())
    }

    fn error(expr: &str) -> String {
        tokenize(expr).expect_err("must not lex").to_string()
    }

    #[test]
    fn dotted_indexed_and_numeric_segments_form_one_path() {
        assert_eq!(
            kinds(r#"Service.Meta["some key"].x.0[ `raw` ]"#),
            vec![path(&["Service", "Meta", "some key", "x", "0", "raw"])]
        );
        assert_eq!(kinds(r#"Meta[ "k" ]"#), vec![path(&["Meta", "k"])]);
        assert_eq!(kinds("a/b_C9"), vec![path(&["a/b_C9"])]);
        // No whitespace inside a path, as in go-bexpr: `A .b` and `A ["b"]` are not one selector.
        assert_eq!(tokenize("A .b").expect_err("no").to_string(), "filter: unexpected character '.' at column 3");
        assert_eq!(tokenize(r#"A ["b"]"#).expect_err("no").to_string(), "filter: unexpected character '[' at column 3");
    }

    #[test]
    fn operators_keywords_and_columns() {
        let tokens = tokenize("not (A==1) and\tB != x or c in d").expect("lexes");
        let columns: Vec<usize> = tokens.iter().map(|t| t.column).collect();
        assert_eq!(columns, vec![1, 5, 6, 7, 9, 10, 12, 16, 18, 21, 23, 26, 28, 31]);
        assert_eq!(tokens[0].kind, TokenKind::Keyword(Keyword::Not));
        assert_eq!(tokens[3].kind, TokenKind::Eq);
        assert_eq!(tokens[4].kind, TokenKind::Number);
        assert_eq!(tokens[4].text, "1");
        assert_eq!(tokens[8].kind, TokenKind::Ne);
        // A keyword is only a keyword alone: `Meta.in` and `in["x"]` are paths.
        assert_eq!(kinds("Meta.in"), vec![path(&["Meta", "in"])]);
        assert_eq!(kinds(r#"in["x"]"#), vec![path(&["in", "x"])]);
        assert_eq!(kinds("Empty"), vec![path(&["Empty"])]);
    }

    #[test]
    fn double_quoted_strings_read_go_escapes() {
        assert_eq!(
            kinds(r#""a\tb\n\\ \" \x41\101\u00e9\U0001F600""#),
            vec![TokenKind::Str("a\tb\n\\ \" AAé😀".to_string())]
        );
        assert_eq!(kinds("\"multi byte: é\""), vec![TokenKind::Str("multi byte: é".to_string())]);
    }

    #[test]
    fn backtick_strings_are_raw() {
        assert_eq!(kinds(r"`a\n\x`"), vec![TokenKind::Str(r"a\n\x".to_string())]);
        assert_eq!(kinds("`a\r\nb`"), vec![TokenKind::Str("a\nb".to_string())]);
    }

    #[test]
    fn numbers_follow_go_bexpr() {
        for ok in ["0", "-0", "8080", "-12", "3.25", "0.5"] {
            assert_eq!(kinds(ok), vec![TokenKind::Number], "{ok}");
        }
        assert_eq!(kinds("(1)"), vec![TokenKind::LParen, TokenKind::Number, TokenKind::RParen]);
        assert_eq!(error("A == 01"), r#"filter: invalid number literal "01" at column 6"#);
        assert_eq!(error("A == 12abc"), r#"filter: invalid number literal "12abc" at column 6"#);
        assert_eq!(error("A == 1."), r#"filter: invalid number literal "1." at column 6"#);
        assert_eq!(error("A == -x"), "filter: unexpected character '-' at column 6");
    }

    #[test]
    fn errors_name_the_character_and_column() {
        assert_eq!(error("A = 1"), "filter: unexpected character '=' at column 3");
        assert_eq!(error("A == us-east"), "filter: unexpected character '-' at column 8");
        assert_eq!(error("A == \"open"), "filter: unterminated string literal starting at column 6");
        assert_eq!(error("A == `open"), "filter: unterminated string literal starting at column 6");
        assert_eq!(error(r#"A == "\q""#), r#"filter: invalid escape "\\q" in string at column 7"#);
        assert_eq!(error(r#"A == "\u12""#), r#"filter: invalid escape "\\u12\"" in string at column 7"#);
        assert_eq!(error(r#"A == "\777""#), r#"filter: invalid escape "\\777" in string at column 7"#);
        assert_eq!(error(r#"A == "\ud800x""#), r#"filter: invalid escape "\\ud800" in string at column 7"#);
        assert_eq!(
            error("Meta[key]"),
            r#"filter: unexpected token "k" at column 6, expected a quoted map key after "[""#
        );
        assert_eq!(
            error(r#"Meta["key" == 1"#),
            r#"filter: unexpected token "=" at column 12, expected "]" to close the index"#
        );
        assert_eq!(
            error(r#"Meta["key""#),
            r#"filter: unexpected end of expression at column 11, expected "]" to close the index"#
        );
        assert_eq!(error("A == é"), "filter: unexpected character 'é' at column 6");
    }

    #[test]
    fn selector_paths_are_bounded() {
        let long = vec!["a"; SELECTOR_SEGMENTS_MAX + 1].join(".");
        assert_eq!(
            error(&long),
            format!("filter: selector has more than {SELECTOR_SEGMENTS_MAX} segments at column 130")
        );
        let ok = vec!["a"; SELECTOR_SEGMENTS_MAX].join(".");
        assert_eq!(kinds(&ok).len(), 1);
    }
}
