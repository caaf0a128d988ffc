//! The rules, each written once. JSON routes and server functions both call
//! these; nothing here knows about HTTP.
//!
//! Layering: called by `api/` and `pages/`; calls `store/`, `content/`,
//! `mail`, `clock`, `util`; never imports a transport or the state.

pub mod accounts;
pub mod bandwidth;
pub mod devices;
pub mod download;
pub mod files;
pub mod network;
pub mod passwords;
pub mod reset;
pub mod retrieve;
pub mod throttle;
pub mod tokens;
pub mod uploads;
pub mod uptime;

use tokens::TokenKind;

/// What the rules work with: settings, the stores, keys, the clock. Built
/// once at start-up; the transports hold it inside their own state (which
/// adds what only HTTP needs), so services never depend on a transport.
pub struct Services {
    pub settings: crate::config::Settings,
    pub db: crate::store::Db,
    pub tokens: tokens::TokenKeys,
    pub hasher: passwords::Hasher,
    pub throttle: throttle::Throttle,
    pub blobs: std::sync::Arc<dyn crate::store::blobs::BlobStore>,
    pub mailer: Box<dyn crate::mail::MailSender>,
    pub cid_locks: files::CidLocks,
    /// Real time; movable only with `test_clock` (see [`crate::clock`]).
    pub clock: std::sync::Arc<crate::clock::Clock>,
    /// The address the server actually listens on (the base of links when
    /// no public URL is set).
    pub listen_addr: std::net::SocketAddr,
    /// Woken when tasks were made (or should be), so nodes' polls answer at once.
    pub network_wake: std::sync::Arc<tokio::sync::Notify>,
    /// Downloads waiting for a node's delivery.
    pub deliveries: std::sync::Arc<retrieve::Deliveries>,
    /// This process among the coordinators sharing a database (random per start).
    pub instance: std::sync::Arc<str>,
    /// Downloads being read from the store now, in all and per client.
    pub download_slots: std::sync::Arc<download::Slots>,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: i64,
    pub username: String,
    pub kind: TokenKind,
    /// The account's nonce and token version, as the token carried them.
    pub nonce: String,
    pub token_version: i64,
    /// The token's id and expiry (seconds), for revoking this session.
    pub jti: String,
    pub expires_at: i64,
}

impl Principal {
    /// What a new token for this account carries.
    pub fn token_account(&self) -> tokens::TokenAccount<'_> {
        tokens::TokenAccount { id: self.user_id, nonce: &self.nonce, token_version: self.token_version }
    }
}

impl Principal {
    /// Account-level actions (password, peerId, deletion) need a user login;
    /// a device token is refused with 403.
    pub fn require_user(&self) -> crate::error::AppResult<()> {
        match self.kind {
            TokenKind::User => Ok(()),
            TokenKind::Device => Err(crate::error::AppError::forbidden(
                "This action needs a user login; device tokens are not accepted here",
            )),
        }
    }
}
