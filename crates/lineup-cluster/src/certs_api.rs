//! Certificates for a node's HTTPS API, signed by the cluster CA (`lineup certs api`).
//!
//! A site certificate does not fit the API: it names only `site-<id>`, which no browser or
//! CLI dials, and its key is the site's cluster identity, which need not sit with a web
//! server. So an API certificate is its own: server authentication only, naming the host
//! names and IP addresses clients use (`--san`), with its own key. Clients trust the
//! cluster CA's `ca.pem` (the CLI's `--ca-file`; a browser imports it).
//!
//! Files (PEM): `<name>.pem` and `<name>.key` (mode 0600). Nothing is ever overwritten.

use crate::certs::{
    ca_params, cert_err, load_ca, set_validity, verify_chains_to_ca, write_new_file, CaMaterial, SiteFiles,
};
use crate::ClusterError;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::fs;
use std::path::Path;

/// How long an API certificate is valid: 825 days, the longest Apple's platforms accept for
/// a TLS server certificate, even from a private CA.
pub const API_CERT_VALIDITY_DAYS: u64 = 825;
/// Most names (`--san`) in one API certificate.
pub const API_CERT_NAMES_MAX: usize = 32;
/// Longest `--name` (it becomes the file names).
pub const API_CERT_FILE_NAME_MAX_BYTES: usize = 64;

/// An API server certificate and its key, PEM encoded.
#[derive(Clone)]
pub struct ApiCertMaterial {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Checks `name` (the files' stem) and `sans` (DNS names or IP addresses).
fn check_request(name: &str, sans: &[String]) -> Result<(), ClusterError> {
    let bad = |why: String| Err(ClusterError::Certificate(why));
    let name_ok = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if name.is_empty() || name.len() > API_CERT_FILE_NAME_MAX_BYTES || !name_ok || name.starts_with('.') {
        return bad(format!(
            "the name `{name}` must be 1 to {API_CERT_FILE_NAME_MAX_BYTES} letters, digits, '-', '_' or '.' \
             (it names the files)"
        ));
    }
    if name == "ca" {
        return bad("the name `ca` is the CA's own".into());
    }
    if sans.is_empty() {
        return bad("name at least one host name or IP address clients use (--san)".into());
    }
    if sans.len() > API_CERT_NAMES_MAX {
        return bad(format!("at most {API_CERT_NAMES_MAX} names (--san)"));
    }
    // What a client can dial: a DNS name or an IP address (the same rules rustls checks with).
    if let Some(san) = sans.iter().find(|san| ServerName::try_from(san.as_str()).is_err()) {
        return bad(format!("`{san}` is neither a host name nor an IP address (--san)"));
    }
    Ok(())
}

/// Issues an API server certificate for `sans`, signed by `ca`, and checks it chains to the
/// CA certificate (a CA key that does not belong to it is caught here).
pub fn issue_api_material(ca: &CaMaterial, name: &str, sans: &[String]) -> Result<ApiCertMaterial, ClusterError> {
    check_request(name, sans)?;
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|e| cert_err("read ca key", e))?;
    let issuer = Issuer::new(ca_params()?, ca_key);
    let mut params = CertificateParams::new(sans.to_vec()).map_err(|e| cert_err("a --san is not a host name", e))?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, name);
    params.distinguished_name = subject;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, API_CERT_VALIDITY_DAYS)?;
    let key = KeyPair::generate().map_err(|e| cert_err("generate the API key", e))?;
    let cert = params.signed_by(&key, &issuer).map_err(|e| cert_err("sign the API certificate", e))?;
    let mut roots = rustls::RootCertStore::empty();
    let ca_der =
        CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).map_err(|e| cert_err("parse ca certificate", e))?;
    roots.add(ca_der).map_err(|e| cert_err("ca certificate as trust anchor", e))?;
    verify_chains_to_ca(cert.der(), &roots)?;
    Ok(ApiCertMaterial { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// Issues an API certificate with the CA in `ca_dir`, writing `<name>.pem` and `<name>.key`
/// into `out_dir`. Refuses to overwrite.
pub fn issue_api(ca_dir: &Path, name: &str, sans: &[String], out_dir: &Path) -> Result<SiteFiles, ClusterError> {
    check_request(name, sans)?;
    let ca = load_ca(ca_dir)?;
    let material = issue_api_material(&ca, name, sans)?;
    fs::create_dir_all(out_dir)?;
    let files = SiteFiles { cert: out_dir.join(format!("{name}.pem")), key: out_dir.join(format!("{name}.key")) };
    write_new_file(&files.cert, &material.cert_pem, false)?;
    write_new_file(&files.key, &material.key_pem, true)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::generate_ca;

    #[test]
    fn an_api_certificate_names_its_hosts_and_chains_to_the_ca() {
        let ca = generate_ca().unwrap();
        let sans = vec!["api.example.net".to_string(), "127.0.0.1".to_string()];
        let material = issue_api_material(&ca, "api-1", &sans).unwrap();
        let der = CertificateDer::from_pem_slice(material.cert_pem.as_bytes()).unwrap();
        let parsed = rustls::server::ParsedCertificate::try_from(&der).unwrap();
        for name in ["api.example.net", "127.0.0.1"] {
            let name = rustls::pki_types::ServerName::try_from(name).unwrap();
            assert!(rustls::client::verify_server_name(&parsed, &name).is_ok(), "{name:?}");
        }
        let other = rustls::pki_types::ServerName::try_from("site-1").unwrap();
        assert!(rustls::client::verify_server_name(&parsed, &other).is_err());
    }

    #[test]
    fn bad_names_are_refused_before_anything_is_written() {
        let dir = std::env::temp_dir().join(format!("lineup-api-cert-{}", std::process::id()));
        let sans = vec!["127.0.0.1".to_string()];
        for bad in ["", "../x", "a/b", "ca", ".hidden"] {
            assert!(issue_api(&dir, bad, &sans, &dir).is_err(), "{bad:?}");
        }
        assert!(issue_api(&dir, "api", &[], &dir).is_err());
        assert!(issue_api_material(&generate_ca().unwrap(), "api", &["not a host!".to_string()]).is_err());
        assert!(!dir.exists(), "nothing written");
    }
}
