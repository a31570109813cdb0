//! The slice of `extensions.conf` the stand-in executes.
//!
//! The stand-in runs the very snippets in `deploy/asterisk/extensions.conf`, so what a user
//! copies onto a real Asterisk is what the tests exercise. Supported: `[context]` sections,
//! `exten => pattern,priority,App(data)` and `same => n,App(data)`, patterns with `_`, `X`,
//! `Z`, `N` (either case, as in Asterisk), `.`, `!` and `[..]`, and `${EXTEN}` / `${EXTEN:offset}` in application data.
//! Applications with a modelled effect: `Answer`, `Wait`, `Stasis`, `Set`, `Hangup`; others
//! (for example `NoOp`, `Verbose`) are kept and executed as no-ops.

use crate::error::SimError;
use std::collections::BTreeMap;

/// Most lines accepted in one dialplan text.
pub const DIALPLAN_LINES_MAX_COUNT: usize = 10_000;
/// Most priorities one extension may have.
pub const EXTENSION_PRIORITIES_MAX_COUNT: usize = 64;

/// One dialplan step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialplanStep {
    pub application: String,
    pub data: String,
}

/// One extension: its pattern and its steps by priority (1-based, contiguous).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    pub pattern: String,
    pub steps: Vec<DialplanStep>,
}

/// A parsed dialplan: contexts in file order, extensions in file order within each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dialplan {
    contexts: BTreeMap<String, Vec<Extension>>,
}

fn strip_comment(line: &str) -> &str {
    match line.find(';') {
        Some(index) => &line[..index],
        None => line,
    }
}

/// Splits `App(data)` into its parts.
fn parse_application(text: &str, line: usize) -> Result<DialplanStep, SimError> {
    let text = text.trim();
    let (application, data) = match text.find('(') {
        Some(open) => {
            if !text.ends_with(')') {
                return Err(SimError::Dialplan { line, reason: format!("unbalanced parentheses in {text:?}") });
            }
            (&text[..open], &text[open + 1..text.len() - 1])
        }
        None => (text, ""),
    };
    if application.is_empty() || !application.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(SimError::Dialplan { line, reason: format!("bad application name {application:?}") });
    }
    Ok(DialplanStep { application: application.to_string(), data: data.to_string() })
}

