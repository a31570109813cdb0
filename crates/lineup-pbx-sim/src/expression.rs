//! Asterisk's substitution of `${...}` and `$[...]` in application data, for the subset the
//! deploy dialplans use.
//!
//! As in Asterisk, substitution runs before the application sees its data: `${NAME}` and
//! `${NAME:offset[:length]}` become the variable's value (empty when unset), and `$[...]` is
//! evaluated once the variables inside it are substituted. Expressions: quoted strings and
//! bare words, `+` and `-` on integers, comparisons `=`, `==`, `!=`, `<`, `>`, `<=`, `>=`
//! (numeric when both sides are integers, otherwise on the strings without their quotes;
//! `1` for true, `0` for false), and parentheses. Anything else (`|`, `&`, `*`, `:`, `?`, ...)
//! is refused when the dialplan is parsed (`check`), so an expression the stand-in would get
//! wrong never runs. At run time an expression that does not evaluate (an empty operand, a
//! word added to a number) gives the empty string.

/// Most nested `${`/`$[` levels followed; deeper text is kept as it is.
pub const SUBSTITUTION_DEPTH_MAX_COUNT: usize = 8;
/// Most tokens in one `$[...]` expression.
pub const EXPRESSION_TOKENS_MAX_COUNT: usize = 64;

/// A `${...}` or `$[...]` span in a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SpanKind {
    Variable,
    Expression,
}

/// The next `${` or `$[` at or after `from`: its kind, start, and the index of its closing
/// bracket (brackets of its own kind are counted, as Asterisk does). `Err(start)` when it is
/// never closed.
fn next_span(text: &str, from: usize) -> Option<Result<(SpanKind, usize, usize), usize>> {
    let bytes = text.as_bytes();
    let mut index = from;
    while index + 1 < bytes.len() {
        let kind = match (bytes[index], bytes[index + 1]) {
            (b'$', b'{') => Some((SpanKind::Variable, b'{', b'}')),
            (b'$', b'[') => Some((SpanKind::Expression, b'[', b']')),
            _ => None,
        };
        if let Some((kind, open, close)) = kind {
            let mut depth = 0usize;
            for (offset, &byte) in bytes[index + 1..].iter().enumerate() {
                if byte == open {
                    depth += 1;
                } else if byte == close {
                    depth -= 1;
                    if depth == 0 {
                        return Some(Ok((kind, index, index + 1 + offset)));
                    }
                }
            }
            return Some(Err(index));
        }
        index += 1;
    }
    None
}

/// Substitutes every `${...}` and `$[...]` of `text`. `lookup` answers a variable's value by
/// name (`EXTEN`, `STASISSTATUS`, `CALLERID(num)`, ...); an unset variable is empty, and a
/// function `lookup` does not know (`NAME(...)`) is kept as written (no modelled effect).
pub fn substitute(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    substitute_at(text, lookup, 0)
}

fn substitute_at(text: &str, lookup: &dyn Fn(&str) -> Option<String>, depth: usize) -> String {
    if depth >= SUBSTITUTION_DEPTH_MAX_COUNT {
        return text.to_string();
    }
    let mut output = String::with_capacity(text.len());
    let mut cursor = 0;
    while let Some(found) = next_span(text, cursor) {
        let Ok((kind, start, end)) = found else { break };
        output.push_str(&text[cursor..start]);
        let inner = substitute_at(&text[start + 2..end], lookup, depth + 1);
        match kind {
            SpanKind::Variable => output.push_str(&variable_value(&inner, lookup)),
            SpanKind::Expression => output.push_str(&evaluate(&inner).unwrap_or_default()),
        }
        cursor = end + 1;
    }
    output.push_str(&text[cursor..]);
    output
}

