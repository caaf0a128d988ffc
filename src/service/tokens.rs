//! HS256 JWTs carrying the account id, the account's nonce (so a token
//! never passes for another account that later gets the same id), the
//! token kind, the account's token version (bumping it revokes every older
//! token) and a token id (so one session can be revoked on its own).

use crate::clock::Clock;
use crate::error::{AppError, AppResult};
use crate::util::random_hex;
use std::sync::Arc;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    User,
    Device,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    pub kind: TokenKind,
    pub ver: i64,
    /// The account's nonce.
    #[serde(default)]
    pub non: String,
    /// This token's id (random), for revoking one session.
    #[serde(default)]
    pub jti: String,
    /// Device tokens only: a fingerprint of the peerId they were issued for,
    /// so rotating the peerId revokes them (and nothing else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
}

/// The claims of a signed download link: who may fetch which CID, until when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DownloadClaims {
    pub sub: String,
    /// The owner's nonce and token version when the link was made: a
    /// password change (or reset) revokes the links handed out before it.
    #[serde(default)]
    pub non: String,
    #[serde(default)]
    pub ver: i64,
    pub cid: String,
    /// A link to one path in a folder (`a/b.txt`) opens that path only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub iat: i64,
    pub exp: i64,
    /// "download" ("download-path" for a path link), so a link token never passes as a login token or back.
    pub kind: String,
}

const DOWNLOAD_KIND: &str = "download";
/// A link to one path in a folder: a kind of its own, so that an instance
/// that does not know path links (an older one in a rolling deploy)
/// refuses them instead of opening the whole folder.
const PATH_KIND: &str = "download-path";

/// What a token names of its account.
#[derive(Debug, Clone, Copy)]
pub struct TokenAccount<'a> {
    pub id: i64,
    pub nonce: &'a str,
    pub token_version: i64,
}

pub struct TokenKeys {
    secret: Vec<u8>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    clock: Arc<Clock>,
}

pub const SECRET_ENV: &str = "PEERVAULT_JWT_SECRET";
const SECRET_FILE: &str = "jwt_secret";
const MIN_SECRET_LEN: usize = 32;