impl Dialplan {
    /// Parses the supported subset; anything else is an error naming the line.
    pub fn parse(text: &str) -> Result<Dialplan, SimError> {
        let mut dialplan = Dialplan::default();
        let mut context: Option<String> = None;
        for (index, raw) in text.lines().enumerate() {
            let line_number = index + 1;
            if line_number > DIALPLAN_LINES_MAX_COUNT {
                return Err(SimError::Dialplan { line: line_number, reason: "too many lines".into() });
            }
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('[') {
                let name = name
                    .strip_suffix(']')
                    .ok_or_else(|| SimError::Dialplan { line: line_number, reason: "unclosed [".into() })?;
                context = Some(name.trim().to_string());
                dialplan.contexts.entry(name.trim().to_string()).or_default();
                continue;
            }
            let (keyword, rest) = line.split_once("=>").ok_or_else(|| SimError::Dialplan {
                line: line_number,
                reason: format!("expected `=>` in {line:?}"),
            })?;
            let context_name = context
                .clone()
                .ok_or_else(|| SimError::Dialplan { line: line_number, reason: "line outside a [context]".into() })?;
            let extensions = dialplan.contexts.entry(context_name).or_default();
            match keyword.trim() {
                "exten" => {
                    let mut parts = rest.splitn(3, ',');
                    let pattern = parts.next().unwrap_or("").trim().to_string();
                    let priority = parts.next().unwrap_or("").trim();
                    let application = parts.next().ok_or_else(|| SimError::Dialplan {
                        line: line_number,
                        reason: "exten needs 3 fields".into(),
                    })?;
                    if pattern.is_empty() {
                        return Err(SimError::Dialplan { line: line_number, reason: "empty pattern".into() });
                    }
                    let step = parse_application(application, line_number)?;
                    if priority == "1" {
                        extensions.push(Extension { pattern, steps: vec![step] });
                    } else {
                        let extension =
                            extensions.iter_mut().rev().find(|extension| extension.pattern == pattern).ok_or_else(
                                || SimError::Dialplan {
                                    line: line_number,
                                    reason: format!("priority {priority} of {pattern} without priority 1"),
                                },
                            )?;
                        let expected = extension.steps.len() + 1;
                        if priority != "n" && priority != expected.to_string() {
                            return Err(SimError::Dialplan {
                                line: line_number,
                                reason: format!("priority {priority} where {expected} or n was expected"),
                            });
                        }
                        extension.steps.push(step);
                    }
                }
                "same" => {
                    let (priority, application) = rest.split_once(',').ok_or_else(|| SimError::Dialplan {
                        line: line_number,
                        reason: "same needs 2 fields".into(),
                    })?;
                    let extension = extensions.last_mut().ok_or_else(|| SimError::Dialplan {
                        line: line_number,
                        reason: "same before any exten".into(),
                    })?;
                    let expected = extension.steps.len() + 1;
                    let priority = priority.trim();
                    if priority != "n" && priority != expected.to_string() {
                        return Err(SimError::Dialplan {
                            line: line_number,
                            reason: format!("priority {priority} where {expected} or n was expected"),
                        });
                    }
                    extension.steps.push(parse_application(application, line_number)?);
                }
                other => {
                    return Err(SimError::Dialplan {
                        line: line_number,
                        reason: format!("unsupported keyword {other:?}"),
                    })
                }
            }
            if extensions.iter().any(|extension| extension.steps.len() > EXTENSION_PRIORITIES_MAX_COUNT) {
                return Err(SimError::Dialplan { line: line_number, reason: "too many priorities".into() });
            }
        }
        Ok(dialplan)
    }

    /// The first extension of `context` whose pattern matches `exten`.
    pub fn find(&self, context: &str, exten: &str) -> Option<&Extension> {
        self.contexts.get(context)?.iter().find(|extension| pattern_matches(&extension.pattern, exten))
    }

    /// Every step of every extension, with its context and pattern (for checks over a whole
    /// file, such as "every Stasis argument list parses").
    pub fn steps(&self) -> impl Iterator<Item = (&str, &str, usize, &DialplanStep)> {
        self.contexts.iter().flat_map(|(context, extensions)| {
            extensions.iter().flat_map(move |extension| {
                extension
                    .steps
                    .iter()
                    .enumerate()
                    .map(move |(index, step)| (context.as_str(), extension.pattern.as_str(), index + 1, step))
            })
        })
    }
}

/// Asterisk's extension pattern matching (without the `_` literal-vs-pattern ambiguity:
/// a pattern starts with `_`, anything else is literal).
pub fn pattern_matches(pattern: &str, exten: &str) -> bool {
    let Some(pattern) = pattern.strip_prefix('_') else {
        return pattern == exten;
    };
    let pattern: Vec<char> = pattern.chars().collect();
    let exten: Vec<char> = exten.chars().collect();
    let mut p = 0;
    let mut e = 0;
    while p < pattern.len() {
        match pattern[p] {
            '.' => return e < exten.len(),
            '!' => return true,
            '[' => {
                let Some(close) = pattern[p..].iter().position(|&c| c == ']') else {
                    return false;
                };
                let class = &pattern[p + 1..p + close];
                let Some(&character) = exten.get(e) else {
                    return false;
                };
                if !character_class_contains(class, character) {
                    return false;
                }
                p += close + 1;
                e += 1;
                continue;
            }
            symbol => {
                let Some(&character) = exten.get(e) else {
                    return false;
                };
                let matched = match symbol {
                    'X' | 'x' => character.is_ascii_digit(),
                    'Z' | 'z' => ('1'..='9').contains(&character),
                    'N' | 'n' => ('2'..='9').contains(&character),
                    literal => literal == character,
                };
                if !matched {
                    return false;
                }
            }
        }
        p += 1;
        e += 1;
    }
    e == exten.len()
}

