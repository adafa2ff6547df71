//! The node's whole HTTP surface: the SPEC §6 router, live events, the route preview, the
//! OpenAPI document and the desktop page, behind the local API's guard and a body limit.

use super::ApiError;
use super::events::{EventsState, events};
use super::guard::{ApiAccess, MAX_BODY_BYTES, guard};
use super::routes::{ApiState, router};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;

/// Ends every open event stream; call it when the server starts its graceful shutdown (an
/// open stream would hold it forever).
pub struct Closing(tokio::sync::watch::Sender<bool>);

impl Closing {
    /// Ends the event streams.
    pub fn close(&self) {
        let _ = self.0.send(true);
    }
}

/// The router the node serves, and the handle that ends its event streams.
pub fn app(state: ApiState, access: ApiAccess) -> (Router, Closing) {
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let live = Router::new()
        .route("/api/1/events", get(events))
        .with_state(EventsState {
            api: state.clone(),
            closing,
        });
    let preview = Router::new()
        .route(
            "/api/1/paths/{token}/{target}",
            get(super::preview::preview),
        )
        .with_state(state.clone());
    let page = Router::new()
        .route("/api/1/openapi.json", get(super::openapi::document))
        .route("/ui", get(super::ui::to_page))
        .route("/ui/", get(super::ui::file))
        .route("/ui/{file}", get(super::ui::file));
    let app = router(state)
        .merge(live)
        .merge(preview)
        .merge(page)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(access),
            guard,
        ));
    (app, Closing(closing_tx))
}

async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    ApiError::NotFound(format!(
        "no such path: {} (the API is described at /api/1/openapi.json)",
        uri.path()
    ))
    .into_response()
}

async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> axum::response::Response {
    ApiError::MethodNotAllowed(format!("{} does not take {method}", uri.path())).into_response()
}
