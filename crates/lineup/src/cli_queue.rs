//! `lineup queue show [QUEUE]`: app_queue's `queue show`, across all sites, from a node's
//! API (config for the settings and memberships; live queues, calls and operators).

use crate::api_client::{block_on, list, text, Api, ApiTarget};
use serde_json::Value;

#[derive(clap::Subcommand)]
pub enum QueueCommand {
    /// Per queue: settings, totals, members and waiting callers, across all sites.
    Show {
        /// One queue only (all queues when absent).
        queue: Option<String>,
        #[command(flatten)]
        target: ApiTarget,
        /// Print the raw JSON (config queues, live queues, calls, operators).
        #[arg(long)]
        json: bool,
    },
}

/// What `queue show` reads, as the API answered it.
pub struct QueueReads {
    pub config: Value,
    pub queues: Value,
    pub calls: Value,
    pub operators: Value,
}

pub fn queue(command: &QueueCommand) -> anyhow::Result<()> {
    let QueueCommand::Show { queue, target, json } = command;
    block_on(async {
        let api = Api::new(target)?;
        let reads = QueueReads {
            config: api.get("/v1/config").await?,
            queues: api.get("/v1/queues").await?,
            calls: api.get("/v1/calls").await?,
            operators: api.get("/v1/operators").await?,
        };
        if let Some(id) = queue {
            if !list(&reads.config, "queues").iter().any(|q| q["id"] == id.as_str()) {
                anyhow::bail!("no queue named `{id}` (queues: {})", queue_ids(&reads.config));
            }
        }
        if *json {
            let all = serde_json::json!({ "config": reads.config["queues"], "queues": reads.queues,
                "calls": reads.calls, "operators": reads.operators });
            println!("{}", serde_json::to_string_pretty(&all)?);
        } else {
            print!("{}", render_queues(&reads, queue.as_deref()));
        }
        Ok(())
    })
}

fn queue_ids(config: &Value) -> String {
    let ids: Vec<String> = list(config, "queues").iter().map(|q| text(&q["id"])).collect();
    if ids.is_empty() {
        "none configured".into()
    } else {
        ids.join(", ")
    }
}

/// Every queue (or only `only`), one block each, in config order.
pub fn render_queues(reads: &QueueReads, only: Option<&str>) -> String {
    let mut out = String::new();
    let configs = list(&reads.config, "queues");
    for config in configs.iter().filter(|q| only.is_none_or(|id| q["id"] == id)) {
        let id = text(&config["id"]);
        let live = list(&reads.queues, "queues").into_iter().find(|q| text(&q["queue"]) == id);
        out.push_str(&render_queue(config, live.as_ref().unwrap_or(&Value::Null), reads));
        out.push('\n');
    }
    if configs.is_empty() {
        out.push_str("no queues configured\n");
    }
    out
}

fn render_queue(config: &Value, live: &Value, reads: &QueueReads) -> String {
    let id = text(&config["id"]);
    let mut out = headline(config, live);
    out.push_str(&format!("   {}\n", settings(config)));
    let members = members_of(&id, reads);
    if members.is_empty() {
        out.push_str("   No members\n");
    } else {
        out.push_str("   Members:\n");
        members.iter().for_each(|m| out.push_str(&format!("      {m}\n")));
    }
    let callers = callers_of(&id, &reads.calls);
    if callers.is_empty() {
        out.push_str("   No callers\n");
    } else {
        out.push_str("   Callers:\n");
        callers.iter().for_each(|c| out.push_str(&format!("      {c}\n")));
    }
    out
}

