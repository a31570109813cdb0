//! The dialplan runner on virtual time: labels, `Goto` and `GotoIf` with expressions, and the
//! deploy snippets' bounded retry into Stasis while the box's Lineup node is down (hold
//! music between tries, the local fallback after the last, no retry for a caller Lineup
//! handed back).

use lineup_ari::stasis_args::{parse_stasis_entry, StasisEntry};
use lineup_ari::{CallerId, ChannelId, EventKind};
use lineup_pbx_sim::{AudioPath, BoxConfig, BoxIndex, Dialplan, EndedBy, EndedChannel, PbxWorld, PhoneCall};

const EXTENSIONS_CONF: &str = include_str!("../../../deploy/asterisk/extensions.conf");
const DEMO_EXTENSIONS_CONF: &str = include_str!("../../../deploy/demo/extensions.conf");
const SITE: BoxIndex = BoxIndex(0);
/// Hold music between two tries in the deploy snippets (`MusicOnHold(default,2)`).
const RETRY_PAUSE_MS: u64 = 2_000;
/// Tries after the first failed one (`GotoIf($[${LINEUP_TRIES} >= 15]?fallback)`).
const RETRIES_MAX_COUNT: u64 = 15;
/// `Answer()` on a ringing channel waits this long before the next priority.
const ANSWER_SETTLE_MS: u64 = lineup_pbx_sim::world::DIALPLAN_ANSWER_SETTLE_MS;

fn world(dialplan: &str) -> PbxWorld {
    let config = BoxConfig {
        name: "site-a".into(),
        asterisk_id: "02:fc:00:00:00:0a".into(),
        dialplan: Dialplan::parse(dialplan).unwrap(),
        trunks: vec![],
    };
    PbxWorld::new(1_795_325_224_000, vec![config]).unwrap()
}

fn call(world: &mut PbxWorld, context: &str, exten: &str) -> ChannelId {
    let call = PhoneCall {
        phone: "alice".into(),
        caller: CallerId { name: "Alice".into(), number: "5551234".into() },
        context: context.into(),
        exten: exten.into(),
        patience_ms: None,
        keys: vec![],
    };
    world.place_call(SITE, call).unwrap()
}

fn advance(world: &mut PbxWorld, delta_ms: u64) {
    world.advance_to(world.now_ms() + delta_ms);
}

fn ended(world: &PbxWorld, channel: &ChannelId) -> EndedChannel {
    world.ended_channel(SITE, channel).unwrap_or_else(|| panic!("{channel} still live"))
}

fn variable(ended: &EndedChannel, name: &str) -> Option<String> {
    ended.variables.get(name).cloned()
}

fn stasis_starts(world: &mut PbxWorld) -> Vec<Vec<String>> {
    world
        .drain_outputs()
        .into_iter()
        .filter_map(|output| match output.event.kind {
            EventKind::StasisStart { args, .. } => Some(args),
            _ => None,
        })
        .collect()
}

const JUMPS: &str = r#"
[t]
exten => 100,1,Set(N=0)
 same => n(loop),Set(N=$[${N} + 1])
 same => n,GotoIf($[${N} < 3]?loop:done)
 same => n,Set(SKIPPED=yes)
 same => n(done),Goto(other,s,check)
exten => 200,1,Goto(100,1)
exten => 300,1,Set(WHERE=x)
 same => n,Goto(${WHERE})
exten => 400,1,GotoIf($["${UNSET}" = ""]?:nowhere)
 same => n,GotoIf($["${CALLERID(num)}" != "5551234"]?nowhere)
 same => n,Hangup(18)
 same => n(nowhere),Hangup(19)
[other]
exten => s,1,Hangup(21)
 same => n(check),GotoIf($["${N}" != "3"]?1)
 same => n,Set(WHERE=${CONTEXT}/${EXTEN})
 same => n,Hangup(17)
"#;

#[test]
fn labels_goto_and_gotoif_run_like_asterisk() {
    let mut world = world(JUMPS);
    // A loop on a label, a GotoIf with both branches, a Goto to a label in another context.
    for exten in ["100", "200"] {
        let channel = call(&mut world, "t", exten);
        let ended = ended(&world, &channel);
        assert_eq!(ended.cause, 17, "{exten}: {ended:?}");
        assert_eq!(ended.ended_by, EndedBy::Dialplan);
        assert_eq!(variable(&ended, "N").as_deref(), Some("3"));
        assert_eq!(variable(&ended, "WHERE").as_deref(), Some("other/s"));
        assert_eq!(variable(&ended, "SKIPPED"), None);
        assert_eq!((ended.channel.dialplan.context.as_str(), ended.channel.dialplan.priority), ("other", 4));
    }
    // A destination that names no label ends the call.
    let channel = call(&mut world, "t", "300");
    assert_eq!(ended(&world, &channel).cause, 16);
    // An omitted branch goes on at the next priority; unset variables are empty.
    let channel = call(&mut world, "t", "400");
    assert_eq!(ended(&world, &channel).cause, 18);
}

