//! `GET /api/1/thirdparty/{channel}/{delegate}`: the delegation package for a monitoring service.

use super::ApiError;
use super::json::{address, hash};
use super::routes::{ApiResult, ApiState};
use crate::primitives::ChannelId;
use axum::Json;
use axum::extract::{Path, State};

/// The signed package of `channel` for `delegate` (SPEC §6, §8).
pub(super) async fn package(
    State(st): State<ApiState>,
    Path((id, delegate)): Path<(String, String)>,
) -> ApiResult {
    let id = ChannelId(hash(&id)?);
    let delegate = address(&delegate)?;
    let package = st
        .node
        .query_core(move |c| c.delegation_package(&id, delegate))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no channel {id}")))?;
    serde_json::to_value(package)
        .map(Json)
        .map_err(|e| ApiError::Internal(e.to_string()))
}