/// `sales (Sales) has 2 calls (max 50) in 'longest-idle' strategy (12s holdtime, 95s
/// handle time), W:5, C:40, A:2, SL:95.0% within 30s`, as app_queue's first line.
fn headline(config: &Value, live: &Value) -> String {
    let stats = &live["stats"];
    let per_call = |total: &str, count: &str| match (stats[total].as_u64(), stats[count].as_u64()) {
        (Some(total), Some(n)) if n > 0 => format!("{}s", total / n / 1_000),
        _ => "0s".into(),
    };
    let max = match config["max_waiting"].as_u64() {
        Some(0) | None => "unlimited".to_string(),
        Some(n) => n.to_string(),
    };
    let service_level = match live["service_level_permille"].as_u64() {
        Some(p) => format!("{}.{}%", p / 10, p % 10),
        None => "-".into(),
    };
    format!(
        "{} ({}) has {} calls (max {max}) in '{}' strategy ({} holdtime, {} handle time), W:{}, C:{}, A:{}, \
         SL:{service_level} within {}s\n",
        text(&config["id"]),
        text(&config["name"]),
        live["waiting"].as_u64().unwrap_or(0),
        strategy(config),
        per_call("total_wait_ms", "answered"),
        per_call("total_handle_ms", "handled"),
        text(&config["weight"]),
        stats["answered"].as_u64().unwrap_or(0),
        stats["abandoned"].as_u64().unwrap_or(0),
        config["service_level_ms"].as_u64().unwrap_or(0) / 1_000,
    )
}

/// Lineup offers to the longest-idle operator of the lowest penalty tier the caller may
/// reach; a pull-only queue offers nothing and operators take callers.
fn strategy(config: &Value) -> &'static str {
    if config["pull_only"].as_bool() == Some(true) {
        "pull-only"
    } else {
        "longest-idle by penalty"
    }
}

fn settings(config: &Value) -> String {
    let secs = |v: &Value| v.as_u64().map_or_else(|| "none".to_string(), |ms| format!("{}s", ms / 1_000));
    format!(
        "Settings: max wait {}, ring {}, wrap-up {}, default priority {}, tier rules {}, schedule {}",
        secs(&config["max_wait_ms"]),
        secs(&config["ring_timeout_ms"]),
        secs(&config["wrap_up_ms"]),
        text(&config["default_priority"]),
        list(config, "tier_rules").len(),
        text(&config["schedule"]),
    )
}

/// One line per member of `queue` (by config membership), lowest penalty first.
fn members_of(queue: &str, reads: &QueueReads) -> Vec<String> {
    let mut members: Vec<(u64, String)> = list(&reads.config, "operators")
        .iter()
        .filter_map(|o| {
            let penalty = o["memberships"].get(queue)?.as_u64()?;
            let id = text(&o["id"]);
            let live = list(&reads.operators, "operators").into_iter().find(|r| text(&r["operator"]) == id);
            Some((penalty, member_line(o, penalty, live.as_ref().unwrap_or(&Value::Null))))
        })
        .collect();
    members.sort();
    members.into_iter().map(|(_, line)| line).collect()
}

fn member_line(config: &Value, penalty: u64, live: &Value) -> String {
    let site = match live["site"].as_u64() {
        Some(site) => format!("site {site}"),
        None => format!("home site {}", text(&config["site"])),
    };
    let call = live["call"].as_str().map(|c| format!(", call {c}")).unwrap_or_default();
    let since = match live["time_in_state_ms"].as_u64() {
        Some(ms) if live["state"] != "offline" => format!(" for {}", clock(ms)),
        _ => String::new(),
    };
    format!(
        "{} {} ({site}, penalty {penalty}) ({}{since}{call})",
        text(&config["id"]),
        text(&config["name"]),
        member_state(live)
    )
}

/// available, busy, ringing, wrap-up, break (reason) or offline.
fn member_state(live: &Value) -> String {
    match live["state"].as_str().unwrap_or("offline") {
        "offered" => "ringing".into(),
        "wrap_up" => "wrap-up".into(),
        "break" => format!("break: {}", text(&live["break_reason"])),
        other => other.into(),
    }
}

