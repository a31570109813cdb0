//! The routing state snapshot encoding is pinned: these bytes are what a node writes as its
//! Raft snapshot and sends to a peer catching up. If this test fails, the snapshot format
//! changed: bump `codec::FORMAT_VERSION` and keep `Routing::restore` reading the old layout
//! (as it does for the state before the unreachable-site set) instead of editing the bytes.

use lineup_core::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A queue, a logged-in operator talking to one caller, and a second caller waiting. Bob
/// logged in by PIN from a phone call (`OperatorLoginFrom`) or, as versions before the login
/// call was kept did, without one (`OperatorLogin`); then a callback policy may be set.
fn sample_routing(bob_login: CommandBody, policy: Option<CallbackPolicy>) -> Routing {
    let at_ms = 1_795_419_000_000;
    let enqueue = |call: &str, channel: &str| {
        CommandBody::Enqueue(Enqueue {
            call: CallId::new(call),
            queue: QueueId::new("sales"),
            gate: None,
            priority: None,
            caller_number: "5551234".into(),
            caller_name: "Alice".into(),
            site: SiteId(1),
            channel: Some(channel.into()),
            skills: Default::default(),
            callback_number: None,
        })
    };
    let bodies = vec![
        CommandBody::Tick { now_ms: at_ms },
        CommandBody::PutQueue(QueueConfig { id: QueueId::new("sales"), ..Default::default() }),
        CommandBody::PutOperator(OperatorConfig {
            id: OperatorId::new("bob"),
            name: "Bob".into(),
            site: SiteId(1),
            mode: OperatorMode::Persistent,
            memberships: [(QueueId::new("sales"), 1)].into_iter().collect(),
            ..Default::default()
        }),
        bob_login,
        enqueue("a-1795325224.1", "1795325224.1"),
        CommandBody::Connected {
            call: CallId::new("a-1795325224.1"),
            operator: OperatorId::new("bob"),
            // The offer's fence: the apply index of the Enqueue (entry 3, position 0).
            fence: ApplyIndex::new(3, 0).get(),
        },
        enqueue("a-1795325224.2", "1795325224.2"),
    ];
    let bodies = bodies.into_iter().chain(policy.map(CommandBody::PutCallbackPolicy));
    let mut routing = Routing::new();
    for (serial, body) in (1..).zip(bodies) {
        let cmd = Command { id: CommandId { origin: 2, serial }, at_ms, body };
        // Two commands per Raft entry, as if lineup-cluster had batched them.
        let index = ApplyIndex::new(1 + (serial - 1) / 2, ((serial - 1) % 2) as usize);
        let applied = routing.apply(index.get(), &cmd);
        applied.result.unwrap_or_else(|e| panic!("{} refused: {e}", cmd.body.kind()));
    }
    routing.check_invariants().unwrap();
    routing
}

fn pin_login() -> CommandBody {
    CommandBody::OperatorLoginFrom {
        operator: OperatorId::new("bob"),
        site: SiteId(1),
        channel: Some("op-bob".into()),
        login: LoginChannel { uniqueid: "op-bob".into(), name: "PJSIP/100-0000002a".into() },
    }
}

fn small_policy() -> CallbackPolicy {
    CallbackPolicy {
        allowed_patterns: vec!["_1NXXNXXXXXX".into()],
        denied_numbers: vec!["911".into()],
        denied_prefixes: vec!["1900".into()],
    }
}

fn login_without_a_call() -> CommandBody {
    CommandBody::OperatorLogin { operator: OperatorId::new("bob"), site: SiteId(1), channel: Some("op-bob".into()) }
}

