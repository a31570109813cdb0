//! Replays the REST requests of the Asterisk 22 recording against the stand-in, at the
//! recorded times, and checks that it answers with the same statuses and bodies and emits the
//! same events, in the same order, with the same fields.
//!
//! Ids and timestamps differ by nature (Asterisk's uniqueids, random playback and bridge
//! ids), so both sides are normalised: channel ids become channel names (which are
//! deterministic: `Local/sales@callers-00000000;2`), bridge ids become bridge names, playback
//! ids a placeholder, and timestamps are dropped. Everything else must be equal.

use lineup_ari::{AriEvent, EventKind};
use lineup_pbx_sim::{handle_rest, BoxConfig, BoxIndex, Dialplan, PbxWorld, RestParams};
use serde_json::Value;
use std::collections::BTreeMap;

const RECORDING: &str = include_str!("../../lineup-ari/tests/data/asterisk22-queue-call.jsonl");

/// The dialplan of the lab the recording was made in.
const LAB_DIALPLAN: &str = "
[callers]
exten => sales,1,Stasis(lineup,queue=sales,gate=web)
 same => n,Hangup()
[phone]
exten => 100,1,Answer()
 same => n,Wait(600)
exten => hold,1,Answer()
 same => n,Wait(600)
";

/// Event types the stand-in does not reproduce: Asterisk sends them for caller-id and
/// connected-line updates that Lineup never reads.
const UNMODELLED_EVENT_TYPES: [&str; 2] = ["ChannelCallerId", "ChannelConnectedLine"];

const BOX: BoxIndex = BoxIndex(0);

/// Id -> stable name, learnt from every channel, bridge and playback object seen.
#[derive(Default)]
struct Names {
    by_id: BTreeMap<String, String>,
}

impl Names {
    fn learn(&mut self, value: &Value) {
        match value {
            Value::Object(object) => {
                if let (Some(Value::String(id)), Some(Value::String(name))) = (object.get("id"), object.get("name")) {
                    self.by_id.insert(id.clone(), name.clone());
                }
                if let (Some(Value::String(id)), Some(Value::String(_))) = (object.get("id"), object.get("media_uri")) {
                    self.by_id.insert(id.clone(), "<playback>".into());
                }
                object.values().for_each(|inner| self.learn(inner));
            }
            Value::Array(items) => items.iter().for_each(|inner| self.learn(inner)),
            _ => {}
        }
    }

    fn name(&self, id: &str) -> String {
        self.by_id.get(id).cloned().unwrap_or_else(|| format!("<unknown {id}>"))
    }

    fn normalise(&self, value: &Value) -> Value {
        match value {
            Value::Object(object) => {
                let mut out = serde_json::Map::new();
                for (key, inner) in object {
                    match key.as_str() {
                        "timestamp" | "creationtime" | "asterisk_id" => {}
                        "id" => {
                            out.insert(key.clone(), Value::String(self.name(inner.as_str().unwrap_or(""))));
                        }
                        "target_uri" => {
                            let text = inner.as_str().unwrap_or("");
                            let (kind, id) = text.split_once(':').unwrap_or(("", text));
                            out.insert(key.clone(), Value::String(format!("{kind}:{}", self.name(id))));
                        }
                        "channels" => {
                            let mut names: Vec<String> = inner
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|id| self.name(id.as_str().unwrap_or("")))
                                .collect();
                            names.sort();
                            out.insert(key.clone(), serde_json::json!(names));
                        }
                        _ => {
                            out.insert(key.clone(), self.normalise(inner));
                        }
                    }
                }
                Value::Object(out)
            }
            Value::Array(items) => {
                let mut normalised: Vec<Value> = items.iter().map(|item| self.normalise(item)).collect();
                // Asterisk lists channels in hash order: compare lists as sets.
                normalised.sort_by_key(|item| item.to_string());
                Value::Array(normalised)
            }
            other => other.clone(),
        }
    }
}

struct Replay {
    world: PbxWorld,
    names: Names,
    events: Vec<Value>,
}

impl Replay {
    fn collect_events(&mut self) {
        for output in self.world.drain_outputs() {
            let value = output.event.to_value();
            self.names.learn(&value);
            if !UNMODELLED_EVENT_TYPES.contains(&output.event.kind.type_name()) {
                self.events.push(value);
            }
        }
    }

