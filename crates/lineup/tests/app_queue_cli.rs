//! The app_queue-style commands against a running API (LocalBackend served on loopback):
//! `lineup queue show`, `lineup operator pause|unpause|logout|add|remove`, `lineup call
//! move|priority`, run as processes. Each write is checked in the state the API then reads,
//! and each refusal is one plain sentence with exit status 1.

use lineup_api::local::LocalBackend;
use lineup_api::{ApiBackend, ApiConfig, ApiToken, Role};
use lineup_core::{
    CallId, CommandBody, Effect, Enqueue, OperatorConfig, OperatorId, QueueConfig, QueueId, RoutingConfigSet, SiteId,
};
use std::process::{Command, Output};
use std::sync::Arc;

const ADMIN: &str = "admin-token-0123456789";
const SUPERVISOR: &str = "supervisor-token-0123456789";
const VIEWER: &str = "viewer-token-0123456789";

/// A served API and the backend behind it, on its own runtime thread.
struct Node {
    url: String,
    backend: Arc<LocalBackend>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The server's runtime: dropped with the node, after the stop is sent.
    _runtime: tokio::runtime::Runtime,
}

impl Node {
    fn start() -> Node {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let config = ApiConfig {
            tokens: vec![
                ApiToken::plain("ops", ADMIN, Role::Admin),
                ApiToken::plain("floor", SUPERVISOR, Role::Supervisor),
                ApiToken::plain("wall", VIEWER, Role::Viewer),
            ],
            ..ApiConfig::default()
        };
        let backend = Arc::new(LocalBackend::new(SiteId(1), 1_700_000_000_000));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(lineup_api::serve(listener, Arc::clone(&backend), config, async move {
            let _ = stopped.await;
        }));
        Node { url, backend, stop: Some(stop), _runtime: runtime }
    }

    fn apply(&self, body: CommandBody) {
        let result = self.backend.apply(body);
        assert!(result.is_ok(), "{result:?}");
    }

    /// `lineup ARGS --api URL --token TOKEN`.
    fn lineup(&self, args: &[&str], token: &str) -> Output {
        Command::new(env!("CARGO_BIN_EXE_lineup"))
            .args(args)
            .args(["--api", &self.url, "--token", token])
            .env_remove("LINEUP_API")
            .env_remove("LINEUP_TOKEN")
            .env_remove("LINEUP_CA_FILE")
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("the lineup binary runs")
    }