/// `NAME`, `NAME:offset` or `NAME:offset:length` (a function's name ends at its `)`; a
/// reference ending with `)` is all function, as Asterisk takes its arguments up to the last
/// `)`, so a `)` in a substituted argument stays in it).
fn variable_value(reference: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let name_end = match reference.find('(') {
        Some(_) if reference.ends_with(')') => reference.len(),
        Some(open) => reference[open..].find(')').map(|close| open + close + 1).unwrap_or(reference.len()),
        None => reference.find(':').unwrap_or(reference.len()),
    };
    let (name, range) = reference.split_at(name_end);
    let value = match lookup(name) {
        Some(value) => value,
        None if name.contains('(') => return format!("${{{reference}}}"),
        None => String::new(),
    };
    let Some(range) = range.strip_prefix(':') else { return value };
    let (offset, length) = match range.split_once(':') {
        Some((offset, length)) => (offset, Some(length)),
        None => (range, None),
    };
    let (Ok(offset), Ok(length)) = (offset.trim().parse::<i64>(), length.map(|l| l.trim().parse::<i64>()).transpose())
    else {
        return value;
    };
    substring(&value, offset, length)
}

/// Asterisk's `${VAR:offset:length}`: a negative offset counts from the end, a negative
/// length leaves that many characters off the end.
fn substring(value: &str, offset: i64, length: Option<i64>) -> String {
    let characters: Vec<char> = value.chars().collect();
    let count = characters.len() as i64;
    let start = if offset < 0 { (count + offset).max(0) } else { offset.min(count) };
    let end = match length {
        None => count,
        Some(length) if length < 0 => (count + length).max(start),
        Some(length) => start.saturating_add(length).min(count),
    };
    characters[start as usize..end as usize].iter().collect()
}

/// Whether a condition (GotoIf's) is true: empty and `0` are false, any other number is
/// true when not zero, and any other text is true.
pub fn condition_is_true(condition: &str) -> bool {
    let condition = condition.trim();
    if condition.is_empty() {
        return false;
    }
    match leading_integer(condition) {
        Some(number) => number != 0,
        None => true,
    }
}

/// `sscanf("%d")`: the integer a text starts with, if any.
pub fn leading_integer(text: &str) -> Option<i64> {
    let sign_len = usize::from(text.starts_with(['-', '+']));
    let digits = text[sign_len..].bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    text[..sign_len + digits].parse().ok()
}

/// Checks every `${...}` and `$[...]` of application data as written in the dialplan: spans
/// closed, expressions of the supported grammar (with `${...}` standing for an operand).
pub fn check(text: &str) -> Result<(), String> {
    check_at(text, 0)
}

fn check_at(text: &str, depth: usize) -> Result<(), String> {
    if depth >= SUBSTITUTION_DEPTH_MAX_COUNT {
        return Err("expressions nested too deep".into());
    }
    let mut cursor = 0;
    while let Some(found) = next_span(text, cursor) {
        let (kind, start, end) = found.map_err(|start| format!("unclosed {:?}", &text[start..start + 2]))?;
        let inner = &text[start + 2..end];
        check_at(inner, depth + 1)?;
        if kind == SpanKind::Expression {
            let tokens = tokenize(inner, true)?;
            Parser { tokens: &tokens, position: 0, evaluating: false }
                .parse_all()
                .map_err(|reason| format!("$[{inner}]: {reason}"))?;
        }
        cursor = end + 1;
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// A quoted string, without its quotes.
    Quoted(String),
    Word(String),
    Operator(&'static str),
}

const OPERATORS: [&str; 11] = ["==", "!=", "<=", ">=", "=", "<", ">", "+", "-", "(", ")"];
/// Characters of Asterisk's expression operators the stand-in does not evaluate.
const UNSUPPORTED_OPERATOR_CHARACTERS: &str = "|&*/%!:?~";

/// Splits an expression into tokens. With `atoms`, a `${...}` or `$[...]` span is part of a
/// word (the dialplan as written, before substitution).
fn tokenize(text: &str, atoms: bool) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        let Some(first) = rest.chars().next() else { break };
        if tokens.len() >= EXPRESSION_TOKENS_MAX_COUNT {
            return Err("too many tokens".into());
        }
        if first == '"' {
            let close = rest[1..].find('"').ok_or("unclosed quote")?;
            tokens.push(Token::Quoted(rest[1..1 + close].to_string()));
            rest = &rest[close + 2..];
            continue;
        }
        if let Some(operator) = OPERATORS.iter().find(|operator| rest.starts_with(**operator)) {
            tokens.push(Token::Operator(operator));
            rest = &rest[operator.len()..];
            continue;
        }
        if UNSUPPORTED_OPERATOR_CHARACTERS.contains(first) {
            return Err(format!("operator {first:?} is not modelled"));
        }
        let end = word_end(rest, atoms)?;
        tokens.push(Token::Word(rest[..end].to_string()));
        rest = &rest[end..];
    }
    Ok(tokens)
}

