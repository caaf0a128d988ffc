//! The app's own settings: the `[peervault]` table of `Leptos.toml`, each
//! key overridable by an environment variable `PEERVAULT_<KEY>`.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the SQLite database, the JWT secret, the outbox, upload staging
    /// and (without `blob_url`) the stored files live.
    pub data_dir: String,
    /// Where stored files live: empty = files under `<data dir>/blobs/`;
    /// `s3://bucket/prefix` = an S3-compatible bucket (endpoint and
    /// credentials from the `AWS_*` variables), which instances can share.
    pub blob_url: String,
    /// Lifetime of a web/user login token, seconds.
    pub user_token_ttl_secs: i64,
    /// Lifetime of an Android device token, seconds.
    pub device_token_ttl_secs: i64,
    /// Coins credited per GB-hour of pledged storage while online.
    pub coin_rate: f64,
    /// The longest interval a single heartbeat can credit, seconds.
    pub heartbeat_max_gap_secs: i64,
    /// Largest accepted JSON request body, bytes.
    pub max_json_body_bytes: usize,
    /// Largest storage pledge accepted at onboarding, MB.
    pub max_storage_rented_mb: f64,
    /// Window over which failed logins are counted, seconds.
    pub throttle_window_secs: u64,
    /// Failed logins allowed per account within the window.
    pub login_max_failures_per_account: u32,
    /// Failed logins allowed per client address within the window.
    pub login_max_failures_per_ip: u32,
    /// argon2id memory cost, KiB (OWASP minimum: 19456).
    pub argon2_memory_kib: u32,
    /// argon2id time cost (OWASP minimum: 2).
    pub argon2_iterations: u32,
    /// argon2id lanes.
    pub argon2_parallelism: u32,
    /// Password hashes computed at once; 0 = one less than the CPU count (at least 1),
    /// so hashing never takes every core from the request executor.
    pub hash_concurrency: usize,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_proxy_headers: bool,
    /// Mark the login cookie `Secure` (set it when served over HTTPS).
    pub cookie_secure: bool,
    /// Size of the database connection pool.
    pub db_max_connections: u32,
    /// Largest file accepted by an upload, bytes.
    pub max_file_bytes: i64,
    /// Most bytes of distinct content one account may store.
    pub user_quota_bytes: i64,
    /// Lifetime of a signed download link, seconds.
    pub download_link_ttl_secs: i64,
    /// Base of the download links handed out, e.g. `https://vault.example.org`;
    /// empty = the address the server listens on.
    pub public_url: String,
    /// SMTP server as a lettre URL (`smtp://host:port`, `smtp://host?tls=required`,
    /// `smtps://user:pass@host`); empty = write mails into `<data dir>/outbox/`.
    pub smtp_url: String,
    /// Sender of the mails.
    pub mail_from: String,
    /// The name mails and pages use for the product.
    pub product_name: String,
    /// How long a password reset code is valid, seconds.
    pub otp_ttl_secs: i64,
    /// Wrong guesses after which a reset code is burnt.
    pub otp_max_attempts: i64,
    /// Reset mails one address may request per throttle window.
    pub reset_max_requests_per_email: u32,
    /// Reset mails one client address may request per throttle window.
    pub reset_max_requests_per_ip: u32,
    /// Registrations one client address may attempt per throttle window.
    pub register_max_per_ip: u32,
    /// Seconds a client has to send a request's headers (also how long an
    /// idle connection is kept open waiting for the next request).
    pub header_read_timeout_secs: u64,
    /// Seconds a request body may go without sending a byte.
    pub body_timeout_secs: u64,
    /// Seconds to wait for a dependency (a PostgreSQL connection, the S3
    /// bucket, retries included) before answering 503.
    pub dependency_timeout_secs: u64,
    /// Tests only: lets `POST /test/clock` (from loopback) move the clock
    /// forward, so expiry, windows and uptime are tested without sleeping.
    /// Never turn it on in production.
    pub test_clock: bool,
    /// Confirmed replicas each stored object wants, on distinct nodes.
    pub replicas: i64,
    /// A node that has not polled for work this long is offline: nothing
    /// new is placed on it.
    pub node_offline_secs: i64,
    /// Seconds between two rounds of the network loop (placement, audits, repair).
    pub network_tick_secs: u64,
    /// A node silent this long loses its placements: they are made again on
    /// other nodes (and the node is told to drop them when it is back).
    pub repair_after_secs: i64,
    /// Each stored placement is audited about this often, seconds.
    pub audit_interval_secs: i64,
    /// Seconds a node has to answer an audit.
    pub audit_deadline_secs: i64,
    /// Failed audits in a row after which a placement is lost.
    pub audit_max_failures: i64,
    /// Coins per GB-hour (2^30 bytes) of storage a passed audit pays for.
    pub storage_coin_rate: f64,
    /// Keep the coordinator's own copy of every object. When false, the copy
    /// goes once the object has all its replicas stored and audited, and
    /// downloads are served from nodes.
    pub keep_local_copy: bool,
    /// Seconds a download waits for a node to start delivering an object
    /// (and the longest pause inside a delivery) before asking the next one.
    pub retrieve_wait_secs: u64,
    /// Seconds a copy restored from a node (for a download waiting at
    /// another coordinator instance) is kept before it may be released again.
    pub restored_keep_secs: i64,
    /// Seconds a resumable upload (`/uploads`) may take from its creation
    /// before it expires and what it received is removed.
    pub upload_expiry_secs: i64,
    /// Requests a shared file (served to anyone) answers per throttle
    /// window, all clients together; past them 429 until the window ends.
    pub share_requests_per_window: i64,
    /// Of those, what one client address may ask for per window; past them
    /// 429 for it alone (its refused requests take nothing from the others).
    pub share_requests_per_client: i64,
    /// Seconds a response may wait on a client that reads none of it; then
    /// the connection is closed (a download nobody reads gives back its
    /// thread and its slot).
    pub send_timeout_secs: u64,
    /// Downloads whose bodies are being read from the store at once (each
    /// holds a thread while its client reads), all clients together; past
    /// them 503 until one ends.
    pub downloads_max: u32,
    /// Downloads at once from one client address; past them 429.
    pub downloads_per_client: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: "./data".into(),
            user_token_ttl_secs: 24 * 3600,
            device_token_ttl_secs: 30 * 24 * 3600,
            coin_rate: 0.01,
            heartbeat_max_gap_secs: 900,
            max_json_body_bytes: 64 * 1024,
            max_storage_rented_mb: 1_048_576.0,
            throttle_window_secs: 900,
            login_max_failures_per_account: 10,
            login_max_failures_per_ip: 100,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hash_concurrency: 0,
            trust_proxy_headers: false,
            cookie_secure: false,
            db_max_connections: 8,
            max_file_bytes: 4 << 30,
            user_quota_bytes: 10 << 30,
            download_link_ttl_secs: 3600,
            public_url: String::new(),
            blob_url: String::new(),
            smtp_url: String::new(),
            mail_from: "peervault <no-reply@peervault.local>".into(),
            product_name: "peervault".into(),
            otp_ttl_secs: 600,
            otp_max_attempts: 5,
            reset_max_requests_per_email: 5,
            reset_max_requests_per_ip: 20,
            register_max_per_ip: 20,
            header_read_timeout_secs: 30,
            body_timeout_secs: 60,
            dependency_timeout_secs: 2,
            test_clock: false,
            replicas: 3,
            node_offline_secs: 3600,
            network_tick_secs: 30,
            repair_after_secs: 4 * 3600,
            audit_interval_secs: 6 * 3600,
            audit_deadline_secs: 300,
            audit_max_failures: 3,
            storage_coin_rate: 0.02,
            keep_local_copy: true,
            retrieve_wait_secs: 10,
            restored_keep_secs: 3600,
            upload_expiry_secs: 24 * 3600,
            share_requests_per_window: 10_000,
            share_requests_per_client: 1_000,
            send_timeout_secs: 60,
            downloads_max: 256,
            downloads_per_client: 16,
        }
    }
}

