//! `peervault node`: the reference storage node (docs/NETWORK.md). It signs
//! in with its peer ID, pledges storage, sends the Android client's
//! heartbeat, long-polls the coordinator for work and keeps the objects
//! placed on it as CAR files, each block checked against its CID (with the
//! same content code as the server) before the file is kept. Only outbound
//! HTTP: the coordinator never connects to a node.

use crate::content::{CarReader, ContentCid};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct NodeArgs {
    pub coordinator: String,
    pub username: String,
    pub peer_id: String,
    pub data_dir: PathBuf,
    pub pledge_mb: f64,
    pub heartbeat_secs: u64,
}

pub const USAGE: &str = "peervault node --coordinator URL --username U --peer-id P --data-dir DIR --pledge-mb N [--heartbeat-secs S]\n\
  (each flag also as PEERVAULT_NODE_<FLAG>, e.g. PEERVAULT_NODE_PEER_ID)";

impl NodeArgs {
    /// Flags, then `PEERVAULT_NODE_*` for what the flags leave out.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut given = std::collections::HashMap::new();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let name = flag.strip_prefix("--").ok_or_else(|| format!("unexpected argument {flag:?}\n{USAGE}"))?;
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            given.insert(name.to_owned(), value.clone());
        }
        let get = |name: &str| -> Option<String> {
            given.get(name).cloned().or_else(|| std::env::var(format!("PEERVAULT_NODE_{}", name.to_uppercase().replace('-', "_"))).ok())
        };
        let need = |name: &str| get(name).filter(|v| !v.trim().is_empty()).ok_or_else(|| format!("missing --{name}\n{USAGE}"));
        let pledge_mb: f64 = need("pledge-mb")?.parse().map_err(|_| "--pledge-mb needs a number".to_owned())?;
        let heartbeat_secs = match get("heartbeat-secs") {
            Some(v) => v.parse().ok().filter(|n| *n > 0).ok_or("--heartbeat-secs needs a positive number")?,
            None => 600,
        };
        Ok(Self {
            coordinator: need("coordinator")?.trim_end_matches('/').to_owned(),
            username: need("username")?,
            peer_id: need("peer-id")?,
            data_dir: PathBuf::from(need("data-dir")?),
            pledge_mb,
            heartbeat_secs,
        })
    }
}

/// The node's connection to its coordinator.
struct Coordinator {
    http: reqwest::Client,
    base: String,
    args: NodeArgs,
    token: Mutex<String>,
    /// Objects fetched at once (the coordinator gives one client a few
    /// downloads at a time).
    fetches: tokio::sync::Semaphore,
}

/// How many objects a node fetches at once.
const FETCHES_AT_ONCE: usize = 4;

type Failure = String;

impl Coordinator {
    /// Signs in (again), retrying with backoff while the coordinator is away.
    async fn sign_in(&self) -> String {
        let mut pause = Duration::from_millis(200);
        loop {
            let body = json!({"username": self.args.username, "peerId": self.args.peer_id});
            match self.call("/android_auth", &body, false).await {
                Ok(v) if v["token"].is_string() => {
                    let token = v["token"].as_str().unwrap_or_default().to_owned();
                    *self.token.lock().unwrap_or_else(|e| e.into_inner()) = token.clone();
                    return token;
                }
                Ok(v) => tracing::warn!(answer = %v, "sign-in refused"),
                Err(e) => tracing::warn!(error = %e, "sign-in failed"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(30));
        }
    }

    fn token(&self) -> String {
        self.token.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// POSTs JSON and reads a JSON answer; a 2xx answer is `Ok`.
    async fn call(&self, path: &str, body: &Value, auth: bool) -> Result<Value, Failure> {
        let mut req = self.http.post(format!("{}{path}", self.base)).header("content-type", "application/json").body(body.to_string());
        if auth {
            req = req.header("authorization", self.token());
        }
        let res = req.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(|e| format!("{path}: {e}"))?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("{path}: {status} {value}"));
        }
        Ok(value)
    }
}