/// What the version before `alarms` wrote for the same state: version 01, then the state's
/// fields in declaration order (queues, gates, operators, ...). Kept unedited: a node
/// upgraded in place must restore it.
const GOLDEN_BEFORE_ALARMS: &str = concat!(
    "01010573616c65730573616c6573000500000000fbe80300000000000003fcc0d4010000fb983a03fb881300fb204e00",
    "00000000000000fc20bf020002010100000000000000000000000000000000000103626f6203626f6203426f62010000",
    "0000010573616c657301030e612d313739353332353232342e31fb0003010101066f702d626f62fdc0cc4f07a2010000",
    "fdc0cc4f07a2010000fdc0cc4f07a2010000000000000002fb0003fb00030e612d313739353332353232342e31057361",
    "6c65730005fb0003073535353132333405416c69636501010c313739353332353232342e3100fdc0cc4f07a2010000fd",
    "c0cc4f07a201000001000203626f62fb000301fdc0cc4f07a20100000000000000000000fb0004fb00040e612d313739",
    "353332353232342e320573616c65730005fb0004073535353132333405416c69636501010c313739353332353232342e",
    "3200fdc0cc4f07a2010000fdc0cc4f07a201000001000000000000000000010208010000020000030000040000050001",
    "0573616c6573010101fc20bf0200000600000700010573616c6573010101fc20bf020000080000fb0104fdc0cc4f07a2",
    "010000fdc0cc4f07a2010000fb01040000000103626f62066f702d626f6212504a5349502f3130302d30303030303032",
    "6100010c5f314e58584e5858585858580103393131010431393030",
);

/// What the version before `phone_logins` wrote for the same state (Bob logged in
/// without a call): a node upgraded in place must restore it.
const GOLDEN_BEFORE_PHONE_LOGINS: &str = concat!(
    "01010573616c65730573616c6573000500000000fbe80300000000000003fcc0d4010000fb983a03fb881300fb204e00",
    "00000000000000fc20bf020002010100000000000000000000000000000000000103626f6203626f6203426f62010000",
    "0000010573616c657301030e612d313739353332353232342e31fb0003010101066f702d626f62fdc0cc4f07a2010000",
    "fdc0cc4f07a2010000fdc0cc4f07a2010000000000000002fb0003fb00030e612d313739353332353232342e31057361",
    "6c65730005fb0003073535353132333405416c69636501010c313739353332353232342e3100fdc0cc4f07a2010000fd",
    "c0cc4f07a201000001000203626f62fb000301fdc0cc4f07a20100000000000000000000fb0004fb00040e612d313739",
    "353332353232342e320573616c65730005fb0004073535353132333405416c69636501010c313739353332353232342e",
    "3200fdc0cc4f07a2010000fdc0cc4f07a201000001000000000000000000010207010000020000030000040000050001",
    "0573616c6573010101fc20bf0200000600000700010573616c6573010101fc20bf020000fb0004fdc0cc4f07a2010000",
    "fdc0cc4f07a2010000fb0004000000",
);

/// The state's last field, `alarms`, as this version appends it: the default policy
/// (clear at 80 % of depth and of longest wait, 30 000 ms hold, no per-queue levels) and no
/// raise times.
const DEFAULT_ALARMS: &str = "5050fb30750000";

/// The state's field `islands`, on the global state: no fork, no merge open, no
/// island merged.
const NO_ISLANDS: &str = "000000";

/// `islands` as the version before island merges wrote it: the fork alone.
const NO_ISLANDS_BEFORE_MERGES: &str = "00";

/// The state's field `webhooks`: an empty list.
const NO_WEBHOOKS: &str = "00";

/// The state's last field, `ingress`: no DIDs.
const NO_INGRESS: &str = "00";

#[test]
fn routing_snapshot_encoding_is_pinned() {
    let bytes = sample_routing(pin_login(), Some(small_policy())).snapshot_bytes();
    let golden = format!("{GOLDEN_BEFORE_ALARMS}{DEFAULT_ALARMS}{NO_ISLANDS}{NO_WEBHOOKS}{NO_INGRESS}");
    assert_eq!(hex(&bytes), golden, "the routing snapshot encoding changed");
}

#[test]
fn a_snapshot_from_before_ingress_restores() {
    let before_ingress = from_hex(&format!("{GOLDEN_BEFORE_ALARMS}{DEFAULT_ALARMS}{NO_ISLANDS}{NO_WEBHOOKS}"));
    let restored = Routing::restore(&before_ingress).unwrap();
    restored.check_invariants().unwrap();
    assert!(restored.ingress_policy().dids.is_empty());
    let now = sample_routing(pin_login(), Some(small_policy())).snapshot_bytes();
    assert_eq!(restored.snapshot_bytes(), now);
}

