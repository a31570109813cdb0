//! Which numbers a callback may dial. A callback places an outbound call at the call
//! centre's expense to a number a caller typed (or a web form sent), so the routing config
//! says which numbers are fair game: emergency numbers and premium-rate ranges are denied
//! unless an admin changes the list, and an allow-list of Asterisk-style patterns can
//! narrow it further (say, national numbers only).

use serde::{Deserialize, Serialize};

/// Most entries in each list of the policy.
pub const CALLBACK_POLICY_ENTRIES_MAX: usize = 256;
/// Longest number, prefix or pattern in the policy.
pub const CALLBACK_POLICY_ENTRY_MAX_BYTES: usize = 32;
/// Longest E.164 number (digits, without the `+`).
pub const CALLBACK_NUMBER_MAX_DIGITS: usize = 15;
/// Shortest callback number accepted (internal extensions included).
pub const CALLBACK_NUMBER_MIN_DIGITS: usize = 3;

/// Whether `number` has the form of a callback number: an optional `+`, then
/// `CALLBACK_NUMBER_MIN_DIGITS..=CALLBACK_NUMBER_MAX_DIGITS` digits. The core refuses any
/// other; a site checks keyed digits with the same rule before proposing them.
pub fn is_callback_number(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or(number);
    (CALLBACK_NUMBER_MIN_DIGITS..=CALLBACK_NUMBER_MAX_DIGITS).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Emergency numbers around the world (exact numbers: a prefix such as `15` would also
/// deny ordinary numbers that start with it).
const DEFAULT_DENIED_NUMBERS: &[&str] = &[
    "000", "100", "101", "102", "103", "108", "110", "111", "112", "113", "115", "117", "118", "119", "122", "123",
    "15", "155", "17", "18", "190", "191", "192", "193", "199", "911", "999", "10111", "10177",
];

/// Premium-rate ranges, written with their country code (national forms differ by country
/// and collide with ordinary area codes elsewhere, such as 09 in the UK and in Bavaria):
/// North America's 900/976 (also without the 1), the UK's 09, Germany's 0900 and 0137,
/// France's 089, Austria's 0900/0930, Switzerland's 090x, Spain's 803/806/807/905 and
/// Italy's 892/899. Admins narrow further with `allowed_patterns`.
const DEFAULT_DENIED_PREFIXES: &[&str] = &[
    "1900", "1976", "900", "976", "449", "49900", "49137", "3389", "43900", "43930", "41900", "41901", "41906",
    "34803", "34806", "34807", "34905", "39892", "39899",
];

/// The callback destination policy, part of the routing config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct CallbackPolicy {
    /// When not empty, a number must match one of these Asterisk-style patterns (`X` any
    /// digit, `Z` 1-9, `N` 2-9, `[1-5]` a set, `.` one or more of anything, `!` zero or
    /// more; a leading `_` is optional). Matched against the number without its `+`.
    #[cfg_attr(feature = "openapi", schema(max_items = 256))]
    pub allowed_patterns: Vec<String>,
    /// Numbers never dialled (compared whole, without a leading `+`).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::number_list_schema))]
    pub denied_numbers: Vec<String>,
    /// Prefixes never dialled (compared without a leading `+`).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::number_list_schema))]
    pub denied_prefixes: Vec<String>,
}

impl Default for CallbackPolicy {
    fn default() -> Self {
        let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        CallbackPolicy {
            allowed_patterns: Vec::new(),
            denied_numbers: owned(DEFAULT_DENIED_NUMBERS),
            denied_prefixes: owned(DEFAULT_DENIED_PREFIXES),
        }
    }
}

/// Why a number was refused, for the caller's record and the API's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyRefusal {
    DeniedNumber,
    DeniedPrefix(String),
    NotAllowed,
}

impl std::fmt::Display for PolicyRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyRefusal::DeniedNumber => write!(f, "the callback policy denies this number"),
            PolicyRefusal::DeniedPrefix(p) => write!(f, "the callback policy denies numbers starting with {p}"),
            PolicyRefusal::NotAllowed => write!(f, "the number matches none of the callback policy's allowed patterns"),
        }
    }
}

impl CallbackPolicy {
    /// May a callback dial `number` (already a valid callback number)?
    pub fn check(&self, number: &str) -> Result<(), PolicyRefusal> {
        let digits = number.strip_prefix('+').unwrap_or(number);
        if self.denied_numbers.iter().any(|n| n.strip_prefix('+').unwrap_or(n) == digits) {
            return Err(PolicyRefusal::DeniedNumber);
        }
        if let Some(p) = self.denied_prefixes.iter().find(|p| digits.starts_with(p.strip_prefix('+').unwrap_or(p))) {
            return Err(PolicyRefusal::DeniedPrefix(p.clone()));
        }
        if !self.allowed_patterns.is_empty() && !self.allowed_patterns.iter().any(|p| pattern_matches(p, digits)) {
            return Err(PolicyRefusal::NotAllowed);
        }
        Ok(())
    }

    /// Bounded lists of well-formed entries.
    pub fn validate(&self) -> Result<(), crate::CoreError> {
        let lists = [
            ("callback_policy.allowed_patterns", &self.allowed_patterns),
            ("callback_policy.denied_numbers", &self.denied_numbers),
            ("callback_policy.denied_prefixes", &self.denied_prefixes),
        ];
        for (field, list) in lists {
            let problem = if list.len() > CALLBACK_POLICY_ENTRIES_MAX {
                Some(format!("more than {CALLBACK_POLICY_ENTRIES_MAX} entries"))
            } else {
                list.iter().find_map(|entry| entry_problem(field, entry))
            };
            if let Some(reason) = problem {
                return Err(crate::CoreError::InvalidField { field: field.into(), reason });
            }
        }
        Ok(())
    }
}

