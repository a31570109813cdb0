//! Routing configuration. It lives in the Raft log like everything else (config changes are
//! commands), so every site routes on identical settings.

use crate::ids::{GateId, OperatorId, QueueId, ScheduleId, SiteId, Skill};
use crate::order::PRIORITY_NORMAL;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Highest skill level (levels are 0–100).
pub const SKILL_LEVEL_MAX: u8 = 100;
/// Most waiting calls one queue may hold, whatever its configured `max_waiting`.
pub const QUEUE_WAITING_MAX_CALLS: u32 = 100_000;
/// Most overflow hops one call may take before it goes back to the dialplan (stops cycles).
pub const OVERFLOW_HOPS_MAX: u8 = 8;
/// Longest free-text field (whisper, break reason, caller name, endpoint).
pub const TEXT_MAX_BYTES: usize = 256;
/// Most tier rules, periodic messages, skills or memberships in one config object.
pub const CONFIG_LIST_MAX_ITEMS: usize = 64;

/// Where a caller goes when it leaves a queue without being answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Back to the dialplan, with `LINEUP_RESULT` set to the outcome.
    #[default]
    Dialplan,
    /// Into another queue (overflow). `keep_order` keeps the caller's original order key.
    Queue { queue: QueueId, keep_order: bool },
}

/// When a queue counts as empty for join/leave rules (app_queue's joinempty/leavewhenempty).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EmptyRule {
    /// Never: callers join and stay even with nobody logged in.
    #[default]
    Never,
    /// When no member operator is logged in at all.
    NoneLoggedIn,
    /// When no member operator is logged in and off break.
    NoneReady,
}

/// One step of pool widening (app_queue's queuerules): after `after_wait_ms` in the queue,
/// operators with a penalty up to `max_penalty` may take the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TierRule {
    pub after_wait_ms: u64,
    pub max_penalty: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// A misspelt setting in a config file or REST body is an error, never silently a default.
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    pub id: QueueId,
    pub name: String,
    /// Priority given to callers whose gate and entry do not set one.
    pub default_priority: u8,
    /// Cross-queue weight: an operator in several queues serves the heavier queue first.
    pub weight: u8,
    /// Skills every caller of this queue needs (gates and entries may add more).
    pub required_skills: BTreeMap<Skill, u8>,
    pub max_wait_ms: Option<u64>,
    pub timeout_target: Target,
    /// Depth at which new callers are refused (FULL).
    pub max_waiting: u32,
    pub full_target: Target,
    pub join_when_empty: EmptyRule,
    pub leave_when_empty: EmptyRule,
    pub empty_target: Target,
    /// Pool widening over wait time; empty means every member may take any caller,
    /// lowest penalty first.
    pub tier_rules: Vec<TierRule>,
    /// Offer "press 1 to be called back" when the ETA is above this.
    pub callback_offer_above_eta_ms: Option<u64>,
    pub callback_max_attempts: u8,
    pub callback_retry_delay_ms: u64,
    pub wrap_up_ms: u64,
    pub ring_timeout_ms: u64,
    /// Consecutive missed offers that put an operator on break (0 = never).
    pub misses_before_break: u8,
    /// After a missed offer the operator rests this long before the next one.
    pub miss_backoff_ms: u64,
    /// Most operators busy (offered or connected) with this queue at once.
    pub max_busy_operators: Option<u32>,
    pub service_level_ms: u64,
    pub announce_every_ms: Option<u64>,
    pub periodic_messages: Vec<String>,
    pub periodic_every_ms: Option<u64>,
    /// Never auto-offer; operators take calls with Pull.
    pub pull_only: bool,
    pub schedule: Option<ScheduleId>,
    pub after_hours_target: Target,
    pub alarm_longest_wait_ms: Option<u64>,
    pub alarm_depth: Option<u32>,
    /// Handle time assumed for ETA before the queue has any sample.
    pub default_handle_ms: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            id: QueueId::new("queue"),
            name: String::new(),
            default_priority: PRIORITY_NORMAL,
            weight: 0,
            required_skills: BTreeMap::new(),
            max_wait_ms: None,
            timeout_target: Target::Dialplan,
            max_waiting: 1_000,
            full_target: Target::Dialplan,
            join_when_empty: EmptyRule::Never,
            leave_when_empty: EmptyRule::Never,
            empty_target: Target::Dialplan,
            tier_rules: Vec::new(),
            callback_offer_above_eta_ms: None,
            callback_max_attempts: 3,
            callback_retry_delay_ms: 120_000,
            wrap_up_ms: 0,
            ring_timeout_ms: 15_000,
            misses_before_break: 3,
            miss_backoff_ms: 5_000,
            max_busy_operators: None,
            service_level_ms: 20_000,
            announce_every_ms: None,
            periodic_messages: Vec::new(),
            periodic_every_ms: None,
            pull_only: false,
            schedule: None,
            after_hours_target: Target::Dialplan,
            alarm_longest_wait_ms: None,
            alarm_depth: None,
            default_handle_ms: 180_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// A misspelt setting in a config file or REST body is an error, never silently a default.
