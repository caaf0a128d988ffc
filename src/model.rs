//! Types shared by the server and the browser (they cross server functions).

use serde::{Deserialize, Serialize};

/// Everything the dashboard shows, computed from stored facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    pub username: String,
    pub peer_id: String,
    /// MB pledged at onboarding (0 before).
    pub storage_rented_mb: f64,
    /// Sum of the coin ledger.
    pub coins_earned: f64,
    /// `data_uploaded + data_downloaded`, bytes.
    pub bandwidth_used: i64,
    /// Accepted file uploads plus the peer node's reported outbound total, bytes.
    pub data_uploaded: i64,
    /// Bytes served for download links plus the peer node's reported inbound total.
    pub data_downloaded: i64,
    /// Bytes of distinct content the account stores.
    pub space_used: i64,
    /// Uptime the server measured from heartbeats, seconds.
    pub uptime_seconds: i64,
    /// When the device last sent a heartbeat, ms since the Unix epoch.
    pub last_heartbeat_at: Option<i64>,
}

/// One UTC day of an account's history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DayPoint {
    /// Days since 1970-01-01.
    pub day: i64,
    pub coins: f64,
    pub uptime_seconds: i64,
    pub files_up: i64,
    pub files_down: i64,
    pub peer_in: i64,
    pub peer_out: i64,
}

/// The last days of an account, oldest first, one point per day (zeros included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub days: Vec<DayPoint>,
    /// The server's clock when this was read, ms since the epoch.
    pub now: i64,
}

/// A device counts as online when it reported within this long.
pub const ONLINE_WINDOW_MS: i64 = 15 * 60 * 1000;

/// A stored file as its owner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileView {
    pub id: i64,
    pub name: String,
    pub cid: String,
    pub car_cid: String,
    pub mime: String,
    pub size: i64,
    /// ms since the Unix epoch.
    pub uploaded_at: i64,
    /// Copies stored on the network's nodes, and how many are wanted.
    pub replicas: i64,
    pub wanted: i64,
    /// The share link while the file is shared (`/share_file`).
    pub share_url: Option<String>,
    /// How many files, for a folder (`None` for a file).
    pub folder_files: Option<i64>,
}

/// `3 of 3 copies`.
pub fn replicas_text(stored: i64, wanted: i64) -> String {
    format!("{stored} of {wanted} {}", if wanted == 1 { "copy" } else { "copies" })
}

/// A node owner's figures as `/node_status` and the dashboard show them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The account's node as `/file_status` names it (opaque); null until it polled for work.
    pub node: Option<String>,
    /// Bytes of stored replicas this account's node holds for the network.
    pub held_bytes: i64,
    /// Stored replicas it holds.
    pub placements: i64,
    /// Audits of the last 30 days: passed, and settled (passed, failed or late).
    pub audits_passed: i64,
    pub audits_total: i64,
    /// passed / total over the last 30 days; null before the first audit.
    pub audit_score: Option<f64>,
    /// Coins from passed audits (storage) and from heartbeats (uptime).
    pub storage_coins: f64,
    pub uptime_coins: f64,
    /// The latest storage credits, newest first (at most 50).
    pub storage_credits: Vec<StorageCredit>,
    pub network: NetworkStatus,
}

/// One storage credit: `coins = bytes / 2^30 x ((toMs - fromMs) / 3600000) x rate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StorageCredit {
    pub cid: String,
    pub bytes: i64,
    pub from_ms: i64,
    pub to_ms: i64,
    pub rate: f64,
    pub coins: f64,
}

/// The whole network, as any account sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatus {
    /// Nodes that polled for work within `PEERVAULT_NODE_OFFLINE_SECS`.
    pub nodes_online: i64,
    /// What those nodes pledged, MB.
    pub pledged_mb: f64,
    /// Bytes of stored replicas on nodes.
    pub placed_bytes: i64,
}

/// A folder's entries as the folder page shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FolderView {
    pub name: String,
    pub cid: String,
    /// Where in the folder (`""` its top, else `a/b`).
    pub path: String,
    /// Name, bytes, and whether it is a folder.
    pub entries: Vec<(String, u64, bool)>,
}

/// What an upload from the web page answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadedView {
    pub cid: String,
    pub car_cid: String,
    pub size: u64,
}

/// `2026-11-25` for a day number (days since 1970-01-01).
pub fn utc_date(day: i64) -> String {
    utc_minute(day * 86_400_000)[..10].to_owned()
}

/// `2026-11-25 10:00 UTC` from ms since the epoch (no time-zone database needed).
pub fn utc_minute(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

/// Formats a byte count for people: `0 B`, `1.5 KB`, `12.3 MB` (powers of 1024).
pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut value = bytes.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{} B", bytes.max(0))
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Formats a pledge given in MB: `512 MB`, `1.5 GB`.
pub fn human_megabytes(mb: f64) -> String {
    if mb >= 1024.0 {
        format!("{} GB", trim_float(mb / 1024.0, 2))
    } else {
        format!("{} MB", trim_float(mb, 2))
    }
}

/// Coins with sensible precision: three significant digits for small
/// amounts, two decimals for large ones (`0.0000117`, `12.35`).
pub fn coins_text(coins: f64) -> String {
    if coins <= 0.0 || !coins.is_finite() {
        return "0 coins".into();
    }
    let decimals = (2 - coins.log10().floor() as i64).clamp(2, 10) as usize;
    format!("{} coins", trim_float(coins, decimals))
}

/// A duration for people: `42 s`, `17 min`, `3.5 h`.
pub fn duration_text(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{} s", seconds.round())
    } else if seconds < 3600.0 {
        format!("{} min", (seconds / 60.0).round())
    } else {
        format!("{} h", trim_float(seconds / 3600.0, 1))
    }
}

/// Rounds to `decimals` places and drops trailing zeros: 1.50 -> "1.5", 2.00 -> "2".
pub fn trim_float(value: f64, decimals: usize) -> String {
    let s = format!("{value:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GB");
        assert_eq!(human_megabytes(512.0), "512 MB");
        assert_eq!(human_megabytes(1536.0), "1.5 GB");
        assert_eq!(trim_float(0.123456, 4), "0.1235");
        assert_eq!(coins_text(0.0), "0 coins");
        assert_eq!(coins_text(0.000011734), "0.0000117 coins");
        assert_eq!(coins_text(12.3456), "12.35 coins");
        assert_eq!(coins_text(0.5), "0.5 coins");
        assert_eq!(duration_text(1.4), "1 s");
        assert_eq!(duration_text(1020.0), "17 min");
        assert_eq!(duration_text(12_600.0), "3.5 h");
        assert_eq!(utc_minute(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(1_795_602_345_000), "2026-11-25 10:25 UTC");
        assert_eq!(utc_minute(951_782_400_000), "2000-02-29 00:00 UTC");
    }
}
