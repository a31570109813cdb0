//! The slice of `extensions.conf` the stand-in executes.
//!
//! The stand-in runs the very snippets in `deploy/asterisk/extensions.conf`, so what a user
//! copies onto a real Asterisk is what the tests exercise. Supported: `[context]` sections,
//! `exten => pattern,priority,App(data)` and `same => n,App(data)`, priorities `1`, `2`, ...
//! or `n`, each with an optional label (`n(retry)`), patterns with `_`, `X`, `Z`, `N` (either
//! case, as in Asterisk), `.`, `!` and `[..]`, and in application data `${VAR}` /
//! `${VAR:offset[:length]}` and `$[...]` expressions (`expression`).
//! Applications with a modelled effect: `Answer`, `Wait`, `MusicOnHold`, `Stasis`, `Set`
//! (`DB(family/key)=` and `CHANNEL(hangup_handler_push)=` too), `Goto`, `GotoIf`, `Hangup`,
//! and `Return` ending a hangup handler; others (for example `NoOp`, `Queue`, `Playback`) are
//! kept and executed as no-ops. Read: `${EPOCH}`, `${UNIQUEID}`, `${CALLERID(num)}`,
//! `${DB(family/key)}`, `${DB_KEYS(family)}` and a hangup handler's `${ARG1}`.. (`world/astdb.rs`).
//!
//! The parser is strict: besides the line syntax it checks every `${`/`$[` span and
//! expression, duplicate labels, and every `Goto`/`GotoIf` destination written literally
//! (the context, the extension, the priority or label must exist in this text), naming the
//! line, so a snippet that would misbehave on a real Asterisk fails here first.

use crate::error::SimError;
use crate::expression;
use std::collections::BTreeMap;

/// Most lines accepted in one dialplan text.
pub const DIALPLAN_LINES_MAX_COUNT: usize = 10_000;
/// Most priorities one extension may have.
pub const EXTENSION_PRIORITIES_MAX_COUNT: usize = 64;
/// Longest priority label.
pub const LABEL_MAX_LEN: usize = 64;

/// One dialplan step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialplanStep {
    pub application: String,
    pub data: String,
    /// The priority's label (`n(retry)` → `retry`), if any.
    pub label: Option<String>,
    /// The line of the dialplan text it was written on.
    pub line: usize,
}

/// One extension: its pattern and its steps by priority (1-based, contiguous).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    pub pattern: String,
    pub steps: Vec<DialplanStep>,
}

impl Extension {
    /// The priority carrying `label`.
    pub fn label_priority(&self, label: &str) -> Option<i64> {
        let index = self.steps.iter().position(|step| step.label.as_deref() == Some(label))?;
        i64::try_from(index + 1).ok()
    }

    /// The priority a Goto destination's priority field names: a number, or a label of this
    /// extension.
    pub fn resolve_priority(&self, priority: &str) -> Option<i64> {
        match priority.parse::<i64>() {
            Ok(number) => (number >= 1).then_some(number),
            Err(_) => self.label_priority(priority),
        }
    }
}

/// A `Goto` destination, `[[context,]exten,]priority`, split into its fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GotoTarget {
    pub context: Option<String>,
    pub exten: Option<String>,
    /// A priority number or a label.
    pub priority: String,
}

impl GotoTarget {
    /// Splits `[[context,]exten,]priority` (fields trimmed); `None` when it has no priority
    /// or more than three fields.
    pub fn parse(text: &str) -> Option<GotoTarget> {
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        let target = match fields.as_slice() {
            [priority] => GotoTarget { context: None, exten: None, priority: priority.to_string() },
            [exten, priority] => {
                GotoTarget { context: None, exten: Some(exten.to_string()), priority: priority.to_string() }
            }
            [context, exten, priority] => GotoTarget {
                context: Some(context.to_string()),
                exten: Some(exten.to_string()),
                priority: priority.to_string(),
            },
            _ => return None,
        };
        let empty =
            target.priority.is_empty() || target.exten.as_deref() == Some("") || target.context.as_deref() == Some("");
        (!empty).then_some(target)
    }
}

