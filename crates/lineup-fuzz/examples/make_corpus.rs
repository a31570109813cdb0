//! Writes the seed corpora in fuzz/corpus/<target>/ with the real encoders and the repository's
//! own samples (the recorded Asterisk 22 call, deploy/examples). Run it after a format change:
//! `cargo run -p lineup-fuzz --example make_corpus`, then commit what changed.

use lineup_cluster::batch::CommandBatch;
use lineup_cluster::island_watch::IslandPhase;
use lineup_cluster::raft_types::LineupRaft;
use lineup_cluster::rpc::{PeerRequest, PeerResponse};
use lineup_core::{
    codec, CallId, Command, CommandBody, CommandId, Enqueue, GateId, OperatorId, QueueId, Routing, SiteId,
};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, SnapshotMeta, Vote};
use std::path::{Path, PathBuf};

const RECORDING: &str = include_str!("../../lineup-ari/tests/data/asterisk22-queue-call.jsonl");
const ROUTING_TOML: &str = include_str!("../../../deploy/examples/routing.toml");

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    dir
}

fn seed(target: &str, name: &str, bytes: &[u8]) {
    std::fs::write(corpus(target).join(format!("seed-{name}")), bytes).expect("seed written");
}

fn recorded(kind: &str) -> Vec<serde_json::Value> {
    RECORDING
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("recording line"))
        .filter(|line| line["kind"] == kind)
        .collect()
}

fn command(serial: u64, body: CommandBody) -> Command {
    Command { id: CommandId { origin: 2, serial }, at_ms: 1_795_400_001_000, body }
}

fn enqueue(call: &str) -> CommandBody {
    CommandBody::Enqueue(Enqueue {
        call: CallId::new(call),
        queue: QueueId::new("sales"),
        gate: Some(GateId::new("web")),
        priority: None,
        caller_number: "5551234".into(),
        caller_name: "Alice".into(),
        site: SiteId(2),
        channel: Some("1795325224.1".into()),
        skills: Default::default(),
        callback_number: None,
    })
}

fn batch() -> CommandBatch {
    CommandBatch {
        commands: vec![
            command(
                1,
                CommandBody::OperatorLogin {
                    operator: OperatorId::new("alice"),
                    site: SiteId(1),
                    channel: Some("op-1".into()),
                },
            ),
            command(2, enqueue("2-1795325224.1")),
            command(3, CommandBody::Tick { now_ms: 1_795_400_002_000 }),
        ],
    }
}

fn log_id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(3, 2), index)
}

fn entry(index: u64, payload: EntryPayload<LineupRaft>) -> Entry<LineupRaft> {
    Entry { log_id: log_id(index), payload }
}