/// Where the word at the start of `text` ends.
fn word_end(text: &str, atoms: bool) -> Result<usize, String> {
    let mut index = 0;
    while index < text.len() {
        if atoms {
            if let Some(Ok((_, start, end))) = next_span(text, index) {
                if start == index {
                    index = end + 1;
                    continue;
                }
            }
        }
        let Some(character) = text[index..].chars().next() else { break };
        let is_boundary = character.is_whitespace()
            || character == '"'
            || UNSUPPORTED_OPERATOR_CHARACTERS.contains(character)
            || OPERATORS.iter().any(|operator| text[index..].starts_with(operator));
        if is_boundary {
            break;
        }
        index += character.len_utf8();
    }
    if index == 0 {
        return Err(format!("unexpected {:?}", text.chars().next().unwrap_or(' ')));
    }
    Ok(index)
}

/// An operand or a result.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Value {
    text: String,
}

impl Value {
    fn number(&self) -> Option<i64> {
        self.text.trim().parse().ok()
    }
}

/// Recursive descent over `comparison := sum (compare sum)*`, `sum := operand (('+'|'-')
/// operand)*`, `operand := quoted | word | '(' comparison ')'`, evaluating as it goes. While
/// checking (`evaluating` false) operands are `${...}` not yet substituted, so only the
/// grammar is checked.
struct Parser<'a> {
    tokens: &'a [Token],
    position: usize,
    evaluating: bool,
}

impl Parser<'_> {
    fn parse_all(mut self) -> Result<Value, String> {
        if self.tokens.is_empty() {
            return Err("empty expression".into());
        }
        let value = self.comparison(0)?;
        match self.tokens.get(self.position) {
            None => Ok(value),
            Some(token) => Err(format!("unexpected {token:?}")),
        }
    }

    fn peek_operator(&self, among: &[&str]) -> Option<&'static str> {
        match self.tokens.get(self.position) {
            Some(Token::Operator(operator)) if among.contains(operator) => Some(operator),
            _ => None,
        }
    }

    fn comparison(&mut self, depth: usize) -> Result<Value, String> {
        let mut left = self.sum(depth)?;
        while let Some(operator) = self.peek_operator(&["==", "!=", "<=", ">=", "=", "<", ">"]) {
            self.position += 1;
            let right = self.sum(depth)?;
            left = compare(&left, operator, &right);
        }
        Ok(left)
    }

    fn sum(&mut self, depth: usize) -> Result<Value, String> {
        let mut left = self.operand(depth)?;
        while let Some(operator) = self.peek_operator(&["+", "-"]) {
            self.position += 1;
            let right = self.operand(depth)?;
            if self.evaluating {
                left = arithmetic(&left, operator, &right)?;
            }
        }
        Ok(left)
    }

    fn operand(&mut self, depth: usize) -> Result<Value, String> {
        let token = self.tokens.get(self.position).ok_or("missing operand")?;
        self.position += 1;
        match token {
            Token::Quoted(text) | Token::Word(text) => Ok(Value { text: text.clone() }),
            Token::Operator("(") if depth < SUBSTITUTION_DEPTH_MAX_COUNT => {
                let value = self.comparison(depth + 1)?;
                match self.tokens.get(self.position) {
                    Some(Token::Operator(")")) => {
                        self.position += 1;
                        Ok(value)
                    }
                    _ => Err("unclosed (".into()),
                }
            }
            Token::Operator(operator) => Err(format!("operand expected, found {operator:?}")),
        }
    }
}