#[test]
fn a_snapshot_from_before_webhooks_restores() {
    let before_webhooks = from_hex(&format!("{GOLDEN_BEFORE_ALARMS}{DEFAULT_ALARMS}{NO_ISLANDS}"));
    let restored = Routing::restore(&before_webhooks).unwrap();
    restored.check_invariants().unwrap();
    assert!(restored.webhooks().is_empty());
    let now = sample_routing(pin_login(), Some(small_policy())).snapshot_bytes();
    assert_eq!(restored.snapshot_bytes(), now);
}

/// A webhook in the state's last field: name, URL, secret, the kinds (variant indexes) and
/// enabled. It restores as it was.
#[test]
fn a_snapshot_with_a_webhook_is_pinned_and_restores() {
    let mut routing = sample_routing(pin_login(), Some(small_policy()));
    let webhook = WebhookConfig {
        id: "ops".into(),
        url: "https://o.example/h".into(),
        secret: "0123456789abcdef".into(),
        events: vec![WebhookEventKind::AlarmRaised, WebhookEventKind::SiteLost],
        enabled: true,
    };
    let body = CommandBody::PutWebhooks(vec![webhook.clone()]);
    let put = Command { id: CommandId { origin: 2, serial: 99 }, at_ms: 1_795_419_000_000, body };
    routing.apply(ApplyIndex::new(9, 0).get(), &put).result.unwrap();
    let bytes = routing.snapshot_bytes();
    // One webhook | name 03 "ops" | url 13 "https://o.example/h" | secret 10 "0123456789abcdef"
    // | two kinds: 00 (alarm_raised), 04 (site_lost) | enabled 01.
    let field = "01036f70731368747470733a2f2f6f2e6578616d706c652f68103031323334353637383961626364656602000401";
    assert!(hex(&bytes).ends_with(&format!("{NO_ISLANDS}{field}{NO_INGRESS}")), "{}", hex(&bytes));
    let restored = Routing::restore(&bytes).unwrap();
    assert_eq!(restored.webhooks(), [webhook]);
    assert_eq!(restored.snapshot_bytes(), bytes);
}

#[test]
fn a_snapshot_from_before_alarms_restores() {
    let restored = Routing::restore(&from_hex(GOLDEN_BEFORE_ALARMS)).unwrap();
    restored.check_invariants().unwrap();
    assert_eq!(restored.alarm_policy(), &AlarmPolicy::default());
    let now = sample_routing(pin_login(), Some(small_policy())).snapshot_bytes();
    assert_eq!(restored.snapshot_bytes(), now);
}

#[test]
fn a_snapshot_from_before_island_merges_restores() {
    let before_merges = from_hex(&format!("{GOLDEN_BEFORE_ALARMS}{DEFAULT_ALARMS}{NO_ISLANDS_BEFORE_MERGES}"));
    let restored = Routing::restore(&before_merges).unwrap();
    restored.check_invariants().unwrap();
    assert!(restored.island().is_none() && restored.island_mark(SiteId(1)).is_none());
    let now = sample_routing(pin_login(), Some(small_policy())).snapshot_bytes();
    assert_eq!(restored.snapshot_bytes(), now);
}

#[test]
fn a_snapshot_from_before_islands_restores() {
    let before_islands = from_hex(&format!("{GOLDEN_BEFORE_ALARMS}{DEFAULT_ALARMS}"));
    let restored = Routing::restore(&before_islands).unwrap();
    restored.check_invariants().unwrap();
    assert!(restored.island().is_none(), "a global state");
    let now = sample_routing(pin_login(), Some(small_policy())).snapshot_bytes();
    assert_eq!(restored.snapshot_bytes(), now);
}

/// An island's fork keeps its fork in the state's field `islands`: `Some`, the epoch (site 1,
/// seq 2, fork index 4), the parked promises (none here), the stats at the fork (queue
/// "sales" as the sample counted it), its records, handle samples and wrong PINs (none yet); then no
/// merge open and none merged; then no webhooks. It restores as the same fork.
#[test]
fn an_island_fork_snapshot_is_pinned_and_restores() {
    let epoch = IslandEpoch { site: SiteId(1), seq: 2, fork_index: 4 };
    let fork = sample_routing(pin_login(), Some(small_policy())).fork_island(epoch, &[SiteId(1), SiteId(2)], 7);
    let bytes = fork.snapshot_bytes();
    let tail = format!("{DEFAULT_ALARMS}0101020400{FORK_STATS_AT_FORK}0000000000{NO_WEBHOOKS}{NO_INGRESS}");
    assert!(hex(&bytes).ends_with(&tail), "{}", hex(&bytes));
    let restored = Routing::restore(&bytes).unwrap();
    restored.check_invariants().unwrap();
    assert_eq!(restored.island(), fork.island());
    assert_eq!(restored.snapshot_bytes(), bytes);
    assert_eq!(restored.unreachable_sites().collect::<Vec<_>>(), vec![(SiteId(2), 7)]);
}