impl TokenKeys {
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        // Expiry is checked against the app's clock (see `unexpired`).
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Self {
            secret: secret.to_vec(),
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            clock: Arc::new(Clock::system()),
        }
    }

    /// Expiry and issue times follow `clock`.
    pub fn with_clock(mut self, clock: Arc<Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn now_secs(&self) -> i64 {
        self.clock.now_ms().div_euclid(1000)
    }

    /// A token whose `exp` has passed is invalid (no leeway).
    fn unexpired(&self, exp: i64) -> bool {
        exp >= self.now_secs()
    }

    /// `PEERVAULT_JWT_SECRET` if set; otherwise the secret file in the data
    /// directory, generated on first run with mode 0600.
    pub fn load(data_dir: &Path) -> Result<Self, String> {
        if let Ok(secret) = std::env::var(SECRET_ENV) {
            if secret.len() < MIN_SECRET_LEN {
                return Err(format!("{SECRET_ENV} must be at least {MIN_SECRET_LEN} characters"));
            }
            return Ok(Self::from_secret(secret.as_bytes()));
        }
        let path = data_dir.join(SECRET_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) if text.trim().len() >= MIN_SECRET_LEN => Ok(Self::from_secret(text.trim().as_bytes())),
            Ok(_) => Err(format!("{} is too short; delete it to generate a new one", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret = random_hex(64);
                write_private(&path, secret.as_bytes())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                tracing::info!(path = %path.display(), "generated a new JWT secret");
                Ok(Self::from_secret(secret.as_bytes()))
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// A token for the account; `peer_id` binds a device token to the current peerId.
    pub fn issue(&self, account: &TokenAccount<'_>, kind: TokenKind, peer_id: Option<&str>, ttl_secs: i64) -> AppResult<String> {
        let now = self.now_secs();
        let pid = peer_id.map(|p| self.peer_fingerprint(p));
        let claims = Claims {
            sub: account.id.to_string(),
            iat: now,
            exp: now + ttl_secs,
            kind,
            ver: account.token_version,
            non: account.nonce.to_owned(),
            jti: random_hex(16),
            pid,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(AppError::internal)
    }

    /// Checks signature, algorithm and expiry. The caller still checks the
    /// token version against the account.
    pub fn decode(&self, token: &str) -> AppResult<Claims> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
            .filter(|c| self.unexpired(c.exp))
            .ok_or_else(AppError::token_invalid)
    }
}

impl TokenKeys {
    /// HMAC-SHA256 of `data` under the server secret, hex: how short secrets
    /// (reset codes) are stored, so a copy of the database does not reveal them.
    pub fn mac_hex(&self, data: &str) -> String {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A short, keyed fingerprint of a peerId (the peerId itself is a credential).
    pub fn peer_fingerprint(&self, peer_id: &str) -> String {
        self.mac_hex(&format!("peer:{peer_id}"))[..16].to_owned()
    }

    pub fn issue_download(&self, account: &TokenAccount<'_>, cid: &str, path: Option<&str>, ttl_secs: i64) -> AppResult<String> {
        let now = self.now_secs();
        let claims = DownloadClaims {
            sub: account.id.to_string(),
            non: account.nonce.to_owned(),
            ver: account.token_version,
            cid: cid.to_owned(),
            path: path.map(str::to_owned),
            iat: now,
            exp: now + ttl_secs,
            kind: if path.is_some() { PATH_KIND } else { DOWNLOAD_KIND }.into(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(AppError::internal)
    }

    pub fn decode_download(&self, token: &str) -> AppResult<DownloadClaims> {
        decode::<DownloadClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .ok()
            .filter(|c| if c.path.is_some() { c.kind == PATH_KIND } else { c.kind == DOWNLOAD_KIND })
            .filter(|c| self.unexpired(c.exp))
            .ok_or_else(|| AppError::forbidden("Download link is invalid or has expired"))
    }
}

/// Creates `path` with mode 0600 (owner read/write only), failing if it exists.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let keys = TokenKeys::from_secret(b"0123456789abcdef0123456789abcdef");
        let account = TokenAccount { id: 7, nonce: "n0", token_version: 3 };
        let t = keys.issue(&account, TokenKind::Device, Some("peer"), 60).unwrap();
        let c = keys.decode(&t).unwrap();
        assert_eq!((c.sub.as_str(), c.kind, c.ver, c.non.as_str()), ("7", TokenKind::Device, 3, "n0"));
        assert_eq!(c.jti.len(), 32);
        assert_ne!(c.jti, keys.decode(&keys.issue(&account, TokenKind::Device, Some("peer"), 60).unwrap()).unwrap().jti);
        assert_eq!(c.pid.as_deref(), Some(keys.peer_fingerprint("peer").as_str()));
        let other = TokenKeys::from_secret(b"another-secret-another-secret-xx");
        assert!(other.decode(&t).is_err());
        let expired = keys.issue(&account, TokenKind::User, None, -1).unwrap();
        assert!(keys.decode(&expired).is_err());
        // link tokens and login tokens are not interchangeable
        let link = keys.issue_download(&account, "bafkx", None, 60).unwrap();
        assert!(keys.decode(&link).is_err());
        assert!(keys.decode_download(&t).is_err());
        assert_eq!(keys.decode_download(&link).unwrap().cid, "bafkx");
        // a path link is a kind of its own (an instance that does not know
        // paths refuses it), and a path cannot be added to a plain link
        let scoped = keys.issue_download(&account, "bafkx", Some("a/b.txt"), 60).unwrap();
        let claims = keys.decode_download(&scoped).unwrap();
        assert_eq!((claims.kind.as_str(), claims.path.as_deref()), ("download-path", Some("a/b.txt")));
        let relabelled = DownloadClaims { kind: DOWNLOAD_KIND.into(), ..claims.clone() };
        let forged = encode(&Header::new(Algorithm::HS256), &relabelled, &keys.encoding).unwrap();
        assert!(keys.decode_download(&forged).is_err());
        let unscoped = DownloadClaims { path: None, ..claims };
        assert!(keys.decode_download(&encode(&Header::new(Algorithm::HS256), &unscoped, &keys.encoding).unwrap()).is_err());
        // expiry follows the app's clock
        let clock = Arc::new(Clock::movable());
        let keys = keys.with_clock(clock.clone());
        let t = keys.issue(&account, TokenKind::User, None, 60).unwrap();
        let link = keys.issue_download(&account, "bafkx", None, 60).unwrap();
        clock.advance(60_000).unwrap();
        assert!(keys.decode(&t).is_ok() && keys.decode_download(&link).is_ok());
        clock.advance(1_000).unwrap();
        assert!(keys.decode(&t).is_err() && keys.decode_download(&link).is_err());
    }
}
