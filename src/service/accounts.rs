//! Accounts: registration, logins (web and device), token checks, the dashboard.

use super::tokens::{TokenAccount, TokenKind};
use crate::util::{constant_time_eq, random_base58, random_hex};
use super::Principal;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::model::Dashboard;
use super::Services;
use crate::store::db::{InsertUser, COUNTER_CAP};

pub const MAX_PASSWORD_CHARS: usize = 1024;
const MIN_PASSWORD_CHARS: usize = 8;

/// A new peerId: 128 bits from the CSPRNG, base58.
pub fn new_peer_id() -> String {
    random_base58(16)
}

pub fn validate_username(username: &str) -> AppResult<()> {
    let ok_len = (3..=32).contains(&username.chars().count());
    let ok_chars = username.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(AppError::bad_request("Username must be 3 to 32 characters: letters, digits, '_', '.' or '-'"))
    }
}

/// A deliberately plain check: one `@`, a non-empty local part, a dotted
/// domain, no spaces or control characters, at most 254 characters.
pub fn validate_email(email: &str) -> AppResult<()> {
    let invalid = || AppError::bad_request("Invalid email address");
    if email.chars().count() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let domain_ok = !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
    if local.is_empty() || local.chars().count() > 64 || !domain_ok {
        return Err(invalid());
    }
    Ok(())
}

pub fn validate_password(password: &str) -> AppResult<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        Err(AppError::bad_request("Password must be at least 8 characters"))
    } else if n > MAX_PASSWORD_CHARS {
        Err(AppError::bad_request("Password must be at most 1024 characters"))
    } else {
        Ok(())
    }
}

fn user_exists() -> AppError {
    AppError::conflict("That username or email is already registered.").of_kind(ErrorKind::Taken)
}

/// Creates an account with a fresh peerId and nonce. Every attempt counts
/// against the client address's registration budget (and the email's), before
/// the password is hashed.
pub async fn register(state: &Services, username: &str, password: &str, email: &str, client: &str) -> AppResult<()> {
    let email = email.trim();
    validate_username(username)?;
    validate_email(email)?;
    validate_password(password)?;
    let s = &state.settings;
    let (by_email, by_ip) = (format!("register:email:{}", email.to_lowercase()), format!("register:ip:{client}"));
    if state.throttle.over_budget(&[(&by_ip, s.register_max_per_ip), (&by_email, s.login_max_failures_per_account)]).await? {
        return Err(AppError::too_many_attempts());
    }
    // Cheap early answer; the unique indexes still decide under concurrency.
    if state.db.username_or_email_taken(username, email).await? {
        return Err(user_exists());
    }
    let hash = state.hasher.hash(password).await?;
    let nonce = random_hex(16);
    match state.db.insert_user(username, email, &hash, &new_peer_id(), &nonce, state.clock.now_ms()).await? {
        InsertUser::Created(id) => {
            tracing::info!(user_id = id, %client, "account registered");
            Ok(())
        }
        InsertUser::Taken => Err(user_exists()),
    }
}

/// The throttle keys of a credential check: the account (by id, so its
/// username and its email share one budget; an unknown name by itself) and
/// the client address.
struct Keys {
    account: String,
    ip: String,
}

impl Keys {
    fn new(route: &str, account_id: Option<i64>, typed: &str, client: &str) -> Self {
        let account = match account_id {
            Some(id) => format!("{route}:account:{id}"),
            None => format!("{route}:unknown:{}", typed.to_lowercase()),
        };
        Self { account, ip: format!("{route}:ip:{client}") }
    }

    /// Counts this attempt first; 429 when the account or the address is past its budget.
    async fn count(&self, state: &Services) -> AppResult<()> {
        let s = &state.settings;
        let limits = [(self.account.as_str(), s.login_max_failures_per_account), (self.ip.as_str(), s.login_max_failures_per_ip)];
        if state.throttle.over_budget(&limits).await? {
            return Err(AppError::too_many_attempts());
        }
        Ok(())
    }

    /// The attempt succeeded: the account's count starts again, the address gets its attempt back.
    async fn succeeded(&self, state: &Services) -> AppResult<()> {
        state.throttle.clear(&self.account).await?;
        state.throttle.refund(&self.ip).await
    }
}

fn token_account(a: &crate::store::db::Credentials) -> TokenAccount<'_> {
    TokenAccount { id: a.id, nonce: &a.nonce, token_version: a.token_version }
}