fn entry_problem(field: &str, entry: &str) -> Option<String> {
    let body = entry.strip_prefix('+').unwrap_or(entry);
    if body.is_empty() || entry.len() > CALLBACK_POLICY_ENTRY_MAX_BYTES {
        return Some(format!("{entry:?}: 1 to {CALLBACK_POLICY_ENTRY_MAX_BYTES} characters"));
    }
    let pattern = field.ends_with("patterns");
    let body = if pattern { body.strip_prefix('_').unwrap_or(body) } else { body };
    let ok = if pattern { pattern_is_well_formed(body) } else { body.bytes().all(|b| b.is_ascii_digit()) };
    (!ok).then(|| format!("{entry:?} is not {}", if pattern { "a dial pattern" } else { "digits" }))
}

fn pattern_is_well_formed(pattern: &str) -> bool {
    let mut rest = pattern.as_bytes();
    while let Some((&c, tail)) = rest.split_first() {
        rest = match c {
            b'0'..=b'9' | b'X' | b'x' | b'Z' | b'z' | b'N' | b'n' | b'.' | b'!' => tail,
            b'[' => match tail.iter().position(|&b| b == b']') {
                Some(end) if end > 0 && tail[..end].iter().all(|b| b.is_ascii_digit() || *b == b'-') => {
                    &tail[end + 1..]
                }
                _ => return false,
            },
            _ => return false,
        };
    }
    true
}

/// Asterisk extension pattern matching over digits (the pattern is well formed).
fn pattern_matches(pattern: &str, number: &str) -> bool {
    let pattern = pattern.strip_prefix('+').unwrap_or(pattern);
    let pattern = pattern.strip_prefix('_').unwrap_or(pattern);
    matches_from(pattern.as_bytes(), number.as_bytes())
}

fn matches_from(pattern: &[u8], number: &[u8]) -> bool {
    let Some((&p, p_rest)) = pattern.split_first() else { return number.is_empty() };
    match p {
        // One or more / zero or more of anything: the rest of the number, whatever it is.
        b'.' => !number.is_empty(),
        b'!' => true,
        b'[' => {
            let end = p_rest.iter().position(|&b| b == b']').unwrap_or(p_rest.len());
            let set = &p_rest[..end];
            let after = p_rest.get(end + 1..).unwrap_or(&[]);
            number.split_first().is_some_and(|(&d, n_rest)| in_set(set, d) && matches_from(after, n_rest))
        }
        _ => number.split_first().is_some_and(|(&d, n_rest)| digit_matches(p, d) && matches_from(p_rest, n_rest)),
    }
}

fn digit_matches(p: u8, d: u8) -> bool {
    match p.to_ascii_uppercase() {
        b'X' => d.is_ascii_digit(),
        b'Z' => (b'1'..=b'9').contains(&d),
        b'N' => (b'2'..=b'9').contains(&d),
        literal => literal == d,
    }
}

fn in_set(set: &[u8], d: u8) -> bool {
    let mut i = 0;
    while i < set.len() {
        if i + 2 < set.len() && set[i + 1] == b'-' {
            if (set[i]..=set[i + 2]).contains(&d) {
                return true;
            }
            i += 3;
        } else {
            if set[i] == d {
                return true;
            }
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emergency_and_premium_numbers_are_denied_by_default() {
        let policy = CallbackPolicy::default();
        policy.validate().unwrap();
        for denied in ["911", "112", "+112", "999", "000", "19005551234", "+4490012345", "+499001234567"] {
            assert!(policy.check(denied).is_err(), "{denied}");
        }
        for allowed in
            ["+15551234567", "4930123456", "155512345", "1001", "+33142685300", "09111234567", "+49906123456"]
        {
            assert_eq!(policy.check(allowed), Ok(()), "{allowed}");
        }
    }

    #[test]
    fn allowed_patterns_narrow_the_numbers_dialled() {
        let policy = CallbackPolicy {
            allowed_patterns: vec!["_1NXXNXXXXXX".into(), "49[1-9].".into(), "200!".into()],
            ..CallbackPolicy::default()
        };
        policy.validate().unwrap();
        for allowed in ["+15552345678", "4930123456", "200", "2001"] {
            assert_eq!(policy.check(allowed), Ok(()), "{allowed}");
        }
        for refused in ["15551234567", "490123", "44207946000", "+33142685300"] {
            assert_eq!(policy.check(refused), Err(PolicyRefusal::NotAllowed), "{refused}");
        }
    }

    #[test]
    fn malformed_entries_are_refused_at_validation() {
        for bad in [
            CallbackPolicy { allowed_patterns: vec!["_1[".into()], ..Default::default() },
            CallbackPolicy { allowed_patterns: vec!["1*".into()], ..Default::default() },
            CallbackPolicy { denied_numbers: vec!["91a".into()], ..Default::default() },
            CallbackPolicy { denied_prefixes: vec!["".into()], ..Default::default() },
            CallbackPolicy {
                denied_prefixes: vec!["1".repeat(CALLBACK_POLICY_ENTRY_MAX_BYTES + 1)],
                ..Default::default()
            },
            CallbackPolicy { denied_numbers: vec!["1".into(); CALLBACK_POLICY_ENTRIES_MAX + 1], ..Default::default() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
