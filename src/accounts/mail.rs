//! Portal e-mail over SMTP (`MITRA_SMTP_URL`): password-reset links.

use crate::config::PortalSettings;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

/// An e-mail to send.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Whether the deployment can send e-mail at all.
pub fn configured(settings: &PortalSettings) -> bool {
    settings.smtp_url.is_some()
}

/// Sends one plain-text e-mail through the configured SMTP server.
pub async fn send(settings: &PortalSettings, mail: &Mail) -> anyhow::Result<()> {
    let url = settings
        .smtp_url
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("MITRA_SMTP_URL is not set"))?;
    let from: Mailbox = settings
        .mail_from
        .parse()
        .map_err(|e| anyhow::anyhow!("MITRA_MAIL_FROM: {e}"))?;
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|e| anyhow::anyhow!("bad recipient: {e}"))?;
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(&mail.subject)
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .map_err(|e| anyhow::anyhow!("building the e-mail failed: {e}"))?;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
        .map_err(|e| anyhow::anyhow!("MITRA_SMTP_URL: {e}"))?
        .timeout(Some(std::time::Duration::from_secs(10)))
        .build();
    transport
        .send(message)
        .await
        .map_err(|e| anyhow::anyhow!("sending the e-mail failed: {e}"))?;
    Ok(())
}