/// Web/user login by username or email. Returns a `user` token.
pub async fn login(state: &Services, login: &str, password: &str, client: &str) -> AppResult<String> {
    let account = state.db.credentials_by_login(login).await?;
    let keys = Keys::new("login", account.as_ref().map(|a| a.id), login, client);
    keys.count(state).await?;
    let ok = state.hasher.verify(password, account.as_ref().map(|a| a.password_hash.as_str())).await?;
    match account {
        Some(a) if ok => {
            keys.succeeded(state).await?;
            state.tokens.issue(&token_account(&a), TokenKind::User, None, state.settings.user_token_ttl_secs)
        }
        _ => Err(AppError::unauthorized("Invalid username or password")),
    }
}

/// Android login with the account's peerId. Returns a `device` token.
pub async fn device_login(state: &Services, username: &str, peer_id: &str, client: &str) -> AppResult<String> {
    let account = state.db.credentials_by_username(username).await?;
    let keys = Keys::new("android_auth", account.as_ref().map(|a| a.id), username, client);
    keys.count(state).await?;
    match account {
        Some(a) if constant_time_eq(a.peer_id.as_bytes(), peer_id.as_bytes()) => {
            keys.succeeded(state).await?;
            let ttl = state.settings.device_token_ttl_secs;
            state.tokens.issue(&token_account(&a), TokenKind::Device, Some(&a.peer_id), ttl)
        }
        _ => Err(AppError::unauthorized("Invalid username or PeerID")),
    }
}

/// Resolves a bearer token to its account, refusing bad, expired and
/// revoked tokens, and tokens of an account that no longer exists (a later
/// account with the same id has another nonce).
pub async fn authenticate(state: &Services, token: &str) -> AppResult<Principal> {
    let claims = state.tokens.decode(token)?;
    let user_id: i64 = claims.sub.parse().map_err(|_| AppError::token_invalid())?;
    let subject = state.db.token_subject(user_id, &claims.jti).await?.ok_or_else(AppError::token_invalid)?;
    let same_account = !claims.non.is_empty() && constant_time_eq(subject.nonce.as_bytes(), claims.non.as_bytes());
    if !same_account || subject.token_version != claims.ver || subject.revoked || claims.jti.is_empty() {
        return Err(AppError::token_invalid());
    }
    // A device token is bound to the peerId it was issued for.
    if claims.kind == TokenKind::Device && claims.pid.as_deref() != Some(state.tokens.peer_fingerprint(&subject.peer_id).as_str()) {
        return Err(AppError::token_invalid());
    }
    Ok(Principal {
        user_id,
        username: subject.username,
        kind: claims.kind,
        nonce: subject.nonce,
        token_version: subject.token_version,
        jti: claims.jti,
        expires_at: claims.exp,
    })
}

/// Ends the session of this token: it is refused from now on, whatever its expiry.
pub async fn log_out(state: &Services, who: &Principal) -> AppResult<()> {
    state.db.revoke_token(&who.jti, who.expires_at.saturating_mul(1000), state.clock.now_ms()).await?;
    Ok(())
}

/// The account as its page shows it: (username, email, peerId).
pub async fn account(state: &Services, who: &Principal) -> AppResult<(String, String, String)> {
    who.require_user()?;
    let a = state.db.account(who.user_id).await?.ok_or_else(AppError::token_invalid)?;
    Ok((a.username, a.email, a.peer_id))
}

/// Gives the account a new peerId; device tokens issued for the old one stop working.
pub async fn rotate_peer_id(state: &Services, who: &Principal) -> AppResult<String> {
    who.require_user()?;
    let peer_id = new_peer_id();
    state.db.set_peer_id(who.user_id, &peer_id).await?;
    tracing::info!(user_id = who.user_id, "peer ID rotated");
    Ok(peer_id)
}

