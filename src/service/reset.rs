//! Password reset by a 6-digit code sent by mail.

use super::accounts::validate_password;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::mail::Mail;
use super::Services;
use rand::Rng;

fn too_many() -> AppError {
    AppError::too_many_attempts()
}

/// A code from the OS CSPRNG, uniform over 000000..=999999.
pub fn new_code() -> String {
    format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32))
}

fn code_mac(state: &Services, user_id: i64, code: &str) -> String {
    state.tokens.mac_hex(&format!("password-reset:{user_id}:{code}"))
}

/// "10 minutes", or seconds for lifetimes under two minutes.
pub fn validity(ttl_secs: i64) -> String {
    if ttl_secs >= 120 {
        format!("{} minutes", ttl_secs / 60)
    } else {
        format!("{ttl_secs} seconds")
    }
}

fn reset_mail(state: &Services, to: &str, code: &str) -> Mail {
    let product = &state.settings.product_name;
    let valid = validity(state.settings.otp_ttl_secs);
    // Short lines keep the plain part 7-bit: readable as it is in any client.
    let text = format!(
        "Someone (we hope you) asked to reset the password\n\
         of your {product} account.\n\n\
         Your code: {code}\n\n\
         The code is valid for {valid}.\n\
         If you did not ask for it, ignore this mail:\n\
         your password stays as it is.\n"
    );
    let html = format!(
        "<!DOCTYPE html><html><body style=\"font-family:sans-serif\">\
         <p>Someone (we hope you) asked to reset the password of your {product} account.</p>\
         <p>Your code: <strong style=\"font-size:1.5em;letter-spacing:0.15em\">{code}</strong></p>\
         <p>The code is valid for {valid}. If you did not ask for it, ignore this mail: your password stays as it is.</p>\
         </body></html>"
    );
    Mail { to: to.to_owned(), subject: format!("Your {product} password reset code"), text, html }
}

/// Sends a new code to `email`, replacing any earlier one. If the mail
/// cannot be sent, no code is left usable.
pub async fn send_code(state: &Services, email: &str, client: &str) -> AppResult<()> {
    let email = email.trim();
    let s = &state.settings;
    let (by_email, by_ip) = (format!("reset:email:{}", email.to_lowercase()), format!("reset:ip:{client}"));
    if state.throttle.over_budget(&[(&by_email, s.reset_max_requests_per_email), (&by_ip, s.reset_max_requests_per_ip)]).await? {
        return Err(too_many());
    }
    let user = state
        .db
        .user_by_email(email)
        .await?
        .ok_or_else(|| AppError::not_found("No account uses this email. Check it, or register first.").of_kind(ErrorKind::EmailUnknown))?;
    let code = new_code();
    let now = state.clock.now_ms();
    state.db.put_reset(user.id, &code_mac(state, user.id, &code), now + s.otp_ttl_secs * 1000, now).await?;
    if let Err(e) = state.mailer.send(reset_mail(state, &user.email, &code)).await {
        tracing::error!(error = %e, user_id = user.id, "reset mail not delivered");
        state.db.drop_reset(user.id).await?;
        return Err(AppError::new(503, "The mail could not be sent right now. Please try again later.").of_kind(ErrorKind::MailFailed));
    }
    Ok(())
}

/// Checks the code and sets the new password, revoking every older token
/// and download link. Every attempt is counted first (against the email,
/// known or not, and the client address, with the login budgets), so
/// neither codes nor registered emails can be guessed without limit; a
/// success gives the attempt back.
pub async fn verify(state: &Services, email: &str, code: &str, new_password: &str, client: &str) -> AppResult<()> {
    let email = email.trim();
    let s = &state.settings;
    let (by_email, by_ip) = (format!("verify:email:{}", email.to_lowercase()), format!("verify:ip:{client}"));
    if state.throttle.over_budget(&[(&by_email, s.login_max_failures_per_account), (&by_ip, s.login_max_failures_per_ip)]).await? {
        return Err(too_many());
    }
    let user = state
        .db
        .user_by_email(email)
        .await?
        .ok_or_else(|| AppError::not_found("No account uses this email. Check it, or register first.").of_kind(ErrorKind::EmailUnknown))?;
    validate_password(new_password)?;
    let failed = || AppError::bad_request("That code is wrong or has expired. Ask for a new one.").of_kind(ErrorKind::CodeRejected);
    let code = code.trim();
    let now = state.clock.now_ms();
    let Some(pending) = state.db.reset_of(user.id).await? else { return Err(failed()) };
    if pending.expires_at <= now || pending.attempts >= s.otp_max_attempts {
        return Err(failed());
    }
    let mac = code_mac(state, user.id, code);
    let matches = mac.len() == pending.code_hash.len()
        && mac.bytes().zip(pending.code_hash.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !matches {
        state.db.wrong_guess(user.id, s.otp_max_attempts).await?;
        return Err(failed());
    }
    let hash = state.hasher.hash(new_password).await?;
    // Consumed atomically: of two concurrent uses of one code, one wins.
    if !state.db.complete_reset(user.id, &mac, &hash, state.clock.now_ms(), s.otp_max_attempts).await? {
        return Err(failed());
    }
    state.throttle.clear(&by_email).await?;
    state.throttle.refund(&by_ip).await?;
    tracing::info!(target: "security", user_id = user.id, %client, "password reset");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..1000 {
            let c = new_code();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
        assert_eq!(validity(600), "10 minutes");
        assert_eq!(validity(2), "2 seconds");
    }
}
