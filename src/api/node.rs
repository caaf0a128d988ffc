//! The node protocol (docs/NETWORK.md, docs/API.md): storage nodes poll for
//! work, fetch what is placed on them and answer their tasks; owners ask
//! where a file is held. Every node call takes a device token.

use super::extract::{Auth, JsonObject, Numeric};
use super::{ApiResult, Message};
use crate::error::AppError;
use crate::model::NodeStatus;
use crate::service::network::{self, FileStatus, Task};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[allow(non_snake_case)]
pub struct WorkRequest {
    /// Seconds to wait for a task (0 to 60; at most a third of the offline time). Default 30.
    #[schema(minimum = 0, maximum = 60)]
    pub wait: Option<f64>,
    /// Free bytes the node has for the network (informative).
    #[schema(minimum = 0, maximum = 9000000000000000_i64)]
    pub freeBytes: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkResponse {
    pub tasks: Vec<Task>,
}

#[utoipa::path(post, path = "/node/work", tag = "network", security(("token" = [])),
    request_body(content = WorkRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The node's open tasks, as soon as there is one, or `[]` when the wait ended", body = WorkResponse,
            example = json!({"tasks": [{"id": "7", "kind": "store", "cid": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "size": 0}]})),
        (status = 400, description = "wait or freeBytes not a number, or negative", body = Message, example = json!({"message": "wait must be a number from 0 to 60"})),
        (status = 401, description = "Token missing or invalid", body = Message, example = json!({"message": "Token is missing"})),
        (status = 403, description = "A user token: node calls need a device token", body = Message),
    ))]
pub async fn work(State(state): State<AppState>, Auth(who): Auth, body: JsonObject) -> ApiResult<Json<WorkResponse>> {
    let wait = match body.number("wait") {
        Numeric::Missing => 30.0,
        Numeric::Value(v) if (0.0..=60.0).contains(&v) => v,
        _ => return Err(AppError::bad_request("wait must be a number from 0 to 60").into()),
    };
    let free = match body.number("freeBytes") {
        Numeric::Missing => 0,
        Numeric::Value(v) if (0.0..=9.0e15).contains(&v) => v as i64,
        _ => return Err(AppError::bad_request("freeBytes must be a number of bytes").into()),
    };
    Ok(Json(WorkResponse { tasks: network::work(&state, &who, wait, free).await? }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TaskAnswer {
    /// The task's id, as `/node/work` gave it.
    pub id: String,
    /// `/node/failed` only: why (logged).
    pub reason: Option<String>,
}

/// The task id of an answer: a string (as handed out) or a whole number.
fn task_id(body: &JsonObject) -> Result<String, AppError> {
    match body.0.get("id") {
        None | Some(Value::Null) => Err(AppError::missing_field("id")),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) if n.is_u64() => Ok(n.to_string()),
        Some(_) => Err(AppError::bad_request("id must be a string")),
    }
}

#[utoipa::path(post, path = "/node/done", tag = "network", security(("token" = [])),
    request_body(content = TaskAnswer, content_type = "application/json"),
    responses(
        (status = 200, description = "Recorded (a repeated answer changes nothing)", body = Message, example = json!({"message": "Task done"})),
        (status = 400, description = "No id", body = Message, example = json!({"message": "Missing id field in request body"})),
        (status = 401, description = "Token missing or invalid", body = Message),
        (status = 403, description = "A user token", body = Message),
        (status = 404, description = "No such task for this node", body = Message, example = json!({"message": "Task not found"})),
        (status = 409, description = "The task was answered otherwise before", body = Message),
    ))]
pub async fn done(State(state): State<AppState>, Auth(who): Auth, body: JsonObject) -> ApiResult<Json<Message>> {
    network::finish(&state, &who, &task_id(&body)?, true).await?;
    Ok(Json(Message { message: "Task done".into() }))
}

#[utoipa::path(post, path = "/node/failed", tag = "network", security(("token" = [])),
    request_body(content = TaskAnswer, content_type = "application/json"),
    responses(
        (status = 200, description = "Recorded; the object is placed elsewhere", body = Message, example = json!({"message": "Task failed"})),
        (status = 400, description = "No id", body = Message),
        (status = 401, description = "Token missing or invalid", body = Message),
        (status = 403, description = "A user token", body = Message),
        (status = 404, description = "No such task for this node", body = Message, example = json!({"message": "Task not found"})),
        (status = 409, description = "The task was answered otherwise before", body = Message),
    ))]
pub async fn failed(State(state): State<AppState>, Auth(who): Auth, body: JsonObject) -> ApiResult<Json<Message>> {
    let id = task_id(&body)?;
    let reason: String = body.0.get("reason").and_then(Value::as_str).unwrap_or("").chars().take(200).collect();
    tracing::warn!(node_user = who.user_id, task = %id, %reason, "node reports a failed task");
    network::finish(&state, &who, &id, false).await?;
    Ok(Json(Message { message: "Task failed".into() }))
}

