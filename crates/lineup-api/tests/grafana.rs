//! deploy/grafana/lineup.json asks only for series a node exports: every metric name in its
//! PromQL (and its variables' `label_values`) is a family in a real `/metrics` of a node
//! with configured queues and one answered call.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/grafana/lineup.json");

/// PromQL words that are not metric names when they stand alone.
const KEYWORDS: [&str; 11] =
    ["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"];
/// Modifiers followed by a parenthesised list of label names.
const LABEL_LISTS: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];

/// Skips from an opening bracket at `i` to just past its match (strings inside skipped).
fn skip_group(chars: &[char], mut i: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = skip_string(chars, i),
            c if c == open => {
                depth += 1;
                i += 1;
            }
            c if c == close => {
                depth -= 1;
                i += 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    i
}

fn skip_string(chars: &[char], i: usize) -> usize {
    let quote = chars[i];
    let mut j = i + 1;
    while j < chars.len() && chars[j] != quote {
        j += if chars[j] == '\\' { 2 } else { 1 };
    }
    j + 1
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The metric names an expression selects: identifiers that are not functions, keywords,
/// label names (inside `{}` or a `by (...)` list), ranges (`[5m]`), numbers, strings or
/// Grafana variables.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let (mut names, mut i) = (Vec::new(), 0);
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '{' {
            i = skip_group(&chars, i, '{', '}');
        } else if c == '[' {
            i = skip_group(&chars, i, '[', ']');
        } else if c.is_ascii_digit() || c == '.' || c == '$' {
            i += 1;
            while i < chars.len() && (is_word(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if is_word(c) {
            let start = i;
            while i < chars.len() && is_word(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            // `f(`, or an aggregation written `max by (...) (...)`.
            let rest: String = chars[next..].iter().take_while(|c| is_word(**c)).collect();
            let called = chars.get(next) == Some(&'(') || rest == "by" || rest == "without";
            if called && LABEL_LISTS.contains(&word.as_str()) {
                i = skip_group(&chars, next, '(', ')');
            } else if !called && !KEYWORDS.contains(&word.as_str()) {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Every `expr` in the panels, and the metric of every `label_values(metric, label)`.
fn dashboard_names(dashboard: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut stack = vec![dashboard];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(expr)) = map.get("expr") {
                    names.extend(metric_names(expr));
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            Value::String(s) => {
                if let Some(args) = s.strip_prefix("label_values(") {
                    names.extend(args.split(',').next().map(|m| m.trim().to_string()));
                }
            }
            _ => {}
        }
    }
    names
}

/// The families a `/metrics` text declares (`# TYPE name kind`), with their kind.
fn exported(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_string(), kind.to_string()))
        .collect()
}

/// A name the node exports: a family, or a histogram family's `_bucket`, `_sum` or `_count`.
fn is_exported(name: &str, families: &[(String, String)]) -> bool {
    families.iter().any(|(family, kind)| {
        family == name
            || (kind == "histogram"
                && ["_bucket", "_sum", "_count"].iter().any(|s| name.strip_suffix(s) == Some(family.as_str())))
    })
}

#[test]
fn the_scanner_finds_metric_names_only() {
    let expr = r#"histogram_quantile(0.9, max by (queue, le) (rate(a_bucket{queue=~"$queue",le="20"}[$__rate_interval]))) / on (queue) group_left b offset 5m > bool 1e3 and c"#;
    assert_eq!(metric_names(expr), ["a_bucket", "b", "c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_is_exported() {
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    let names = dashboard_names(&dashboard);
    for needed in ["lineup_queue_wait_seconds_bucket", "lineup_queue_handle_seconds_sum", "lineup_raft_term"] {
        assert!(names.contains(needed), "the dashboard does not query {needed}: {names:?}");
    }

    let rig = Rig::start().await;
    apply_base_config(&rig);
    scripted_call(&rig, 12_000, 90_000).await;
    let families = exported(&scrape(&rig).await);
    let missing: Vec<&String> = names.iter().filter(|n| !is_exported(n, &families)).collect();
    assert!(missing.is_empty(), "the dashboard queries series no node exports: {missing:?}");
    rig.stop().await;
}
