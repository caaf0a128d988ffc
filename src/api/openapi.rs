//! The OpenAPI document, generated from the handlers' annotations and then
//! completed by [`complete`] with what the server enforces but the
//! annotations do not say (value rules, the other answers every JSON route
//! gives, the web pages on the shared paths). `make test-fuzz`
//! (scripts/fuzz-api.sh) holds the server to this document.

use super::*;
use crate::config::Settings;
use serde_json::{json, Map, Value};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "peervault JSON API", description = "The routes the Android client calls. Prose: docs/API.md."),
    paths(healthz, register, login, android_auth, dashboard, onboarding, active_time, rateinout,
        files::upload_file, files::get_file_list, files::download_file, files::delete_file, files::share_file, gateway::ipfs, gateway::ipfs_path, files::folder_download,
        reset::send_reset_email, reset::verify_otp,
        node::file_status, node::work, node::done, node::failed, node::content, node::proof, node::deliver, node::node_status,
        tus::options, tus::create, tus::head, tus::patch, tus::overridden, tus::terminate),
    components(schemas(Message, TokenResponse, Health, RegisterRequest, LoginRequest, AndroidAuthRequest,
        DashboardResponse, OnboardingRequest, ActiveTimeRequest, RateInOutRequest,
        files::UploadResponse, files::Web3, files::UploadForm, files::FileEntry, files::CidRequest, files::UrlResponse, files::ShareRequest, files::ShareResponse,
        reset::StatusMessage, reset::StatusCapitalMessage, reset::SendResetRequest, reset::VerifyOtpRequest,
        node::WorkRequest, node::WorkResponse, node::TaskAnswer,
        crate::service::network::Task, crate::service::network::FileStatus, crate::service::network::Replica,
        crate::model::NodeStatus, crate::model::StorageCredit, crate::model::NetworkStatus)),
    modifiers(&TokenAuth),
)]
pub struct ApiDoc;

struct TokenAuth;

impl Modify for TokenAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "The JWT from /login or /android_auth, raw or as `Bearer <JWT>`.",
            ))),
        );
        components.add_security_scheme(
            "session cookie",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(ApiKeyValue::with_description(
                "peervault_session",
                "The web UI's session (resumable uploads from the /files page); needs `Tus-Resumable`, which no cross-site form can send.",
            ))),
        );
    }
}

pub async fn serve(axum::extract::State(state): axum::extract::State<crate::state::AppState>) -> axum::Json<Value> {
    axum::Json(document(&state.settings))
}

/// The document as served: generated, then completed for these settings.
pub fn document(settings: &Settings) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes to JSON");
    complete(&mut doc, settings);
    doc
}

/// Usernames, as `accounts::validate_username` takes them.
const USERNAME_PATTERN: &str = "^[A-Za-z0-9_.-]{3,32}$";
/// Passwords, as `accounts::validate_password` takes them (characters).
const MIN_PASSWORD_CHARS: usize = 8;
/// The CIDs the server hands out (`web3.cid`): base32 CIDv1, sha2-256, raw
/// leaf (`bafkrei…`) or dag-pb root (`bafybei…`): 36 bytes in 59 characters,
/// the last one's two padding bits zero.
const CID_PATTERN: &str = "^baf(?:kr|yb)ei[a-h][a-z2-7]{50}[aeimquy4]$";
/// A multipart part name: no control character but tab (one breaks the part's header).
const PART_NAME_PATTERN: &str = r"^[^\u0000-\u0008\u000a-\u001f\u007f]*$";
/// The paths whose GET renders a page of the web UI (see `app.rs`).
const PAGE_PATHS: [&str; 4] = ["/register", "/login", "/dashboard", "/onboarding"];

/// Emails, as `accounts::validate_email` takes them: one `@`, a local part of
/// 1 to 64 characters, a domain of two or more dot-separated labels, none
/// empty or starting or ending with `-`, no whitespace or control character
/// anywhere (Unicode White_Space and Cc); at most 254 characters in all.
fn email_pattern() -> String {
    const NOT_ALLOWED: &str = r"\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
    let local = format!("[^@{NOT_ALLOWED}]{{1,64}}");
    let edge = format!("[^@.{NOT_ALLOWED}-]");
    let inner = format!("[^@.{NOT_ALLOWED}]");
    let label = format!("{edge}(?:{inner}*{edge})?");
    format!("^{local}@{label}(?:\\.{label})+$")
}

/// The JSON pointer of a property of a component schema.
fn property(schema: &str, name: &str) -> String {
    format!("/components/schemas/{schema}/properties/{name}")
}

/// The JSON pointer of a path item (`/` in the path escaped as `~1`).
fn path_item(path: &str) -> String {
    format!("/paths/{}", path.replace('~', "~0").replace('/', "~1"))
}

/// Adds (or replaces) `keys` in the object at `pointer`; a pointer the
/// generated document lacks is left alone.
fn set(doc: &mut Value, pointer: &str, keys: Value) {
    if let (Some(Value::Object(target)), Value::Object(keys)) = (doc.pointer_mut(pointer), keys) {
        target.extend(keys);
    }
}