/// The sample's stats at the fork: one queue, "sales" (offered 2, answered 1, answered
/// within the service level 1), and no gates.
const FORK_STATS_AT_FORK: &str = "010573616c657302010100000000000000000000000000";

/// A fork as the version before island merges wrote it (its fork held the epoch and the
/// parked promises only) restores as the same fork, with the stats it had as those at
/// the fork and no records, handle samples or wrong PINs.
#[test]
fn a_fork_snapshot_from_before_island_merges_restores() {
    let epoch = IslandEpoch { site: SiteId(1), seq: 2, fork_index: 4 };
    let fork = sample_routing(pin_login(), Some(small_policy())).fork_island(epoch, &[SiteId(1), SiteId(2)], 7);
    let now = hex(&fork.snapshot_bytes());
    // Before island merges there were no webhooks or DID map either: every tail goes.
    let tails = format!("{FORK_STATS_AT_FORK}0000000000{NO_WEBHOOKS}{NO_INGRESS}");
    let old = now.strip_suffix(&tails).expect("the new tail");
    let restored = Routing::restore(&from_hex(old)).unwrap();
    assert_eq!(restored.island(), fork.island());
    assert_eq!(hex(&restored.snapshot_bytes()), now);
}

/// A global state merging an island keeps its mark in `islands`: no fork, one mark (site 1,
/// epoch 1 2 04, counts 01 02 01, digest 07, no record merged, the digest so far, then the
/// calls and operator chunks merged: none, no last call, none, no last operator), none merged.
/// The layout before the calls and operators were merged (no `parties`) restores as the same
/// mark with nothing of them merged.
#[test]
fn a_merge_mark_is_pinned_and_restores_from_before_merged_parties() {
    let mut routing = sample_routing(pin_login(), Some(small_policy()));
    let epoch = IslandEpoch { site: SiteId(1), seq: 2, fork_index: 4 };
    let counts = MergeCounts { records: 1, calls: 2, operator_chunks: 1 };
    for (serial, body) in [
        (97usize, CommandBody::SiteUnreachable { site: SiteId(1) }),
        (98, CommandBody::IslandMergeBegin { epoch, counts, digest: 7 }),
    ] {
        let command = Command { id: CommandId { origin: 2, serial: serial as u64 }, at_ms: 1_795_419_000_000, body };
        routing.apply(ApplyIndex::new(9, serial).get(), &command).result.unwrap();
    }
    let now = hex(&routing.snapshot_bytes());
    let mark = "0001010102040102010700fd2523228 4e49cf2cb".replace(' ', "");
    let parties = "00000000";
    let tail = format!("{mark}{parties}00{NO_WEBHOOKS}{NO_INGRESS}");
    assert!(now.ends_with(&tail), "{now}");
    // That layout had no DID map either.
    let old = format!("{}{mark}00{NO_WEBHOOKS}", now.strip_suffix(&tail).expect("the new tail"));
    let restored = Routing::restore(&from_hex(&old)).unwrap();
    restored.check_invariants().unwrap();
    assert_eq!(restored.island_mark(SiteId(1)), routing.island_mark(SiteId(1)));
    assert_eq!(hex(&restored.snapshot_bytes()), now);
}

#[test]
fn pinned_snapshot_restores_to_the_same_state() {
    let original = sample_routing(pin_login(), Some(small_policy()));
    let bytes = original.snapshot_bytes();
    let restored = Routing::restore(&bytes).unwrap();
    restored.check_invariants().unwrap();
    // The encoding is deterministic (ordered maps only), so equal bytes mean an equal state.
    assert_eq!(restored.snapshot_bytes(), bytes);
    assert_eq!(restored.last_applied_index(), original.last_applied_index());
    assert_eq!(restored.now_ms(), original.now_ms());
    let bob = OperatorId::new("bob");
    assert_eq!(restored.operator_view(&bob).map(|v| v.status), original.operator_view(&bob).map(|v| v.status));
}