fn objects_dir(root: &Path) -> PathBuf {
    root.join("objects")
}

/// Where the CAR of `cid` is kept.
pub fn object_path(root: &Path, cid: &str) -> PathBuf {
    objects_dir(root).join(format!("{cid}.car"))
}

/// Runs the node until the process is stopped.
pub async fn run(args: NodeArgs) -> Result<(), String> {
    std::fs::create_dir_all(objects_dir(&args.data_dir)).map_err(|e| format!("{}: {e}", args.data_dir.display()))?;
    std::fs::create_dir_all(args.data_dir.join("staging")).map_err(|e| format!("{}: {e}", args.data_dir.display()))?;
    // Leftovers of a fetch cut short by a crash.
    if let Ok(entries) = std::fs::read_dir(args.data_dir.join("staging")) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
    let node = Arc::new(Coordinator { http, base: args.coordinator.clone(), args: args.clone(), token: Mutex::new(String::new()), fetches: tokio::sync::Semaphore::new(FETCHES_AT_ONCE) });
    node.sign_in().await;
    tracing::info!(coordinator = %node.base, "signed in");
    loop {
        match node.call("/onboarding", &json!({"storageRented": args.pledge_mb}), true).await {
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, "pledge not accepted yet");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    tokio::spawn(heartbeat(node.clone()));
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut pause = Duration::from_millis(200);
    loop {
        let free = (args.pledge_mb * 1_048_576.0) as i64 - held_bytes(&args.data_dir) as i64;
        let answer = node.call("/node/work", &json!({"wait": 20, "freeBytes": free.max(0)}), true).await;
        let tasks = match answer {
            Ok(v) => {
                pause = Duration::from_millis(200);
                v["tasks"].as_array().cloned().unwrap_or_default()
            }
            Err(e) => {
                tracing::warn!(error = %e, "no work fetched");
                if e.contains(" 401 ") {
                    // The token expired or was revoked: sign in again.
                    node.sign_in().await;
                    continue;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        for task in tasks {
            let id = task["id"].as_str().unwrap_or_default().to_owned();
            if id.is_empty() || !in_flight.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone()) {
                continue;
            }
            let (node, in_flight) = (node.clone(), in_flight.clone());
            tokio::spawn(async move {
                handle(&node, &task).await;
                in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            });
        }
    }
}

/// The Android client's heartbeat, every `heartbeat_secs`.
async fn heartbeat(node: Arc<Coordinator>) {
    loop {
        if let Err(e) = node.call("/active_time", &json!({"active_time": "1"}), true).await {
            tracing::warn!(error = %e, "heartbeat not accepted");
        }
        tokio::time::sleep(Duration::from_secs(node.args.heartbeat_secs)).await;
    }
}

fn held_bytes(root: &Path) -> u64 {
    std::fs::read_dir(objects_dir(root)).map_or(0, |dir| dir.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
}

/// Does one task and answers it.
async fn handle(node: &Coordinator, task: &Value) {
    let id = task["id"].as_str().unwrap_or_default();
    let kind = task["kind"].as_str().unwrap_or_default();
    let cid = task["cid"].as_str().unwrap_or_default();
    if kind == "audit" {
        return audit(node, id, cid, task["block"].as_str().unwrap_or_default()).await;
    }
    if kind == "retrieve" {
        return deliver(node, id, cid).await;
    }
    let outcome = match kind {
        "store" => store(node, cid).await,
        "drop" => drop_object(&node.args.data_dir, cid),
        other => Err(format!("unknown task kind {other:?}")),
    };
    report(node, id, kind, cid, outcome).await;
}

/// Logs a task's outcome and says it to the coordinator (`/node/done` or
/// `/node/failed`), retried: a task stays open until the coordinator has it.
async fn report(node: &Coordinator, id: &str, kind: &str, cid: &str, outcome: Result<(), Failure>) {
    let (path, body) = match &outcome {
        Ok(()) => ("/node/done", json!({"id": id})),
        Err(reason) => ("/node/failed", json!({"id": id, "reason": reason})),
    };
    match &outcome {
        Ok(()) => tracing::info!(task = id, kind, cid, "task done"),
        Err(reason) => tracing::warn!(task = id, kind, cid, %reason, "task failed"),
    }
    for attempt in 0..5u32 {
        match node.call(path, &body, true).await {
            Ok(_) => return,
            Err(e) if e.contains(" 404 ") || e.contains(" 409 ") => {
                tracing::warn!(task = id, error = %e, "answer refused");
                return;
            }
            Err(e) => {
                tracing::warn!(task = id, error = %e, "answer not delivered");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
        }
    }
}

/// Answers an audit: the raw bytes of `block` of the object, read from its
/// CAR (and checked against the CID on the way) to `/node/proof/{id}`. A
/// node that cannot find the block says so with `/node/failed`.
async fn audit(node: &Coordinator, id: &str, cid: &str, block: &str) {
    let found = {
        let (root, block) = (node.args.data_dir.clone(), block.to_owned());
        let cid = cid.to_owned();
        tokio::task::spawn_blocking(move || find_block(&root, &cid, &block)).await.unwrap_or_else(|e| Err(e.to_string()))
    };
    let bytes = match found {
        Ok(bytes) => bytes,
        Err(reason) => return report(node, id, "audit", cid, Err(reason)).await,
    };
    // Retried while the coordinator is out of reach (a restart): the
    // audit stays open until its deadline.
    for attempt in 0..8u32 {
        let sent = node
            .http
            .post(format!("{}/node/proof/{id}", node.base))
            .header("authorization", node.token())
            .header("content-type", "application/octet-stream")
            .body(bytes.clone())
            .send()
            .await;
        match sent {
            Ok(res) if res.status().is_success() => return tracing::info!(task = id, kind = "audit", cid, "task done"),
            Ok(res) if res.status().is_client_error() => {
                return tracing::warn!(task = id, kind = "audit", cid, status = %res.status(), "proof refused");
            }
            Ok(res) => tracing::warn!(task = id, kind = "audit", cid, status = %res.status(), "proof not taken"),
            Err(e) => tracing::warn!(task = id, kind = "audit", cid, error = %e, "proof not delivered"),
        }
        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
    }
}

/// Answers a retrieve task: streams the kept CAR of `cid` to
/// `/node/deliver/{id}` (the coordinator checks every block).
async fn deliver(node: &Coordinator, id: &str, cid: &str) {
    let path = match crate::content::parse_cid(cid) {
        Ok(root) => object_path(&node.args.data_dir, &root.to_string()),
        Err(e) => return report(node, id, "retrieve", cid, Err(format!("bad CID: {e}"))).await,
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => return report(node, id, "retrieve", cid, Err(format!("retrieve: {e}"))).await,
    };
    let sent = node
        .http
        .post(format!("{}/node/deliver/{id}", node.base))
        .header("authorization", node.token())
        .header("content-type", "application/vnd.ipld.car")
        .body(reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)))
        .send()
        .await;
    match sent {
        Ok(res) if res.status().is_success() => tracing::info!(task = id, kind = "retrieve", cid, "task done"),
        Ok(res) => tracing::warn!(task = id, kind = "retrieve", cid, status = %res.status(), "delivery refused"),
        Err(e) => tracing::warn!(task = id, kind = "retrieve", cid, error = %e, "delivery cut"),
    }
}

/// The bytes of `block` in the kept CAR of `cid`, every block read checked.
fn find_block(root: &Path, cid: &str, block: &str) -> Result<Vec<u8>, Failure> {
    let cid = crate::content::parse_cid(cid).map_err(|e| format!("bad CID: {e}"))?;
    let want = crate::content::parse_cid(block).map_err(|e| format!("bad block CID: {e}"))?;
    let file = std::fs::File::open(object_path(root, &cid.to_string())).map_err(|e| format!("audit: {e}"))?;
    let mut car = CarReader::new(std::io::BufReader::with_capacity(1 << 20, file)).map_err(|e| format!("audit: {e}"))?;
    let mut buf = Vec::new();
    while let Some(found) = car.next_block(&mut buf).map_err(|e| format!("audit: {e}"))? {
        if found == want {
            return Ok(buf);
        }
    }
    Err(format!("audit: block {want} is not in the object"))
}

/// Fetches the object's CAR into a staging file, checks every block and the
/// root, then keeps it (fsync, rename, directory fsync).
async fn store(node: &Coordinator, cid: &str) -> Result<(), Failure> {
    let root = crate::content::parse_cid(cid).map_err(|e| format!("bad CID: {e}"))?;
    let target = object_path(&node.args.data_dir, &root.to_string());
    if target.exists() {
        return Ok(()); // kept already (a task repeated after a restart)
    }
    let staging = node.args.data_dir.join("staging").join(format!("{}.part", crate::util::random_hex(8)));
    let _turn = node.fetches.acquire().await.map_err(|e| format!("fetch: {e}"))?;
    // A coordinator busy with downloads (429, 503) is asked again a little
    // later, not reported as a failure.
    let mut attempt = 0u32;
    let res = loop {
        let res = node
            .http
            .get(format!("{}/node/content/{cid}", node.base))
            .header("authorization", node.token())
            .send()
            .await
            .map_err(|e| format!("fetch: {e}"))?;
        let busy = matches!(res.status().as_u16(), 429 | 503);
        if !busy || attempt >= 8 {
            break res;
        }
        tokio::time::sleep(Duration::from_millis((250u64 << attempt).min(10_000))).await;
        attempt += 1;
    };
    if !res.status().is_success() {
        return Err(format!("fetch: {}", res.status()));
    }
    let mut file = std::fs::File::create(&staging).map_err(|e| format!("staging: {e}"))?;
    let mut res = res;
    let fetched: Result<(), Failure> = async {
        while let Some(chunk) = res.chunk().await.map_err(|e| format!("fetch: {e}"))? {
            file.write_all(&chunk).map_err(|e| format!("staging: {e}"))?;
        }
        Ok(())
    }
    .await;
    let keep = fetched.and_then(|()| {
        file.sync_all().map_err(|e| format!("staging: {e}"))?;
        verify(&staging, &root)?;
        std::fs::rename(&staging, &target).map_err(|e| format!("keep: {e}"))?;
        std::fs::File::open(objects_dir(&node.args.data_dir)).and_then(|d| d.sync_all()).map_err(|e| format!("keep: {e}"))
    });
    if keep.is_err() {
        let _ = std::fs::remove_file(&staging);
    }
    keep
}

/// Deletes the object's CAR (gone already is fine) and syncs the directory.
fn drop_object(root: &Path, cid: &str) -> Result<(), Failure> {
    let cid = crate::content::parse_cid(cid).map_err(|e| format!("bad CID: {e}"))?.to_string();
    match std::fs::remove_file(object_path(root, &cid)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("drop: {e}")),
    }
    std::fs::File::open(objects_dir(root)).and_then(|d| d.sync_all()).map_err(|e| format!("drop: {e}"))
}

/// Every block of the CAR at `path` matches its CID, and its root is `root`.
pub fn verify(path: &Path, root: &ContentCid) -> Result<(), Failure> {
    let file = std::fs::File::open(path).map_err(|e| format!("verify: {e}"))?;
    let mut car = CarReader::new(std::io::BufReader::with_capacity(1 << 20, file)).map_err(|e| format!("verify: {e}"))?;
    if car.root() != root {
        return Err(format!("verify: the CAR's root is {}, not {root}", car.root()));
    }
    let mut buf = Vec::new();
    let mut last = None;
    while let Some(cid) = car.next_block(&mut buf).map_err(|e| format!("verify: {e}"))? {
        last = Some(cid);
    }
    if last.as_ref() != Some(root) {
        return Err("verify: the root block is missing".into());
    }
    Ok(())
}
