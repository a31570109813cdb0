//! The log entry encoding is pinned: these bytes are what every node has written to disk and
//! sent to peers. If this test fails, the on-disk/wire format changed: bump
//! `codec::FORMAT_VERSION` and write a migration instead of editing the expected bytes.

use lineup_core::codec::{decode_versioned, encode_versioned, DECODE_LIMIT_BYTES};
use lineup_core::stats::Stats;
use lineup_core::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sample_commands() -> Vec<Command> {
    let id = |serial| CommandId { origin: 2, serial };
    vec![
        Command {
            id: id(1),
            at_ms: 1_795_419_000_000,
            body: CommandBody::Enqueue(Enqueue {
                call: CallId::new("a-1795325224.1"),
                queue: QueueId::new("sales"),
                gate: Some(GateId::new("web")),
                priority: Some(PRIORITY_VIP),
                caller_number: "5551234".into(),
                caller_name: "Alice".into(),
                site: SiteId(1),
                channel: Some("1795325224.1".into()),
                skills: Default::default(),
                callback_number: None,
            }),
        },
        Command {
            id: id(2),
            at_ms: 1_795_419_000_500,
            body: CommandBody::Connected {
                call: CallId::new("a-1795325224.1"),
                operator: OperatorId::new("alice"),
                fence: 42,
            },
        },
        Command { id: id(3), at_ms: 1_795_419_001_000, body: CommandBody::Tick { now_ms: 1_795_419_001_000 } },
    ]
}

/// Layout of the first line: version 01 | origin 02 | serial 01 | at_ms fd+u64 LE |
/// variant 08 (Enqueue) | call 0e "a-1795325224.1" | queue 05 "sales" | gate 01 03 "web" |
/// priority 01 00 | number 07 "5551234" | name 05 "Alice" | site 01 | channel 01 0c "..." |
/// skills 00 (empty) | callback_number 00 (None).
const GOLDEN: [&str; 3] = [
    "010201fdc0cc4f07a2010000080e612d313739353332353232342e310573616c657301037765620100073535353132333405416c69636501010c313739353332353232342e310000",
    "010202fdb4ce4f07a20100000c0e612d313739353332353232342e3105616c6963652a",
    "010203fda8d04f07a201000018fda8d04f07a2010000",
];

#[test]
fn log_entry_encoding_is_pinned() {
    for (cmd, golden) in sample_commands().iter().zip(GOLDEN) {
        let bytes = encode_versioned(cmd).unwrap();
        assert_eq!(hex(&bytes), golden, "encoding of {:?} changed", cmd.body.kind());
        let back: Command = decode_versioned(&bytes, DECODE_LIMIT_BYTES).unwrap();
        assert_eq!(&back, cmd);
    }
}

#[test]
fn garbage_and_truncated_entries_are_refused() {
    let bytes = encode_versioned(&sample_commands()[0]).unwrap();
    for cut in 0..bytes.len() {
        assert!(decode_versioned::<Command>(&bytes[..cut], DECODE_LIMIT_BYTES).is_err(), "truncated at {cut}");
    }
    // Right version byte, then a varint claiming an enormous origin and nothing after it.
    assert!(decode_versioned::<Command>(&[1, 0xff, 0xff, 0xff], DECODE_LIMIT_BYTES).is_err());
    // Version, origin 2, serial 1, at_ms 0, then a command variant tag far beyond the last one.
    assert!(decode_versioned::<Command>(&[1, 2, 1, 0, 0xfb, 0xff, 0xff], DECODE_LIMIT_BYTES).is_err());
}

fn audited_command() -> Command {
    Command {
        id: CommandId { origin: 2, serial: 4 },
        at_ms: 1_795_419_002_000,
        body: CommandBody::Audited {
            actor: AuditActor { token_name: "ops".into(), role: AuditRole::Supervisor },
            body: Box::new(CommandBody::ChangePriority { call: CallId::new("c1"), priority: 0 }),
        },
    }
}

