//! The routing configuration mirrored into SQL tables for reports (PIN hashes removed).

use lineup_core::{GateConfig, OperatorConfig, OperatorMode, QueueConfig, Routing};

use super::sql::{int, json, Arg, Statement};
use super::HistoryStore;
use crate::error::StoreError;

const INSERT_CONFIG_QUEUE: Statement = Statement {
    postgres: "INSERT INTO config_queues (id, name, default_priority, weight, max_waiting, max_wait_ms, \
               service_level_ms, wrap_up_ms, schedule, config_json, log_index) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    sqlite: "INSERT INTO config_queues (id, name, default_priority, weight, max_waiting, max_wait_ms, \
             service_level_ms, wrap_up_ms, schedule, config_json, log_index) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
};

const INSERT_CONFIG_GATE: Statement = Statement {
    postgres: "INSERT INTO config_gates (id, queue, priority, whisper, config_json, log_index) \
               VALUES ($1, $2, $3, $4, $5, $6)",
    sqlite: "INSERT INTO config_gates (id, queue, priority, whisper, config_json, log_index) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
};

const INSERT_CONFIG_OPERATOR: Statement = Statement {
    postgres: "INSERT INTO config_operators (id, name, site, mode, endpoint, config_json, log_index) \
               VALUES ($1, $2, $3, $4, $5, $6, $7)",
    sqlite: "INSERT INTO config_operators (id, name, site, mode, endpoint, config_json, log_index) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
};

const INSERT_CONFIG_OPERATOR_QUEUE: Statement = Statement {
    postgres: "INSERT INTO config_operator_queues (operator, queue, penalty) VALUES ($1, $2, $3)",
    sqlite: "INSERT INTO config_operator_queues (operator, queue, penalty) VALUES (?1, ?2, ?3)",
};

const CLEAR_CONFIG: [Statement; 4] = [
    Statement { postgres: "DELETE FROM config_queues", sqlite: "DELETE FROM config_queues" },
    Statement { postgres: "DELETE FROM config_gates", sqlite: "DELETE FROM config_gates" },
    Statement { postgres: "DELETE FROM config_operators", sqlite: "DELETE FROM config_operators" },
    Statement { postgres: "DELETE FROM config_operator_queues", sqlite: "DELETE FROM config_operator_queues" },
];

fn mode_name(mode: OperatorMode) -> &'static str {
    match mode {
        OperatorMode::Persistent => "persistent",
        OperatorMode::Ring => "ring",
    }
}

/// The routing configuration as mirrored for SQL reports (PIN hashes removed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigMirror {
    /// The apply index the configuration was read at.
    pub apply_index: u64,
    pub queues: Vec<QueueConfig>,
    pub gates: Vec<GateConfig>,
    pub operators: Vec<OperatorConfig>,
}

impl ConfigMirror {
    pub fn from_routing(routing: &Routing) -> Self {
        Self {
            apply_index: routing.last_applied_index(),
            queues: routing.queue_configs().cloned().collect(),
            gates: routing.gate_configs().cloned().collect(),
            operators: routing
                .operator_configs()
                .map(|o| OperatorConfig { pin_hash: String::new(), ..o.clone() })
                .collect(),
        }
    }

    /// Same configuration, whatever index it was read at.
    pub fn same_config_as(&self, other: &ConfigMirror) -> bool {
        self.queues == other.queues && self.gates == other.gates && self.operators == other.operators
    }
}

impl HistoryStore {
    /// Replaces the config mirror tables with `config` in one transaction.
    pub async fn mirror_config(&self, config: &ConfigMirror) -> Result<(), StoreError> {
        let at = Arg::Int(int(config.apply_index));
        let mut tx = self.begin().await?;
        for statement in &CLEAR_CONFIG {
            tx.execute(statement, &[]).await?;
        }
        for q in &config.queues {
            let args = [
                Arg::Text(q.id.to_string()),
                Arg::Text(q.name.clone()),
                Arg::Int(i64::from(q.default_priority)),
                Arg::Int(i64::from(q.weight)),
                Arg::Int(i64::from(q.max_waiting)),
                Arg::OptInt(q.max_wait_ms.map(int)),
                Arg::Int(int(q.service_level_ms)),
                Arg::Int(int(q.wrap_up_ms)),
                Arg::OptText(q.schedule.as_ref().map(ToString::to_string)),
                Arg::Text(json(q)?),
                at.clone(),
            ];
            tx.execute(&INSERT_CONFIG_QUEUE, &args).await?;
        }
        for g in &config.gates {
            let args = [
                Arg::Text(g.id.to_string()),
                Arg::Text(g.queue.to_string()),
                Arg::OptInt(g.priority.map(i64::from)),
                Arg::OptText(g.whisper.clone()),
                Arg::Text(json(g)?),
                at.clone(),
            ];
            tx.execute(&INSERT_CONFIG_GATE, &args).await?;
        }
        for o in &config.operators {
            let without_pin = OperatorConfig { pin_hash: String::new(), ..o.clone() };
            let args = [
                Arg::Text(o.id.to_string()),
                Arg::Text(o.name.clone()),
                Arg::Int(int(o.site.0)),
                Arg::Text(mode_name(o.mode).to_string()),
                Arg::OptText(o.endpoint.clone()),
                Arg::Text(json(&without_pin)?),
                at.clone(),
            ];
            tx.execute(&INSERT_CONFIG_OPERATOR, &args).await?;
            for (queue, penalty) in &o.memberships {
                let args = [Arg::Text(o.id.to_string()), Arg::Text(queue.to_string()), Arg::Int(i64::from(*penalty))];
                tx.execute(&INSERT_CONFIG_OPERATOR_QUEUE, &args).await?;
            }
        }
        tx.commit().await
    }
}