#[test]
fn a_snapshot_from_before_phone_logins_restores() {
    let old_bytes: Vec<u8> = (0..GOLDEN_BEFORE_PHONE_LOGINS.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&GOLDEN_BEFORE_PHONE_LOGINS[i..i + 2], 16).unwrap())
        .collect();
    let restored = Routing::restore(&old_bytes).unwrap();
    restored.check_invariants().unwrap();
    // The same state as this version builds from the same commands, with no login call kept.
    assert_eq!(restored.snapshot_bytes(), sample_routing(login_without_a_call(), None).snapshot_bytes());
}

/// A queue, then refused commands whose refusals the deduplication window keeps (and so
/// the snapshot carries): an unknown queue, an unknown call and a refused whole config.
fn routing_with_refusals() -> (Routing, Vec<(CommandId, CoreError)>) {
    let at_ms = 1_795_419_000_000;
    let mut bad_config = RoutingConfigSet::default();
    bad_config.gates.push(GateConfig { id: GateId::new("front"), queue: QueueId::new("nope"), ..Default::default() });
    let bodies = vec![
        CommandBody::Tick { now_ms: at_ms },
        CommandBody::PutQueue(QueueConfig { id: QueueId::new("sales"), ..Default::default() }),
        CommandBody::Enqueue(Enqueue {
            call: CallId::new("a-1"),
            queue: QueueId::new("nope"),
            gate: None,
            priority: None,
            caller_number: "5551234".into(),
            caller_name: "Alice".into(),
            site: SiteId(1),
            channel: Some("1795325224.1".into()),
            skills: Default::default(),
            callback_number: None,
        }),
        CommandBody::Connected { call: CallId::new("a-2"), operator: OperatorId::new("bob"), fence: 7 },
        CommandBody::ApplyConfig(Box::new(bad_config)),
    ];
    let mut routing = Routing::new();
    let mut refusals = Vec::new();
    for (serial, body) in (1..).zip(bodies) {
        let id = CommandId { origin: 2, serial };
        let applied = routing.apply(ApplyIndex::new(serial, 0).get(), &Command { id, at_ms, body });
        if let Err(refusal) = applied.result {
            refusals.push((id, refusal));
        }
    }
    (routing, refusals)
}

/// The snapshot of `routing_with_refusals`, as the version before the dedup window kept
/// its own refusal record wrote it (it kept `CoreError` itself, with the same layout, and
/// had no `alarms`).
const GOLDEN_REFUSALS: &str = concat!(
    "01010573616c65730573616c6573000500000000fbe80300000000000003fcc0d4010000fb983a03fb881300fb204e00",
    "00000000000000fc20bf0200000000000000000000000000000000000000000000000000010205010000020000030100",
    "046e6f706504010503612d32050111020566726f6e74057175657565156e6f207175657565206e616d656420606e6f70",
    "6560fb0005fdc0cc4f07a2010000fdc0cc4f07a2010000fb00050000000000001d033030300331303003313031033130",
    "320331303303313038033131300331313103313132033131330331313503313137033131380331313903313232033132",
    "330231350331353502313702313803313930033139310331393203313933033139390339313103393939053130313131",
    "053130313737130431393030043139373603393030033937360334343905343939303005343931333704333338390534",
    "333930300534333933300534313930300534313930310534313930360533343830330533343830360533343830370533",
    "34393035053339383932053339383939",
);

fn from_hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn refusals_in_the_dedup_window_are_pinned_and_restore() {
    let (routing, refusals) = routing_with_refusals();
    assert_eq!(refusals.len(), 3, "{refusals:?}");
    let bytes = routing.snapshot_bytes();
    let golden = format!("{GOLDEN_REFUSALS}{DEFAULT_ALARMS}{NO_ISLANDS}{NO_WEBHOOKS}{NO_INGRESS}");
    assert_eq!(hex(&bytes), golden, "the snapshot encoding of refusals changed");
    let restored = Routing::restore(&from_hex(GOLDEN_REFUSALS)).unwrap();
    assert_eq!(restored.snapshot_bytes(), bytes);
    for (id, refusal) in refusals {
        assert_eq!(restored.result_of(&id), Some(Err(refusal)));
    }
}
