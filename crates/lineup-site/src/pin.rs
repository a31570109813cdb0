//! An operator's PIN and its argon2 hash as they travel from the login dialogue to the PIN
//! check: neither is ever printed by `Debug` (actions are logged at trace level), and a
//! short PIN's hash is as good as the PIN to whoever reads it.

use std::fmt;

/// The digits an operator keyed as a PIN.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(String);

impl Pin {
    pub fn new(digits: String) -> Self {
        Self(digits)
    }

    /// The digits, for the PIN check alone.
    pub fn digits(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(****)")
    }
}

/// An operator's PIN hash (an argon2id PHC string from the routing config).
#[derive(Clone, PartialEq, Eq)]
pub struct PinHash(String);

impl PinHash {
    pub fn new(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string, for the PIN check alone.
    pub fn phc(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PinHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinHash(****)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;

    #[test]
    fn a_pin_check_action_shows_neither_the_pin_nor_its_hash() {
        let action = Action::VerifyPin {
            token: 7,
            pin: Pin::new("86420975".into()),
            phc: PinHash::new("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into()),
        };
        let shown = format!("{action:?} {action:#?}");
        assert!(!shown.contains("86420975") && !shown.contains("argon2id"), "{shown}");
        assert!(shown.contains("Pin(****)") && shown.contains("token: 7"), "{shown}");
    }
}