#[test]
fn a_caller_arriving_while_the_node_is_down_hears_hold_music_and_enters_once_it_is_back() {
    let mut world = world(EXTENSIONS_CONF);
    let caller = call(&mut world, "lineup-gates", "5000");
    // Stasis failed at once: answered, and once the answer settled, hold music.
    advance(&mut world, ANSWER_SETTLE_MS);
    assert_eq!(world.audio_path(SITE, &caller), Some(AudioPath::MusicOnHold { class: "default".into() }));
    advance(&mut world, 5_000);
    assert_eq!(world.audio_path(SITE, &caller), Some(AudioPath::MusicOnHold { class: "default".into() }));
    assert!(stasis_starts(&mut world).is_empty());
    // The node registers its application; the next try enters Stasis.
    world.register_application(SITE, "lineup");
    advance(&mut world, RETRY_PAUSE_MS);
    let starts = stasis_starts(&mut world);
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert_eq!(
        parse_stasis_entry("lineup", &starts[0]).unwrap(),
        StasisEntry::Caller { queue: "sales".into(), gate: Some("main".into()), priority: None }
    );
    // Tries at 0, 2.054 s and 4.054 s failed; the one at 6.054 s succeeded.
    assert_eq!(world.get_variable(SITE, caller.as_str(), "LINEUP_TRIES").unwrap(), "3");
    assert_eq!(world.audio_path(SITE, &caller), Some(AudioPath::Silence), "the music stopped");
    assert_eq!(world.get_channel(SITE, caller.as_str()).unwrap().dialplan.app_name, "Stasis");
}

#[test]
fn a_caller_who_finds_no_node_for_thirty_seconds_goes_to_the_local_fallback() {
    // The first try fails at once, the caller is answered, then a try every pause.
    let last_try_ms = ANSWER_SETTLE_MS + RETRIES_MAX_COUNT * RETRY_PAUSE_MS;
    for (dialplan, exten, fallback_context) in
        [(EXTENSIONS_CONF, "5000", "lineup-gates"), (DEMO_EXTENSIONS_CONF, "6000", "lineup-overflow")]
    {
        let mut world = world(dialplan);
        let caller = call(&mut world, "lineup-gates", exten);
        advance(&mut world, last_try_ms - 1);
        assert!(world.ended_channel(SITE, &caller).is_none(), "{exten}: still waiting before the last try");
        advance(&mut world, 1);
        let ended = ended(&world, &caller);
        assert_eq!(ended.ended_by, EndedBy::Dialplan, "{exten}: {ended:?}");
        assert_eq!(variable(&ended, "LINEUP_TRIES"), Some(RETRIES_MAX_COUNT.to_string()));
        assert_eq!(variable(&ended, "STASISSTATUS").as_deref(), Some("FAILED"));
        assert_eq!(ended.channel.dialplan.context, fallback_context);
        if fallback_context == "lineup-gates" {
            // LINEUP_FALLBACK=1 (for the missed-caller record), the box's own Queue() (no
            // modelled effect in the stand-in), then Hangup().
            let gate = Dialplan::parse(dialplan).unwrap().find("lineup-gates", exten).cloned().unwrap();
            let fallback = gate.label_priority("fallback").unwrap();
            assert_eq!(gate.steps[fallback as usize].application, "Queue");
            assert_eq!(ended.channel.dialplan.priority, fallback + 2);
            assert_eq!(variable(&ended, "LINEUP_FALLBACK").as_deref(), Some("1"));
        }
        assert!(stasis_starts(&mut world).is_empty());
    }
}

#[test]
fn a_caller_lineup_hands_back_is_not_retried() {
    for (result, context) in [("TIMEOUT", "lineup-overflow"), ("FULL", "lineup-gates")] {
        let mut world = world(EXTENSIONS_CONF);
        world.register_application(SITE, "lineup");
        let caller = call(&mut world, "lineup-gates", "5000");
        assert_eq!(stasis_starts(&mut world).len(), 1);
        world.answer(SITE, caller.as_str()).unwrap();
        world.set_variable(SITE, caller.as_str(), "LINEUP_RESULT", result).unwrap();
        // Even with the node gone by now, a handed-back caller is not sent into Stasis again.
        world.unregister_application(SITE, "lineup");
        world.continue_in_dialplan(SITE, caller.as_str(), None, None, None).unwrap();
        advance(&mut world, 60_000);
        let ended = ended(&world, &caller);
        assert_eq!(ended.ended_by, EndedBy::Dialplan, "{result}: {ended:?}");
        assert_eq!(ended.channel.dialplan.context, context, "{result}");
        assert_eq!(variable(&ended, "STASISSTATUS").as_deref(), Some("SUCCESS"));
        assert_eq!(variable(&ended, "LINEUP_TRIES").as_deref(), Some("0"), "{result}: no retry");
        assert!(stasis_starts(&mut world).is_empty());
    }
}

#[test]
fn a_caller_hanging_up_during_the_hold_music_ends_there() {
    let mut world = world(EXTENSIONS_CONF);
    let caller = call(&mut world, "lineup-gates", "5001");
    advance(&mut world, 1_000);
    assert!(world.phone_hangup(SITE, &caller));
    let ended = ended(&world, &caller);
    assert_eq!(ended.ended_by, EndedBy::Human);
    // The interrupted application is cleared from the final snapshot, as after a Wait.
    assert_eq!(ended.channel.dialplan.app_name, "");
    world.register_application(SITE, "lineup");
    advance(&mut world, 60_000);
    assert!(stasis_starts(&mut world).is_empty(), "a late timer never revives it");
}