fn audit_effect() -> Effect {
    Effect::Audit(AuditRecord {
        at_ms: 1_795_419_002_000,
        actor: AuditActor { token_name: "ops".into(), role: AuditRole::Admin },
        action: "change_priority".into(),
        target: "call:c1".into(),
        outcome: "done".into(),
    })
}

/// Audited (variant 0x21) | actor: name 03 "ops", role 00 (supervisor) | ChangePriority
/// (0x16) call 02 "c1" priority 00. The effect (the history outbox stores effects), in a
/// one-element list: Audit (0x0b) | at_ms | name | role 01 (admin) | action | target | outcome.
const AUDITED_GOLDEN: &str = "010204fd90d44f07a201000021036f7073001602633100";
const AUDIT_EFFECT_GOLDEN: &str =
    "01010bfd90d44f07a2010000036f7073010f6368616e67655f7072696f726974790763616c6c3a633104646f6e65";

#[test]
fn audited_entry_and_audit_effect_encodings_are_pinned() {
    let command = audited_command();
    let bytes = encode_versioned(&command).unwrap();
    assert_eq!(hex(&bytes), AUDITED_GOLDEN);
    assert_eq!(decode_versioned::<Command>(&bytes, DECODE_LIMIT_BYTES).unwrap(), command);
    let effects = vec![audit_effect()];
    let bytes = encode_versioned(&effects).unwrap();
    assert_eq!(hex(&bytes), AUDIT_EFFECT_GOLDEN);
    assert_eq!(decode_versioned::<Vec<Effect>>(&bytes, DECODE_LIMIT_BYTES).unwrap(), effects);
}

fn missed_command() -> Command {
    Command {
        id: CommandId { origin: 2, serial: 5 },
        at_ms: 1_795_419_003_000,
        body: CommandBody::MissedWhileDown(MissedCall {
            call: CallId::new("1-1795419000.3"),
            queue: QueueId::new("sales"),
            gate: Some(GateId::new("main")),
            site: SiteId(1),
            caller_number: "5551234".into(),
            entered_at_ms: 1_795_419_000_000,
            ended_at_ms: 1_795_419_002_000,
            fallback: true,
        }),
    }
}

/// MissedWhileDown (variant 0x22) | call 0e "1-1795419000.3" | queue 05 "sales" | gate 01 04
/// "main" | site 01 | number 07 "5551234" | entered fd+u64 | ended fd+u64 | fallback 01.
const MISSED_GOLDEN: &str = "010205fd78d84f07a2010000220e312d313739353431393030302e330573616c657301046d61696e010735353531323334fdc0cc4f07a2010000fd90d44f07a201000001";

#[test]
fn missed_while_down_entry_encoding_is_pinned() {
    let command = missed_command();
    let bytes = encode_versioned(&command).unwrap();
    assert_eq!(hex(&bytes), MISSED_GOLDEN);
    assert_eq!(decode_versioned::<Command>(&bytes, DECODE_LIMIT_BYTES).unwrap(), command);
}

fn alarm_policy_command() -> Command {
    let mut policy =
        AlarmPolicy { depth_clear_percent: 75, longest_wait_clear_percent: 80, hold_ms: 30_000, ..Default::default() };
    policy.queues.insert(QueueId::new("sales"), QueueAlarmClear { depth_clear: Some(5), longest_wait_clear_ms: None });
    Command {
        id: CommandId { origin: 2, serial: 6 },
        at_ms: 1_795_419_003_000,
        body: CommandBody::PutAlarmPolicy(policy),
    }
}

/// PutAlarmPolicy (variant 0x23) | depth 4b (75 %) | longest wait 50 (80 %) | hold fb+u16
/// 30 000 | one queue: 05 "sales", depth_clear 01 05, longest_wait_clear_ms 00.
const ALARM_POLICY_GOLDEN: &str = "010206fd78d84f07a2010000234b50fb3075010573616c6573010500";

#[test]
fn put_alarm_policy_entry_encoding_is_pinned() {
    let command = alarm_policy_command();
    let bytes = encode_versioned(&command).unwrap();
    assert_eq!(hex(&bytes), ALARM_POLICY_GOLDEN);
    assert_eq!(decode_versioned::<Command>(&bytes, DECODE_LIMIT_BYTES).unwrap(), command);
}

