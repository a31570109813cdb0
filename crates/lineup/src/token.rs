//! `lineup token new`: a fresh API token from the OS random source, and the SHA-256 that a
//! node config may hold instead of it.

use lineup_api::secret::{new_token, sha256_hex};

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Print a new token (128 random bits, hex) and its SHA-256, as node config lines.
    New,
}

pub fn token(command: &TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::New => {
            let token = new_token().map_err(|e| anyhow::anyhow!("read the OS random source: {e}"))?;
            print!("{}", new_token_text(&token));
            Ok(())
        }
    }
}

/// Two lines of TOML: the token (for its holder, or `token = …` in the node config) and its
/// hash (`token_sha256 = …`, so the node config need not hold the token).
pub fn new_token_text(token: &str) -> String {
    format!(
        "# Give the token to its holder; put either line in the node's [[api.tokens]] entry\n\
         # (token_sha256 keeps the secret out of the file).\n\
         token = \"{token}\"\n\
         token_sha256 = \"{}\"\n",
        sha256_hex(token)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_lines_parse_and_the_hash_is_the_tokens() {
        let token = new_token().unwrap();
        let parsed: toml::Table = toml::from_str(&new_token_text(&token)).unwrap();
        let printed = parsed["token"].as_str().unwrap();
        assert_eq!(printed, token);
        assert!(printed.len() >= 32 && printed.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(parsed["token_sha256"].as_str().unwrap(), sha256_hex(printed));
    }
}
