//! The CLI's HTTP/1.1 client for a node's API: `http://` or `https://`, trusting for https
//! only the CA certificates of the `--ca-file` PEM (ring, as everywhere); one connection per
//! request, each answer bounded in time and size.
//!
//! hyper's client directly rather than reqwest: reqwest's rustls feature would reach every
//! reqwest client in the workspace (features unify), and each of those would then panic
//! when built unless a process-wide crypto provider had been installed first.

use anyhow::Context;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

/// Largest answer the CLI reads (a routing config export fits many times over).
pub const ANSWER_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Why https needs a CA file: the CLI trusts no certificate authority on its own.
const CA_FILE_NEEDED: &str = "an https:// API needs --ca-file (or LINEUP_CA_FILE): the PEM of the CA that signed \
     the node's API certificate (the cluster's ca.pem for `lineup certs api`; for a public CA, the system bundle, \
     e.g. /etc/ssl/certs/ca-certificates.crt)";

/// A node's API at one base URL.
pub struct HttpClient {
    /// `host:port` as the `Host` header names it.
    authority: String,
    host: String,
    port: u16,
    /// The URL's path, prefixed to every request's (usually empty).
    prefix: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    timeout: Duration,
}

/// A node's answer: its status and body.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl HttpClient {
    /// For the API at `url`; `ca_file` is read for an https URL (and required there).
    pub fn new(url: &str, ca_file: Option<&Path>, timeout_ms: u64) -> anyhow::Result<Self> {
        let uri: hyper::Uri = url.parse().with_context(|| format!("`{url}` is not a URL"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => anyhow::bail!("`{url}`: the API URL starts with http:// or https://"),
        };
        let authority = uri.authority().with_context(|| format!("`{url}` names no host"))?.to_string();
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = match (https, ca_file) {
            (false, _) => None,
            (true, None) => anyhow::bail!("{CA_FILE_NEEDED}"),
            (true, Some(ca_file)) => Some(tls_connector(&host, ca_file)?),
        };
        let prefix = uri.path().trim_end_matches('/').to_string();
        Ok(Self { authority, host, port, prefix, tls, timeout: Duration::from_millis(timeout_ms) })
    }

    /// Sends `method path` with `token` and a JSON `body`; the whole exchange (connect,
    /// handshake, answer) within the client's timeout.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Answer> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(HOST, &self.authority)
            .header(AUTHORIZATION, format!("Bearer {token}"));
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .context("the token or path cannot be sent in an HTTP request")?;
        let limit_ms = self.timeout.as_millis();
        tokio::time::timeout(self.timeout, self.exchange(request))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {limit_ms} ms"))?
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> anyhow::Result<Answer> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("connect to {}", self.authority))?;
        match &self.tls {
            None => send_over(tcp, request).await,
            Some((connector, name)) => {
                let stream = connector.connect(name.clone(), tcp).await.context("TLS handshake")?;
                send_over(stream, request).await
            }
        }
    }
}

/// A TLS connector trusting the CAs of `ca_file`, for `host`'s certificate.
fn tls_connector(host: &str, ca_file: &Path) -> anyhow::Result<(TlsConnector, ServerName<'static>)> {
    let pem = std::fs::read(ca_file).with_context(|| format!("read the CA file {}", ca_file.display()))?;
    let config = lineup_api::tls::client_config(&pem).with_context(|| format!("the CA file {}", ca_file.display()))?;
    let name = ServerName::try_from(host.to_string()).with_context(|| format!("`{host}` is not a host name"))?;
    Ok((TlsConnector::from(Arc::new(config)), name))
}

/// One request and its answer over `stream` (HTTP/1.1).
async fn send_over<S>(stream: S, request: Request<Full<Bytes>>) -> anyhow::Result<Answer>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.context("start HTTP")?;
    let driver = tokio::spawn(connection);
    let answered = async {
        let response = sender.send_request(request).await.context("send the request")?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), ANSWER_MAX_BYTES)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("read the answer: {e}"))?
            .to_bytes();
        Ok(Answer { status, body })
    }
    .await;
    driver.abort();
    answered
}
