//! The dialplan functions the deploy dialplan's missed-caller record uses, as Asterisk 22
//! has them: the AstDB (`DB(family/key)` read and write, `DB_KEYS(family)`,
//! `DB_DELETE(family/key)`), `${EPOCH}`, `${UNIQUEID}`, hangup handlers pushed with
//! `CHANNEL(hangup_handler_push)` and run at hangup with `ARG1`.. like a Gosub, and ARI's
//! `GET /asterisk/variable`, which evaluates a function when the name ends with `)`.

use super::config::BoxIndex;
use super::records::{ChannelRecord, ChannelRef};
use super::{PbxWorld, DIALPLAN_STEPS_PER_RUN_MAX_COUNT};
use crate::dialplan::{split_goto_if, GotoTarget};
use crate::expression::{self, condition_is_true};
use lineup_ari::AriError;

/// Most AstDB entries per box; a write of a new key beyond it is dropped (and counted).
pub const ASTDB_ENTRIES_PER_BOX_MAX_COUNT: usize = 65_536;
/// Most hangup handlers one channel may have pushed.
pub const HANGUP_HANDLERS_PER_CHANNEL_MAX_COUNT: usize = 8;

/// A hangup handler as `CHANNEL(hangup_handler_push)` takes it: `context,exten,priority(args)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct HangupHandler {
    pub(super) context: String,
    pub(super) exten: String,
    pub(super) priority: String,
    pub(super) args: Vec<String>,
}

impl HangupHandler {
    fn parse(text: &str) -> Option<HangupHandler> {
        let (location, args) = match text.find('(') {
            Some(open) => (&text[..open], text[open + 1..].strip_suffix(')')?),
            None => (text, ""),
        };
        let target = GotoTarget::parse(location)?;
        let args = if args.is_empty() { Vec::new() } else { args.split(',').map(str::to_string).collect() };
        Some(HangupHandler { context: target.context?, exten: target.exten?, priority: target.priority, args })
    }
}

/// The argument of a function reference `NAME(argument)`, if `name` is one.
fn function_argument<'a>(name: &'a str, function: &str) -> Option<&'a str> {
    name.strip_prefix(function)?.strip_prefix('(')?.strip_suffix(')')
}

impl PbxWorld {
    /// A variable or function as the dialplan reads it on `record`: the channel's location,
    /// caller id and unique id, the clock, the AstDB, or a channel variable.
    pub(super) fn dialplan_lookup(&self, box_index: BoxIndex, record: &ChannelRecord, name: &str) -> Option<String> {
        let location = &record.snapshot.dialplan;
        match name {
            "EXTEN" => return Some(location.exten.clone()),
            "CONTEXT" => return Some(location.context.clone()),
            "PRIORITY" => return Some(location.priority.to_string()),
            "UNIQUEID" => return Some(record.snapshot.id.to_string()),
            "CALLERID(num)" => return Some(record.snapshot.caller.number.clone()),
            "CALLERID(name)" => return Some(record.snapshot.caller.name.clone()),
            _ => {}
        }
        self.global_lookup(box_index, name).or_else(|| record.variables.get(name).cloned())
    }

    /// What any channel (or ARI) reads the same way: `EPOCH`, `DB(...)`, `DB_KEYS(...)`.
    fn global_lookup(&self, box_index: BoxIndex, name: &str) -> Option<String> {
        let astdb = &self.boxes.get(box_index.0)?.astdb;
        if name == "EPOCH" {
            return Some(((self.epoch_ms + self.now_ms) / 1000).to_string());
        }
        if let Some(path) = function_argument(name, "DB") {
            return Some(astdb.get(path).cloned().unwrap_or_default());
        }
        let family = function_argument(name, "DB_KEYS")?;
        let prefix = format!("{}/", family.trim_end_matches('/'));
        // Immediate children only, in key order, comma-separated, as Asterisk answers.
        let keys: Vec<&str> = astdb
            .keys()
            .filter_map(|path| path.strip_prefix(&prefix))
            .filter(|key| !key.is_empty() && !key.contains('/'))
            .collect();
        Some(keys.join(","))
    }

    /// `Set(name=value)`: a function with an effect (`DB(...)`, `CHANNEL(hangup_handler_push)`)
    /// or a channel variable.
    pub(super) fn dialplan_set(&mut self, channel: &ChannelRef, data: &str) {
        let Some((name, value)) = data.split_once('=') else { return };
        let name = name.trim();
        if let Some(path) = function_argument(name, "DB") {
            self.astdb_put(channel.box_index, path, value);
        } else if name == "CHANNEL(hangup_handler_push)" {
            let Some(handler) = HangupHandler::parse(value) else { return };
            if let Some(record) = self.channel_mut(channel) {
                if record.hangup_handlers.len() < HANGUP_HANDLERS_PER_CHANNEL_MAX_COUNT {
                    record.hangup_handlers.push(handler);
                }
            }
        } else {
            self.set_variable_internal(channel, name, value);
        }
    }