    /// The stand-in's id for the object the recording calls `recorded_name`.
    fn sim_id(&self, recorded_name: &str) -> String {
        if let Some((id, _)) = self.world.channel_names(BOX).into_iter().find(|(_, name)| name == recorded_name) {
            return id.to_string();
        }
        if let Some(bridge) =
            self.world.list_bridges(BOX).unwrap().into_iter().find(|bridge| bridge.name == recorded_name)
        {
            return bridge.id.to_string();
        }
        // Unknown to both sides (the recording's deliberate 404 probe): keep it as it is.
        recorded_name.to_string()
    }
}

#[test]
fn stand_in_reproduces_the_asterisk_22_recording() {
    let records: Vec<Value> = RECORDING.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let mut recorded_names = Names::default();
    records.iter().for_each(|record| recorded_names.learn(record));

    let config = BoxConfig {
        name: "lab".into(),
        asterisk_id: "02:fc:00:00:00:01".into(),
        dialplan: Dialplan::parse(LAB_DIALPLAN).unwrap(),
        trunks: vec![],
    };
    let world = PbxWorld::new(1_795_325_223_650, vec![config]).unwrap();
    let mut replay = Replay { world, names: Names::default(), events: Vec::new() };
    // The recording's client held one WebSocket for both applications.
    replay.world.register_application(BOX, "lineup");
    replay.world.register_application(BOX, "lineup-login");

    let mut previous_rest_ms = 0;
    for (index, record) in records.iter().enumerate() {
        if record["kind"] != "rest" {
            continue;
        }
        let recorded_ms = record["t_ms"].as_u64().unwrap();
        let path = record["path"].as_str().unwrap();
        // The recording logs when each answer arrived. addChannel answers only once every
        // channel has joined (it waits behind the caller's prompt and the operator's DTMF),
        // so it was sent right after the request before it.
        let send_ms = if path.ends_with("/addChannel") { previous_rest_ms + 1 } else { recorded_ms };
        previous_rest_ms = recorded_ms;
        replay.world.advance_to(send_ms);
        replay.collect_events();

        let sim_path = path
            .split('/')
            .map(|segment| match recorded_names.by_id.get(segment) {
                Some(name) => replay.sim_id(name),
                None => segment.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let params: Vec<(String, String)> = record["params"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(key, value)| {
                let text = value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
                // Channel ids inside parameters are translated like those in paths.
                let text = text
                    .split(',')
                    .map(|item| match recorded_names.by_id.get(item) {
                        Some(name) => replay.sim_id(name),
                        None => item.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                (key.clone(), text)
            })
            .collect();
        let params = RestParams::from_pairs(params.iter().map(|(key, value)| (key.as_str(), value.as_str())));
        let reply = handle_rest(&mut replay.world, BOX, record["method"].as_str().unwrap(), &sim_path, &params);
        if let Some(body) = &reply.body {
            replay.names.learn(body);
        }
        replay.collect_events();

        let method = record["method"].as_str().unwrap();
        assert_eq!(
            reply.status,
            record["status"].as_u64().unwrap() as u16,
            "status of record {index}: {method} {path}"
        );
        let recorded_body = &record["body"];
        let expected = if recorded_body == "" { None } else { Some(recorded_names.normalise(recorded_body)) };
        let actual = reply.body.as_ref().map(|body| replay.names.normalise(body));
        assert_eq!(actual, expected, "body of record {index}: {method} {path}");
    }
    replay.world.advance_to(records.last().unwrap()["t_ms"].as_u64().unwrap() + 1);
    replay.collect_events();

    let expected: Vec<Value> = records
        .iter()
        .filter(|record| record["kind"] == "event")
        .map(|record| &record["event"])
        .filter(|event| !UNMODELLED_EVENT_TYPES.contains(&event["type"].as_str().unwrap()))
        .map(|event| recorded_names.normalise(event))
        .collect();
    let actual: Vec<Value> = replay.events.iter().map(|event| replay.names.normalise(event)).collect();
    let summary = |events: &[Value]| -> Vec<String> {
        events.iter().map(|event| format!("{} {}", event["application"], event["type"])).collect()
    };
    assert_eq!(summary(&actual), summary(&expected), "event types and applications in order");
    for (index, (actual, expected)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(actual, expected, "event {index}");
    }
    // Every event the stand-in produced parses back into the typed client model.
    for event in &replay.events {
        let parsed = AriEvent::from_value(event.clone()).unwrap();
        assert!(!matches!(parsed.kind, EventKind::Unknown { .. }));
    }
}
