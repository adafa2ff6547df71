//! The local API's guard, so that a web page in the user's browser cannot move the user's
//! tokens: the `Host` header must name this machine (DNS rebinding), a browser request from
//! another origin may change nothing (`Origin`, `Sec-Fetch-Site`), an optional bearer token
//! (`--api-token-file`), and a cap on request bodies. Refusals carry the SPEC §6 error body.

use super::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Largest request body the API reads (the largest legitimate one, 1,024 LAN peers in
/// `POST /api/1/updatenodes`, is about 100 kB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Who may use the API besides a client on this machine.
#[derive(Clone, Debug, Default)]
pub struct ApiAccess {
    /// Host names (without port) accepted in the `Host` header besides IP literals and
    /// `localhost`, e.g. a docker-compose service name; `*` accepts any.
    pub allow_hosts: Vec<String>,
    /// Origins (`http://host:port`) whose pages may call the API besides the node's own.
    pub allow_origins: Vec<String>,
    /// When set, every `/api/` request must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

/// The host name of a `Host` header value, without its port (`[::1]:5001` → `::1`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    })
}

impl ApiAccess {
    /// Whether a `Host` header names this node: an IP literal (DNS rebinding always presents
    /// the attacker's name, never an address), `localhost`, or an allowed name.
    pub fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host).trim_end_matches('.').to_ascii_lowercase();
        name.parse::<std::net::IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self
                .allow_hosts
                .iter()
                .any(|h| h == "*" || h.eq_ignore_ascii_case(&name))
    }

    /// Whether a page of `origin` may call the API reached as `host`: its own origin, or one
    /// allowed by the user.
    fn origin_allowed(&self, origin: &str, host: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        origin.eq_ignore_ascii_case(&format!("http://{host}"))
            || self
                .allow_origins
                .iter()
                .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    }

    /// Why `headers` of a `method` request to `path` are refused, if they are.
    pub fn check(&self, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), ApiError> {
        let text = |name: header::HeaderName| {
            headers
                .get(name)
                .map(|v| v.to_str().unwrap_or("\u{fffd}").to_owned())
        };
        let host = text(header::HOST).unwrap_or_default();
        if !self.host_allowed(&host) {
            return Err(ApiError::Forbidden(format!(
                "Host {host:?} is not this machine; a page that renamed this node could reach it \
                 (DNS rebinding). To reach the node by that name, start it with \
                 --api-allow-host {}",
                host_name(&host)
            )));
        }
        let origin = text(header::ORIGIN);
        let foreign_origin = origin
            .as_deref()
            .is_some_and(|o| !self.origin_allowed(o, &host));
        let state_changing = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if path.starts_with("/api/") {
            if state_changing && foreign_origin {
                return Err(ApiError::Forbidden(format!(
                    "a page of origin {} may not change this node (only its own page at \
                     http://{host}/ui/ may; see --api-allow-origin)",
                    origin.unwrap_or_default()
                )));
            }
            // Fetch metadata: a browser says where a request comes from even where it sends
            // no Origin (a GET by <img>, a form, a script of another site).
            let site = text(header::HeaderName::from_static("sec-fetch-site"));
            if let Some(site) = site
                && site != "same-origin"
                && site != "none"
                && (origin.is_none() || foreign_origin)
            {
                return Err(ApiError::Forbidden(format!(
                    "a request from another site ({site}) may not use this node's API"
                )));
            }
            if let Some(token) = &self.token {
                let given = text(header::AUTHORIZATION).unwrap_or_default();
                let given = given.strip_prefix("Bearer ").unwrap_or_default();
                if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
                    return Err(ApiError::Unauthorized(
                        "this node wants its API token: Authorization: Bearer <the first line of \
                         the --api-token-file>"
                            .into(),
                    ));
                }
            }
        }
        let declared = text(header::CONTENT_LENGTH).and_then(|l| l.trim().parse::<u64>().ok());
        if declared.is_some_and(|l| l > MAX_BODY_BYTES as u64) {
            return Err(ApiError::TooLarge(format!(
                "request bodies are limited to {MAX_BODY_BYTES} bytes"
            )));
        }
        Ok(())
    }
}

/// Compares without an early exit, so the time taken says nothing about the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware: refuses before any handler runs.
pub(super) async fn guard(
    State(access): State<Arc<ApiAccess>>,
    request: Request,
    next: Next,
) -> Response {
    match access.check(request.method(), request.uri().path(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => {
            log::debug!(
                "API guard refused {} {}: {e}",
                request.method(),
                request.uri().path()
            );
            e.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn host_names_of_this_machine_pass_and_others_need_the_allowlist() {
        let open = ApiAccess::default();
        for ok in [
            "127.0.0.1:5001",
            "localhost:5001",
            "[::1]:5001",
            "192.168.1.7",
            "LOCALHOST",
        ] {
            assert!(open.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example:5001",
            "node1:5001",
            "127.0.0.1.evil.example",
            "",
        ] {
            assert!(!open.host_allowed(bad), "{bad}");
        }
        let compose = ApiAccess {
            allow_hosts: vec!["node1".into()],
            ..Default::default()
        };
        assert!(compose.host_allowed("node1:5001"));
        assert!(!compose.host_allowed("node2:5001"));
    }

    #[test]
    fn another_origin_changes_nothing_and_the_own_page_may() {
        let a = ApiAccess::default();
        let put = Method::PUT;
        let own = headers(&[
            ("host", "127.0.0.1:5001"),
            ("origin", "http://127.0.0.1:5001"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert!(a.check(&put, "/api/1/channels", &own).is_ok());
        let other = headers(&[
            ("host", "127.0.0.1:5001"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-site"),
        ]);
        assert!(matches!(
            a.check(&put, "/api/1/channels", &other),
            Err(ApiError::Forbidden(_))
        ));
        let cross_get = headers(&[("host", "127.0.0.1:5001"), ("sec-fetch-site", "cross-site")]);
        assert!(
            a.check(&Method::GET, "/api/1/switch/true", &cross_get)
                .is_err()
        );
        let curl = headers(&[("host", "127.0.0.1:5001")]);
        assert!(a.check(&put, "/api/1/channels", &curl).is_ok());
        let allowed = ApiAccess {
            allow_origins: vec!["http://127.0.0.1:8080".into()],
            ..Default::default()
        };
        assert!(allowed.check(&put, "/api/1/channels", &other).is_ok());
    }

    #[test]
    fn a_token_is_required_on_the_api_but_not_on_the_page() {
        let a = ApiAccess {
            token: Some("s3cret".into()),
            ..Default::default()
        };
        let bare = headers(&[("host", "127.0.0.1:5001")]);
        assert!(matches!(
            a.check(&Method::GET, "/api/1/address", &bare),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(a.check(&Method::GET, "/ui/", &bare).is_ok());
        let with = headers(&[
            ("host", "127.0.0.1:5001"),
            ("authorization", "Bearer s3cret"),
        ]);
        assert!(a.check(&Method::GET, "/api/1/address", &with).is_ok());
        let wrong = headers(&[
            ("host", "127.0.0.1:5001"),
            ("authorization", "Bearer s3cre"),
        ]);
        assert!(a.check(&Method::GET, "/api/1/address", &wrong).is_err());
    }
}