fn island_epoch() -> IslandEpoch {
    IslandEpoch { site: SiteId(3), seq: 2, fork_index: 40 }
}

fn island_merge_commands() -> Vec<Command> {
    let epoch = island_epoch();
    let command = |serial, body| Command { id: CommandId { origin: 3, serial }, at_ms: 1_795_419_004_000, body };
    let line = QueueLogEntry {
        at_ms: 1_795_419_001_000,
        call: Some(CallId::new("c1")),
        queue: Some(QueueId::new("sales")),
        gate: None,
        agent: None,
        verb: QueueLogVerb::Abandon,
        data: vec!["1".into()],
    };
    let ended = CallRecord {
        call: CallId::new("c1"),
        queue: QueueId::new("sales"),
        gate: None,
        priority: 5,
        entry_site: SiteId(3),
        caller_number: "555".into(),
        caller_name: "A".into(),
        outcome: Outcome::Abandoned,
        entered_at_ms: 1_000,
        ended_at_ms: 2_000,
        wait_ms: 1_000,
        handle_ms: None,
        operator: None,
        operator_site: None,
        callback_number: None,
        callback_attempts: 0,
    };
    let records = vec![
        IslandRecord { fork_index: ISLAND_APPLY_INDEX_BASE + 1, history: IslandHistory::QueueLog(line) },
        IslandRecord { fork_index: ISLAND_APPLY_INDEX_BASE + 1, history: IslandHistory::CallEnded(ended) },
    ];
    let counts = MergeCounts { records: 2, calls: 0, operator_chunks: 0 };
    let mut stats = StatsDelta::default();
    stats.queues.insert(QueueId::new("sales"), Stats { offered: 1, abandoned: 1, ..Default::default() });
    let handle_samples = [(QueueId::new("sales"), vec![65_000])].into_iter().collect();
    let pin_failures = [(OperatorId::new("ivy"), vec![1_000])].into_iter().collect();
    vec![
        command(1, CommandBody::IslandMergeBegin { epoch, counts, digest: 0x0123_4567_89ab_cdef }),
        command(2, CommandBody::IslandMergeRecords { epoch, first_record: 0, records }),
        command(3, CommandBody::IslandMergeEnd { epoch, stats, handle_samples, pin_failures }),
    ]
}

/// Each: version 01 | origin 03 | serial | at_ms fd+u64 | variant, then the epoch (site 03,
/// seq 02, fork index 28). Begin (0x24) | counts 02 00 00 | digest fd+u64. Records (0x25) |
/// first record 00 | two records, each fork index fd+u64 (2^55 + 1) and its history: a
/// queue_log line (01) ABANDON, an ended call (00). End (0x26) | one queue "sales" with
/// offered 1 and abandoned 1 | no gates | one queue's handle samples: "sales", [fb+u16 65 000]
/// | one operator's wrong PINs: "ivy", [fb+u16 1 000].
const ISLAND_MERGE_GOLDEN: [&str; 3] = [
    "010301fd60dc4f07a201000024030228020000fdefcdab8967452301",
    concat!(
        "010302fd60dc4f07a2010000250302280002fd010000000000800001fda8d04f07a201000001026331010573616c6573",
        "000004010131fd0100000000008000000263310573616c657300050303353535014102fbe803fbd007fbe8030000000000",
    ),
    concat!(
        "010303fd60dc4f07a201000026030228010573616c657301000001000000000000000000000000010573616c657301fbe8fd",
        "0103697679",
        "01fbe803",
    ),
];

/// The effect, in a one-element list: IslandMerged (0x0c) | site 03 | epoch | end index.
const ISLAND_MERGED_EFFECT_GOLDEN: &str = "01010c03030228fbf82a";

