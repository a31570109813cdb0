//! The contract between the dialplan and Lineup: what `Stasis(app,args...)` may carry.
//!
//! One parser for both sides: site control uses it on `StasisStart.args`, and the tests of
//! `deploy/asterisk/extensions.conf` and of the stand-in run every snippet's argument string
//! through it, so the snippets and the code cannot drift apart.
//!
//! Forms (`key=value`, comma separated, each key at most once):
//! - `lineup` with `queue=Q[,gate=G][,priority=P]`: a caller entering queue Q through gate G.
//! - `lineup` with `xfer=CALL`: the far leg of a cross-site connect for call CALL.
//! - `lineup` with the bare word `missed-reader`: the short-lived channel a site creates to
//!   read the missed-caller records (nothing to route).
//! - `lineup-login` with `[operator=ID]`: an operator's login call; the bare word `operator`
//!   (as sent by an originate with `appArgs=operator`) is accepted as "id from caller id".

use crate::error::AriError;

/// Application name for callers and cross-site legs.
pub const CALLER_APPLICATION: &str = "lineup";
/// Application name for operator login calls.
pub const LOGIN_APPLICATION: &str = "lineup-login";
/// The one argument of the channel a site creates to read missed-caller records
/// (`POST /channels/create` into [`CALLER_APPLICATION`]).
pub const MISSED_READER_ARGUMENT: &str = "missed-reader";
/// Longest queue, gate, operator or call name accepted in an argument.
pub const ARGUMENT_VALUE_LENGTH_MAX_BYTES: usize = 64;
/// Most arguments accepted.
pub const ARGUMENTS_MAX_COUNT: usize = 8;
/// Highest priority class an entry may ask for. Classes are the core's (lower is served
/// first: VIP 0, normal 5, low 10); any u8 is a valid class.
pub const PRIORITY_MAX: u8 = u8::MAX;

/// What a `StasisStart` means for Lineup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StasisEntry {
    /// A caller entering a queue.
    Caller { queue: String, gate: Option<String>, priority: Option<u8> },
    /// The inbound leg of a cross-site connect, for the named call.
    TrunkLeg { call: String },
    /// An operator's login call, with the operator id if the dialplan knows it.
    OperatorLogin { operator: Option<String> },
    /// The site's own missed-caller reader channel: nothing to route.
    MissedReader,
}

fn invalid(args: &[String], reason: impl Into<String>) -> AriError {
    AriError::InvalidStasisArgs {
        args: args.iter().take(ARGUMENTS_MAX_COUNT).cloned().collect(),
        reason: reason.into(),
    }
}

fn validate_value(args: &[String], key: &str, value: &str) -> Result<(), AriError> {
    let allowed = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.');
    if value.is_empty() || value.len() > ARGUMENT_VALUE_LENGTH_MAX_BYTES || !value.bytes().all(allowed) {
        return Err(invalid(args, format!("{key} must be 1..=64 of A-Z a-z 0-9 _ - .")));
    }
    Ok(())
}