/// Waiting callers of `queue` by position: `1. c-17 +4930123 "Ada" (wait 0:45, priority 5, site 1)`.
fn callers_of(queue: &str, calls: &Value) -> Vec<String> {
    let mut waiting: Vec<Value> =
        list(calls, "calls").into_iter().filter(|c| text(&c["queue"]) == queue && c["position"].is_u64()).collect();
    waiting.sort_by_key(|c| c["position"].as_u64());
    waiting
        .iter()
        .map(|c| {
            let callback = if c["callback"].as_bool() == Some(true) { ", callback" } else { "" };
            let name = match c["caller_name"].as_str() {
                Some(name) if !name.is_empty() => format!(" \"{name}\""),
                _ => String::new(),
            };
            format!(
                "{}. {} {}{name} (wait {}, priority {}, site {}{callback})",
                text(&c["position"]),
                text(&c["call"]),
                text(&c["caller_number"]),
                clock(c["wait_ms"].as_u64().unwrap_or(0)),
                text(&c["priority"]),
                text(&c["entry_site"]),
            )
        })
        .collect()
}

/// `m:ss` (or `h:mm:ss` from an hour on).
fn clock(ms: u64) -> String {
    let secs = ms / 1_000;
    match secs / 3_600 {
        0 => format!("{}:{:02}", secs / 60, secs % 60),
        hours => format!("{hours}:{:02}:{:02}", secs / 60 % 60, secs % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_queue_shows_totals_members_and_callers_like_app_queue() {
        let reads = QueueReads {
            config: json!({"queues": [{"id": "sales", "name": "Sales", "max_waiting": 50, "weight": 5,
                    "pull_only": false, "service_level_ms": 30000, "max_wait_ms": 300000, "ring_timeout_ms": 20000,
                    "wrap_up_ms": 5000, "default_priority": 5, "tier_rules": [], "schedule": null},
                    {"id": "support", "name": "Support"}],
                "operators": [{"id": "1101", "name": "Alice", "site": 1, "memberships": {"sales": 1}},
                    {"id": "1102", "name": "Bob", "site": 2, "memberships": {"sales": 0, "support": 0}}]}),
            queues: json!({"queues": [{"queue": "sales", "waiting": 1, "service_level_permille": 955,
                "stats": {"answered": 4, "abandoned": 1, "total_wait_ms": 48000, "handled": 2, "total_handle_ms": 190000}}]}),
            calls: json!({"calls": [{"call": "c-1", "queue": "sales", "position": 1, "caller_number": "+4930123",
                "caller_name": "Ada", "wait_ms": 65000, "priority": 2, "entry_site": 3, "callback": false},
                {"call": "c-2", "queue": "sales", "position": null, "status": "connected"}]}),
            operators: json!({"operators": [{"operator": "1101", "state": "break", "break_reason": "lunch",
                "site": 1, "time_in_state_ms": 61000}]}),
        };
        let out = render_queues(&reads, Some("sales"));
        assert!(
            out.starts_with(
                "sales (Sales) has 1 calls (max 50) in 'longest-idle by penalty' strategy \
            (12s holdtime, 95s handle time), W:5, C:4, A:1, SL:95.5% within 30s"
            ),
            "{out}"
        );
        assert!(out.contains("max wait 300s, ring 20s, wrap-up 5s"), "{out}");
        let bob = out.find("1102 Bob (home site 2, penalty 0) (offline)").expect("Bob first, lowest penalty");
        let alice = out.find("1101 Alice (site 1, penalty 1) (break: lunch for 1:01)").expect(&out);
        assert!(bob < alice, "{out}");
        assert!(out.contains("1. c-1 +4930123 \"Ada\" (wait 1:05, priority 2, site 3)"), "{out}");
        assert!(!out.contains("c-2") && !out.contains("support"), "{out}");
    }

    #[test]
    fn an_empty_queue_says_so() {
        let reads = QueueReads {
            config: json!({"queues": [{"id": "support", "name": "Support", "max_waiting": 0}], "operators": []}),
            queues: json!({"queues": []}),
            calls: json!({"calls": []}),
            operators: json!({"operators": []}),
        };
        let out = render_queues(&reads, None);
        assert!(out.starts_with("support (Support) has 0 calls (max unlimited)"), "{out}");
        assert!(out.contains("No members") && out.contains("No callers"), "{out}");
        assert_eq!(clock(3_725_000), "1:02:05");
    }
}
