//! The cluster's private PKI: one CA, one certificate per site.
//!
//! A site certificate names its site in a DNS subject alternative name, `site-<id>`
//! ([`site_server_name`]). The QUIC transport dials site N with server name `site-N`, so TLS
//! itself refuses a listener whose certificate names another site; a dialling site states its
//! id in the first frame and the listener checks it against the client certificate the same
//! way ([`verify_certificate_names_site`]).
//!
//! Files (PEM): `ca.pem` / `ca.key` for the CA, `site-<id>.pem` / `site-<id>.key` for a site.
//! Keys are written with mode 0600. Nothing is ever overwritten.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::ClusterError;

/// Common name of the cluster CA. The CA is rebuilt from this name and its key when a site
/// certificate is issued (the issuer name written into a site certificate must equal the
/// CA's subject byte for byte), so it is fixed.
pub const CA_COMMON_NAME: &str = "Lineup cluster CA";
/// How long the CA is valid.
pub const CA_VALIDITY_DAYS: u64 = 20 * 365;
/// How long a site certificate is valid.
pub const SITE_CERT_VALIDITY_DAYS: u64 = 5 * 365;
/// Backdating of `not_before`, so a peer whose clock is a little behind accepts a fresh
/// certificate.
pub const CLOCK_SKEW_ALLOWANCE_DAYS: u64 = 1;

pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca.key";

const SECONDS_PER_DAY: u64 = 24 * 60 * 60;

/// The DNS name that identifies a site in its certificate and on the wire.
pub fn site_server_name(site: u64) -> String {
    format!("site-{site}")
}

/// A CA certificate and its private key, PEM encoded.
#[derive(Clone)]
pub struct CaMaterial {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Everything a site needs to join: its certificate and key, and the CA certificate it
/// trusts. PEM encoded.
#[derive(Clone)]
pub struct SiteMaterial {
    pub site: u64,
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_cert_pem: String,
}

/// Paths written by [`issue_site`].
#[derive(Debug, Clone)]
pub struct SiteFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub(crate) fn cert_err(context: &str, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Certificate(format!("{context}: {e}"))
}

fn seconds_since_epoch() -> Result<u64, ClusterError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| cert_err("system clock before 1970", e))?;
    Ok(now.as_secs())
}

/// Sets `not_before` (backdated by [`CLOCK_SKEW_ALLOWANCE_DAYS`]) and `not_after`.
pub(crate) fn set_validity(params: &mut CertificateParams, validity_days: u64) -> Result<(), ClusterError> {
    let now_s = seconds_since_epoch()?;
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let start_s = now_s.saturating_sub(CLOCK_SKEW_ALLOWANCE_DAYS * SECONDS_PER_DAY);
    params.not_before = epoch + Duration::from_secs(start_s);
    params.not_after = epoch + Duration::from_secs(now_s + validity_days * SECONDS_PER_DAY);
    Ok(())
}

/// The CA's parameters. Deterministic apart from validity, so [`issue_site_material`] can
/// rebuild the issuer (name, key identifier method, key usages) from the CA key alone.
pub(crate) fn ca_params() -> Result<CertificateParams, ClusterError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| cert_err("ca params", e))?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(params)
}