/// Splits `GotoIf` data, `condition?[iftrue][:iffalse]`, at its first `?` and the first `:`
/// after it (as Asterisk does, after substitution).
pub fn split_goto_if(data: &str) -> Option<(&str, &str, &str)> {
    let (condition, branches) = data.split_once('?')?;
    let (if_true, if_false) = branches.split_once(':').unwrap_or((branches, ""));
    Some((condition, if_true.trim(), if_false.trim()))
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

fn dialplan_error(line: usize, reason: impl Into<String>) -> SimError {
    SimError::Dialplan { line, reason: reason.into() }
}

/// Splits `App(data)` into its parts.
fn parse_application(text: &str, label: Option<String>, line: usize) -> Result<DialplanStep, SimError> {
    let text = text.trim();
    let (application, data) = match text.find('(') {
        Some(open) => {
            if !text.ends_with(')') {
                return Err(dialplan_error(line, format!("unbalanced parentheses in {text:?}")));
            }
            (&text[..open], &text[open + 1..text.len() - 1])
        }
        None => (text, ""),
    };
    if application.is_empty() || !application.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(dialplan_error(line, format!("bad application name {application:?}")));
    }
    expression::check(data).map_err(|reason| dialplan_error(line, reason))?;
    Ok(DialplanStep { application: application.to_string(), data: data.to_string(), label, line })
}

/// A priority field: `1`, `2`, ... or `n`, with an optional `(label)`.
fn parse_priority(text: &str, line: usize) -> Result<(String, Option<String>), SimError> {
    let text = text.trim();
    let Some(open) = text.find('(') else { return Ok((text.to_string(), None)) };
    let label = text[open + 1..]
        .strip_suffix(')')
        .ok_or_else(|| dialplan_error(line, format!("unclosed label in priority {text:?}")))?;
    let valid = !label.is_empty()
        && label.len() <= LABEL_MAX_LEN
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && label.parse::<i64>().is_err();
    if !valid {
        return Err(dialplan_error(line, format!("bad label {label:?}")));
    }
    Ok((text[..open].trim().to_string(), Some(label.to_string())))
}

/// Appends a step at `priority` (`n` or the next number) to `extension`.
fn push_step(extension: &mut Extension, priority: &str, step: DialplanStep) -> Result<(), SimError> {
    let line = step.line;
    let expected = extension.steps.len() + 1;
    if priority != "n" && priority != expected.to_string() {
        return Err(dialplan_error(line, format!("priority {priority} where {expected} or n was expected")));
    }
    if let Some(label) = &step.label {
        if extension.label_priority(label).is_some() {
            return Err(dialplan_error(line, format!("label {label:?} used twice in {}", extension.pattern)));
        }
    }
    if extension.steps.len() >= EXTENSION_PRIORITIES_MAX_COUNT {
        return Err(dialplan_error(line, "too many priorities"));
    }
    extension.steps.push(step);
    Ok(())
}

