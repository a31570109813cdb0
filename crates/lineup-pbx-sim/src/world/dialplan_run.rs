//! Running the dialplan on a channel: step by step, each application with its data
//! substituted, until the channel waits, enters Stasis or hangs up.

use super::config::BoxIndex;
use super::records::{ChannelRef, HangupOrigin, Moh};
use super::timers::Timer;
use super::{PbxWorld, DIALPLAN_ANSWER_SETTLE_MS, DIALPLAN_STEPS_PER_RUN_MAX_COUNT};
use crate::dialplan::{split_goto_if, GotoTarget};
use crate::expression::{self, condition_is_true, leading_integer};
use lineup_ari::stasis_args::split_stasis_app_data;
use lineup_ari::{ChannelState, DialplanLocation, EventKind};

/// Where the dialplan goes after one step.
enum StepFlow {
    /// On at the next priority, now.
    Next,
    /// On at this location, now (a Goto).
    Jump { context: String, exten: String, priority: i64 },
    /// Not now: the channel waits (a timer, Stasis) or is gone.
    Stop,
}

impl PbxWorld {
    pub(super) fn run_dialplan(&mut self, channel: &ChannelRef) {
        // Bounded: a dialplan that loops without waiting stops here instead of spinning.
        for _ in 0..DIALPLAN_STEPS_PER_RUN_MAX_COUNT {
            let Some(record) = self.channel(channel) else { return };
            if record.hanging_up || record.stasis_app.is_some() {
                return;
            }
            let location = record.snapshot.dialplan.clone();
            let dialplan = &self.boxes[channel.box_index.0].config.dialplan;
            let Some(extension) = dialplan.find(&location.context, &location.exten) else {
                self.hangup(channel, HangupOrigin::Local { cause: 1 });
                return;
            };
            let Some(step) = usize::try_from(location.priority - 1).ok().and_then(|index| extension.steps.get(index))
            else {
                // Falling off the end of an extension hangs up, as in Asterisk.
                self.hangup(channel, HangupOrigin::Local { cause: 16 });
                return;
            };
            let application = step.application.clone();
            // As in Asterisk, the application sees its data with variables and expressions
            // substituted.
            let data =
                expression::substitute(&step.data, &|name| self.dialplan_lookup(channel.box_index, record, name));
            if let Some(record) = self.channel_mut(channel) {
                record.snapshot.dialplan.app_name = application.clone();
                record.snapshot.dialplan.app_data = data.clone();
            }
            let snapshot = self.snapshot(channel).expect("live");
            self.emit_for_channel(
                channel,
                EventKind::ChannelDialplan {
                    dialplan_app: application.clone(),
                    dialplan_app_data: data.clone(),
                    channel: snapshot,
                },
            );
            let next = match self.run_step(channel, &location, &application, &data) {
                StepFlow::Next => (location.context, location.exten, location.priority + 1),
                StepFlow::Jump { context, exten, priority } => (context, exten, priority),
                StepFlow::Stop => return,
            };
            match self.channel_mut(channel) {
                Some(record) if !record.hanging_up => {
                    let (context, exten, priority) = next;
                    record.snapshot.dialplan.context = context;
                    record.snapshot.dialplan.exten = exten;
                    record.snapshot.dialplan.priority = priority;
                }
                _ => return,
            }
        }
    }