/// Creates a new cluster CA in memory.
pub fn generate_ca() -> Result<CaMaterial, ClusterError> {
    let mut params = ca_params()?;
    set_validity(&mut params, CA_VALIDITY_DAYS)?;
    let key = KeyPair::generate().map_err(|e| cert_err("generate ca key", e))?;
    let cert = params.self_signed(&key).map_err(|e| cert_err("self-sign ca", e))?;
    Ok(CaMaterial { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// Issues a certificate for `site`, signed by `ca`. Checks the result chains to the CA
/// certificate, which catches a CA key that does not belong to the CA certificate.
pub fn issue_site_material(ca: &CaMaterial, site: u64) -> Result<SiteMaterial, ClusterError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|e| cert_err("read ca key", e))?;
    let issuer = Issuer::new(ca_params()?, ca_key);
    let name = site_server_name(site);
    let mut params = CertificateParams::new(vec![name.clone()]).map_err(|e| cert_err("site params", e))?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, name);
    params.distinguished_name = subject;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, SITE_CERT_VALIDITY_DAYS)?;
    let key = KeyPair::generate().map_err(|e| cert_err("generate site key", e))?;
    let cert = params.signed_by(&key, &issuer).map_err(|e| cert_err("sign site certificate", e))?;
    let material =
        SiteMaterial { site, cert_pem: cert.pem(), key_pem: key.serialize_pem(), ca_cert_pem: ca.cert_pem.clone() };
    let identity = SiteIdentity::from_material(&material)?;
    verify_chains_to_ca(&identity.cert_chain[0], &identity.ca_roots)?;
    Ok(material)
}

/// Writes a new CA into `dir` (`ca.pem`, `ca.key`). Refuses to overwrite an existing CA.
pub fn init_ca(dir: &Path) -> Result<CaMaterial, ClusterError> {
    fs::create_dir_all(dir)?;
    let ca = generate_ca()?;
    write_new_file(&dir.join(CA_CERT_FILE), &ca.cert_pem, false)?;
    write_new_file(&dir.join(CA_KEY_FILE), &ca.key_pem, true)?;
    Ok(ca)
}

/// Reads the CA written by [`init_ca`].
pub fn load_ca(dir: &Path) -> Result<CaMaterial, ClusterError> {
    Ok(CaMaterial { cert_pem: read_file(&dir.join(CA_CERT_FILE))?, key_pem: read_file(&dir.join(CA_KEY_FILE))? })
}

/// Issues a certificate for `site` with the CA in `ca_dir`, writing `site-<id>.pem` and
/// `site-<id>.key` into `out_dir`. Refuses to overwrite.
pub fn issue_site(ca_dir: &Path, site: u64, out_dir: &Path) -> Result<SiteFiles, ClusterError> {
    let ca = load_ca(ca_dir)?;
    let material = issue_site_material(&ca, site)?;
    fs::create_dir_all(out_dir)?;
    let files = site_files(out_dir, site);
    write_new_file(&files.cert, &material.cert_pem, false)?;
    write_new_file(&files.key, &material.key_pem, true)?;
    Ok(files)
}

/// Where [`issue_site`] puts the files of `site`.
pub fn site_files(dir: &Path, site: u64) -> SiteFiles {
    let name = site_server_name(site);
    SiteFiles { cert: dir.join(format!("{name}.pem")), key: dir.join(format!("{name}.key")) }
}

/// Reads a site's certificate, key and the CA certificate.
pub fn load_site(ca_cert: &Path, files: &SiteFiles, site: u64) -> Result<SiteMaterial, ClusterError> {
    Ok(SiteMaterial {
        site,
        cert_pem: read_file(&files.cert)?,
        key_pem: read_file(&files.key)?,
        ca_cert_pem: read_file(ca_cert)?,
    })
}

pub(crate) fn read_file(path: &Path) -> Result<String, ClusterError> {
    fs::read_to_string(path).map_err(|e| cert_err(&format!("read {}", path.display()), e))
}

pub(crate) fn write_new_file(path: &Path, contents: &str, private: bool) -> Result<(), ClusterError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(|e| cert_err(&format!("create {}", path.display()), e))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// A site's identity parsed into rustls types, ready for the transport.
#[derive(Debug)]
pub struct SiteIdentity {
    pub site: u64,
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub ca_roots: Arc<rustls::RootCertStore>,
}

impl Clone for SiteIdentity {
    fn clone(&self) -> Self {
        Self {
            site: self.site,
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
            ca_roots: self.ca_roots.clone(),
        }
    }
}

