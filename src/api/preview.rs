//! `GET /api/1/paths/{token}/{target}?amount=N[&fee=MAX][&is_direct=true]`: the route and the
//! fees a payment would take if it started now (Photon's `/path`), answered by the core's own
//! route choice ([`Core::preview_transfer`](crate::core::Core::preview_transfer)), so the page
//! shows before paying exactly what the payment will do, or the refusal it would meet.

use super::ApiError;
use super::json::{Amount, address, amount_json};
use super::routes::{ApiResult, ApiState};
use crate::core::TransferRequest;
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::json;

/// The query of a preview: the fields of a transfer body that choose its route.
#[derive(Deserialize)]
pub struct PreviewQuery {
    /// What the target would receive (decimal integer).
    pub amount: Option<String>,
    /// Most the payer would pay in fees.
    pub fee: Option<String>,
    /// A direct transfer to a partner.
    pub is_direct: Option<String>,
}

fn amount_param(name: &str, text: &str) -> Result<Amount, ApiError> {
    serde_json::from_value::<Amount>(json!(text))
        .map_err(|e| ApiError::BadRequest(format!("{name}: {e}")))
}

/// `GET /api/1/paths/{token}/{target}`.
pub(super) async fn preview(
    State(st): State<ApiState>,
    Path((token, target)): Path<(String, String)>,
    q: Result<Query<PreviewQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (token, target) = (address(&token)?, address(&target)?);
    let amount = amount_param(
        "amount",
        q.amount
            .as_deref()
            .ok_or_else(|| ApiError::BadRequest("give ?amount=N".into()))?,
    )?;
    let fee = q
        .fee
        .as_deref()
        .map(|f| amount_param("fee", f))
        .transpose()?;
    let is_direct = match q.is_direct.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "is_direct takes true or false, not {other:?}"
            )));
        }
    };
    let req = TransferRequest {
        token,
        target,
        amount: amount.0,
        max_fee: fee.map(|f| f.0),
        is_direct,
        secret: None,
        identifier: None,
    };
    let (p, block) = st
        .node
        .query_core(move |c| (c.preview_transfer(&req), c.state.block.0))
        .await?;
    let p = p?;
    Ok(Json(json!({
        "token_address": token.to_checksum(),
        "target_address": target.to_checksum(),
        "amount": amount_json(amount.0),
        "fee": amount_json(p.fee),
        "total": amount_json(p.total),
        "is_direct": p.direct,
        "channel_identifier": p.channel.to_string(),
        "path": p.path.iter().map(|a| a.to_checksum()).collect::<Vec<_>>(),
        "hops": p.path.len(),
        "block_number": block,
    })))
}
