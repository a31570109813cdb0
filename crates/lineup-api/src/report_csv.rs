//! Report rows as CSV: a header line of the JSON field names, then one line per row in the
//! same order as the JSON answer. Absent figures are empty cells; break time by reason is
//! one cell, `reason=seconds` pairs joined with `;`.

use serde::Serialize;
use serde_json::Value;

use crate::reports::{OperatorReportRow, QueueReportRow};

/// Columns of a queue report, in order.
pub const QUEUE_COLUMNS: [&str; 23] = [
    "queue",
    "gate",
    "interval_start",
    "offered",
    "answered",
    "answered_within_sl",
    "abandoned",
    "abandoned_before_sl",
    "abandoned_after_sl",
    "timed_out",
    "full",
    "closed",
    "other",
    "service_level_threshold_ms",
    "service_level",
    "asa_s",
    "aht_s",
    "talk_s",
    "wrap_up_s",
    "longest_wait_s",
    "callbacks_promised",
    "callbacks_made",
    "callbacks_answered",
];

/// Columns of an operator report, in order.
pub const OPERATOR_COLUMNS: [&str; 11] = [
    "operator",
    "interval_start",
    "calls_taken",
    "talk_s",
    "wrap_up_s",
    "break_s",
    "breaks",
    "available_s",
    "logged_in_s",
    "logins",
    "occupancy",
];

pub fn queue_rows(rows: &[QueueReportRow]) -> String {
    table(&QUEUE_COLUMNS, rows)
}

pub fn operator_rows(rows: &[OperatorReportRow]) -> String {
    table(&OPERATOR_COLUMNS, rows)
}

fn table<T: Serialize>(columns: &[&str], rows: &[T]) -> String {
    let mut out = columns.join(",");
    out.push('\n');
    for row in rows {
        let value = serde_json::to_value(row).unwrap_or(Value::Null);
        let cells: Vec<String> = columns.iter().map(|c| cell(&value[*c])).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Object(map) => map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    };
    // Ids and break reasons may hold a comma or a quote: quoted as RFC 4180 says.
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn operator_rows_keep_the_json_names_and_quote_what_needs_it() {
        let row = OperatorReportRow {
            operator: "alice".into(),
            interval_start: 1_796_112_000_000,
            calls_taken: 2,
            talk_s: 160.0,
            wrap_up_s: 10.5,
            break_s: 1200.0,
            breaks: BTreeMap::from([("lunch, long".to_string(), 1200.0), ("tea".to_string(), 0.5)]),
            available_s: 2530.0,
            logged_in_s: 2700.0,
            logins: 0,
            occupancy: None,
        };
        let text = operator_rows(&[row]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "operator,interval_start,calls_taken,talk_s,wrap_up_s,break_s,breaks,available_s,logged_in_s,logins,occupancy");
        assert_eq!(lines[1], "alice,1796112000000,2,160.0,10.5,1200.0,\"lunch, long=1200.0;tea=0.5\",2530.0,2700.0,0,");
    }
}