/// A number as JSON, whole ones without a fraction (`86400`, not `86400.0`).
fn number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() <= 9_007_199_254_740_991.0 {
        json!(value as i64)
    } else {
        json!(value)
    }
}

/// A JSON response of the component schema `schema`.
fn json_response(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

/// Completes the generated document with what the server enforces.
fn complete(doc: &mut Value, settings: &Settings) {
    let max_password = crate::service::accounts::MAX_PASSWORD_CHARS;

    // POST /register: the value rules of accounts::register.
    set(doc, &property("RegisterRequest", "username"), json!({"minLength": 3, "maxLength": 32, "pattern": USERNAME_PATTERN}));
    set(doc, &property("RegisterRequest", "password"), json!({"minLength": MIN_PASSWORD_CHARS, "maxLength": max_password}));
    set(doc, &property("RegisterRequest", "email"), json!({"maxLength": 254, "pattern": email_pattern()}));

    // POST /verify_otp: `password` or its alias `newPassword` is required
    // (null counts as missing), with the registration rules.
    for name in ["password", "newPassword"] {
        set(doc, &property("VerifyOtpRequest", name), json!({"type": "string", "minLength": MIN_PASSWORD_CHARS, "maxLength": max_password}));
    }
    set(doc, "/components/schemas/VerifyOtpRequest", json!({"anyOf": [{"required": ["password"]}, {"required": ["newPassword"]}]}));

    // The numbers: each route's range (a numeric string is read the same way).
    set(doc, &property("OnboardingRequest", "storageRented"), json!({"minimum": number(crate::service::devices::MIN_STORAGE_RENTED_MB), "maximum": number(settings.max_storage_rented_mb)}));
    set(doc, &property("ActiveTimeRequest", "active_time"),
        json!({"exclusiveMinimum": 0, "maximum": number(crate::service::uptime::MAX_ACTIVE_TIME_SECS)}));
    for name in ["TotalIn", "TotalOut", "RateIn", "RateOut"] {
        set(doc, &property("RateInOutRequest", name), json!({"minimum": 0, "maximum": number(super::MAX_TOTAL_BYTES)}));
    }

    // CIDs, in a body and in the gateway's path.
    set(doc, &property("CidRequest", "cid"), json!({"pattern": CID_PATTERN}));
    set(doc, &property("ShareRequest", "cid"), json!({"pattern": CID_PATTERN}));
    for route in ["/ipfs/{cid}", "/ipfs/{cid}/{path}", "/files/folder/download"] {
        let Some(Value::Array(params)) = doc.pointer_mut(&format!("{}/get/parameters", path_item(route))) else { continue };
        for param in params.iter_mut() {
            let name = param.get("name").and_then(Value::as_str).map(str::to_owned);
            match name.as_deref() {
                Some("cid") => set(param, "/schema", json!({"pattern": CID_PATTERN})),
                Some("format") => set(param, "/schema", json!({"enum": ["car", "raw"]})),
                _ => {}
            }
        }
    }

    // POST /upload_file: `name` (or `filename`) is text of at most 4096
    // bytes; other parts are read and ignored, but a part's name cannot
    // hold a control character.
    let name_part = json!({"type": "string", "maxLength": 4096});
    set(doc, &property("UploadForm", "name"), name_part.clone());
    set(doc, "/components/schemas/UploadForm/properties", json!({"filename": name_part}));
    set(doc, &property("UploadForm", "filename"), json!({"description": "The same as `name`."}));
    set(doc, "/components/schemas/UploadForm", json!({"propertyNames": {"pattern": PART_NAME_PATTERN}}));

    // POST /verify_otp answers a failed code with `Message` but a missing
    // field with `message` (as the seed has them).
    set(doc, &format!("{}/post/responses/400/content/application~1json", path_item("/verify_otp")), json!({"schema": {"oneOf": [
        {"$ref": "#/components/schemas/StatusCapitalMessage"},
        {"$ref": "#/components/schemas/StatusMessage"},
    ]}}));

    // What every route answers that is not in its annotation: 413 and 415
    // on the JSON routes (the body rules of `JsonObject`), 415 on the upload.
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for (path, item) in paths.iter_mut() {
            let Some(Value::Object(op)) = item.get_mut("post") else { continue };
            let takes_json = op.get("requestBody").and_then(|b| b.get("content")).and_then(|c| c.get("application/json")).is_some();
            let multipart = op.get("requestBody").and_then(|b| b.get("content")).and_then(|c| c.get("multipart/form-data")).is_some();
            let schema = if path == "/send_reset_email" || path == "/verify_otp" { "StatusMessage" } else { "Message" };
            let Some(Value::Object(responses)) = op.get_mut("responses") else { continue };
            if takes_json {
                responses.entry("413").or_insert_with(|| json_response("Body too large", schema));
                responses.entry("415").or_insert_with(|| json_response("A non-empty body that is not JSON", schema));
            }
            if multipart {
                responses.entry("415").or_insert_with(|| json_response("Not multipart/form-data with a boundary", schema));
            }
        }
    }

    // GET on the paths the web UI shares renders its page.
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for path in PAGE_PATHS {
            if let Some(Value::Object(item)) = paths.get_mut(path) {
                item.entry("get").or_insert_with(|| page(path));
            }
        }
    }
}