fn response_frame(response: &PeerResponse) -> Vec<u8> {
    let body = codec::encode_versioned(response).expect("response encodes");
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

fn frame(request: &PeerRequest) -> Vec<u8> {
    let body = codec::encode_versioned(request).expect("request encodes");
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// A routing state with calls waiting, an operator logged in and an offer made.
fn busy_routing() -> Routing {
    let (mut routing, mut index) = lineup_fuzz::configured_routing();
    for body in [
        CommandBody::OperatorLogin {
            operator: OperatorId::new("alice"),
            site: SiteId(1),
            channel: Some("op-1".into()),
        },
        enqueue("c1"),
        enqueue("c2"),
    ] {
        index += 1;
        routing.apply(index * 256, &command(100 + index, body));
    }
    routing
}

fn ari() {
    let events: Vec<String> = recorded("event").iter().map(|line| line["event"].to_string()).collect();
    seed("ari_events", "recorded-queue-call", events.join("\n").as_bytes());
    seed("ari_events", "recorded-first-three", events[..3.min(events.len())].join("\n").as_bytes());
    let odd = [
        r#"{"type":"DeviceStateChanged","application":"lineup","timestamp":"2026-11-22T05:27:04.654+0000"}"#,
        r#"{"type":"StasisStart","application":"lineup"}"#,
        r#"{"application":"lineup"}"#,
        r#"[1,2"#,
    ];
    seed("ari_events", "unknown-and-malformed", odd.join("\n").as_bytes());
    let rest = recorded("rest");
    let body_of = |method: &str, path_start: &str| {
        rest.iter()
            .find(|r| r["method"] == method && r["path"].as_str().is_some_and(|p| p.starts_with(path_start)))
            .map(|r| r["body"].to_string())
    };
    let answer = |name: &str, kind: u8, status: &[u8], body: &str| {
        let mut bytes = vec![kind];
        bytes.extend_from_slice(status);
        bytes.extend_from_slice(body.as_bytes());
        seed("ari_rest_answer", name, &bytes);
    };
    if let Some(channel) = body_of("POST", "/channels") {
        answer("channel", 0, &[0], &channel);
        answer("channels", 5, &[0], &format!("[{channel}]"));
    }
    if let Some(bridge) = body_of("POST", "/bridges") {
        answer("bridge", 1, &[0], &bridge);
        answer("bridges", 6, &[0], &format!("[{bridge}]"));
    }
    answer("not-found", 0, &[160, 3], r#"{"message":"Channel not found"}"#);
    answer("variable", 4, &[0], r#"{"value":"COMPLETED"}"#);
}

fn login() {
    let steps = |app: u8, number: u8, args: &str, script: &[u8], steps: &[u8]| {
        let mut bytes = vec![app, number, args.len() as u8];
        bytes.extend_from_slice(args.as_bytes());
        bytes.push(script.len() as u8);
        bytes.extend_from_slice(script);
        bytes.extend_from_slice(steps);
        bytes
    };
    // Digits: 0..=9 are the digit, 10 is *, 11 is #; 12 a second, 13 the digit timeout,
    // 14 the last prompt ends, 15 a hangup.
    seed("stasis_login", "pin-right", &steps(0, 0, "operator=alice", &[], &[14, 1, 2, 3, 4, 11, 12]));
    seed(
        "stasis_login",
        "pin-wrong-thrice",
        &steps(0, 0, "operator=alice", &[], &[9, 9, 11, 14, 9, 11, 8, 13, 7, 11, 12]),
    );
    seed("stasis_login", "id-by-keys", &steps(0, 2, "operator", &[], &[14, 1, 11, 1, 2, 3, 4, 11, 11, 15]));
    seed("stasis_login", "caller-entry", &steps(1, 3, "queue=sales,gate=web,priority=5", &[], &[12, 12, 0, 12, 15]));
    seed("stasis_login", "caller-bad-args", &steps(1, 3, "queue=sales,queue=sales", &[0, 2], &[12, 15]));
    seed("stasis_login", "trunk-leg", &steps(1, 3, "xfer=2-1795325224.1", &[1], &[13, 12]));
}

fn peer() {
    let vote = Vote::new_committed(3, 2);
    let append = PeerRequest::AppendEntries(openraft::raft::AppendEntriesRequest {
        vote,
        prev_log_id: None,
        entries: vec![entry(8, EntryPayload::Normal(batch())), entry(9, EntryPayload::Blank)],
        leader_commit: Some(log_id(9)),
    });
    seed("peer_frame", "append-entries", &frame(&append));
    seed(
        "peer_frame",
        "vote",
        &frame(&PeerRequest::Vote(openraft::raft::VoteRequest::new(Vote::new(4, 2), Some(log_id(9))))),
    );
    let snapshot = PeerRequest::InstallSnapshot(openraft::raft::InstallSnapshotRequest {
        vote,
        meta: SnapshotMeta {
            last_log_id: Some(log_id(10)),
            last_membership: Default::default(),
            snapshot_id: "3-2-10-1".into(),
        },
        offset: 0,
        data: busy_routing().snapshot_bytes(),
        done: true,
    });
    seed("peer_frame", "install-snapshot", &frame(&snapshot));
    let mut several = frame(&PeerRequest::Health);
    several.extend(frame(&PeerRequest::ReadIndex));
    several.extend(frame(&PeerRequest::ClientWrite(command(7, enqueue("2-77")))));
    several.extend(frame(&PeerRequest::ResultOf(CommandId { origin: 2, serial: 7 })));
    seed("peer_frame", "client-requests", &several);
    // The island status question, then answers as the asking leader decodes them.
    let mut island = frame(&PeerRequest::IslandStatus);
    let epoch = lineup_core::IslandEpoch { site: SiteId(2), seq: 1, fork_index: 9 };
    for (epoch, state) in [(None, IslandPhase::None), (Some(epoch), IslandPhase::Island)] {
        island.extend(response_frame(&PeerResponse::IslandStatus { epoch, state }));
    }
    seed("peer_frame", "island-status", &island);
    seed(
        "peer_frame",
        "claims-another-site",
        &frame(&PeerRequest::Vote(openraft::raft::VoteRequest::new(Vote::new(4, 3), None))),
    );
    let encode = |e: &Entry<LineupRaft>| codec::encode_versioned(e).expect("entry encodes");
    seed("raft_log_entry", "normal", &encode(&entry(8, EntryPayload::Normal(batch()))));
    seed("raft_log_entry", "blank", &encode(&entry(9, EntryPayload::Blank)));
    seed("routing_snapshot", "busy", &busy_routing().snapshot_bytes());
    seed("routing_snapshot", "empty", &Routing::new().snapshot_bytes());
    seed("routing_snapshot", "configured", &lineup_fuzz::configured_routing().0.snapshot_bytes());
}

fn api() {
    let route = |method: &str, path: &str| {
        lineup_fuzz::API_ROUTES.iter().position(|r| r.0 == method && r.1 == path).expect("a route") as u8
    };
    // Route, path parameter (1 then 2 picks "c1"; 1 then 1 "alice"...), token (0 admin, 1
    // supervisor, 2 viewer, 3 widget), query flag, content type (0 JSON), body.
    let request = |route: u8, path: &[u8], token: u8, body: &str| {
        let mut bytes = vec![route];
        bytes.extend_from_slice(path);
        bytes.extend_from_slice(&[token, 0, 0]);
        bytes.extend_from_slice(body.as_bytes());
        bytes
    };
    let set: lineup_core::RoutingConfigSet = toml::from_str(ROUTING_TOML).expect("the example routing config parses");
    let set_json = serde_json::to_string(&set).expect("a set serializes");
    seed("api_rest", "put-config", &request(route("PUT", "/v1/config"), &[1, 0], 0, &set_json));
    seed(
        "api_rest",
        "reassign",
        &request(route("POST", "/v1/calls/{}/reassign"), &[1, 2], 1, r#"{"queue":"support","keep_age":true}"#),
    );
    seed(
        "api_rest",
        "operator-break",
        &request(route("POST", "/v1/operators/{}/state"), &[1, 3], 1, r#"{"state":"break","reason":"lunch"}"#),
    );
    seed(
        "api_rest",
        "put-queue",
        &request(
            route("PUT", "/v1/config/queues/{}"),
            &[1, 5],
            0,
            r#"{"id":"sales","max_wait_ms":60000,"wrap_up_ms":5000}"#,
        ),
    );
    seed("api_rest", "calls", &request(route("GET", "/v1/calls"), &[1, 0], 2, ""));
    seed(
        "api_rest",
        "callback",
        &request(route("POST", "/v1/calls/{}/callback"), &[1, 2], 3, r#"{"number":"5551234"}"#),
    );
    seed("api_rest", "pull", &request(route("POST", "/v1/operators/{}/pull"), &[1, 3], 1, r#"{"call":"c1"}"#));
    // Feed (1 = /v1/live), ?token= (0) with token 2, Origin allowed (0), no header (0), upgrade headers (1).
    seed("api_websocket", "live-viewer", &[1, 0, 2, 0, 0, 1]);
    seed("api_websocket", "call-live-widget", &[0, 1, 2, 0, 3, 0, 0, 1]);
    seed("api_websocket", "live-foreign-origin", &[1, 0, 0, 2, 0, 1]);
}

fn files() {
    seed("routing_config", "deploy-example", ROUTING_TOML.as_bytes());
    seed(
        "routing_config",
        "small",
        b"[[queues]]\nid = \"sales\"\nmax_wait_ms = 60000\n\n[[gates]]\nid = \"web\"\nqueue = \"sales\"\n",
    );
    for site in 1..=3 {
        let path = format!("{}/../../deploy/examples/site-{site}.toml", env!("CARGO_MANIFEST_DIR"));
        seed("node_config", &format!("deploy-site-{site}"), &std::fs::read(path).expect("a deploy example"));
    }
    let line = "1795400000|1-1795325224.1|sales|NONE|ENTERQUEUE||5551234|1\n";
    let file = format!("{line}{line}");
    let queue_log = |name: &str, file: &str, sidecar: &str| {
        let mut bytes = (file.len() as u16).to_le_bytes().to_vec();
        bytes.extend_from_slice(file.as_bytes());
        bytes.extend_from_slice(sidecar.as_bytes());
        seed("queue_log_recovery", name, &bytes);
    };
    queue_log("torn-append", &file, &format!("256 {}\n", line.len()));
    queue_log("recorded-whole", &file, &format!("512 {}\n", file.len()));
    queue_log("rotated", line, &format!("512 {}\n", 10 * file.len()));
    queue_log("damaged-sidecar", &file, "x y\n");
    queue_log("no-sidecar", &file, "");
    seed("outbox_recovery", "intact", &[0]);
    seed("outbox_recovery", "truncated", &[1, 0, 16, 0, 0]);
    seed("outbox_recovery", "damaged", &[0, 0, 1, 0, 0, 0xff, 0x40, 0, 0, 0, 0x01]);
    seed("island_journal", "intact", &[0]);
    seed("island_journal", "truncated", &[1, 0, 16, 0, 0]);
    seed("island_journal", "damaged", &[0, 0, 1, 0, 0, 0xff, 0x40, 0, 0, 0, 0x01]);
    seed("island_journal", "damaged-pages", &[0, 0, 0x30, 0, 0, 0x5a, 0, 0x50, 0, 0, 0x5a, 0, 0x70, 0, 0, 0x5a]);
}

fn core() {
    let mut state: u64 = 0x5eed;
    for n in 0..4 {
        let bytes: Vec<u8> = (0..800)
            .map(|_| {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                (z ^ (z >> 31)) as u8
            })
            .collect();
        seed("core_commands", &format!("random-{n}"), &bytes);
    }
}

fn main() {
    ari();
    login();
    peer();
    api();
    files();
    core();
}
