//! Monitoring a connected call: a supervisor listens, coaches the operator (whisper) or joins
//! the call (barge) from a phone of their own. A supervisor's `MonitorCall` command (audited
//! like every supervisor write) is answered with one `Effect::Monitor` for the site holding
//! the operator's leg, which snoops on it over ARI, and for the supervisor's site when it is
//! another, which rings the supervisor and takes the monitoring leg over the trunk. The core
//! keeps no monitoring state: monitoring never changes routing nor a call's outcome, and
//! ends with the call or when the supervisor hangs up, at the sites.

use crate::ids::{CallId, OperatorId, SiteId};
use crate::CoreError;
use serde::{Deserialize, Serialize};

/// Longest supervisor endpoint (`PJSIP/2001`), as site control's ARI client accepts it.
pub const MONITOR_ENDPOINT_MAX_BYTES: usize = 128;

/// What the supervisor hears and who hears the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MonitorMode {
    /// The supervisor hears both parties; nobody hears the supervisor.
    Listen,
    /// The supervisor hears both parties; only the operator hears the supervisor (coaching).
    Whisper,
    /// The supervisor hears both parties and both hear the supervisor.
    Barge,
}

impl MonitorMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorMode::Listen => "listen",
            MonitorMode::Whisper => "whisper",
            MonitorMode::Barge => "barge",
        }
    }
}

/// One monitoring session, as the sites carry it out. `session` is the apply index of the
/// command that asked for it: unique, so the ids of the legs and bridges derived from it are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorOrder {
    pub session: u64,
    pub call: CallId,
    pub operator: OperatorId,
    /// The offer's fence: the operator's site monitors only the call it connected under it.
    pub fence: u64,
    pub operator_site: SiteId,
    pub supervisor_site: SiteId,
    pub mode: MonitorMode,
    pub endpoint: String,
}

/// A dialable `TECHNOLOGY/resource` with nothing that could become a second dial string or
/// dial option (the charset of lineup-ari's `Endpoint`).
pub fn validate_monitor_endpoint(endpoint: &str) -> Result<(), CoreError> {
    let refuse = |reason: &str| CoreError::InvalidField { field: "endpoint".into(), reason: reason.into() };
    if endpoint.len() > MONITOR_ENDPOINT_MAX_BYTES {
        return Err(refuse("longer than 128 bytes"));
    }
    let allowed = |byte: u8| byte.is_ascii_alphanumeric() || b"/@._+-".contains(&byte);
    if !endpoint.bytes().all(allowed) {
        return Err(refuse("only A-Z a-z 0-9 / @ . _ + - are allowed"));
    }
    match endpoint.split_once('/') {
        Some((technology, resource)) if !technology.is_empty() && !resource.is_empty() => Ok(()),
        _ => Err(refuse("expected TECHNOLOGY/resource, such as PJSIP/2001")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_a_technology_and_a_resource_in_a_strict_charset() {
        for good in ["PJSIP/2001", "SIP/sup@pbx-b", "IAX2/b/2001"] {
            assert!(validate_monitor_endpoint(good).is_ok(), "{good}");
        }
        let long = format!("PJSIP/{}", "9".repeat(MONITOR_ENDPOINT_MAX_BYTES));
        for bad in ["", "2001", "PJSIP/", "/2001", "PJSIP/2001&SIP/x", "PJSIP/a,b", "PJSIP/${X}", long.as_str()] {
            assert!(validate_monitor_endpoint(bad).is_err(), "{bad}");
        }
    }
}
