//! Who is in the demo: its queues, gates and operators (the routing config it applies), and
//! the API tokens of one run.

use crate::DemoError;
use lineup_api::secret::new_token;
use lineup_api::{ApiConfig, ApiToken, Role};
use lineup_core::*;

pub(super) struct DemoOperator {
    pub id: &'static str,
    pub site: u64,
    pub mode: OperatorMode,
    pub queues: &'static [(&'static str, u8)],
    pub skills: &'static [(&'static str, u8)],
}

pub(super) const OPERATORS: &[DemoOperator] = &[
    DemoOperator {
        id: "1101",
        site: 1,
        mode: OperatorMode::Persistent,
        queues: &[("sales", 0), ("support", 1)],
        skills: &[("english", 80)],
    },
    DemoOperator { id: "1102", site: 1, mode: OperatorMode::Ring, queues: &[("sales", 0)], skills: &[] },
    DemoOperator { id: "1201", site: 2, mode: OperatorMode::Persistent, queues: &[("sales", 0)], skills: &[] },
    DemoOperator {
        id: "1202",
        site: 2,
        mode: OperatorMode::Ring,
        queues: &[("support", 0)],
        skills: &[("english", 60)],
    },
    DemoOperator {
        id: "1301",
        site: 3,
        mode: OperatorMode::Persistent,
        queues: &[("support", 0), ("sales", 1)],
        skills: &[("english", 90)],
    },
    DemoOperator { id: "1302", site: 3, mode: OperatorMode::Persistent, queues: &[("sales", 0)], skills: &[] },
];

/// An operator's PIN in the demo: their id reversed.
pub(super) fn pin_of(operator: &str) -> String {
    operator.chars().rev().collect()
}

/// The demo's routing config. Its gates are the ones deploy/demo/extensions.conf names (a
/// test checks every `Stasis(...)` line there against it).
pub(super) fn routing_config() -> RoutingConfigSet {
    let queues = vec![
        QueueConfig {
            id: QueueId::new("sales"),
            name: "Sales".into(),
            announce_every_ms: Some(30_000),
            callback_offer_above_eta_ms: Some(45_000),
            wrap_up_ms: 5_000,
            max_wait_ms: Some(240_000),
            default_handle_ms: 45_000,
            alarm_longest_wait_ms: Some(90_000),
            alarm_depth: Some(8),
            ring_timeout_ms: 12_000,
            ..Default::default()
        },
        QueueConfig {
            id: QueueId::new("support"),
            name: "Support".into(),
            required_skills: [(Skill::new("english"), 50)].into_iter().collect(),
            announce_every_ms: Some(30_000),
            wrap_up_ms: 8_000,
            max_wait_ms: Some(300_000),
            default_handle_ms: 60_000,
            timeout_target: Target::Queue { queue: QueueId::new("sales"), keep_order: true },
            ..Default::default()
        },
    ];
    let gates = vec![
        GateConfig { id: GateId::new("web"), queue: QueueId::new("sales"), ..Default::default() },
        GateConfig {
            id: GateId::new("phone"),
            queue: QueueId::new("sales"),
            whisper: Some("queue-reporthold".into()),
            ..Default::default()
        },
        GateConfig { id: GateId::new("support-phone"), queue: QueueId::new("support"), ..Default::default() },
    ];
    let operators = OPERATORS.iter().map(operator_config).collect();
    RoutingConfigSet { queues, gates, operators, ..Default::default() }
}

fn operator_config(op: &DemoOperator) -> OperatorConfig {
    let pin_hash = {
        use argon2::password_hash::PasswordHasher;
        argon2::Argon2::default().hash_password(pin_of(op.id).as_bytes()).map(|h| h.to_string()).unwrap_or_default()
    };
    OperatorConfig {
        id: OperatorId::new(op.id),
        name: format!("Operator {}", op.id),
        site: SiteId(op.site),
        pin_hash,
        mode: op.mode,
        endpoint: (op.mode == OperatorMode::Ring).then(|| format!("PJSIP/phone-{}", op.id)),
        skills: op.skills.iter().map(|(s, l)| (Skill::new(*s), *l)).collect(),
        memberships: op.queues.iter().map(|(q, p)| (QueueId::new(*q), *p)).collect(),
    }
}

/// API tokens for one demo run: printed at start, good only while it runs. Each is 128 bits
/// from the OS random source, so none can be worked out from another.
pub(super) struct DemoTokens {
    pub admin: String,
    pub viewer: String,
    /// Mints caller widget tokens (`POST /v1/calls/{id}/widget-token`), nothing else.
    pub frontend: String,
}

impl DemoTokens {
    pub fn new() -> Result<Self, DemoError> {
        let token = |role: &str| -> Result<String, DemoError> {
            let random = new_token().map_err(|e| DemoError::Random(e.to_string()))?;
            Ok(format!("demo-{role}-{random}"))
        };
        Ok(Self { admin: token("admin")?, viewer: token("viewer")?, frontend: token("frontend")? })
    }

    pub fn api_config(&self) -> ApiConfig {
        ApiConfig {
            tokens: vec![
                ApiToken::plain("demo-admin", &self.admin, Role::Admin),
                ApiToken::plain("demo-viewer", &self.viewer, Role::Viewer),
                ApiToken::plain("demo-frontend", &self.frontend, Role::Frontend),
            ],
            ..ApiConfig::default()
        }
    }
}
