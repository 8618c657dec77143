//! The HTTP client of outgoing webhooks and postbacks: one HTTP/1.1
//! request per attempt, on a connection to an address the guard allowed,
//! TLS checked against Mozilla's roots, no redirects followed (one could
//! lead inward), no proxies, everything within the attempt's timeout.

use super::guard;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use url::Url;

pub struct Client {
    tls: tokio_rustls::TlsConnector,
    allow_private: bool,
    timeout: Duration,
}

/// Why an attempt got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Blocked(#[from] guard::Blocked),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("bad request: {0}")]
    Request(String),
}

impl Client {
    pub fn new(allow_private: bool, timeout: Duration) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            allow_private,
            timeout,
        })
    }

    /// Sends one request; answers the response's status.
    pub async fn send(
        &self,
        method: hyper::Method,
        url: &Url,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<u16, SendError> {
        tokio::time::timeout(self.timeout, self.send_now(method, url, headers, body))
            .await
            .map_err(|_| SendError::Timeout(self.timeout))?
    }

    async fn send_now(
        &self,
        method: hyper::Method,
        url: &Url,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<u16, SendError> {
        let host = url
            .host_str()
            .ok_or_else(|| SendError::Request("no host".into()))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| SendError::Request("no port".into()))?;
        let addrs = guard::resolve(host, port, self.allow_private).await?;
        let tcp = TcpStream::connect(&addrs[..])
            .await
            .map_err(SendError::Connect)?;
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let mut request = Request::builder()
            .method(method)
            .uri(target)
            .header(hyper::header::HOST, authority)
            .header(
                hyper::header::USER_AGENT,
                concat!("mitra-webhooks/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SendError::Request(e.to_string()))?;
        if url.scheme() == "https" {
            let name = rustls::pki_types::ServerName::try_from(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            )
            .map_err(|e| SendError::Request(e.to_string()))?;
            let tls = self.tls.connect(name, tcp).await.map_err(SendError::Tls)?;
            exchange(TokioIo::new(tls), request).await
        } else {
            exchange(TokioIo::new(tcp), request).await
        }
    }
}

async fn exchange<T>(io: T, request: Request<Full<Bytes>>) -> Result<u16, SendError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    let driver = tokio::spawn(connection);
    let response = sender.send_request(request).await;
    driver.abort();
    Ok(response?.status().as_u16())
}