#[test]
fn island_merge_entries_and_effect_encodings_are_pinned() {
    for (command, golden) in island_merge_commands().iter().zip(ISLAND_MERGE_GOLDEN) {
        let bytes = encode_versioned(command).unwrap();
        assert_eq!(hex(&bytes), golden, "encoding of {} changed", command.body.kind());
        assert_eq!(&decode_versioned::<Command>(&bytes, DECODE_LIMIT_BYTES).unwrap(), command);
    }
    let effects = vec![Effect::IslandMerged { site: SiteId(3), epoch: island_epoch(), end_index: 11_000 }];
    let bytes = encode_versioned(&effects).unwrap();
    assert_eq!(hex(&bytes), ISLAND_MERGED_EFFECT_GOLDEN);
    assert_eq!(decode_versioned::<Vec<Effect>>(&bytes, DECODE_LIMIT_BYTES).unwrap(), effects);
}

/// Ivy as the island holds her: busy with call c1 (fence 2^55 + 1) at site 3, logged in
/// by PIN.
fn merged_ivy() -> MergedOperator {
    MergedOperator {
        id: OperatorId::new("ivy"),
        status: OperatorStatus::Busy { call: CallId::new("c1"), fence: ISLAND_APPLY_INDEX_BASE + 1 },
        site: Some(SiteId(3)),
        channel: Some("h".into()),
        login: Some(LoginChannel { uniqueid: "u".into(), name: "P".into() }),
        since_ms: 2_000,
        idle_since_ms: 1_000,
        logged_in_at_ms: 500,
        misses: 1,
        wake_ms: None,
        after_call: Some(RequestedState::Offline),
    }
}

fn island_merge_party_commands() -> Vec<Command> {
    let epoch = island_epoch();
    let command = |serial, body| Command { id: CommandId { origin: 3, serial }, at_ms: 1_795_419_004_000, body };
    let fence = ISLAND_APPLY_INDEX_BASE + 1;
    let call = MergedCall {
        fork_number: ISLAND_APPLY_INDEX_BASE,
        id: CallId::new("c1"),
        queue: QueueId::new("sales"),
        gate: None,
        priority: 5,
        caller_number: "555".into(),
        caller_name: "A".into(),
        entry_site: SiteId(3),
        channel: Some("ch".into()),
        extra_skills: [(Skill::new("fr"), 20)].into_iter().collect(),
        entered_at_ms: 1_000,
        joined_at_ms: 1_000,
        orig_position: 2,
        overflow_hops: 0,
        state: model::CallState::Connected {
            operator: OperatorId::new("ivy"),
            fence,
            operator_site: SiteId(3),
            since_ms: 2_000,
            wait_ms: 1_000,
        },
        callback: None,
        max_wait_due_ms: Some(91_000),
        next_widen_ms: None,
        next_announce_ms: None,
        next_periodic_ms: None,
        periodic_index: 0,
        callback_offered: false,
        operator: Some(merged_ivy()),
    };
    let max = MergedOperator {
        id: OperatorId::new("max"),
        status: OperatorStatus::Offline,
        site: None,
        channel: None,
        login: None,
        since_ms: 3_000,
        idle_since_ms: 0,
        logged_in_at_ms: 0,
        misses: 0,
        wake_ms: None,
        after_call: None,
    };
    vec![
        command(4, CommandBody::IslandMergeCall { epoch, call }),
        command(5, CommandBody::IslandMergeOperators { epoch, operators: vec![max] }),
    ]
}

/// Each: version 01 | origin 03 | serial | at_ms fd+u64 | variant, then the epoch (site 03,
/// seq 02, fork index 28). Call (0x28) | fork number fd+u64 (2^55) | "c1" | "sales" | no gate
/// | priority 05 | "555" | "A" | site 03 | channel "ch" | skills {fr: 20} | entered and
/// joined fbe803 | orig position 02 | hops 00 | Connected (02): "ivy", fence fd+u64 (2^55 + 1),
/// site 03, since fbd007, wait fbe803 | no callback | max wait fc+u32 91 000 | three timers
/// none | periodic 00 | not offered 00 | Ivy: "ivy", Busy (03) "c1" and the fence, site 03,
/// channel "h", login "u" "P", since, idle since, logged in at 500 (fbf401), misses 01, no
/// wake, after the call offline (02). Operators (0x29) | one: "max", Offline (00), no site,
/// channel or login, since 3 000 (fbb80b), idle 0, login 0, misses 0, no wake, nothing after.
const ISLAND_MERGE_PARTIES_GOLDEN: [&str; 2] = [
    concat!(
        "010304fd60dc4f07a201000028030228fd00000000000080000263310573616c6573000503353535014103010263680102667214",
        "fbe803fbe80302000203697679fd010000000000800003fbd007fbe8030001fc786301000000000000010369767903026331fd01",
        "0000000000800001030101680101750150fbd007fbe803fbf40101000102",
    ),
    "010305fd60dc4f07a20100002903022801036d617800000000fbb80b0000000000",
];

