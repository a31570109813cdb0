//! `lineup operator pause|unpause|logout|add|remove`: app_queue's `queue pause member`,
//! `queue add member` and their kin, as supervisor and admin writes to a node's API
//! (audited there under the token's name).

use crate::api_client::{block_on, path_id, Api, ApiTarget};
use hyper::Method;
use serde_json::{json, Value};

/// Break reason when `pause` is given none.
pub const PAUSE_REASON_DEFAULT: &str = "paused";

#[derive(clap::Subcommand)]
pub enum OperatorAction {
    /// Put a logged-in operator on break (supervisor token); no offers until unpaused.
    Pause {
        /// The operator's id, e.g. 1101.
        operator: String,
        /// The break reason shown on the dashboard.
        #[arg(long, default_value = PAUSE_REASON_DEFAULT)]
        reason: String,
        #[command(flatten)]
        target: ApiTarget,
    },
    /// Make an operator on break available again (supervisor token).
    Unpause {
        /// The operator's id, e.g. 1101.
        operator: String,
        #[command(flatten)]
        target: ApiTarget,
    },
    /// Log an operator out (supervisor token).
    Logout {
        /// The operator's id, e.g. 1101.
        operator: String,
        #[command(flatten)]
        target: ApiTarget,
    },
    /// Make an operator a member of a queue at a penalty tier (admin token: changes the
    /// routing config; 0 is first choice).
    Add {
        /// The operator's id, e.g. 1101.
        operator: String,
        /// The queue's id, e.g. sales.
        queue: String,
        /// Penalty tier: 0 is first choice; lower tiers are offered callers first, and the
        /// queue's tier rules say when higher ones may take them.
        #[arg(long, default_value_t = 0)]
        penalty: u8,
        #[command(flatten)]
        target: ApiTarget,
    },
    /// Take an operator out of a queue (admin token: changes the routing config).
    Remove {
        /// The operator's id, e.g. 1101.
        operator: String,
        /// The queue's id, e.g. sales.
        queue: String,
        #[command(flatten)]
        target: ApiTarget,
    },
}

pub fn operator_action(action: &OperatorAction) -> anyhow::Result<()> {
    block_on(async {
        let line = match action {
            OperatorAction::Pause { operator, reason, target } => {
                let body = json!({ "state": "break", "reason": reason });
                set_state(target, operator, body, &format!("on break ({reason})")).await?
            }
            OperatorAction::Unpause { operator, target } => {
                set_state(target, operator, json!({ "state": "available" }), "available").await?
            }
            OperatorAction::Logout { operator, target } => {
                let path = format!("/v1/operators/{}/logout", path_id("operator", operator)?);
                let done = Api::new(target)?.write(Method::POST, &path, None, &format!("log out {operator}")).await?;
                format!("operator {operator} logged out{}", deferred(&done))
            }
            OperatorAction::Add { operator, queue, penalty, target } => {
                membership(target, operator, queue, Some(*penalty)).await?
            }
            OperatorAction::Remove { operator, queue, target } => membership(target, operator, queue, None).await?,
        };
        println!("{line}");
        Ok(())
    })
}

async fn set_state(target: &ApiTarget, operator: &str, body: Value, now: &str) -> anyhow::Result<String> {
    let path = format!("/v1/operators/{}/state", path_id("operator", operator)?);
    let what = format!("set operator {operator} {now}");
    let done = Api::new(target)?.write(Method::POST, &path, Some(body), &what).await?;
    Ok(format!("operator {operator} {now}{}", deferred(&done)))
}

/// A state asked of a busy operator applies when their call ends.
fn deferred(done: &Value) -> &'static str {
    if done["response"] == "AfterCurrentCall" {
        " when the current call ends"
    } else {
        ""
    }
}

/// Adds (`penalty` given) or removes the operator's membership of `queue`: the operator's
/// config is read, changed and put back whole, as the dashboard's editor does.
async fn membership(target: &ApiTarget, operator: &str, queue: &str, penalty: Option<u8>) -> anyhow::Result<String> {
    let path = format!("/v1/config/operators/{}", path_id("operator", operator)?);
    let queue = path_id("queue", queue)?;
    let api = Api::new(target)?;
    let mut config = api.get(&path).await?;
    let memberships = config["memberships"]
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("the node's answer for operator {operator} has no memberships"))?;
    let (what, line) = match penalty {
        Some(penalty) => {
            memberships.insert(queue.to_string(), json!(penalty));
            (format!("add {operator} to {queue}"), format!("operator {operator} added to {queue} at penalty {penalty}"))
        }
        None => {
            if memberships.remove(queue).is_none() {
                anyhow::bail!("operator {operator} is not a member of queue `{queue}`");
            }
            (format!("remove {operator} from {queue}"), format!("operator {operator} removed from {queue}"))
        }
    };
    api.write(Method::PUT, &path, Some(config), &what).await?;
    Ok(line)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_state_for_a_busy_operator_says_it_waits_for_the_call() {
        let later = serde_json::json!({"ok": true, "response": "AfterCurrentCall"});
        assert_eq!(super::deferred(&later), " when the current call ends");
        assert_eq!(super::deferred(&serde_json::json!({"ok": true, "response": "Done"})), "");
    }
}