fn character_class_contains(class: &[char], character: char) -> bool {
    let mut index = 0;
    while index < class.len() {
        if index + 2 < class.len() && class[index + 1] == '-' {
            if (class[index]..=class[index + 2]).contains(&character) {
                return true;
            }
            index += 3;
        } else {
            if class[index] == character {
                return true;
            }
            index += 1;
        }
    }
    false
}

/// Expands `${EXTEN}` and `${EXTEN:offset}` in application data; other expressions are kept
/// as they are (the stand-in has no expression engine).
pub fn substitute_exten(data: &str, exten: &str) -> String {
    let mut output = String::with_capacity(data.len());
    let mut rest = data;
    while let Some(start) = rest.find("${EXTEN") {
        output.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            output.push_str(&rest[start..]);
            return output;
        };
        let expression = &after[..end];
        let replacement = match expression.strip_prefix("EXTEN") {
            Some("") => Some(exten.to_string()),
            Some(offset) => offset
                .strip_prefix(':')
                .and_then(|offset| offset.parse::<usize>().ok())
                .map(|offset| exten.chars().skip(offset).collect()),
            None => None,
        };
        match replacement {
            Some(text) => output.push_str(&text),
            None => output.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    output.push_str(rest);
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "
[callers]                         ; a comment
exten => sales,1,Stasis(lineup,queue=sales,gate=web)
 same => n,Hangup()
exten => _li[n]eup-.,1,Stasis(lineup,xfer=${EXTEN:7})
[phone]
exten => 100,1,Answer()
exten => 100,2,Wait(600)
";

    #[test]
    fn parses_exten_and_same_lines() {
        let dialplan = Dialplan::parse(SAMPLE).unwrap();
        let sales = dialplan.find("callers", "sales").unwrap();
        assert_eq!(sales.steps.len(), 2);
        assert_eq!(
            sales.steps[0],
            DialplanStep { application: "Stasis".into(), data: "lineup,queue=sales,gate=web".into() }
        );
        assert_eq!(dialplan.find("phone", "100").unwrap().steps[1].application, "Wait");
        assert!(dialplan.find("phone", "101").is_none());
        assert_eq!(dialplan.steps().count(), 5);
    }

    #[test]
    fn patterns_match_like_asterisk() {
        // N, X and Z are pattern letters in either case, as in Asterisk: a literal `n` must be
        // written `[n]`, or `_lineup-.` would demand a digit 2-9 in third place.
        assert!(!pattern_matches("_lineup-.", "lineup-c42"));
        assert!(pattern_matches("_li[n]eup-.", "lineup-c42"));
        assert!(!pattern_matches("_li[n]eup-.", "lineup-"));
        assert!(pattern_matches("_NXX", "212"));
        assert!(!pattern_matches("_NXX", "112"));
        assert!(pattern_matches("_[1-3]X!", "25"));
        assert!(pattern_matches("_ZX", "10"));
        assert!(!pattern_matches("_ZX", "01"));
        assert!(pattern_matches("sales", "sales"));
        assert!(!pattern_matches("sales", "sale"));
    }

    #[test]
    fn exten_substitution() {
        assert_eq!(substitute_exten("lineup,xfer=${EXTEN:7}", "lineup-c42"), "lineup,xfer=c42");
        assert_eq!(substitute_exten("${EXTEN}-${CALLERID(num)}", "5"), "5-${CALLERID(num)}");
    }

    #[test]
    fn bad_dialplans_name_the_line() {
        for (text, line) in [
            ("exten => a,1,Answer()", 1),
            ("[c]\nexten => a,2,Answer()", 2),
            ("[c]\nexten => a,1,Answer(", 2),
            ("[c]\nsame => n,Answer()", 2),
            ("[c]\ninclude => other", 2),
            ("[c]\nexten => a,1,Answer()\nexten => a,3,Wait(1)", 3),
        ] {
            match Dialplan::parse(text) {
                Err(SimError::Dialplan { line: got, .. }) => assert_eq!(got, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