/// GET of a path that is also a page of the web UI.
fn page(path: &str) -> Value {
    let mut op = Map::new();
    op.insert("tags".into(), json!(["web"]));
    op.insert("summary".into(), json!("The page of the web UI (HTML, for browsers; never JSON)"));
    op.insert("operationId".into(), json!(format!("page_{}", path.trim_start_matches('/'))));
    op.insert(
        "responses".into(),
        json!({"200": {"description": "The HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}),
    );
    Value::Object(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every JSON route the router serves is in the document with the same
    /// methods: adding a route without documenting it fails here. (The
    /// router's table is read from its source, the one place routes are listed.)
    #[test]
    fn every_route_is_documented() {
        let source = include_str!("mod.rs");
        let table = &source[source.find("pub fn router()").expect("router()")..];
        let table = &table[..table.find("\n}").expect("end of router()")];
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("document");
        let mut seen = 0;
        for route in table.split(".route(\"").skip(1) {
            let (path, rest) = route.split_once('"').expect("a quoted path");
            if path == "/openapi.json" {
                continue; // the document itself
            }
            let path = &path.replace("{*", "{");
            let item = &doc["paths"][path];
            assert!(item.is_object(), "{path} is served but not in /openapi.json");
            for method in ["get", "post"] {
                let routed = rest.contains(&format!("{method}(")) || rest.contains(&format!("({method}("));
                assert_eq!(routed, item.get(method).is_some(), "{method} {path}: router and document disagree");
            }
            seen += 1;
        }
        assert!(seen >= 15, "only {seen} routes found in router()");
    }

    /// Every completion lands: a renamed schema, field or path would make `set` a silent no-op.
    #[test]
    fn the_completions_land() {
        let doc = document(&Settings::default());
        let at = |pointer: &str| doc.pointer(pointer).cloned().unwrap_or_else(|| panic!("the document has no {pointer}"));
        let rule = |schema: &str, name: &str, key: &str| at(&format!("{}/{key}", property(schema, name)));
        assert_eq!(rule("RegisterRequest", "username", "pattern"), json!(USERNAME_PATTERN));
        assert_eq!(rule("RegisterRequest", "password", "minLength"), json!(8));
        assert_eq!(rule("RegisterRequest", "email", "pattern"), json!(email_pattern()));
        assert_eq!(rule("VerifyOtpRequest", "password", "type"), json!("string"));
        assert_eq!(rule("VerifyOtpRequest", "newPassword", "minLength"), json!(8));
        assert!(at("/components/schemas/VerifyOtpRequest/anyOf").is_array());
        assert_eq!(rule("OnboardingRequest", "storageRented", "maximum"), json!(1_048_576));
        assert_eq!(rule("ActiveTimeRequest", "active_time", "exclusiveMinimum"), json!(0));
        assert_eq!(rule("ActiveTimeRequest", "active_time", "maximum"), json!(86_400));
        for name in ["TotalIn", "TotalOut", "RateIn", "RateOut"] {
            assert_eq!(rule("RateInOutRequest", name, "minimum"), json!(0));
        }
        assert_eq!(rule("CidRequest", "cid", "pattern"), json!(CID_PATTERN));
        assert_eq!(rule("UploadForm", "name", "type"), json!("string"));
        assert_eq!(rule("UploadForm", "filename", "maxLength"), json!(4096));
        assert!(at("/components/schemas/UploadForm/propertyNames/pattern").is_string());
        let params = at(&format!("{}/get/parameters", path_item("/ipfs/{cid}")));
        let param = |name: &str| params.as_array().and_then(|ps| ps.iter().find(|p| p["name"] == name)).cloned().expect(name);
        assert_eq!(param("cid")["schema"]["pattern"], json!(CID_PATTERN));
        assert_eq!(param("format")["schema"]["enum"], json!(["car", "raw"]));
        assert!(at(&format!("{}/post/responses/400/content/application~1json/schema/oneOf", path_item("/verify_otp"))).is_array());
        assert!(at(&format!("{}/post/responses/415", path_item("/upload_file"))).is_object());
        for path in ["/register", "/login", "/onboarding", "/send_reset_email", "/verify_otp"] {
            assert!(at(&format!("{}/post/responses/413", path_item(path))).is_object(), "{path}");
            assert!(at(&format!("{}/post/responses/415", path_item(path))).is_object(), "{path}");
        }
        for path in PAGE_PATHS {
            assert!(at(&format!("{}/get/responses/200/content/text~1html", path_item(path))).is_object(), "{path}");
        }
    }
}