    /// Runs one application with its substituted data.
    fn run_step(
        &mut self,
        channel: &ChannelRef,
        location: &DialplanLocation,
        application: &str,
        data: &str,
    ) -> StepFlow {
        match application {
            "Answer" => {
                // Answering an answered channel returns at once (no media settle to wait for).
                if self.channel(channel).is_some_and(|record| record.snapshot.state == ChannelState::Up) {
                    return StepFlow::Next;
                }
                self.answer_channel(channel);
                let priority = location.priority + 1;
                self.schedule(DIALPLAN_ANSWER_SETTLE_MS, Timer::DialplanResume { channel: channel.clone(), priority });
                StepFlow::Stop
            }
            "Wait" => {
                let seconds: f64 = data.trim().parse().unwrap_or(0.0);
                let delay_ms = (seconds.max(0.0) * 1000.0) as u64;
                self.schedule(
                    delay_ms,
                    Timer::DialplanResume { channel: channel.clone(), priority: location.priority + 1 },
                );
                if let Some(record) = self.channel_mut(channel) {
                    record.in_dialplan_application = true;
                }
                StepFlow::Stop
            }
            "MusicOnHold" => {
                self.dialplan_music_on_hold(channel, location.priority + 1, data);
                StepFlow::Stop
            }
            "Stasis" => {
                let (application, args) = split_stasis_app_data(data);
                if self.boxes[channel.box_index.0].applications.contains(&application) {
                    self.enter_stasis(channel, application, args);
                    return StepFlow::Stop;
                }
                self.set_variable_internal(channel, "STASISSTATUS", "FAILED");
                StepFlow::Next
            }
            "Set" => {
                self.dialplan_set(channel, data);
                StepFlow::Next
            }
            "Goto" => self.goto(channel, location, data),
            "GotoIf" => {
                // Without a `?` Asterisk ignores the GotoIf and goes on.
                let Some((condition, if_true, if_false)) = split_goto_if(data) else { return StepFlow::Next };
                let destination = if condition_is_true(condition) { if_true } else { if_false };
                if destination.is_empty() {
                    return StepFlow::Next;
                }
                self.goto(channel, location, destination)
            }
            "Hangup" => {
                let cause = data.trim().parse().unwrap_or(16);
                self.hangup(channel, HangupOrigin::Local { cause });
                StepFlow::Stop
            }
            // Other applications (NoOp, Verbose, Queue, Playback, ...) have no modelled effect.
            _ => StepFlow::Next,
        }
    }

    /// `Goto([[context,]exten,]priority)`: a destination that names no existing priority
    /// or label ends the call, as the failed application does in Asterisk. A jump to an
    /// extension that does not exist is taken, and `run_dialplan` then hangs up.
    fn goto(&mut self, channel: &ChannelRef, location: &DialplanLocation, target: &str) -> StepFlow {
        match self.goto_destination(channel.box_index, location, target) {
            Some((context, exten, priority)) => StepFlow::Jump { context, exten, priority },
            None => {
                self.hangup(channel, HangupOrigin::Local { cause: 16 });
                StepFlow::Stop
            }
        }
    }

    fn goto_destination(
        &self,
        box_index: BoxIndex,
        location: &DialplanLocation,
        target: &str,
    ) -> Option<(String, String, i64)> {
        let target = GotoTarget::parse(target)?;
        let context = target.context.unwrap_or_else(|| location.context.clone());
        let exten = target.exten.unwrap_or_else(|| location.exten.clone());
        let priority = match target.priority.parse::<i64>() {
            Ok(number) => (number >= 1).then_some(number)?,
            Err(_) => {
                self.boxes[box_index.0].config.dialplan.find(&context, &exten)?.label_priority(&target.priority)?
            }
        };
        Some((context, exten, priority))
    }

    /// `MusicOnHold(class[,duration])`: hold music of `class` (`default` when empty) for
    /// `duration` whole seconds, then the next priority; without a positive duration, until
    /// the channel hangs up (Asterisk reads the duration with `%d`).
    fn dialplan_music_on_hold(&mut self, channel: &ChannelRef, next_priority: i64, data: &str) {
        let (class, duration) = data.split_once(',').unwrap_or((data, ""));
        let class = match class.trim() {
            "" => "default",
            class => class,
        };
        let Some(record) = self.channel_mut(channel) else { return };
        record.moh = Moh::Playing(class.to_string());
        record.in_dialplan_application = true;
        if let Some(seconds) = leading_integer(duration.trim()).filter(|seconds| *seconds > 0) {
            let delay_ms = u64::try_from(seconds).unwrap_or(0).saturating_mul(1000);
            self.schedule(delay_ms, Timer::MusicOnHoldDone { channel: channel.clone(), priority: next_priority });
        }
    }

    /// A dialplan application that held the channel is over: go on at `priority`, unless
    /// the channel has left the dialplan meanwhile.
    pub(super) fn resume_dialplan(&mut self, channel: &ChannelRef, priority: i64) {
        let Some(record) = self.channel_mut(channel) else { return };
        if record.stasis_app.is_some() || record.hanging_up {
            return;
        }
        record.in_dialplan_application = false;
        record.snapshot.dialplan.priority = priority;
        self.run_dialplan(channel);
    }
}
