//! The rules, each written once. JSON routes and server functions both call
//! these; nothing here knows about HTTP.

pub mod accounts;
pub mod bandwidth;
pub mod devices;
pub mod download;
pub mod files;
pub mod passwords;
pub mod reset;
pub mod throttle;
pub mod tokens;
pub mod uptime;

use tokens::TokenKind;

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
