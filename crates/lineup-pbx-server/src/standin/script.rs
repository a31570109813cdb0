//! The scripted humans' clock: carries out `ScriptAction`s when they are due.
//!
//! Each move runs inside one `LiveWorld::with_world`, so a scripted hangup is marked in the
//! truth and carried out in the same step: nothing can tear the leg down in between.

use super::truth::{OperatorMode, Party, ScriptAction, Truth};
use super::SharedTruth;
use crate::server::LiveWorld;
use lineup_ari::{CallerId, ChannelId};
use lineup_pbx_sim::world::{BoxIndex, PbxWorld, PhoneCall};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often due moves are looked for: the humans' reaction time.
pub const SCRIPT_TICK_MS: u64 = 20;
/// The context and extension prefix operators dial to log in (`*55<id>`).
pub const LOGIN_CONTEXT: &str = "lineup-operators";
pub const LOGIN_EXTEN_PREFIX: &str = "*55";

/// The task running the script; stops when dropped.
pub struct ScriptTask(JoinHandle<()>);

impl Drop for ScriptTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl ScriptTask {
    pub fn start(live: Arc<LiveWorld>, truth: SharedTruth) -> ScriptTask {
        ScriptTask(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(SCRIPT_TICK_MS));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                live.with_world(|world| run_due(world, &truth));
            }
        }))
    }
}

fn run_due(world: &mut PbxWorld, truth: &SharedTruth) {
    let mut truth = truth.lock();
    for action in truth.take_due(world.now_ms()) {
        match action {
            ScriptAction::Hangup { leg, party } => {
                hang_up(world, &mut truth, &leg, party);
            }
            ScriptAction::Patience { leg } => {
                hang_up(world, &mut truth, &leg, Party::Caller);
            }
            ScriptAction::Login { operator } => {
                if let Err(error) = log_in(world, &mut truth, &operator) {
                    tracing::warn!(%operator, %error, "stand-in: login failed");
                }
            }
        }
    }
}

/// A scripted human hangs up `leg` (if it is still there).
pub fn hang_up(world: &mut PbxWorld, truth: &mut Truth, leg: &(usize, String), party: Party) -> bool {
    let Ok(id) = ChannelId::new(leg.1.clone()) else { return false };
    if world.get_channel(BoxIndex(leg.0), &leg.1).is_err() {
        return false;
    }
    truth.mark_scripted(leg, party);
    world.phone_hangup(BoxIndex(leg.0), &id)
}

/// The operator dials `*55<id>` from their desk and keys the PIN once the prompt played.
pub fn log_in(world: &mut PbxWorld, truth: &mut Truth, operator: &str) -> Result<ChannelId, String> {
    let record = truth.operator(operator).ok_or_else(|| format!("no operator {operator}"))?.clone();
    let login = PhoneCall::operator_login(
        &format!("desk-{operator}"),
        CallerId { name: format!("Operator {operator}"), number: operator.to_string() },
        LOGIN_CONTEXT,
        &format!("{LOGIN_EXTEN_PREFIX}{operator}"),
        &record.pin,
        super::truth::PIN_AFTER_DIAL_MS,
    );
    let channel = world.place_call(BoxIndex(record.box_index), login).map_err(|e| e.to_string())?;
    let leg = (record.mode == OperatorMode::Persistent).then(|| channel.to_string());
    truth.login_placed(operator, leg);
    Ok(channel)
}
