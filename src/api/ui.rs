//! The desktop page at `/ui/`: plain ES modules and one stylesheet, embedded in the binary (no
//! build step, nothing fetched from elsewhere). It talks to the node only through the REST API
//! and `GET /api/1/events`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

/// The page's files: path under `/ui/`, content type, bytes.
pub const FILES: &[(&str, &str, &str)] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_str!("ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/api.js"),
    ),
    (
        "amount.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/amount.js"),
    ),
    (
        "qr.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/qr.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("ui/style.css"),
    ),
];

/// Only our own files, no framing by other pages (clickjacking), no inline script.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `GET /ui`: to the page.
pub(super) async fn to_page() -> Redirect {
    Redirect::permanent("/ui/")
}

/// `GET /ui/{file}` and `GET /ui/`.
pub(super) async fn file(uri: axum::http::Uri) -> Response {
    let name = uri
        .path()
        .trim_start_matches("/ui/")
        .trim_start_matches("/ui");
    match FILES.iter().find(|(n, ..)| *n == name) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CONTENT_SECURITY_POLICY, CSP),
                (header::X_FRAME_OPTIONS, "DENY"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CACHE_CONTROL, "no-cache"),
                (header::REFERRER_POLICY, "no-referrer"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