#[test]
fn island_merge_call_and_operators_encodings_are_pinned() {
    for (command, golden) in island_merge_party_commands().iter().zip(ISLAND_MERGE_PARTIES_GOLDEN) {
        let bytes = encode_versioned(command).unwrap();
        assert_eq!(hex(&bytes), golden, "encoding of {} changed", command.body.kind());
        assert_eq!(&decode_versioned::<Command>(&bytes, DECODE_LIMIT_BYTES).unwrap(), command);
    }
}

fn webhooks_command() -> Command {
    Command {
        id: CommandId { origin: 2, serial: 7 },
        at_ms: 1_795_419_003_000,
        body: CommandBody::PutWebhooks(vec![WebhookConfig {
            id: "ops".into(),
            url: "https://o.example/h".into(),
            secret: "0123456789abcdef".into(),
            events: vec![WebhookEventKind::AlarmRaised, WebhookEventKind::SiteLost],
            enabled: true,
        }]),
    }
}

/// PutWebhooks (variant 0x27) | one webhook | name 03 "ops" | url 13 "https://o.example/h" |
/// secret 10 "0123456789abcdef" | two kinds 00 (alarm_raised) 04 (site_lost) | enabled 01.
/// The site health effect in a one-element list: SiteHealthChanged (0x0d) | site 02 | lost 02.
const WEBHOOKS_GOLDEN: &str = "010207fd78d84f07a20100002701036f70731368747470733a2f2f6f2e6578616d706c652f68103031323334353637383961626364656602000401";
const SITE_HEALTH_EFFECT_GOLDEN: &str = "01010d0202";

#[test]
fn put_webhooks_entry_and_site_health_effect_encodings_are_pinned() {
    let command = webhooks_command();
    let bytes = encode_versioned(&command).unwrap();
    assert_eq!(hex(&bytes), WEBHOOKS_GOLDEN);
    assert_eq!(decode_versioned::<Command>(&bytes, DECODE_LIMIT_BYTES).unwrap(), command);
    let effects = vec![Effect::SiteHealthChanged { site: SiteId(2), health: SiteHealth::Lost }];
    let bytes = encode_versioned(&effects).unwrap();
    assert_eq!(hex(&bytes), SITE_HEALTH_EFFECT_GOLDEN);
    assert_eq!(decode_versioned::<Vec<Effect>>(&bytes, DECODE_LIMIT_BYTES).unwrap(), effects);
}

/// The entries pinned before PutWebhooks existed still decode to what they were.
#[test]
fn older_entries_still_decode_beside_put_webhooks() {
    for (golden, command) in [(ALARM_POLICY_GOLDEN, alarm_policy_command()), (MISSED_GOLDEN, missed_command())] {
        let bytes: Vec<u8> =
            (0..golden.len()).step_by(2).map(|i| u8::from_str_radix(&golden[i..i + 2], 16).unwrap()).collect();
        assert_eq!(decode_versioned::<Command>(&bytes, DECODE_LIMIT_BYTES).unwrap(), command);
    }
}

fn ingress_command() -> Command {
    Command {
        id: CommandId { origin: 2, serial: 8 },
        at_ms: 1_795_419_004_000,
        body: CommandBody::PutIngress(lineup_core::ingress::IngressPolicy {
            dids: vec![lineup_core::ingress::DidRoute {
                did: "+4930123".into(),
                gate: GateId::new("web"),
                prefer_sites: vec![SiteId(2), SiteId(1)],
            }],
        }),
    }
}