#[serde(default, deny_unknown_fields)]
pub struct GateConfig {
    pub id: GateId,
    pub queue: QueueId,
    /// Played to the operator before the caller is connected.
    pub whisper: Option<String>,
    pub priority: Option<u8>,
    pub required_skills: BTreeMap<Skill, u8>,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            id: GateId::new("gate"),
            queue: QueueId::new("queue"),
            whisper: None,
            priority: None,
            required_skills: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OperatorMode {
    /// Stays on the line in a holding bridge between calls; offers bridge at once.
    #[default]
    Persistent,
    /// Logs in and hangs up; each offer rings `endpoint`.
    Ring,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// A misspelt setting in a config file or REST body is an error, never silently a default.
#[serde(default, deny_unknown_fields)]
pub struct OperatorConfig {
    pub id: OperatorId,
    pub name: String,
    /// Home site (where the operator usually logs in).
    pub site: SiteId,
    /// argon2 PHC string; hashing and verifying happen at the site, never in the core.
    pub pin_hash: String,
    pub mode: OperatorMode,
    /// Dial string for ring mode, e.g. `PJSIP/alice`.
    pub endpoint: Option<String>,
    pub skills: BTreeMap<Skill, u8>,
    /// Queue → penalty tier (0 is first choice).
    pub memberships: BTreeMap<QueueId, u8>,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            id: OperatorId::new("operator"),
            name: String::new(),
            site: SiteId(1),
            pin_hash: String::new(),
            mode: OperatorMode::Persistent,
            endpoint: None,
            skills: BTreeMap::new(),
            memberships: BTreeMap::new(),
        }
    }
}

/// Opening hours on some weekdays, in the schedule's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OpeningHours {
    /// ISO weekdays, 1 = Monday … 7 = Sunday.
    pub days: Vec<u8>,
    /// Minutes after local midnight; `close_minute` may be 1440 (end of day).
    pub open_minute: u16,
    pub close_minute: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CivilDate {
    pub year: i16,
    pub month: u8,
    pub day: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub id: ScheduleId,
    /// IANA zone name, e.g. `Europe/Paris` (resolved from the tz database built into the binary).
    pub time_zone: String,
    pub weekly: Vec<OpeningHours>,
    /// Local dates closed all day.
    #[serde(default)]
    pub holidays: Vec<CivilDate>,
}

/// Text fields: bounded, printable, and free of characters that would matter in a dial
/// string or a queue_log line.
pub(crate) fn validate_text(field: &'static str, s: &str) -> Result<(), crate::CoreError> {
    if s.len() > TEXT_MAX_BYTES {
        return Err(crate::CoreError::InvalidField {
            field: field.into(),
            reason: format!("longer than {TEXT_MAX_BYTES} bytes"),
        });
    }
    if s.chars().any(|c| c.is_control() || c == '|') {
        return Err(crate::CoreError::InvalidField {
            field: field.into(),
            reason: "contains a control character or '|'".into(),
        });
    }
    Ok(())
}

/// Dial strings reach ARI originate: allow the technology/resource alphabet only.
pub(crate) fn validate_endpoint(s: &str) -> Result<(), crate::CoreError> {
    let ok = !s.is_empty()
        && s.len() <= TEXT_MAX_BYTES
        && s.contains('/')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "/@._-+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(crate::CoreError::InvalidField {
            field: "endpoint".into(),
            reason: format!(
                "{s:?} is not a dial string like PJSIP/alice (letters, digits and /@._-+ only, as ARI accepts)"
            ),
        })
    }
}

fn validate_skills(field: &'static str, skills: &BTreeMap<Skill, u8>) -> Result<(), crate::CoreError> {
    if skills.len() > CONFIG_LIST_MAX_ITEMS {
        return Err(crate::CoreError::InvalidField {
            field: field.into(),
            reason: format!("more than {CONFIG_LIST_MAX_ITEMS} skills"),
        });
    }
    for (skill, level) in skills {
        skill.validate().map_err(|e| crate::CoreError::InvalidField { field: field.into(), reason: e.to_string() })?;
        if *level > SKILL_LEVEL_MAX {
            return Err(crate::CoreError::InvalidField {
                field: field.into(),
                reason: format!("skill {skill} level {level} is above {SKILL_LEVEL_MAX}"),
            });
        }
    }
    Ok(())
}

fn validate_target(field: &'static str, t: &Target) -> Result<(), crate::CoreError> {
    if let Target::Queue { queue, .. } = t {
        queue.validate().map_err(|e| crate::CoreError::InvalidField { field: field.into(), reason: e.to_string() })?;
    }
    Ok(())
}

