//! The node's HTTP surface without a chain: the OpenAPI document matches the routes the
//! router serves (so it cannot drift), and the local API's guard refuses a foreign `Host`, a
//! state-changing request from another origin's page, a missing token and an oversized body,
//! each with the SPEC §6 error body, while curl-like clients and the node's own page pass.
//!
//! The router runs on a loopback port with a node handle whose event loop is gone: a request
//! the guard lets through reaches its handler and fails there (500, "shutting down"), which
//! tells it apart from a refusal by the guard (401/403/413) or an unknown route (404/405).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use smartraiden::api::{ApiAccess, ApiState, BoxFuture, ChainOps, TransferLog, app};
use smartraiden::node::NodeHandle;
use smartraiden::primitives::{Address, H256, SecretHash, TokenAmount};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct NoChain;
impl ChainOps for NoChain {
    fn register_token(&self, _: Address) -> BoxFuture<Result<Address, String>> {
        Box::pin(async { Err("no chain in this test".into()) })
    }
    fn token_balance(&self, _: Address, _: Address) -> BoxFuture<Result<TokenAmount, String>> {
        Box::pin(async { Err("no chain in this test".into()) })
    }
    fn secret_registered(&self, _: SecretHash) -> BoxFuture<Result<Option<u64>, String>> {
        Box::pin(async { Ok(None) })
    }
}

struct NoHistory;
impl TransferLog for NoHistory {
    fn get(&self, _: &H256) -> Option<Value> {
        None
    }
    fn sent(&self) -> Result<Vec<u8>, String> {
        Ok(b"[]".to_vec())
    }
    fn received(&self) -> Result<Vec<u8>, String> {
        Ok(b"[]".to_vec())
    }
}

/// Serves the node's app with `access` on a free loopback port; its address.
async fn serve(access: ApiAccess) -> std::net::SocketAddr {
    let (work, _) = std::sync::mpsc::channel();
    let (notifications, _) = tokio::sync::broadcast::channel(16);
    let state = ApiState {
        node: NodeHandle::new(work),
        our_address: Address([7; 20]),
        chain: Arc::new(NoChain),
        history: Arc::new(NoHistory),
        notifications,
        shutdown: Arc::new(tokio::sync::Notify::new()),
        timeout: Duration::from_secs(1),
        default_settle_timeout: 100,
        lan: None,
        monitor: None,
        xmpp_login_error: Default::default(),
    };
    let (router, closing) = app(state, access);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _closing = closing;
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

/// One raw HTTP/1.1 request (so the test controls `Host` exactly); status and JSON body.
async fn raw(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    // The event stream never ends by itself: the headers and first bytes are enough.
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn local(addr: std::net::SocketAddr) -> String {
    addr.to_string()
}

/// `(METHOD, path)` of every `.route("path", get(..).post(..))` in the API's sources: what the
/// router serves (path literals are the rule there).
fn routes_in_sources() -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        let mut rest = src.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let open = rest.find('"').unwrap();
            let close = open + 1 + rest[open + 1..].find('"').unwrap();
            let route = rest[open + 1..close].to_owned();
            // The method router: the text up to the `)` closing `.route(`.
            let mut depth = 1;
            let mut end = close + 1;
            for (i, c) in rest[close + 1..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = close + 1 + i;
                    break;
                }
            }
            let methods = &rest[close + 1..end];
            // Method calls at the top level of the method router: `get(`, `.post(`…
            let mut depth = 0;
            let mut word = String::new();
            for c in methods.chars() {
                match c {
                    '(' => {
                        if depth == 0
                            && ["get", "post", "put", "patch", "delete"].contains(&word.as_str())
                        {
                            found.insert((word.to_uppercase(), route.clone()));
                        }
                        depth += 1;
                        word.clear();
                    }
                    ')' => {
                        depth -= 1;
                        word.clear();
                    }
                    c if c.is_alphanumeric() || c == '_' => word.push(c),
                    _ => word.clear(),
                }
            }
            rest = &rest[end..];
        }
    }
    found
}