/// PutIngress (variant 0x2a) | one DID | "+4930123" (08) | gate 03 "web" | two preferred
/// sites 02 01.
const INGRESS_GOLDEN: &str = "010208fd60dc4f07a20100002a01082b34393330313233037765620202 01";

#[test]
fn put_ingress_entry_encoding_is_pinned() {
    let command = ingress_command();
    let bytes = encode_versioned(&command).unwrap();
    assert_eq!(hex(&bytes), INGRESS_GOLDEN.replace(' ', ""));
    assert_eq!(decode_versioned::<Command>(&bytes, DECODE_LIMIT_BYTES).unwrap(), command);
}

fn monitor_command() -> Command {
    Command {
        id: CommandId { origin: 2, serial: 9 },
        at_ms: 1_795_419_005_000,
        body: CommandBody::MonitorCall {
            call: CallId::new("c1"),
            mode: MonitorMode::Whisper,
            endpoint: "PJSIP/2001".into(),
            supervisor_site: SiteId(2),
        },
    }
}

fn monitor_effect() -> Effect {
    Effect::Monitor(MonitorOrder {
        session: 4_096,
        call: CallId::new("c1"),
        operator: OperatorId::new("ivy"),
        fence: 2_048,
        operator_site: SiteId(1),
        supervisor_site: SiteId(2),
        mode: MonitorMode::Barge,
        endpoint: "PJSIP/2001".into(),
    })
}

/// MonitorCall (variant 0x2b) | call 02 "c1" | mode 01 (whisper) | endpoint 0a "PJSIP/2001" |
/// supervisor site 02. The effect, in a one-element list: Monitor (0x0e) | session fb 0010 |
/// call | operator 03 "ivy" | fence fb 0008 | sites 01 02 | mode 02 (barge) | endpoint.
const MONITOR_GOLDEN: &str = "010209fd48e04f07a20100002b026331010a504a5349502f3230303102";
const MONITOR_EFFECT_GOLDEN: &str = "01010efb001002633103697679fb00080102020a504a5349502f32303031";

#[test]
fn monitor_call_entry_and_monitor_effect_encodings_are_pinned() {
    let command = monitor_command();
    let bytes = encode_versioned(&command).unwrap();
    assert_eq!(hex(&bytes), MONITOR_GOLDEN);
    assert_eq!(decode_versioned::<Command>(&bytes, DECODE_LIMIT_BYTES).unwrap(), command);
    let effects = vec![monitor_effect()];
    let bytes = encode_versioned(&effects).unwrap();
    assert_eq!(hex(&bytes), MONITOR_EFFECT_GOLDEN);
    assert_eq!(decode_versioned::<Vec<Effect>>(&bytes, DECODE_LIMIT_BYTES).unwrap(), effects);
}

/// HangUpCall (variant 0x2c) | call 02 "c1". The effect, in a one-element list: HangUp (0x0f)
/// | call 02 "c1" | site 01 | channel 05 "ch-c1".
const HANG_UP_GOLDEN: &str = "010209fd48e04f07a20100002c026331";
const HANG_UP_EFFECT_GOLDEN: &str = "01010f026331010563682d6331";

#[test]
fn hang_up_call_entry_and_hang_up_effect_encodings_are_pinned() {
    let command = Command {
        id: CommandId { origin: 2, serial: 9 },
        at_ms: 1_795_419_005_000,
        body: CommandBody::HangUpCall { call: CallId::new("c1") },
    };
    let bytes = encode_versioned(&command).unwrap();
    assert_eq!(hex(&bytes), HANG_UP_GOLDEN);
    assert_eq!(decode_versioned::<Command>(&bytes, DECODE_LIMIT_BYTES).unwrap(), command);
    let effects = vec![Effect::HangUp { call: CallId::new("c1"), site: SiteId(1), channel: "ch-c1".into() }];
    let bytes = encode_versioned(&effects).unwrap();
    assert_eq!(hex(&bytes), HANG_UP_EFFECT_GOLDEN);
    assert_eq!(decode_versioned::<Vec<Effect>>(&bytes, DECODE_LIMIT_BYTES).unwrap(), effects);
}