impl Dialplan {
    /// Parses the supported subset; anything else is an error naming the line.
    pub fn parse(text: &str) -> Result<Dialplan, SimError> {
        let mut dialplan = Dialplan::default();
        let mut context: Option<String> = None;
        for (index, raw) in text.lines().enumerate() {
            let line_number = index + 1;
            if line_number > DIALPLAN_LINES_MAX_COUNT {
                return Err(dialplan_error(line_number, "too many lines"));
            }
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('[') {
                let name = name.strip_suffix(']').ok_or_else(|| dialplan_error(line_number, "unclosed ["))?;
                context = Some(name.trim().to_string());
                dialplan.contexts.entry(name.trim().to_string()).or_default();
                continue;
            }
            let (keyword, rest) = line
                .split_once("=>")
                .ok_or_else(|| dialplan_error(line_number, format!("expected `=>` in {line:?}")))?;
            let context_name =
                context.clone().ok_or_else(|| dialplan_error(line_number, "line outside a [context]"))?;
            let extensions = dialplan.contexts.entry(context_name).or_default();
            match keyword.trim() {
                "exten" => {
                    let mut parts = rest.splitn(3, ',');
                    let pattern = parts.next().unwrap_or("").trim().to_string();
                    let priority = parts.next().unwrap_or("");
                    let application =
                        parts.next().ok_or_else(|| dialplan_error(line_number, "exten needs 3 fields"))?;
                    if pattern.is_empty() {
                        return Err(dialplan_error(line_number, "empty pattern"));
                    }
                    let (priority, label) = parse_priority(priority, line_number)?;
                    let step = parse_application(application, label, line_number)?;
                    if priority == "1" {
                        extensions.push(Extension { pattern, steps: vec![step] });
                    } else {
                        let extension =
                            extensions.iter_mut().rev().find(|extension| extension.pattern == pattern).ok_or_else(
                                || {
                                    dialplan_error(
                                        line_number,
                                        format!("priority {priority} of {pattern} without priority 1"),
                                    )
                                },
                            )?;
                        push_step(extension, &priority, step)?;
                    }
                }
                "same" => {
                    let (priority, application) =
                        rest.split_once(',').ok_or_else(|| dialplan_error(line_number, "same needs 2 fields"))?;
                    let (priority, label) = parse_priority(priority, line_number)?;
                    let extension =
                        extensions.last_mut().ok_or_else(|| dialplan_error(line_number, "same before any exten"))?;
                    push_step(extension, &priority, parse_application(application, label, line_number)?)?;
                }
                other => return Err(dialplan_error(line_number, format!("unsupported keyword {other:?}"))),
            }
        }
        dialplan.check_destinations()?;
        Ok(dialplan)
    }

    /// Every `Goto`/`GotoIf` destination written literally must exist in this dialplan.
    fn check_destinations(&self) -> Result<(), SimError> {
        for (context, extensions) in &self.contexts {
            for extension in extensions {
                for step in &extension.steps {
                    for target in goto_destinations(step)? {
                        self.check_destination(context, extension, &target)
                            .map_err(|reason| dialplan_error(step.line, reason))?;
                    }
                }
            }
        }
        Ok(())
    }