fn documented() -> BTreeSet<(String, String)> {
    let doc: Value = serde_json::from_str(smartraiden::api::openapi::DOCUMENT).unwrap();
    let mut out = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            if method != "parameters" {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn every_route_the_router_serves_is_in_the_openapi_document_and_nothing_else() {
    let served: BTreeSet<_> = routes_in_sources()
        .into_iter()
        .filter(|(_, p)| p.starts_with("/api/"))
        .collect();
    assert!(
        served.len() >= 25,
        "the source scan found too few routes: {served:?}"
    );
    let doc = documented();
    let undocumented: Vec<_> = served.difference(&doc).collect();
    let unserved: Vec<_> = doc.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not described in src/api/openapi.json: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "described in src/api/openapi.json but not served: {unserved:?}"
    );
}

#[test]
fn the_openapi_document_is_well_formed() {
    let doc: Value = serde_json::from_str(smartraiden::api::openapi::DOCUMENT).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut ids = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let params: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        for (method, op) in ops.as_object().unwrap() {
            assert!(
                ids.insert(op["operationId"].as_str().unwrap().to_owned()),
                "duplicate operationId at {method} {path}"
            );
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            let declared: BTreeSet<String> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(declared, params, "path parameters of {method} {path}");
        }
    }
}

/// A sample value for a path parameter.
fn sample(param: &str) -> String {
    match param {
        "id" | "hash" | "channel" => format!("0x{}", "ab".repeat(32)),
        "on" => "true".into(),
        _ => format!("0x{}", "cd".repeat(20)),
    }
}

#[tokio::test]
async fn every_documented_operation_reaches_a_handler() {
    let addr = serve(ApiAccess::default()).await;
    for (method, path) in documented() {
        if path == "/api/1/stop" {
            continue;
        }
        let concrete: String = path
            .split('/')
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(p) => sample(p),
                    None => s.to_owned(),
                },
            )
            .collect::<Vec<_>>()
            .join("/");
        let concrete = if path.starts_with("/api/1/paths/") {
            format!("{concrete}?amount=1")
        } else {
            concrete
        };
        let (status, body) = raw(
            addr,
            &method,
            &concrete,
            &[("Host", &local(addr))],
            if method == "GET" { "" } else { "{}" },
        )
        .await;
        assert!(
            ![404, 405].contains(&status) || body["error_message"].as_str().is_some_and(|m| !m.starts_with("no such path") && !m.contains("does not take")),
            "{method} {concrete}: the router has no such operation ({status} {body})"
        );
    }
    let (status, body) = raw(addr, "GET", "/api/1/nothing", &[("Host", &local(addr))], "").await;
    assert_eq!(status, 404);
    assert_eq!(body["error_code"], 404, "{body}");
    let (status, body) = raw(
        addr,
        "DELETE",
        "/api/1/channels",
        &[("Host", &local(addr))],
        "",
    )
    .await;
    assert_eq!(status, 405);
    assert_eq!(body["error_code"], 405, "{body}");
}

#[tokio::test]
async fn a_host_that_is_not_this_machine_is_refused_unless_allowed() {
    let addr = serve(ApiAccess::default()).await;
    for host in ["evil.example", "evil.example:5001", "node1:5001"] {
        let (status, body) = raw(addr, "GET", "/api/1/address", &[("Host", host)], "").await;
        assert_eq!(status, 403, "{host}: {body}");
        assert_eq!(body["error_code"], 403);
        assert!(
            body["error_message"]
                .as_str()
                .unwrap()
                .contains("--api-allow-host")
        );
        let (status, _) = raw(addr, "GET", "/ui/", &[("Host", host)], "").await;
        assert_eq!(status, 403, "the page too, for {host}");
    }
    for host in [local(addr), format!("localhost:{}", addr.port())] {
        let (status, body) = raw(addr, "GET", "/api/1/address", &[("Host", &host)], "").await;
        assert_eq!(status, 200, "{host}: {body}");
    }
    let compose = serve(ApiAccess {
        allow_hosts: vec!["node1".into()],
        ..Default::default()
    })
    .await;
    let (status, _) = raw(
        compose,
        "GET",
        "/api/1/address",
        &[("Host", "node1:5001")],
        "",
    )
    .await;
    assert_eq!(status, 200, "an allowed service name");
}

