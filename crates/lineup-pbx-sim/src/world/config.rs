//! What a world is set up with: its boxes and the trunks between them, the phones
//! and their scripted humans, and the deployed dialplan.

use super::PbxWorld;
use crate::dialplan::Dialplan;
use crate::error::SimError;
use lineup_ari::CallerId;

/// Which box (stand-in Asterisk) of the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoxIndex(pub usize);

/// A trunk from one box to another: `PJSIP/<exten>@<trunk>` or `IAX2/<trunk>/<exten>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkRoute {
    /// `PJSIP` or `IAX2`.
    pub technology: String,
    /// The trunk name in the dial string (`site-b`).
    pub trunk: String,
    pub target: BoxIndex,
    /// The context calls arrive in at the target box (`from-lineup` in the deploy snippets).
    pub context: String,
}

/// One stand-in Asterisk.
#[derive(Clone, Debug)]
pub struct BoxConfig {
    /// The site name (`site-a`); the far end of a trunk names its channels after it.
    pub name: String,
    /// `asterisk_id` in events.
    pub asterisk_id: String,
    pub dialplan: Dialplan,
    pub trunks: Vec<TrunkRoute>,
}

/// The dialplan users deploy (`deploy/asterisk/extensions.conf`), as the stand-in runs it.
pub const DEPLOYED_EXTENSIONS_CONF: &str = include_str!("../../../../deploy/asterisk/extensions.conf");

/// The context cross-site legs arrive in (`[from-lineup]` in the deployed dialplan).
pub const TRUNK_ENTRY_CONTEXT: &str = "from-lineup";

/// A world of `site_names.len()` boxes running the deployed dialplan, each with a PJSIP trunk
/// to every other named after it (`PJSIP/lineup-<call>@<site>`), as in the demo.
pub fn federated_sites(epoch_ms: u64, site_names: &[&str]) -> Result<PbxWorld, SimError> {
    let dialplan = Dialplan::parse(DEPLOYED_EXTENSIONS_CONF)?;
    let boxes = site_names
        .iter()
        .enumerate()
        .map(|(index, name)| BoxConfig {
            name: name.to_string(),
            asterisk_id: format!("02:fc:00:00:00:{:02x}", index + 1),
            dialplan: dialplan.clone(),
            trunks: site_names
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .map(|(other, other_name)| TrunkRoute {
                    technology: "PJSIP".into(),
                    trunk: other_name.to_string(),
                    target: BoxIndex(other),
                    context: TRUNK_ENTRY_CONTEXT.into(),
                })
                .collect(),
        })
        .collect();
    PbxWorld::new(epoch_ms, boxes)
}

/// What a scripted human at a phone does when it rings, and once answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PhoneBehaviour {
    /// Answer this long after ringing starts; `None` never answers.
    pub answer_after_ms: Option<u64>,
    /// Hang up this long after answering; `None` stays until the other side hangs up.
    pub hang_up_after_answer_ms: Option<u64>,
    /// Keys pressed after answering.
    pub keys_after_answer: Vec<ScriptedKeys>,
    /// Rejects every call as busy (Dial `BUSY`, cause 17) instead of ringing.
    pub busy: bool,
}

/// Keys a scripted human presses, `at_ms` after the call started (or was answered).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptedKeys {
    pub at_ms: u64,
    /// `0-9 * # A-D`, pressed `KEY_SPACING_MS` apart.
    pub digits: String,
}

/// A scripted caller (or an operator's login call): a phone dials into the dialplan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneCall {
    /// The PJSIP endpoint of the phone (`alice`); the channel is `PJSIP/alice-<n>`.
    pub phone: String,
    pub caller: CallerId,
    pub context: String,
    pub exten: String,
    /// Hang up this long after dialing unless the call ended first.
    pub patience_ms: Option<u64>,
    pub keys: Vec<ScriptedKeys>,
}

impl PhoneCall {
    /// An operator's login call: dial the login extension, key the PIN and `#` once the
    /// prompt had time to play.
    pub fn operator_login(
        phone: &str,
        caller: CallerId,
        context: &str,
        exten: &str,
        pin: &str,
        pin_at_ms: u64,
    ) -> PhoneCall {
        PhoneCall {
            phone: phone.to_string(),
            caller,
            context: context.to_string(),
            exten: exten.to_string(),
            patience_ms: None,
            keys: vec![ScriptedKeys { at_ms: pin_at_ms, digits: format!("{pin}#") }],
        }
    }
}