#[utoipa::path(get, path = "/node/content/{cid}", tag = "network", security(("token" = [])),
    params(("cid" = String, Path, description = "Root CID of an object placed on this node")),
    responses(
        (status = 200, description = "The object's CAR (as ipfs-car writes it), every block checked as it is read", content_type = "application/vnd.ipld.car"),
        (status = 401, description = "Token missing or invalid", body = Message),
        (status = 403, description = "A user token", body = Message),
        (status = 404, description = "No such object is placed on this node", body = Message),
        (status = 429, description = "This node is already reading as many objects as one client may", body = Message),
        (status = 503, description = "Too many downloads at once", body = Message),
    ))]
pub async fn content(State(state): State<AppState>, Auth(who): Auth, Path(cid): Path<String>, method: Method) -> ApiResult<Response> {
    let opened = network::content(&state, &who, &cid, method != Method::HEAD).await?;
    let body = opened.body.map_or_else(Body::empty, Body::from_stream);
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/vnd.ipld.car; version=1")
        .header(header::CONTENT_LENGTH, opened.len)
        .body(body)
        .map_err(AppError::internal)?)
}

#[utoipa::path(post, path = "/node/proof/{id}", tag = "network", security(("token" = [])),
    params(("id" = String, Path, description = "The audit task's id, as `/node/work` gave it")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The raw bytes of the block the audit asked for (at most 1 MiB)"),
    responses(
        (status = 200, description = "The bytes hash to the block's CID, in time: the audit passed (storage coins credited)", body = Message,
            example = json!({"message": "Proof accepted"})),
        (status = 401, description = "Token missing or invalid", body = Message),
        (status = 403, description = "A user token", body = Message),
        (status = 404, description = "No such audit for this node", body = Message, example = json!({"message": "Audit not found"})),
        (status = 409, description = "Already answered, or the deadline passed (then the audit failed)", body = Message,
            example = json!({"message": "Audit deadline has passed"})),
        (status = 413, description = "Larger than any block: refused, the audit stays open", body = Message),
        (status = 422, description = "The bytes do not hash to the block's CID: the audit failed", body = Message,
            example = json!({"message": "Proof does not match the block"})),
    ))]
pub async fn proof(State(state): State<AppState>, Auth(who): Auth, Path(id): Path<String>, body: Body) -> ApiResult<Json<Message>> {
    let block = axum::body::to_bytes(body, network::MAX_PROOF_BYTES)
        .await
        .map_err(|e| super::extract::body_error(&e, "Proof is larger than any block"))?;
    network::proof(&state, &who, &id, &block).await?;
    Ok(Json(Message { message: "Proof accepted".into() }))
}

#[utoipa::path(post, path = "/node/deliver/{id}", tag = "network", security(("token" = [])),
    params(("id" = String, Path, description = "The retrieve task's id, as `/node/work` gave it")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The object's CAR, streamed (any content type, e.g. application/vnd.ipld.car)"),
    responses(
        (status = 200, description = "Read and checked as far as the download waiting for it needed", body = Message,
            example = json!({"message": "Delivered"})),
        (status = 401, description = "Token missing or invalid", body = Message),
        (status = 403, description = "A user token", body = Message),
        (status = 404, description = "No such task for this node", body = Message, example = json!({"message": "Task not found"})),
        (status = 409, description = "Not a retrieve task, already answered, or no download waits for it any more", body = Message,
            example = json!({"message": "Nobody is waiting for this delivery any more"})),
        (status = 422, description = "A block did not match the object (the download went on from another node)", body = Message,
            example = json!({"message": "Delivery does not match the object"})),
    ))]
pub async fn deliver(State(state): State<AppState>, Auth(who): Auth, Path(id): Path<String>, body: Body) -> ApiResult<Json<Message>> {
    if crate::service::retrieve::deliver(&state, &who, &id, body.into_data_stream()).await? {
        Ok(Json(Message { message: "Delivered".into() }))
    } else {
        Err(AppError::new(422, "Delivery does not match the object").into())
    }
}

#[utoipa::path(post, path = "/node_status", tag = "network", security(("token" = [])),
    responses(
        (status = 200, description = "What the account's node holds, its audit score and coins by kind, and the network's figures", body = NodeStatus),
        (status = 401, description = "Token missing or invalid", body = Message),
    ))]
pub async fn node_status(State(state): State<AppState>, Auth(who): Auth) -> ApiResult<Json<NodeStatus>> {
    Ok(Json(network::node_status(&state, who.user_id).await?))
}

#[utoipa::path(post, path = "/file_status", tag = "files", security(("token" = [])),
    request_body(content = super::files::CidRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Where the file is held: replicas wanted and stored, each with an opaque node id", body = FileStatus),
        (status = 400, description = "Missing or syntactically invalid CID", body = Message),
        (status = 401, description = "Token missing or invalid", body = Message),
        (status = 404, description = "This account does not store that CID", body = Message, example = json!({"message": "Invalid Credentials"})),
    ))]
pub async fn file_status(State(state): State<AppState>, Auth(who): Auth, body: JsonObject) -> ApiResult<Json<FileStatus>> {
    let cid = body.string("cid")?;
    Ok(Json(network::file_status(&state, &who, cid).await?))
}