#[tokio::test]
async fn a_page_of_another_origin_changes_nothing_and_the_own_page_and_curl_pass() {
    let addr = serve(ApiAccess::default()).await;
    let host = local(addr);
    let open = r#"{"partner_address":"0x1111111111111111111111111111111111111111","token_address":"0x2222222222222222222222222222222222222222","balance":1}"#;
    // Another local server's page (another port is another origin, though the same site).
    let foreign = [
        ("Host", host.as_str()),
        ("Origin", "http://127.0.0.1:8080"),
        ("Sec-Fetch-Site", "same-site"),
    ];
    for (method, path) in [
        ("PUT", "/api/1/channels"),
        (
            "POST",
            "/api/1/transfers/0x2222222222222222222222222222222222222222/0x1111111111111111111111111111111111111111",
        ),
        ("POST", "/api/1/stop"),
    ] {
        let (status, body) = raw(addr, method, path, &foreign, open).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert_eq!(body["error_code"], 403);
    }
    // A cross-site GET that changes the mode (an <img src=…>) carries no Origin.
    let (status, _) = raw(
        addr,
        "GET",
        "/api/1/switch/true",
        &[("Host", &host), ("Sec-Fetch-Site", "cross-site")],
        "",
    )
    .await;
    assert_eq!(status, 403);
    // The node's own page and a client without Origin reach the handler (which fails here
    // only because this test has no event loop).
    let own_origin = format!("http://{host}");
    for headers in [
        vec![
            ("Host", host.as_str()),
            ("Origin", own_origin.as_str()),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        vec![("Host", host.as_str())],
    ] {
        let (status, body) = raw(addr, "PUT", "/api/1/channels", &headers, open).await;
        assert_eq!(status, 500, "{headers:?}: {body}");
        assert!(
            body["error_message"]
                .as_str()
                .unwrap()
                .contains("shutting down")
        );
    }
}

#[tokio::test]
async fn with_a_token_every_api_request_needs_it_and_bodies_are_capped() {
    let addr = serve(ApiAccess {
        token: Some("correct horse".into()),
        ..Default::default()
    })
    .await;
    let host = local(addr);
    let (status, body) = raw(addr, "GET", "/api/1/address", &[("Host", &host)], "").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error_code"], 401);
    let (status, _) = raw(
        addr,
        "GET",
        "/api/1/address",
        &[("Host", &host), ("Authorization", "Bearer wrong")],
        "",
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = raw(
        addr,
        "GET",
        "/api/1/address",
        &[("Host", &host), ("Authorization", "Bearer correct horse")],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = raw(addr, "GET", "/ui/", &[("Host", &host)], "").await;
    assert_eq!(
        status, 200,
        "the page itself needs no token: it asks for one"
    );

    let big = format!("[{}]", vec!["{}"; 100_000].join(","));
    let (status, body) = raw(
        addr,
        "POST",
        "/api/1/updatenodes",
        &[("Host", &host), ("Authorization", "Bearer correct horse")],
        &big,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error_code"], 413);
}

#[tokio::test]
async fn the_page_is_served_with_a_policy_that_forbids_framing_and_foreign_scripts() {
    let addr = serve(ApiAccess::default()).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "GET /ui/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            local(addr)
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let lower = out.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 200"), "{out}");
    assert!(lower.contains("frame-ancestors 'none'"));
    assert!(lower.contains("x-frame-options: deny"));
    assert!(lower.contains("<script type=\"module\" src=\"app.js\">"));
    for file in ["app.js", "api.js", "amount.js", "qr.js", "style.css"] {
        let (status, _) = raw(
            addr,
            "GET",
            &format!("/ui/{file}"),
            &[("Host", &local(addr))],
            "",
        )
        .await;
        assert_eq!(status, 200, "{file}");
    }
}