impl QueueConfig {
    pub fn validate(&self) -> Result<(), crate::CoreError> {
        use crate::CoreError::InvalidField;
        self.id.validate().map_err(|e| InvalidField { field: "id".into(), reason: e.to_string() })?;
        validate_text("name", &self.name)?;
        validate_skills("required_skills", &self.required_skills)?;
        if self.max_waiting == 0 || self.max_waiting > QUEUE_WAITING_MAX_CALLS {
            return Err(InvalidField {
                field: "max_waiting".into(),
                reason: format!("must be 1..={QUEUE_WAITING_MAX_CALLS}"),
            });
        }
        if self.tier_rules.len() > CONFIG_LIST_MAX_ITEMS || self.periodic_messages.len() > CONFIG_LIST_MAX_ITEMS {
            return Err(InvalidField {
                field: "tier_rules".into(),
                reason: format!("more than {CONFIG_LIST_MAX_ITEMS} items"),
            });
        }
        if !self.tier_rules.windows(2).all(|w| w[0].after_wait_ms < w[1].after_wait_ms) {
            return Err(InvalidField {
                field: "tier_rules".into(),
                reason: "after_wait_ms must strictly increase".into(),
            });
        }
        for m in &self.periodic_messages {
            validate_text("periodic_messages", m)?;
        }
        for (field, t) in [
            ("timeout_target", &self.timeout_target),
            ("full_target", &self.full_target),
            ("empty_target", &self.empty_target),
            ("after_hours_target", &self.after_hours_target),
        ] {
            validate_target(field, t)?;
        }
        if self.announce_every_ms == Some(0) || self.periodic_every_ms == Some(0) {
            return Err(InvalidField { field: "announce_every_ms".into(), reason: "must be above zero".into() });
        }
        if self.default_handle_ms == 0 {
            return Err(InvalidField { field: "default_handle_ms".into(), reason: "must be above zero".into() });
        }
        if self.ring_timeout_ms == 0 {
            return Err(InvalidField { field: "ring_timeout_ms".into(), reason: "must be above zero".into() });
        }
        if self.callback_max_attempts == 0 {
            return Err(InvalidField { field: "callback_max_attempts".into(), reason: "must be at least 1".into() });
        }
        if let Some(s) = &self.schedule {
            s.validate().map_err(|e| InvalidField { field: "schedule".into(), reason: e.to_string() })?;
        }
        Ok(())
    }

    /// Highest penalty tier allowed after `wait_ms` in the queue (None = no limit).
    pub fn allowed_penalty(&self, wait_ms: u64) -> Option<u8> {
        if self.tier_rules.is_empty() {
            return None;
        }
        Some(
            self.tier_rules.iter().take_while(|r| r.after_wait_ms <= wait_ms).map(|r| r.max_penalty).max().unwrap_or(0),
        )
    }

    /// Wait (ms) after which the next widening step applies, if any is left.
    pub fn next_widening_after(&self, wait_ms: u64) -> Option<u64> {
        self.tier_rules.iter().map(|r| r.after_wait_ms).find(|after| *after > wait_ms)
    }
}

impl GateConfig {
    pub fn validate(&self) -> Result<(), crate::CoreError> {
        use crate::CoreError::InvalidField;
        self.id.validate().map_err(|e| InvalidField { field: "id".into(), reason: e.to_string() })?;
        self.queue.validate().map_err(|e| InvalidField { field: "queue".into(), reason: e.to_string() })?;
        if let Some(w) = &self.whisper {
            validate_text("whisper", w)?;
        }
        validate_skills("required_skills", &self.required_skills)
    }
}

impl OperatorConfig {
    pub fn validate(&self) -> Result<(), crate::CoreError> {
        use crate::CoreError::InvalidField;
        self.id.validate().map_err(|e| InvalidField { field: "id".into(), reason: e.to_string() })?;
        validate_text("name", &self.name)?;
        if !self.pin_hash.is_empty() && !self.pin_hash.starts_with("$argon2") {
            return Err(InvalidField {
                field: "pin_hash".into(),
                reason: "must be an argon2 PHC string ($argon2id$...)".into(),
            });
        }
        validate_text("pin_hash", &self.pin_hash)?;
        validate_skills("skills", &self.skills)?;
        if self.memberships.len() > CONFIG_LIST_MAX_ITEMS {
            return Err(InvalidField {
                field: "memberships".into(),
                reason: format!("more than {CONFIG_LIST_MAX_ITEMS} queues"),
            });
        }
        for q in self.memberships.keys() {
            q.validate().map_err(|e| InvalidField { field: "memberships".into(), reason: e.to_string() })?;
        }
        match (&self.mode, &self.endpoint) {
            (OperatorMode::Ring, None) => {
                Err(InvalidField { field: "endpoint".into(), reason: "ring mode needs an endpoint to dial".into() })
            }
            (_, Some(e)) => validate_endpoint(e),
            _ => Ok(()),
        }
    }
}
