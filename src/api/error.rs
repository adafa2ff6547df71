//! [`ApiError`]: one place that maps every failure to an HTTP status and SPEC §6 error body.

use crate::core::ActionError;
use crate::node::NodeError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An API failure with its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 404: no such token, channel or transfer.
    #[error("{0}")]
    NotFound(String),
    /// 409: conflicts with the state (insufficient balance, no route, wrong channel state).
    #[error("{0}")]
    Conflict(String),
    /// 408: no answer in time.
    #[error("{0}")]
    Timeout(String),
    /// 500: something broke inside the node.
    #[error("{0}")]
    Internal(String),
    /// 401: the node wants its API token (`--api-token-file`) and the request lacks it.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: refused by the local API's guard (a foreign `Host` or `Origin`).
    #[error("{0}")]
    Forbidden(String),
    /// 413: the request body is larger than the API accepts.
    #[error("{0}")]
    TooLarge(String),
    /// 405: the path exists but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, u16) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, 400),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, 404),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, 409),
            ApiError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, 408),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, 500),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, 401),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, 403),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, 413),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, 405),
        }
    }
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::UnknownToken(_)
            | ActionError::UnknownChannel(_)
            | ActionError::UnknownTransfer(_) => ApiError::NotFound(e.to_string()),
            ActionError::Invalid(_) => ApiError::BadRequest(e.to_string()),
            ActionError::ChannelExists(_)
            | ActionError::ChannelState(_)
            | ActionError::InsufficientBalance { .. }
            | ActionError::NoRoute(_)
            | ActionError::TooLate(_)
            | ActionError::DuplicateSecret
            | ActionError::DuplicateTransfer(_)
            | ActionError::ChainBehind(_)
            | ActionError::NoInternet(_) => ApiError::Conflict(e.to_string()),
        }
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Action(a) => a.into(),
            NodeError::Timeout(_) => ApiError::Timeout(e.to_string()),
            NodeError::Stopped => ApiError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = serde_json::json!({ "error_code": code, "error_message": self.to_string() });
        (status, Json(body)).into_response()
    }
}
