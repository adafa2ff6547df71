//! `GET /api/1/openapi.json`: the REST API as an OpenAPI 3 document. `tests/api_openapi.rs`
//! compares it with the routes the router serves, so it cannot drift.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// `GET /api/1/openapi.json`.
pub(super) async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