    fn operator_state(&self, operator: &str) -> String {
        self.backend
            .read(|r| r.operator_view(&OperatorId::new(operator)).map(|v| v.status.name()).unwrap_or("none"))
            .to_string()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn succeeded(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Exit status 1 and one `error:` line without Rust's Debug forms.
fn refused(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "stdout: {}", String::from_utf8_lossy(&output.stdout));
    assert!(stderr.starts_with("error: ") && stderr.lines().count() == 1, "{stderr}");
    for debug_form in ["backtrace", "Some(", "OperatorId(", "CallId(", "QueueId("] {
        assert!(!stderr.contains(debug_form), "{debug_form:?} in:\n{stderr}");
    }
    stderr
}

/// Sales (Alice at penalty 0, Bob at 1) and support (nobody); Alice logged in at site 1.
/// Caller c-1 (site 1) rings Alice; c-2 and c-3 (site 2) wait in sales.
fn floor() -> Node {
    let node = Node::start();
    let queue = |id: &str, name: &str| QueueConfig {
        id: QueueId::new(id),
        name: name.into(),
        max_waiting: 20,
        service_level_ms: 30_000,
        // Alice's offer still rings when the test looks a minute later.
        ring_timeout_ms: 120_000,
        ..QueueConfig::default()
    };
    let operator = |id: &str, name: &str, site: u64, penalty: u8| OperatorConfig {
        id: OperatorId::new(id),
        name: name.into(),
        site: SiteId(site),
        pin_hash: format!("$argon2id$fake-{id}"),
        memberships: [(QueueId::new("sales"), penalty)].into_iter().collect(),
        ..OperatorConfig::default()
    };
    let set = RoutingConfigSet {
        queues: vec![queue("sales", "Sales"), queue("support", "Support")],
        operators: vec![operator("1101", "Alice", 1, 0), operator("1102", "Bob", 2, 1)],
        ..RoutingConfigSet::default()
    };
    node.apply(CommandBody::ApplyConfig(Box::new(set)));
    node.apply(CommandBody::OperatorLogin {
        operator: OperatorId::new("1101"),
        site: SiteId(1),
        channel: Some("op-1101".into()),
    });
    let callers = [("c-1", "+4930111", "", 1), ("c-2", "+4930222", "Ada Lovelace", 2), ("c-3", "+4930333", "", 2)];
    for (call, number, name, site) in callers {
        node.apply(CommandBody::Enqueue(Enqueue {
            call: CallId::new(call),
            queue: QueueId::new("sales"),
            gate: None,
            priority: None,
            caller_number: number.into(),
            caller_name: name.into(),
            site: SiteId(site),
            channel: Some(format!("chan-{call}")),
            skills: Default::default(),
            callback_number: None,
        }));
    }
    // Offers are made on the leader's clock.
    assert!(node.backend.tick(node.backend.now_ms()).is_ok());
    node
}

#[test]
fn queue_show_lists_settings_members_and_callers_across_sites() {
    let node = floor();
    assert!(node.backend.tick(1_700_000_005_000).is_ok());
    let out = succeeded(&node.lineup(&["queue", "show"], VIEWER));
    let sales = out.lines().find(|l| l.starts_with("sales (Sales) has 2 calls (max 20)")).expect(&out);
    assert!(sales.contains("'longest-idle by penalty' strategy") && sales.contains("within 30s"), "{sales}");
    assert!(out.contains("1101 Alice (site 1, penalty 0) (ringing for 0:05, call c-1)"), "{out}");
    assert!(out.contains("1102 Bob (home site 2, penalty 1) (offline)"), "{out}");
    assert!(out.contains("1. c-2 +4930222 \"Ada Lovelace\" (wait 0:05, priority 5, site 2)"), "{out}");
    assert!(out.contains("2. c-3 +4930333 (wait 0:05, priority 5, site 2)"), "{out}");
    assert!(out.contains("support (Support) has 0 calls") && out.contains("No members"), "{out}");

    let only = succeeded(&node.lineup(&["queue", "show", "support"], VIEWER));
    assert!(only.starts_with("support (Support)") && !only.contains("sales"), "{only}");
    let json: serde_json::Value =
        serde_json::from_str(&succeeded(&node.lineup(&["queue", "show", "--json"], VIEWER))).expect("JSON");
    assert_eq!(json["calls"]["calls"].as_array().map(Vec::len), Some(3), "{json}");

    let unknown = refused(&node.lineup(&["queue", "show", "salez"], VIEWER));
    assert!(unknown.contains("no queue named `salez` (queues: sales, support)"), "{unknown}");
}

#[test]
fn operators_pause_unpause_log_out_and_change_memberships() {
    let node = floor();
    let paused = succeeded(&node.lineup(&["operator", "pause", "1101", "--reason", "lunch"], SUPERVISOR));
    assert_eq!(paused.trim(), "operator 1101 on break (lunch)");
    assert_eq!(node.operator_state("1101"), "break");

    let added = succeeded(&node.lineup(&["operator", "add", "1102", "support", "--penalty", "2"], ADMIN));
    assert_eq!(added.trim(), "operator 1102 added to support at penalty 2");
    let memberships = |id: &str| {
        node.backend.read(|r| r.operator_config(&OperatorId::new(id)).map(|c| c.memberships.clone()).unwrap())
    };
    assert_eq!(memberships("1102").get(&QueueId::new("support")), Some(&2));
    let shown = succeeded(&node.lineup(&["queue", "show", "support"], VIEWER));
    assert!(shown.contains("1102 Bob (home site 2, penalty 2) (offline)"), "{shown}");
    let removed = succeeded(&node.lineup(&["operator", "remove", "1102", "sales"], ADMIN));
    assert_eq!(removed.trim(), "operator 1102 removed from sales");
    assert_eq!(memberships("1102").keys().map(QueueId::as_str).collect::<Vec<_>>(), ["support"]);
    let again = refused(&node.lineup(&["operator", "remove", "1102", "sales"], ADMIN));
    assert!(again.contains("operator 1102 is not a member of queue `sales`"), "{again}");
    let no_queue = refused(&node.lineup(&["operator", "add", "1102", "salez"], ADMIN));
    assert!(no_queue.contains("add 1102 to salez: refused (422)") && no_queue.contains("no queue named `salez`"));
    let supervisor_edit = refused(&node.lineup(&["operator", "add", "1102", "sales"], SUPERVISOR));
    assert!(supervisor_edit.contains("refused (403)") && supervisor_edit.contains("supervisor"), "{supervisor_edit}");

    let unpaused = succeeded(&node.lineup(&["operator", "unpause", "1101"], SUPERVISOR));
    assert!(unpaused.contains("operator 1101 available"), "{unpaused}");
    let logged_out = succeeded(&node.lineup(&["operator", "logout", "1101"], SUPERVISOR));
    assert!(logged_out.contains("operator 1101 logged out"), "{logged_out}");
    assert_eq!(node.operator_state("1101"), "offline");

    let unknown = refused(&node.lineup(&["operator", "pause", "9999"], SUPERVISOR));
    assert!(unknown.contains("operator 9999 not found"), "{unknown}");
    let unknown = refused(&node.lineup(&["operator", "add", "9999", "sales"], ADMIN));
    assert!(unknown.contains("operator \"9999\" not found"), "{unknown}");
    let bad_id = refused(&node.lineup(&["operator", "logout", "../config"], SUPERVISOR));
    assert!(bad_id.contains("`../config` is not a valid operator id"), "{bad_id}");
    let viewer = refused(&node.lineup(&["operator", "logout", "1102"], VIEWER));
    assert!(viewer.contains("refused (403)"), "{viewer}");
}

#[test]
fn calls_move_to_another_queue_and_change_priority() {
    let node = floor();
    let call_queue = |id: &str| node.backend.read(|r| r.call_view(&CallId::new(id)).map(|v| (v.queue, v.priority)));

    let moved = succeeded(&node.lineup(&["call", "move", "c-3", "support"], SUPERVISOR));
    assert_eq!(moved.trim(), "call c-3 moved to support");
    assert_eq!(call_queue("c-3").map(|(q, _)| q), Some(QueueId::new("support")));
    let shown = succeeded(&node.lineup(&["queue", "show", "support"], VIEWER));
    assert!(shown.contains("has 1 calls") && shown.contains("1. c-3 +4930333"), "{shown}");

    let raised = succeeded(&node.lineup(&["call", "priority", "c-2", "0"], SUPERVISOR));
    assert_eq!(raised.trim(), "call c-2 now has priority 0");
    assert_eq!(call_queue("c-2").map(|(_, p)| p), Some(0));

    let unknown = refused(&node.lineup(&["call", "priority", "c-404", "1"], SUPERVISOR));
    assert!(unknown.contains("call c-404 not found"), "{unknown}");
    let no_queue = refused(&node.lineup(&["call", "move", "c-2", "nowhere"], SUPERVISOR));
    assert!(no_queue.contains("no queue named `nowhere`"), "{no_queue}");
    let viewer = refused(&node.lineup(&["call", "move", "c-2", "support"], VIEWER));
    assert!(viewer.contains("refused (403)") && viewer.contains("viewer"), "{viewer}");
}

#[test]
fn a_caller_is_hung_up_through_the_api() {
    let node = floor();
    let mut effects = node.backend.subscribe();
    let hung_up = succeeded(&node.lineup(&["call", "hangup", "c-2"], SUPERVISOR));
    assert_eq!(hung_up.trim(), "call c-2 is being hung up at its site");
    let ordered = std::iter::from_fn(|| effects.try_recv().ok())
        .any(|applied| matches!(&applied.effect, Effect::HangUp { call, .. } if *call == CallId::new("c-2")));
    assert!(ordered, "no order to hang up c-2 reached its site");
    let unknown = refused(&node.lineup(&["call", "hangup", "c-404"], SUPERVISOR));
    assert!(unknown.contains("call c-404 not found"), "{unknown}");
    let viewer = refused(&node.lineup(&["call", "hangup", "c-2"], VIEWER));
    assert!(viewer.contains("refused (403)"), "{viewer}");
}
