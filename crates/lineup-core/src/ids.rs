//! Identifiers. Names a user configures (queues, gates, operators, schedules, skills) and
//! ids that reach ARI URL paths (calls, channels) share one strict charset, checked once at
//! the edge of the core so nothing downstream has to worry about `/`, `?` or `..`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest identifier accepted anywhere in the model.
pub const ID_MAX_BYTES: usize = 96;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum IdError {
    #[error("identifier is empty")]
    Empty,
    #[error("identifier is {len_bytes} bytes long, more than {ID_MAX_BYTES}")]
    TooLong { len_bytes: usize },
    #[error("identifier contains {found:?}; only ASCII letters, digits and . _ - are allowed")]
    BadChar { found: char },
}

/// Checks the shared identifier charset: `[A-Za-z0-9._-]{1,96}`, not starting with `.`.
pub fn validate_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > ID_MAX_BYTES {
        return Err(IdError::TooLong { len_bytes: s.len() });
    }
    for (i, c) in s.chars().enumerate() {
        let ok = c.is_ascii_alphanumeric() || c == '_' || c == '-' || (c == '.' && i > 0);
        if !ok {
            return Err(IdError::BadChar { found: c });
        }
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn validate(&self) -> Result<(), IdError> {
                validate_id(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                crate::openapi::id_schema().into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

string_id!(
    /// A logical queue, the same at every site.
    QueueId
);
string_id!(
    /// A named entry into a queue (DID, IVR branch, web widget).
    GateId
);
string_id!(
    /// A person who answers calls.
    OperatorId
);
string_id!(
    /// A call, unique across sites (sites build it from their id and the channel's uniqueid).
    CallId
);
string_id!(
    /// A weekly opening-hours schedule.
    ScheduleId
);
string_id!(
    /// A skill name (`french`, `billing`).
    Skill
);

/// A site: one location with its Asterisk and Lineup node. Equal to the node's Raft id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SiteId(pub u64);

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for SiteId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::openapi::site_schema().into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for SiteId {}

impl fmt::Display for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "site-{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charset() {
        assert!(validate_id("sales").is_ok());
        assert!(validate_id("a-1.1732250000.42").is_ok());
        assert_eq!(validate_id(""), Err(IdError::Empty));
        assert_eq!(validate_id("../etc"), Err(IdError::BadChar { found: '.' }));
        assert_eq!(validate_id("a/b"), Err(IdError::BadChar { found: '/' }));
        assert_eq!(validate_id("a?b"), Err(IdError::BadChar { found: '?' }));
        assert_eq!(validate_id("é"), Err(IdError::BadChar { found: 'é' }));
        assert_eq!(validate_id(&"x".repeat(97)), Err(IdError::TooLong { len_bytes: 97 }));
    }
}
