//! Ingress steering: which site's Asterisk a SIP proxy in front of the sites (Kamailio,
//! OpenSIPS) should send a new call to. The routing config maps each DID (the number the
//! ITSP delivers) to a gate, which names the queue, priority and skills; `Routing::ingress_sites`
//! ranks the member sites for it from the replicated state. The core keeps and checks the map;
//! the node answers `GET /v1/ingress` from a local read.

use crate::ids::{GateId, SiteId};
use crate::CoreError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Most DIDs in the routing config.
pub const INGRESS_DIDS_MAX_COUNT: usize = 4_096;
/// Longest DID: an optional `+`, then digits (E.164 has at most 15; national and internal
/// forms with prefixes may be longer).
pub const DID_MAX_BYTES: usize = 32;
/// Most sites in one DID's preference list.
pub const INGRESS_PREFERRED_SITES_MAX: usize = 64;

/// The DID map, part of the routing config (`[[ingress]]` in the config file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct IngressPolicy {
    #[cfg_attr(feature = "openapi", schema(max_items = 4_096))]
    pub dids: Vec<DidRoute>,
}

/// Where calls to one DID go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DidRoute {
    /// The dialled number as the ITSP delivers it (request URI user): `+`, then digits.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::did_field_schema))]
    pub did: String,
    /// The gate the call enters by; the gate names the queue, priority and skills.
    pub gate: GateId,
    /// Sites in the order that breaks ties between equally good sites (the DID's region
    /// first, say). Sites not listed come after, by number.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::preferred_sites_schema))]
    pub prefer_sites: Vec<SiteId>,
}

impl IngressPolicy {
    /// The route of `did`, compared as written (a proxy normalises numbers before asking).
    pub fn route(&self, did: &str) -> Option<&DidRoute> {
        self.dids.iter().find(|route| route.did == did)
    }

    /// Checks the map on its own: sizes, number forms, no DID twice, no site twice in a
    /// preference list. Whether the gates exist is the routing state's check.
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.dids.len() > INGRESS_DIDS_MAX_COUNT {
            return Err(field("ingress", format!("more than {INGRESS_DIDS_MAX_COUNT} DIDs")));
        }
        let mut seen = BTreeSet::new();
        for route in &self.dids {
            if !is_did(&route.did) {
                return Err(field(
                    "ingress.did",
                    format!("{:?} is not a DID (an optional + and 1 to {DID_MAX_BYTES} digits)", route.did),
                ));
            }
            if !seen.insert(route.did.as_str()) {
                return Err(field("ingress.did", format!("{} is listed twice", route.did)));
            }
            route.validate_preference()?;
        }
        Ok(())
    }
}

impl DidRoute {
    fn validate_preference(&self) -> Result<(), CoreError> {
        if self.prefer_sites.len() > INGRESS_PREFERRED_SITES_MAX {
            return Err(field(
                "ingress.prefer_sites",
                format!("{}: more than {INGRESS_PREFERRED_SITES_MAX} sites", self.did),
            ));
        }
        let distinct: BTreeSet<_> = self.prefer_sites.iter().collect();
        if distinct.len() != self.prefer_sites.len() {
            return Err(field("ingress.prefer_sites", format!("{}: a site is listed twice", self.did)));
        }
        if self.prefer_sites.iter().any(|site| site.0 == 0) {
            return Err(field("ingress.prefer_sites", format!("{}: sites are numbered from 1", self.did)));
        }
        Ok(())
    }
}

/// An optional `+`, then 1 to `DID_MAX_BYTES` digits in all.
pub fn is_did(did: &str) -> bool {
    let digits = did.strip_prefix('+').unwrap_or(did);
    !digits.is_empty() && did.len() <= DID_MAX_BYTES && digits.bytes().all(|b| b.is_ascii_digit())
}

fn field(name: &str, reason: String) -> CoreError {
    CoreError::InvalidField { field: name.into(), reason }
}

/// Why a site has its place in an ingress answer, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IngressReason {
    /// A qualified operator is free there now: the call is answered without a trunk leg.
    FreeOperator,
    /// Qualified operators are logged in there, all taken: ranked by expected wait.
    Staffed,
    /// Reachable, but no qualified operator is logged in there: the call waits in the
    /// global queue and is bridged across a trunk when served.
    Unstaffed,
    /// The cluster has not heard the site for a while (it may be serving alone as an island):
    /// last, for a proxy that has nowhere else to go.
    Unreachable,
}

impl IngressReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IngressReason::FreeOperator => "free_operator",
            IngressReason::Staffed => "staffed",
            IngressReason::Unstaffed => "unstaffed",
            IngressReason::Unreachable => "unreachable",
        }
    }
}

/// One site in an ingress answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressSite {
    pub site: SiteId,
    pub reason: IngressReason,
    /// Higher is better within the answer: `INGRESS_SCORE_FREE_BASE` plus the free qualified
    /// operators for a site with one free; for a staffed site, how many of every thousand
    /// callers entering there its staff would take before the callers already waiting
    /// there (staffed × 1000 / (staffed + waiting + 1)); 0 otherwise.
    pub score: u32,
    /// Qualified operators free now at the site.
    pub free_operators: u32,
    /// Qualified operators logged in and off break at the site.
    pub staffed_operators: u32,
    /// Callers waiting in the queue who entered at the site.
    pub waiting_callers: u32,
    /// A new caller's expected wait if only the site's staff served its callers; None when
    /// nobody is staffed there.
    pub expected_wait_ms: Option<u64>,
}

/// Score of a site with a free qualified operator, before adding their number.
pub const INGRESS_SCORE_FREE_BASE: u32 = 1_000;
/// Scale of a staffed site's score (below `INGRESS_SCORE_FREE_BASE`).
pub const INGRESS_SCORE_STAFFED_SCALE: u64 = 1_000;