pub const ENV_PREFIX: &str = "PEERVAULT_";

impl Settings {
    /// Reads `[peervault]` from the config file (if it exists), then applies
    /// `PEERVAULT_*` environment overrides.
    pub fn load(config_file: Option<&Path>) -> Result<Self, String> {
        let mut table = match config_file {
            Some(path) if path.exists() => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Self::table_from_file_text(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            _ => toml::Table::new(),
        };
        Self::apply_env(&mut table, |k| std::env::var(k).ok())?;
        let settings: Settings = toml::Value::Table(table)
            .try_into()
            .map_err(|e| format!("invalid setting: {e}"))?;
        settings.validate()?;
        Ok(settings)
    }

    fn table_from_file_text(text: &str) -> Result<toml::Table, String> {
        let doc: toml::Table = text.parse().map_err(|e| format!("{e}"))?;
        match doc.get("peervault") {
            None => Ok(toml::Table::new()),
            Some(toml::Value::Table(t)) => Ok(t.clone()),
            Some(_) => Err("[peervault] must be a table".into()),
        }
    }

    /// Overrides each known key from `PEERVAULT_<KEY>`, parsed as the type of its default.
    fn apply_env(table: &mut toml::Table, get: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        let defaults = match toml::Value::try_from(Settings::default()).map_err(|e| e.to_string())? {
            toml::Value::Table(t) => t,
            _ => return Err("settings must serialize to a table".into()),
        };
        for (key, default) in defaults {
            let var = format!("{ENV_PREFIX}{}", key.to_ascii_uppercase());
            let Some(raw) = get(&var) else { continue };
            let raw = raw.trim();
            let value = match default {
                toml::Value::Integer(_) => raw.parse::<i64>().map(toml::Value::Integer).map_err(|_| ()),
                toml::Value::Float(_) => raw.parse::<f64>().map(toml::Value::Float).map_err(|_| ()),
                toml::Value::Boolean(_) => match raw {
                    "1" | "true" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
                    "0" | "false" | "no" | "off" => Ok(toml::Value::Boolean(false)),
                    _ => Err(()),
                },
                _ => Ok(toml::Value::String(raw.to_string())),
            }
            .map_err(|_| format!("{var}={raw} is not a valid value"))?;
            table.insert(key, value);
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), String> {
        let positive = [
            ("user_token_ttl_secs", self.user_token_ttl_secs > 0),
            ("device_token_ttl_secs", self.device_token_ttl_secs > 0),
            ("heartbeat_max_gap_secs", self.heartbeat_max_gap_secs > 0),
            ("max_json_body_bytes", self.max_json_body_bytes > 0),
            ("max_storage_rented_mb", self.max_storage_rented_mb > 0.0),
            ("throttle_window_secs", self.throttle_window_secs > 0),
            ("argon2_memory_kib", self.argon2_memory_kib >= 8),
            ("argon2_iterations", self.argon2_iterations > 0),
            ("argon2_parallelism", self.argon2_parallelism > 0),
            ("db_max_connections", self.db_max_connections > 0),
            ("max_file_bytes", self.max_file_bytes >= 0),
            ("user_quota_bytes", self.user_quota_bytes >= 0),
            ("download_link_ttl_secs", self.download_link_ttl_secs > 0),
            ("otp_ttl_secs", self.otp_ttl_secs > 0),
            ("otp_max_attempts", self.otp_max_attempts > 0),
            ("mail_from", self.mail_from.parse::<lettre::message::Mailbox>().is_ok()),
            ("public_url", self.public_url.is_empty() || self.public_url.starts_with("http://") || self.public_url.starts_with("https://")),
            ("coin_rate", self.coin_rate.is_finite() && self.coin_rate >= 0.0),
            ("header_read_timeout_secs", self.header_read_timeout_secs > 0),
            ("body_timeout_secs", self.body_timeout_secs > 0),
            ("send_timeout_secs", self.send_timeout_secs > 0),
            ("downloads_max", self.downloads_max > 0),
            ("downloads_per_client", self.downloads_per_client > 0),
            ("dependency_timeout_secs", self.dependency_timeout_secs > 0),
            ("replicas", (1..=16).contains(&self.replicas)),
            ("node_offline_secs", self.node_offline_secs >= 3),
            ("network_tick_secs", self.network_tick_secs > 0),
            ("repair_after_secs", self.repair_after_secs >= self.node_offline_secs),
            ("audit_interval_secs", self.audit_interval_secs > 0),
            ("audit_deadline_secs", self.audit_deadline_secs > 0),
            ("audit_max_failures", self.audit_max_failures > 0),
            ("storage_coin_rate", self.storage_coin_rate.is_finite() && self.storage_coin_rate >= 0.0),
            ("retrieve_wait_secs", self.retrieve_wait_secs > 0),
            ("restored_keep_secs", self.restored_keep_secs >= 0),
            ("upload_expiry_secs", self.upload_expiry_secs > 0),
            ("share_requests_per_window", self.share_requests_per_window > 0),
            ("share_requests_per_client", self.share_requests_per_client > 0),
        ];
        match positive.iter().find(|(_, ok)| !ok) {
            Some((name, _)) => Err(format!("setting {name} is out of range")),
            None => Ok(()),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(&self.data_dir)
    }

    /// `DATABASE_URL` if set, else the SQLite file under the data directory.
    pub fn database_url(&self) -> String {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => url,
            _ => format!("sqlite://{}", self.data_dir().join("peervault.db").display()),
        }
    }

    pub fn hash_concurrency(&self) -> usize {
        if self.hash_concurrency > 0 {
            return self.hash_concurrency;
        }
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        cpus.saturating_sub(1).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_parse_as_the_default_type() {
        let mut t = toml::Table::new();
        Settings::apply_env(&mut t, |k| match k {
            "PEERVAULT_COIN_RATE" => Some("0.5".into()),
            "PEERVAULT_HEARTBEAT_MAX_GAP_SECS" => Some("60".into()),
            "PEERVAULT_COOKIE_SECURE" => Some("true".into()),
            "PEERVAULT_DATA_DIR" => Some("/tmp/x".into()),
            _ => None,
        })
        .unwrap();
        let s: Settings = toml::Value::Table(t).try_into().unwrap();
        assert_eq!(s.coin_rate, 0.5);
        assert_eq!(s.heartbeat_max_gap_secs, 60);
        assert!(s.cookie_secure);
        assert_eq!(s.data_dir, "/tmp/x");
        assert_eq!(s.user_token_ttl_secs, Settings::default().user_token_ttl_secs);
    }

    #[test]
    fn bad_env_value_is_an_error_naming_the_variable() {
        let mut t = toml::Table::new();
        let err = Settings::apply_env(&mut t, |k| (k == "PEERVAULT_COIN_RATE").then(|| "lots".into())).unwrap_err();
        assert!(err.contains("PEERVAULT_COIN_RATE"), "{err}");
    }

    #[test]
    fn leptos_toml_settings_are_all_known_and_valid() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Leptos.toml")).unwrap();
        let table = Settings::table_from_file_text(&text).unwrap();
        let s: Settings = toml::Value::Table(table).try_into().unwrap();
        s.validate().unwrap();
        // The file documents the defaults: it must not silently change them.
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn leptos_toml_agrees_with_cargo_metadata() {
        let read = |f: &str| -> toml::Table {
            std::fs::read_to_string(format!("{}/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap().parse().unwrap()
        };
        let cargo = read("Cargo.toml");
        let leptos = read("Leptos.toml");
        let meta = &cargo["package"]["metadata"]["leptos"];
        let runtime = &leptos["package"]["metadata"]["leptos"];
        for key in ["output-name", "site-root", "site-pkg-dir", "site-addr", "reload-port", "env"] {
            assert_eq!(meta.get(key), runtime.get(key), "{key} differs between Cargo.toml and Leptos.toml");
        }
    }
}