impl SiteIdentity {
    pub fn from_material(material: &SiteMaterial) -> Result<Self, ClusterError> {
        let cert_chain = CertificateDer::pem_slice_iter(material.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cert_err("parse site certificate", e))?;
        if cert_chain.is_empty() {
            return Err(ClusterError::Certificate("no certificate in the site certificate file".into()));
        }
        let key =
            PrivateKeyDer::from_pem_slice(material.key_pem.as_bytes()).map_err(|e| cert_err("parse site key", e))?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(material.ca_cert_pem.as_bytes()) {
            let ca = ca.map_err(|e| cert_err("parse ca certificate", e))?;
            roots.add(ca).map_err(|e| cert_err("ca certificate as trust anchor", e))?;
        }
        if roots.is_empty() {
            return Err(ClusterError::Certificate("no certificate in the ca file".into()));
        }
        verify_certificate_names_site(&cert_chain[0], material.site)?;
        Ok(Self { site: material.site, cert_chain, key, ca_roots: Arc::new(roots) })
    }
}

/// Checks that `cert` carries the name of `site` ([`site_server_name`]).
pub fn verify_certificate_names_site(cert: &CertificateDer<'_>, site: u64) -> Result<(), ClusterError> {
    let parsed = rustls::server::ParsedCertificate::try_from(cert).map_err(|e| cert_err("parse certificate", e))?;
    let name = ServerName::try_from(site_server_name(site)).map_err(|e| cert_err("site name", e))?;
    rustls::client::verify_server_name(&parsed, &name)
        .map_err(|e| ClusterError::PeerRefused(format!("certificate does not name site {site}: {e}")))
}

pub(crate) fn verify_chains_to_ca(
    cert: &CertificateDer<'_>,
    roots: &rustls::RootCertStore,
) -> Result<(), ClusterError> {
    let parsed = rustls::server::ParsedCertificate::try_from(cert).map_err(|e| cert_err("parse certificate", e))?;
    let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    rustls::client::verify_server_cert_signed_by_trust_anchor(&parsed, roots, &[], UnixTime::now(), algorithms.all)
        .map_err(|e| cert_err("issued certificate does not chain to the ca (wrong ca key?)", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_site_certificate_names_its_site_and_chains_to_the_ca() {
        let ca = generate_ca().unwrap();
        let site = issue_site_material(&ca, 7).unwrap();
        let identity = SiteIdentity::from_material(&site).unwrap();
        verify_certificate_names_site(&identity.cert_chain[0], 7).unwrap();
        assert!(verify_certificate_names_site(&identity.cert_chain[0], 8).is_err());
        verify_chains_to_ca(&identity.cert_chain[0], &identity.ca_roots).unwrap();
        let other_ca = generate_ca().unwrap();
        let other_roots = SiteIdentity::from_material(&issue_site_material(&other_ca, 7).unwrap()).unwrap().ca_roots;
        assert!(verify_chains_to_ca(&identity.cert_chain[0], &other_roots).is_err());
    }

    #[test]
    fn a_ca_key_that_does_not_match_the_ca_certificate_is_refused() {
        let ca = generate_ca().unwrap();
        let other = generate_ca().unwrap();
        let mixed = CaMaterial { cert_pem: ca.cert_pem, key_pem: other.key_pem };
        assert!(matches!(issue_site_material(&mixed, 1), Err(ClusterError::Certificate(_))));
    }

    #[test]
    fn files_round_trip_and_are_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("lineup-certs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        init_ca(&dir).unwrap();
        assert!(init_ca(&dir).is_err(), "a second init must not replace the CA");
        let files = issue_site(&dir, 3, &dir).unwrap();
        assert!(issue_site(&dir, 3, &dir).is_err(), "reissuing must not overwrite");
        let material = load_site(&dir.join(CA_CERT_FILE), &files, 3).unwrap();
        SiteIdentity::from_material(&material).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&files.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