/// Changes the password after checking the current one (throttled like a
/// login); every older token and download link is revoked. Returns a fresh
/// user token for the session that asked.
pub async fn change_password(state: &Services, who: &Principal, current: &str, new: &str, client: &str) -> AppResult<String> {
    who.require_user()?;
    let a = state.db.account(who.user_id).await?.ok_or_else(AppError::token_invalid)?;
    let keys = Keys::new("password", Some(who.user_id), &who.username, client);
    keys.count(state).await?;
    if !state.hasher.verify(current, Some(&a.password_hash)).await? {
        tracing::warn!(target: "security", user_id = who.user_id, %client, "password change refused: wrong current password");
        return Err(AppError::bad_request("The current password is not right"));
    }
    keys.succeeded(state).await?;
    validate_password(new)?;
    let hash = state.hasher.hash(new).await?;
    let version = state.db.set_password(who.user_id, &hash).await?;
    tracing::info!(target: "security", user_id = who.user_id, %client, "password changed");
    let account = TokenAccount { id: who.user_id, nonce: &who.nonce, token_version: version };
    state.tokens.issue(&account, TokenKind::User, None, state.settings.user_token_ttl_secs)
}

/// Deletes the account once `confirm` repeats its username: every row in
/// one transaction, then the objects no other account references and what
/// its unfinished uploads received.
pub async fn delete_account(state: &Services, who: &Principal, confirm: &str, client: &str) -> AppResult<()> {
    who.require_user()?;
    if !confirm.trim().eq_ignore_ascii_case(&who.username) {
        return Err(AppError::bad_request("Type your username to confirm"));
    }
    let uploads = state.db.uploads_of(who.user_id).await?;
    let unreferenced = state.db.delete_account(who.user_id).await?;
    super::files::remove_unreferenced(state, &unreferenced).await?;
    for upload in &uploads {
        super::uploads::remove_parts(state, upload).await;
    }
    tracing::info!(target: "security", user_id = who.user_id, %client, "account deleted");
    Ok(())
}

/// The last `days` days of coins, uptime and traffic, from the ledger and
/// the daily traffic table.
pub async fn history(state: &Services, who: &Principal, days: i64) -> AppResult<crate::model::History> {
    let now = state.clock.now_ms();
    let today = crate::store::db::day_of(now);
    let first = today - days + 1;
    let mut points: Vec<crate::model::DayPoint> =
        (first..=today).map(|day| crate::model::DayPoint { day, ..Default::default() }).collect();
    for d in state.db.ledger_by_day(who.user_id, first).await? {
        if let Some(p) = points.get_mut((d.day - first) as usize) {
            p.coins = d.coins;
            p.uptime_seconds = d.credited_ms / 1000;
        }
    }
    for d in state.db.traffic_by_day(who.user_id, first).await? {
        if let Some(p) = points.get_mut((d.day - first) as usize) {
            (p.files_up, p.files_down, p.peer_in, p.peer_out) = (d.files_up, d.files_down, d.peer_in, d.peer_out);
        }
    }
    Ok(crate::model::History { days: points, now })
}

pub async fn dashboard(state: &Services, who: &Principal) -> AppResult<Dashboard> {
    let row = state.db.dashboard(who.user_id).await?.ok_or_else(AppError::token_invalid)?;
    // Every figure stops at COUNTER_CAP: what a client reports can never
    // make the dashboard overflow.
    let cap = |n: i64| n.clamp(0, COUNTER_CAP);
    let data_uploaded = cap(row.files_uploaded_bytes.saturating_add(row.peer_out));
    let data_downloaded = cap(row.files_downloaded_bytes.saturating_add(row.peer_in));
    Ok(Dashboard {
        username: row.username,
        peer_id: row.peer_id,
        storage_rented_mb: row.storage_rented_mb,
        coins_earned: row.coins,
        bandwidth_used: cap(data_uploaded.saturating_add(data_downloaded)),
        data_uploaded,
        data_downloaded,
        space_used: row.space_used,
        uptime_seconds: row.uptime_ms / 1000,
        last_heartbeat_at: row.last_heartbeat_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["abc", "a_b.c-d", "A23456789012345678901234567890xy"] {
            assert!(validate_username(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "a b", "ünï", "x/y", "A234567890123456789012345678901xy", ""] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org"] {
            assert!(validate_email(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "a@b", "@b.co", "a@@b.co", "a b@c.de", "a@.co", "a@b..co", "a@-b.co"] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_and_peer_ids() {
        assert!(validate_password("1234567").is_err());
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password(&"x".repeat(1025)).is_err());
        let p = new_peer_id();
        assert!(p.len() >= 17 && bs58::decode(&p).into_vec().unwrap().len() == 16);
        assert_ne!(p, new_peer_id());
    }
}
