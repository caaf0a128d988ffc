//! Mail delivery behind a small trait: SMTP through lettre when an SMTP URL
//! is configured, otherwise lettre's file transport writing each message as
//! an `.eml` file into `<data dir>/outbox/`.

use crate::config::Settings;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

/// A message with a plain-text and an HTML part.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

pub trait MailSender: Send + Sync {
    /// Delivers `mail`; an error says why (for the log, never for the client).
    fn send(&self, mail: Mail) -> SendFuture<'_>;
}

fn message(from: &Mailbox, mail: Mail) -> Result<Message, String> {
    let to: Mailbox = mail.to.parse().map_err(|e| format!("bad recipient: {e}"))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject)
        .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
        .map_err(|e| format!("cannot build the message: {e}"))
}

pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl MailSender for Smtp {
    fn send(&self, mail: Mail) -> SendFuture<'_> {
        Box::pin(async move {
            let msg = message(&self.from, mail)?;
            self.transport.send(msg).await.map(|_| ()).map_err(|e| format!("SMTP: {e}"))
        })
    }
}

pub struct Outbox {
    transport: AsyncFileTransport<Tokio1Executor>,
    dir: PathBuf,
    from: Mailbox,
}

impl MailSender for Outbox {
    fn send(&self, mail: Mail) -> SendFuture<'_> {
        Box::pin(async move {
            let msg = message(&self.from, mail)?;
            let id = self.transport.send(msg).await.map_err(|e| format!("outbox: {e}"))?;
            tracing::info!(file = %self.dir.join(format!("{id}.eml")).display(), "mail written to the outbox (no SMTP server configured)");
            Ok(())
        })
    }
}

/// The sender the settings ask for.
pub fn from_settings(settings: &Settings, data_dir: &Path) -> Result<Box<dyn MailSender>, String> {
    let from: Mailbox = settings.mail_from.parse().map_err(|e| format!("mail_from: {e}"))?;
    if settings.smtp_url.trim().is_empty() {
        let dir = data_dir.join("outbox");
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        tracing::info!(dir = %dir.display(), "no SMTP server configured: mails go to the outbox");
        return Ok(Box::new(Outbox { transport: AsyncFileTransport::new(&dir), dir, from }));
    }
    // The URL may hold a password: it is never logged.
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(settings.smtp_url.trim())
        .map_err(|_| "PEERVAULT_SMTP_URL is not a valid SMTP URL".to_string())?
        .timeout(Some(Duration::from_secs(10)))
        .build();
    Ok(Box::new(Smtp { transport, from }))
}