/// Splits `key=value` arguments, rejecting duplicates, unknown keys and bad values.
fn key_values<'a>(args: &'a [String], allowed_keys: &[&str]) -> Result<Vec<(&'a str, &'a str)>, AriError> {
    if args.len() > ARGUMENTS_MAX_COUNT {
        return Err(invalid(args, "more than ARGUMENTS_MAX_COUNT arguments"));
    }
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(args.len());
    for argument in args {
        let (key, value) =
            argument.split_once('=').ok_or_else(|| invalid(args, format!("{argument:?} is not key=value")))?;
        if !allowed_keys.contains(&key) {
            return Err(invalid(args, format!("unknown key {key:?}")));
        }
        if pairs.iter().any(|(seen, _)| *seen == key) {
            return Err(invalid(args, format!("key {key:?} given twice")));
        }
        validate_value(args, key, value)?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn lookup<'a>(pairs: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(name, _)| *name == key).map(|(_, value)| *value)
}

/// Parses the arguments of a `StasisStart` for `application`.
pub fn parse_stasis_entry(application: &str, args: &[String]) -> Result<StasisEntry, AriError> {
    match application {
        CALLER_APPLICATION => {
            if args.len() == 1 && args[0] == MISSED_READER_ARGUMENT {
                return Ok(StasisEntry::MissedReader);
            }
            let pairs = key_values(args, &["queue", "gate", "priority", "xfer"])?;
            if let Some(call) = lookup(&pairs, "xfer") {
                if pairs.len() != 1 {
                    return Err(invalid(args, "xfer takes no other argument"));
                }
                return Ok(StasisEntry::TrunkLeg { call: call.to_string() });
            }
            let queue = lookup(&pairs, "queue").ok_or_else(|| invalid(args, "queue= is required"))?;
            let priority = match lookup(&pairs, "priority") {
                None => None,
                // Parsing as u8 is the range check: 0..=PRIORITY_MAX.
                Some(text) => match text.parse::<u8>() {
                    Ok(priority) => Some(priority),
                    Err(_) => return Err(invalid(args, format!("priority must be a number from 0 to {PRIORITY_MAX}"))),
                },
            };
            Ok(StasisEntry::Caller {
                queue: queue.to_string(),
                gate: lookup(&pairs, "gate").map(str::to_string),
                priority,
            })
        }
        LOGIN_APPLICATION => {
            if args.len() == 1 && args[0] == "operator" {
                return Ok(StasisEntry::OperatorLogin { operator: None });
            }
            let pairs = key_values(args, &["operator"])?;
            Ok(StasisEntry::OperatorLogin { operator: lookup(&pairs, "operator").map(str::to_string) })
        }
        other => Err(invalid(args, format!("unknown application {other:?}"))),
    }
}

/// Splits the data of a dialplan `Stasis(...)` call into the application and its arguments,
/// the way Asterisk does (commas separate; no quoting is used by Lineup's snippets).
pub fn split_stasis_app_data(app_data: &str) -> (String, Vec<String>) {
    let mut parts = app_data.split(',').map(|part| part.trim().to_string());
    let application = parts.next().unwrap_or_default();
    let args = parts.filter(|part| !part.is_empty()).collect();
    (application, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|item| item.to_string()).collect()
    }

    #[test]
    fn caller_entries_parse() {
        assert_eq!(
            parse_stasis_entry("lineup", &args(&["queue=sales", "gate=web"])).unwrap(),
            StasisEntry::Caller { queue: "sales".into(), gate: Some("web".into()), priority: None }
        );
        assert_eq!(
            parse_stasis_entry("lineup", &args(&["queue=sales", "priority=2"])).unwrap(),
            StasisEntry::Caller { queue: "sales".into(), gate: None, priority: Some(2) }
        );
    }

    #[test]
    fn trunk_and_login_entries_parse() {
        assert_eq!(
            parse_stasis_entry("lineup", &args(&["xfer=c-42"])).unwrap(),
            StasisEntry::TrunkLeg { call: "c-42".into() }
        );
        assert_eq!(
            parse_stasis_entry("lineup-login", &args(&[])).unwrap(),
            StasisEntry::OperatorLogin { operator: None }
        );
        assert_eq!(
            parse_stasis_entry("lineup-login", &args(&["operator"])).unwrap(),
            StasisEntry::OperatorLogin { operator: None }
        );
        assert_eq!(
            parse_stasis_entry("lineup-login", &args(&["operator=007"])).unwrap(),
            StasisEntry::OperatorLogin { operator: Some("007".into()) }
        );
    }

    #[test]
    fn the_missed_reader_is_its_own_entry() {
        assert_eq!(parse_stasis_entry("lineup", &args(&["missed-reader"])).unwrap(), StasisEntry::MissedReader);
        for list in [&["missed-reader", "queue=sales"][..], &["missed-reader=1"][..]] {
            assert!(parse_stasis_entry("lineup", &args(list)).is_err(), "{list:?}");
        }
        assert!(parse_stasis_entry("lineup-login", &args(&["missed-reader"])).is_err());
    }

    #[test]
    fn bad_arguments_are_rejected() {
        let cases: &[(&str, &[&str])] = &[
            ("lineup", &[]),
            ("lineup", &["gate=web"]),
            ("lineup", &["queue=sales", "queue=support"]),
            ("lineup", &["queue=sales", "colour=red"]),
            ("lineup", &["queue=sa les"]),
            ("lineup", &["queue="]),
            ("lineup", &["queue=sales", "priority=256"]),
            ("lineup", &["queue=sales", "priority=-1"]),
            ("lineup", &["xfer=c1", "queue=sales"]),
            ("lineup", &["queue"]),
            ("lineup-login", &["queue=sales"]),
            ("other", &["queue=sales"]),
        ];
        for (application, list) in cases {
            let result = parse_stasis_entry(application, &args(list));
            assert!(matches!(result, Err(AriError::InvalidStasisArgs { .. })), "{application} {list:?}");
        }
        let too_many: Vec<String> = (0..=ARGUMENTS_MAX_COUNT).map(|i| format!("queue{i}=x")).collect();
        assert!(parse_stasis_entry("lineup", &too_many).is_err());
    }

    #[test]
    fn app_data_splits_like_asterisk() {
        assert_eq!(
            split_stasis_app_data("lineup,queue=sales,gate=web"),
            ("lineup".to_string(), args(&["queue=sales", "gate=web"]))
        );
        assert_eq!(split_stasis_app_data("lineup-login"), ("lineup-login".to_string(), vec![]));
    }
}
