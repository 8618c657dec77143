//! Where outgoing webhooks may connect: a host name is resolved, and the
//! addresses on loopback, private, link-local and other internal ranges are
//! dropped (unless the operator allows them). The client connects only to
//! what this answers, so the address checked is the address connected to,
//! and a name that resolves (or is re-pointed) inward reaches nothing.

use crate::domain::address_allowed;
use std::net::SocketAddr;

/// A name with no address webhooks may reach.
#[derive(Debug, thiserror::Error)]
pub enum Blocked {
    #[error("{0} resolves only to internal addresses, which webhooks may not reach")]
    Internal(String),
    #[error("{0} does not resolve: {1}")]
    Unresolved(String, std::io::Error),
}

/// The addresses of `host` webhooks may connect to.
pub async fn resolve(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, Blocked> {
    // An address literal in brackets is an IPv6 address.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let found: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| Blocked::Unresolved(host.to_owned(), e))?
        .filter(|a| allow_private || address_allowed(a.ip()))
        .collect();
    if found.is_empty() {
        return Err(Blocked::Internal(host.to_owned()));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_resolving_inward_reaches_nothing_unless_allowed() {
        assert_eq!(
            resolve("localhost", 80, false)
                .await
                .unwrap_err()
                .to_string(),
            "localhost resolves only to internal addresses, which webhooks may not reach"
        );
        assert_eq!(
            resolve("127.0.0.1", 80, false)
                .await
                .unwrap_err()
                .to_string(),
            "127.0.0.1 resolves only to internal addresses, which webhooks may not reach"
        );
        let allowed = resolve("localhost", 8080, true).await.unwrap();
        assert!(!allowed.is_empty());
        assert!(
            allowed
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8080)
        );
    }
}