/// Numbers compare as numbers, anything else as strings.
fn compare(left: &Value, operator: &str, right: &Value) -> Value {
    let ordering = match (left.number(), right.number()) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => left.text.cmp(&right.text),
    };
    let holds = match operator {
        "=" | "==" => ordering.is_eq(),
        "!=" => ordering.is_ne(),
        "<" => ordering.is_lt(),
        ">" => ordering.is_gt(),
        "<=" => ordering.is_le(),
        _ => ordering.is_ge(),
    };
    Value { text: if holds { "1" } else { "0" }.into() }
}

/// Integer `+` and `-`; a non-number or an overflow does not evaluate.
fn arithmetic(left: &Value, operator: &str, right: &Value) -> Result<Value, String> {
    let (Some(a), Some(b)) = (left.number(), right.number()) else {
        return Err(format!("non-numeric operand of {operator}"));
    };
    let result = if operator == "+" { a.checked_add(b) } else { a.checked_sub(b) };
    result.map(|n| Value { text: n.to_string() }).ok_or_else(|| "integer overflow".into())
}

/// Evaluates a substituted expression; `None` when it does not evaluate.
fn evaluate(expression: &str) -> Option<String> {
    let tokens = tokenize(expression, false).ok()?;
    Parser { tokens: &tokens, position: 0, evaluating: true }.parse_all().ok().map(|value| value.text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn with(variables: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> =
            variables.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn variables_and_ranges_substitute() {
        let lookup = with(&[("EXTEN", "*551042"), ("TRIES", "3")]);
        assert_eq!(substitute("operator=${EXTEN:3}", &lookup), "operator=1042");
        assert_eq!(substitute("${EXTEN:-2}|${EXTEN:1:2}|${EXTEN:0:-4}", &lookup), "42|55|*55");
        assert_eq!(substitute("[${UNSET}]", &lookup), "[]");
        assert_eq!(substitute("${CALLERID(num)}", &lookup), "${CALLERID(num)}");
        assert_eq!(substitute("${EXTEN:${TRIES}}", &lookup), "1042");
    }

    #[test]
    fn expressions_evaluate_like_asterisk() {
        let lookup = with(&[("STASISSTATUS", "FAILED"), ("TRIES", "14"), ("RESULT", "")]);
        for (text, expected) in [
            ("$[\"${STASISSTATUS}\" = \"FAILED\"]", "1"),
            ("$[\"${STASISSTATUS}\" != \"FAILED\"]", "0"),
            ("$[\"${RESULT}\" = \"TIMEOUT\"]", "0"),
            ("$[${TRIES} + 1]", "15"),
            ("$[${TRIES} - 20]", "-6"),
            ("$[${TRIES} < 15]", "1"),
            ("$[${TRIES} > 15]", "0"),
            ("$[${TRIES} >= 14]", "1"),
            // Numbers compare as numbers, words as strings.
            ("$[9 < 10]", "1"),
            ("$[b < a]", "0"),
            ("$[(${TRIES} + 1) = 15]", "1"),
            ("TRIES=$[${TRIES} + 1]", "TRIES=15"),
            // An empty operand does not evaluate: the empty string.
            ("[$[${UNSET} + 1]]", "[]"),
            ("[$[word + 1]]", "[]"),
        ] {
            assert_eq!(substitute(text, &lookup), expected, "{text}");
        }
    }

    #[test]
    fn conditions_are_true_like_gotoif() {
        assert!(condition_is_true("1"));
        assert!(condition_is_true("yes"));
        assert!(condition_is_true("-3"));
        assert!(!condition_is_true(""));
        assert!(!condition_is_true("0"));
        assert!(!condition_is_true(" 0 "));
    }

    #[test]
    fn checks_refuse_what_is_not_modelled() {
        assert!(check("$[\"${STASISSTATUS}\" = \"FAILED\"]?down").is_ok());
        assert!(check("LINEUP_TRIES=$[${LINEUP_TRIES} + 1]").is_ok());
        assert!(check("lineup,xfer=${EXTEN:7}").is_ok());
        for bad in ["${EXTEN", "$[1 + 1", "$[1 | 2]", "$[${A} * 2]", "$[]", "$[1 +]", "$[(1]", "$[\"a = b]", "$[1 2]"] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
