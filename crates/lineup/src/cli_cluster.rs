//! `lineup certs ...` and `lineup bench cluster`: thin CLI over lineup-cluster.

use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum CertsCommand {
    /// Create the cluster CA (`ca.pem`, `ca.key`) in a directory. Never overwrites.
    Init {
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
    },
    /// Issue a site certificate signed by the cluster CA (`site-<id>.pem`, `site-<id>.key`).
    Issue {
        #[arg(long)]
        site: u64,
        /// Where the CA lives.
        #[arg(long, default_value = "certs")]
        ca_dir: PathBuf,
        /// Where to write the site's files (defaults to the CA directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Issue a certificate for a node's HTTPS API, signed by the cluster CA (`<name>.pem`,
    /// `<name>.key`); clients trust the CA's ca.pem (`--ca-file`).
    Api {
        /// The files' name, e.g. api-site-1.
        #[arg(long)]
        name: String,
        /// A host name or IP address clients use to reach the API (repeat for more).
        #[arg(long = "san", required = true)]
        sans: Vec<String>,
        /// Where the CA lives.
        #[arg(long, default_value = "certs")]
        ca_dir: PathBuf,
        /// Where to write the files (defaults to the CA directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn certs(command: &CertsCommand) -> anyhow::Result<()> {
    match command {
        CertsCommand::Init { dir } => {
            lineup_cluster::certs::init_ca(dir)?;
            println!("cluster CA written to {} (keep ca.key secret)", dir.display());
        }
        CertsCommand::Issue { site, ca_dir, out } => {
            let files = lineup_cluster::certs::issue_site(ca_dir, *site, out.as_ref().unwrap_or(ca_dir))?;
            println!("site {site}: {} and {}", files.cert.display(), files.key.display());
        }
        CertsCommand::Api { name, sans, ca_dir, out } => {
            let files = lineup_cluster::certs_api::issue_api(ca_dir, name, sans, out.as_ref().unwrap_or(ca_dir))?;
            println!("API certificate for {}: {} and {}", sans.join(", "), files.cert.display(), files.key.display());
            println!("set [api] tls = {{ cert = \"{}\", key = \"{}\" }}", files.cert.display(), files.key.display());
        }
    }
    Ok(())
}