    fn check_destination(&self, context: &str, extension: &Extension, target: &str) -> Result<(), String> {
        let parsed = GotoTarget::parse(target).ok_or_else(|| format!("bad destination {target:?}"))?;
        let dynamic = |text: &str| text.contains('$');
        if dynamic(target) {
            return Ok(());
        }
        let target_context = parsed.context.as_deref().unwrap_or(context);
        let target_extension = match &parsed.exten {
            None => extension,
            Some(exten) => {
                if !self.contexts.contains_key(target_context) {
                    return Err(format!("destination {target:?}: no context [{target_context}]"));
                }
                self.find(target_context, exten)
                    .ok_or_else(|| format!("destination {target:?}: no extension {exten} in [{target_context}]"))?
            }
        };
        match target_extension.resolve_priority(&parsed.priority) {
            Some(priority) if priority as usize <= target_extension.steps.len() => Ok(()),
            _ => Err(format!("destination {target:?}: no priority or label {:?}", parsed.priority)),
        }
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

/// The destinations a `Goto` or `GotoIf` step names (none for other applications).
fn goto_destinations(step: &DialplanStep) -> Result<Vec<String>, SimError> {
    match step.application.as_str() {
        "Goto" => Ok(vec![step.data.trim().to_string()]),
        "GotoIf" => {
            let (_, if_true, if_false) = split_goto_if(&step.data)
                .ok_or_else(|| dialplan_error(step.line, "GotoIf needs condition?destination"))?;
            if if_true.is_empty() && if_false.is_empty() {
                return Err(dialplan_error(step.line, "GotoIf without a destination"));
            }
            Ok([if_true, if_false].into_iter().filter(|d| !d.is_empty()).map(str::to_string).collect())
        }
        _ => Ok(Vec::new()),
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

/// Substitutes application data for a channel at extension `exten` with no variables set
/// (`${EXTEN}`, `${EXTEN:offset}`; other variables are empty, unknown functions kept).
pub fn substitute_exten(data: &str, exten: &str) -> String {
    expression::substitute(data, &|name| (name == "EXTEN").then(|| exten.to_string()))
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
            DialplanStep {
                application: "Stasis".into(),
                data: "lineup,queue=sales,gate=web".into(),
                label: None,
                line: 3
            }
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

    const LOOP: &str = "
[gates]
exten => 5000,1,Set(TRIES=0)
 same => n(enter),Stasis(lineup,queue=sales)
 same => n,GotoIf($[\"${STASISSTATUS}\" = \"FAILED\"]?down)
 same => n,GotoIf($[\"${LINEUP_RESULT}\" = \"TIMEOUT\"]?overflow,s,1:hangup)
 same => n(down),Goto(enter)
 same => n(hangup),Hangup()
exten => 5001,1(first),Goto(5000,down)
[overflow]
exten => s,1,Hangup()
";

    #[test]
    fn labels_and_destinations_parse() {
        let dialplan = Dialplan::parse(LOOP).unwrap();
        let gate = dialplan.find("gates", "5000").unwrap();
        assert_eq!(gate.label_priority("enter"), Some(2));
        assert_eq!(gate.label_priority("down"), Some(5));
        assert_eq!(gate.resolve_priority("hangup"), Some(6));
        assert_eq!(gate.resolve_priority("3"), Some(3));
        assert_eq!(gate.resolve_priority("0"), None);
        assert_eq!(gate.resolve_priority("nowhere"), None);
        assert_eq!(dialplan.find("gates", "5001").unwrap().label_priority("first"), Some(1));
        assert_eq!(gate.steps[1].line, 4);
        assert_eq!(
            GotoTarget::parse(" overflow , s ,1"),
            Some(GotoTarget { context: Some("overflow".into()), exten: Some("s".into()), priority: "1".into() })
        );
        assert_eq!(GotoTarget::parse("down").map(|t| t.priority), Some("down".into()));
        assert_eq!(GotoTarget::parse("a,,1"), None);
        assert_eq!(split_goto_if("1?a,s,1:b"), Some(("1", "a,s,1", "b")));
        assert_eq!(split_goto_if("0?:b"), Some(("0", "", "b")));
        assert_eq!(split_goto_if("0"), None);
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
            // Labels: well formed, once per extension.
            ("[c]\nexten => a,1(start,Answer()", 2),
            ("[c]\nexten => a,1(),Answer()", 2),
            ("[c]\nexten => a,1(7),Answer()", 2),
            ("[c]\nexten => a,1(x),Answer()\n same => n(x),Wait(1)", 3),
            // Destinations that do not exist.
            ("[c]\nexten => a,1,Goto(nowhere)", 2),
            ("[c]\nexten => a,1,Goto(3)", 2),
            ("[c]\nexten => a,1,Goto(b,1)", 2),
            ("[c]\nexten => a,1,Goto(d,s,1)", 2),
            ("[c]\nexten => a,1,Goto(a,1,2,3)", 2),
            ("[c]\nexten => a,1,GotoIf($[1 = 1])", 2),
            ("[c]\nexten => a,1,GotoIf($[1 = 1]?)", 2),
            ("[c]\nexten => a,1,NoOp()\n same => n,GotoIf($[1 = 1]?:gone)", 3),
            // Expressions the stand-in does not model, or broken ones.
            ("[c]\nexten => a,1,Set(X=$[${X} * 2])", 2),
            ("[c]\nexten => a,1,Set(X=$[${X} + ])", 2),
            ("[c]\nexten => a,1,Set(X=${X)", 2),
        ] {
            match Dialplan::parse(text) {
                Err(SimError::Dialplan { line: got, .. }) => assert_eq!(got, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