    /// Writes `family/key` = `value`, as `Set(DB(family/key)=value)` or `database put` on
    /// Asterisk's CLI does.
    pub fn astdb_put(&mut self, box_index: BoxIndex, path: &str, value: &str) {
        let Some(pbx) = self.boxes.get_mut(box_index.0) else { return };
        if path.is_empty() || !path.contains('/') {
            return;
        }
        if pbx.astdb.len() >= ASTDB_ENTRIES_PER_BOX_MAX_COUNT && !pbx.astdb.contains_key(path) {
            pbx.astdb_writes_dropped += 1;
            return;
        }
        pbx.astdb.insert(path.to_string(), value.to_string());
    }

    /// The AstDB entry `family/key` of a box (tests look at what the dialplan wrote).
    pub fn astdb_get(&self, box_index: BoxIndex, path: &str) -> Option<String> {
        self.boxes.get(box_index.0)?.astdb.get(path).cloned()
    }

    /// Every AstDB entry of a box under `family`, in key order.
    pub fn astdb_family(&self, box_index: BoxIndex, family: &str) -> Vec<(String, String)> {
        let prefix = format!("{family}/");
        let Some(pbx) = self.boxes.get(box_index.0) else { return Vec::new() };
        pbx.astdb
            .iter()
            .filter_map(|(path, value)| Some((path.strip_prefix(&prefix)?.to_string(), value.clone())))
            .collect()
    }

    /// `GET /asterisk/variable?variable=`: a name ending with `)` is a function, evaluated
    /// (`DB_DELETE` answers the value and deletes it); a plain name is a global variable, and
    /// the stand-in has none.
    pub fn asterisk_variable(&mut self, box_index: BoxIndex, name: &str) -> Result<String, AriError> {
        self.pbx(box_index)?;
        if let Some(path) = function_argument(name, "DB_DELETE") {
            return Ok(self.boxes[box_index.0].astdb.remove(path).unwrap_or_default());
        }
        self.global_lookup(box_index, name)
            .ok_or_else(|| AriError::NotFound { message: "Provided variable was not found".into() })
    }

    /// Runs the channel's hangup handlers, last pushed first, each from its location with its
    /// arguments as `ARG1`.. until `Return` (or the end of its extension). Only applications
    /// that finish at once mean anything here (`Set`, `GotoIf`, `Goto`); others are no-ops.
    pub(super) fn run_hangup_handlers(&mut self, channel: &ChannelRef) {
        let handlers = match self.channel_mut(channel) {
            Some(record) => std::mem::take(&mut record.hangup_handlers),
            None => return,
        };
        for handler in handlers.into_iter().rev() {
            self.run_hangup_handler(channel, &handler);
        }
    }

    fn run_hangup_handler(&mut self, channel: &ChannelRef, handler: &HangupHandler) {
        let box_index = channel.box_index;
        let (mut exten, mut priority) = (handler.exten.clone(), handler.priority.clone());
        for _ in 0..DIALPLAN_STEPS_PER_RUN_MAX_COUNT {
            let dialplan = &self.boxes[box_index.0].config.dialplan;
            let Some(extension) = dialplan.find(&handler.context, &exten) else { return };
            let Some(number) = extension.resolve_priority(&priority) else { return };
            let Some(step) = usize::try_from(number - 1).ok().and_then(|index| extension.steps.get(index)) else {
                return;
            };
            let Some(record) = self.channel(channel) else { return };
            let lookup = |name: &str| match name.strip_prefix("ARG").and_then(|n| n.parse::<usize>().ok()) {
                Some(n) if n >= 1 => Some(handler.args.get(n - 1).cloned().unwrap_or_default()),
                _ => self.dialplan_lookup(box_index, record, name),
            };
            let data = expression::substitute(&step.data, &lookup);
            let application = step.application.clone();
            let destination = match application.as_str() {
                "Return" => return,
                "Set" => {
                    self.dialplan_set(channel, &data);
                    None
                }
                "Goto" => Some(data),
                "GotoIf" => split_goto_if(&data)
                    .map(|(condition, yes, no)| if condition_is_true(condition) { yes } else { no })
                    .filter(|destination| !destination.is_empty())
                    .map(str::to_string),
                _ => None,
            };
            match destination.as_deref().and_then(GotoTarget::parse) {
                // Within the handler's context; a jump elsewhere ends it.
                Some(target) if target.context.as_deref().is_none_or(|c| c == handler.context) => {
                    exten = target.exten.unwrap_or(exten);
                    priority = target.priority;
                }
                Some(_) => return,
                None => priority = (number + 1).to_string(),
            }
        }
    }
}
