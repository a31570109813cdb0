//! The dialplan functions the deploy dialplan's missed-caller record uses, as Asterisk 22
//! has them: the AstDB (`DB(family/key)` read and write, `DB_KEYS(family)`,
//! `DB_DELETE(family/key)`), `FILTER(allowed,string)`, `${EPOCH}`, `${UNIQUEID}`, hangup
//! handlers pushed with `CHANNEL(hangup_handler_push)` and run at hangup with `ARG1`.. like a
//! Gosub; and what ARI may do with them, which is less than the dialplan may:
//!
//! - `GET /asterisk/variable` reads a global variable and evaluates no function (a name such
//!   as `DB_KEYS(x)` is an unknown global: 200 with "").
//! - `GET /channels/{id}/variable` evaluates a name ending with `)` on the channel, from an
//!   HTTP thread, where Asterisk refuses the functions it registers as dangerous: `DB()` and
//!   `DB_DELETE()` reads answer 500; `DB_KEYS` is allowed.
//! - `POST /asterisk/variable` writes a function: a `DB_DELETE` write deletes (allowed from
//!   ARI), a `DB()` write is refused; Asterisk answers 204 either way.

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
/// Most global variables per box set over ARI; a new one beyond it is dropped.
pub const GLOBALS_PER_BOX_MAX_COUNT: usize = 1_024;

/// Asterisk's answer to a function read it refuses or does not know, over ARI.
fn unreadable_function() -> AriError {
    AriError::ServerError { message: "Unable to read provided function".into() }
}

/// `FILTER(allowed,string)`: the characters of `string` in `allowed`, where `a-b` is a range.
fn filter(argument: &str) -> Option<String> {
    let (allowed, string) = argument.split_once(',')?;
    let allowed: Vec<char> = allowed.chars().collect();
    let mut ranges = Vec::new();
    let mut index = 0;
    while index < allowed.len() {
        if allowed.get(index + 1) == Some(&'-') && index + 2 < allowed.len() {
            ranges.push((allowed[index], allowed[index + 2]));
            index += 3;
        } else {
            ranges.push((allowed[index], allowed[index]));
            index += 1;
        }
    }
    Some(string.chars().filter(|c| ranges.iter().any(|(low, high)| (low..=high).contains(&c))).collect())
}

/// Joins keys as `DB_KEYS` answers them: comma-separated, a `\` or `,` in a key escaped
/// with a backslash.
fn join_escaped(keys: &[&str]) -> String {
    let escaped: Vec<String> = keys
        .iter()
        .map(|key| key.chars().flat_map(|c| if c == ',' || c == '\\' { vec!['\\', c] } else { vec![c] }).collect())
        .collect();
    escaped.join(",")
}

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
        if let Some(argument) = function_argument(name, "FILTER") {
            return filter(argument);
        }
        if let Some(path) = function_argument(name, "DB") {
            return Some(self.boxes.get(box_index.0)?.astdb.get(path).cloned().unwrap_or_default());
        }
        if let Some(value) = self.db_keys(box_index, name) {
            return Some(value);
        }
        record.variables.get(name).cloned().or_else(|| self.global_lookup(box_index, name))
    }

    /// `DB_KEYS(family)`, if `name` is that function: the immediate child keys, in key order,
    /// comma-separated, a comma or backslash in a key escaped, as Asterisk answers.
    fn db_keys(&self, box_index: BoxIndex, name: &str) -> Option<String> {
        let family = function_argument(name, "DB_KEYS")?;
        let astdb = &self.boxes.get(box_index.0)?.astdb;
        let prefix = format!("{}/", family.trim_matches('/'));
        let mut keys: Vec<&str> = Vec::new();
        for path in astdb.keys() {
            let Some(rest) = path.strip_prefix(&prefix) else { continue };
            let key = rest.split('/').next().unwrap_or_default();
            // Asterisk skips a key equal (ignoring case) to the one before it.
            if !key.is_empty() && !keys.last().is_some_and(|last| last.eq_ignore_ascii_case(key)) {
                keys.push(key);
            }
        }
        Some(join_escaped(&keys))
    }

    /// What reads the same without a channel: `EPOCH` and the global variables.
    fn global_lookup(&self, box_index: BoxIndex, name: &str) -> Option<String> {
        if name == "EPOCH" {
            return Some(((self.epoch_ms + self.now_ms) / 1000).to_string());
        }
        self.boxes.get(box_index.0)?.globals.get(name).cloned()
    }

    /// A name ending with `)` read over ARI on a channel (`GET /channels/{id}/variable`),
    /// as Asterisk evaluates it from an HTTP thread: the caller id, and `DB_KEYS`; `DB()` and
    /// `DB_DELETE()` reads are refused there, as is any function the stand-in does not know.
    pub(super) fn ari_function_read(
        &self,
        box_index: BoxIndex,
        record: &ChannelRecord,
        name: &str,
    ) -> Result<String, AriError> {
        match name {
            "CALLERID(num)" => return Ok(record.snapshot.caller.number.clone()),
            "CALLERID(name)" => return Ok(record.snapshot.caller.name.clone()),
            _ => {}
        }
        self.db_keys(box_index, name).ok_or_else(unreadable_function)
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

    /// `GET /asterisk/variable?variable=`: a global variable (or `EPOCH`). No function is
    /// evaluated: a name such as `DB_KEYS(x)` is looked up as a global like any other, and an
    /// unknown global answers "".
    pub fn asterisk_variable(&mut self, box_index: BoxIndex, name: &str) -> Result<String, AriError> {
        self.pbx(box_index)?;
        Ok(self.global_lookup(box_index, name).unwrap_or_default())
    }

    /// `POST /asterisk/variable?variable=&value=`: a name ending with `)` is a function write
    /// (a `DB_DELETE(family/key)` write deletes the entry; a `DB()` write is refused from ARI,
    /// as is any other function the stand-in does not model), a plain name sets a global.
    /// Asterisk answers 204 whatever the function did.
    pub fn set_asterisk_variable(&mut self, box_index: BoxIndex, name: &str, value: &str) -> Result<(), AriError> {
        self.pbx(box_index)?;
        let pbx = &mut self.boxes[box_index.0];
        if name.ends_with(')') {
            if let Some(path) = function_argument(name, "DB_DELETE") {
                pbx.astdb.remove(path);
            }
            return Ok(());
        }
        if pbx.globals.len() < GLOBALS_PER_BOX_MAX_COUNT || pbx.globals.contains_key(name) {
            pbx.globals.insert(name.to_string(), value.to_string());
        }
        Ok(())
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
