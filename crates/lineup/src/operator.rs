//! `lineup operator pin`: the argon2 hash that goes into an operator's `pin_hash`. The
//! commands on live operators (`pause`, `add`, ...) are in `cli_operator`.

use anyhow::Context;
use std::io::BufRead;

/// PIN length limits (what an operator keys on a phone).
pub const PIN_MIN_DIGITS: usize = 4;
pub const PIN_MAX_DIGITS: usize = 12;

#[derive(clap::Subcommand)]
pub enum OperatorCommand {
    /// Hash a PIN read from standard input (one line of digits), print the PHC string.
    /// Reading stdin keeps the PIN out of the process list and shell history.
    Pin,
    #[command(flatten)]
    Live(crate::cli_operator::OperatorAction),
}

pub fn operator(command: &OperatorCommand) -> anyhow::Result<()> {
    match command {
        OperatorCommand::Pin => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).context("read the PIN from standard input")?;
            println!("{}", hash_pin(line.trim())?);
            Ok(())
        }
        OperatorCommand::Live(action) => crate::cli_operator::operator_action(action),
    }
}

pub fn hash_pin(pin: &str) -> anyhow::Result<String> {
    if !(PIN_MIN_DIGITS..=PIN_MAX_DIGITS).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
        anyhow::bail!("a PIN is {PIN_MIN_DIGITS} to {PIN_MAX_DIGITS} digits (what a phone keypad can send)");
    }
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(pin.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hash the PIN: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_hash_verifies_and_bad_pins_are_refused() {
        let phc = hash_pin("4321").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        use argon2::password_hash::{phc::PasswordHash, PasswordVerifier};
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(argon2::Argon2::default().verify_password(b"4321", &parsed).is_ok());
        assert!(argon2::Argon2::default().verify_password(b"4322", &parsed).is_err());
        assert!(hash_pin("12").is_err() && hash_pin("12a4").is_err() && hash_pin("1234567890123").is_err());
    }
}
