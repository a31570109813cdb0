//! `lineup call move|priority|hangup`: a supervisor moves a waiting caller to another queue,
//! changes their priority or hangs them up, through a node's API (audited there under the
//! token's name).

use crate::api_client::{block_on, path_id, Api, ApiTarget};
use hyper::Method;
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum CallCommand {
    /// Move a waiting caller to another queue (supervisor token).
    Move {
        /// The call's id, as `lineup queue show` lists it.
        call: String,
        /// The queue to move the caller to.
        queue: String,
        /// Join the new queue as a new arrival (by default the caller keeps their place by
        /// the time they first called).
        #[arg(long)]
        to_back: bool,
        #[command(flatten)]
        target: ApiTarget,
    },
    /// Change a waiting caller's priority: lower is served first (0 = VIP, 5 = normal).
    Priority {
        /// The call's id, as `lineup queue show` lists it.
        call: String,
        /// The new priority.
        priority: u8,
        #[command(flatten)]
        target: ApiTarget,
    },
    /// Hang up a caller on the line: their site ends the channel, and the call ends as any
    /// hangup does (abandoned while waiting, completed by the caller once connected).
    Hangup {
        /// The call's id, as `lineup queue show` lists it.
        call: String,
        #[command(flatten)]
        target: ApiTarget,
    },
}

pub fn call(command: &CallCommand) -> anyhow::Result<()> {
    block_on(async {
        let line = match command {
            CallCommand::Move { call, queue, to_back, target } => {
                let path = format!("/v1/calls/{}/reassign", path_id("call", call)?);
                let body = json!({ "queue": path_id("queue", queue)?, "keep_age": !to_back });
                Api::new(target)?.write(Method::POST, &path, Some(body), &format!("move call {call}")).await?;
                format!("call {call} moved to {queue}")
            }
            CallCommand::Priority { call, priority, target } => {
                let path = format!("/v1/calls/{}/priority", path_id("call", call)?);
                let body = json!({ "priority": priority });
                let what = format!("change the priority of call {call}");
                Api::new(target)?.write(Method::POST, &path, Some(body), &what).await?;
                format!("call {call} now has priority {priority}")
            }
            CallCommand::Hangup { call, target } => {
                let path = format!("/v1/calls/{}/hangup", path_id("call", call)?);
                let what = format!("hang up call {call}");
                Api::new(target)?.write(Method::POST, &path, Some(json!({})), &what).await?;
                format!("call {call} is being hung up at its site")
            }
        };
        println!("{line}");
        Ok(())
    })
}
