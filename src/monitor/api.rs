//! The monitor's HTTP API (JSON, SPEC §6 error shape):
//!
//! | method, path | |
//! |---|---|
//! | GET `/api/1/monitor/info` | address, chain id, limits, delegations held, block, follower health |
//! | POST `/api/1/monitor/delegations` | a signed [`DelegationPackage`] → 201 its status |
//! | GET `/api/1/monitor/delegations/{channel}` | status: scheduled block, duties, transactions |
//! | POST `/api/1/monitor/delegations/{channel}/withdraw` | `{"signature"}` of the delegator → 200 |

use super::decide::{Duty, Watch};
use super::service::{Command, MonitorContext};
use crate::api::ApiError;
use crate::api::json::hash;
use crate::crypto::recover_eip191;
use crate::delegation::DelegationPackage;
use crate::primitives::{ChainId, ChannelId, Nonce, Signature};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// Largest request body accepted (a package with the item limit fits many times over).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

type ApiResult = Result<Json<Value>, ApiError>;

/// The monitor's router.
pub fn router(ctx: MonitorContext) -> Router {
    Router::new()
        .route("/api/1/monitor/info", get(info))
        .route("/api/1/monitor/delegations", post(submit))
        .route("/api/1/monitor/delegations/{channel}", get(status))
        .route(
            "/api/1/monitor/delegations/{channel}/withdraw",
            post(withdraw),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(ctx)
}

/// The bytes a delegator signs (EIP-191) to withdraw its delegation of `channel` at `nonce`
/// from `delegate`.
pub fn withdraw_bytes(
    delegate: crate::primitives::Address,
    chain_id: ChainId,
    channel: ChannelId,
    nonce: Nonce,
) -> Vec<u8> {
    let mut d = b"SmartRaiden withdraw delegation v1".to_vec();
    d.extend_from_slice(&delegate.0);
    d.extend_from_slice(&chain_id.0.to_be_bytes());
    d.extend_from_slice(channel.as_bytes());
    d.extend_from_slice(&nonce.0.to_be_bytes());
    d
}

fn duty_json(d: &Duty) -> Value {
    match d {
        Duty::Idle => json!({"state": "waiting"}),
        Duty::InFlight { since } => json!({"state": "sending", "since_block": since.0}),
        Duty::Done { tx: Some(tx) } => json!({"state": "done", "tx": tx.to_string()}),
        Duty::Done { tx: None } => json!({"state": "done_by_others"}),
    }
}

/// A delegation's status.
pub fn watch_json(w: &Watch) -> Value {
    let p = &w.package;
    let per_lock = |duties: &std::collections::BTreeMap<_, Duty>| -> Vec<Value> {
        duties
            .iter()
            .map(|(h, d): (&crate::primitives::SecretHash, &Duty)| {
                let mut v = duty_json(d);
                v["secrethash"] = json!(h.to_string());
                v
            })
            .collect()
    };
    let unlocks = per_lock(&w.unlocks);
    let registrations = per_lock(&w.registrations);
    json!({
        "channel_identifier": p.channel_identifier.to_string(),
        "token_network": p.token_network.to_checksum(),
        "delegator": p.delegator.to_checksum(),
        "partner": p.partner.to_checksum(),
        "nonce": p.nonce().0,
        "open_block_number": p.open_block_number.0,
        "closed_block": w.closed.map(|c| c.block.0),
        "closed_by": w.closed.and_then(|c| c.by).map(|a| a.to_checksum()),
        "update_scheduled_block": w.update_from().map(|b| b.0),
        "settle_block": w.settle_block().map(|b| b.0),
        "update": duty_json(&w.update),
        "unlocks": unlocks,
        "registrations": registrations,
        "punish": duty_json(&w.punish),
        "settle_from_block": w.settle_from().map(|b| b.0),
        "settle": duty_json(&w.settle),
        "last_failure": w.last_failure,
    })
}

fn stopped() -> ApiError {
    ApiError::Internal("the monitor is stopping".into())
}

async fn info(State(ctx): State<MonitorContext>) -> ApiResult {
    let (delegations, block) = ctx
        .read(|s| (s.watches.len(), s.block.0))
        .await
        .ok_or_else(stopped)?;
    let follower = ctx.follower.borrow().clone();
    Ok(Json(json!({
        "address": ctx.address.to_checksum(),
        "chain_id": ctx.chain_id.0,
        "delegations": delegations,
        "block": block,
        "chain": {
            "head": follower.head,
            "failures": follower.consecutive_failures,
            "last_error": follower.last_error,
        },
        "limits": {
            "per_delegator": ctx.limits.per_delegator,
            "items_per_package": ctx.limits.items_per_package,
            "max_body_bytes": MAX_BODY_BYTES,
        },
    })))
}

async fn submit(
    State(ctx): State<MonitorContext>,
    body: Result<Json<DelegationPackage>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // 409 with the SPEC §6 error body, plus `"already_held"`: whether the service or the chain
    // holds this proof or a newer one (nothing more for the delegator to hand over).
    let Json(package) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    package
        .verify(ctx.address, ctx.chain_id, ctx.limits.items_per_package)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (facts, registered, obsolete) = tokio::try_join!(
        super::service::chain_facts(&ctx, &package),
        super::service::registered_secrets(&ctx, &package),
        super::service::obsolete_unlocks(&ctx, &package),
    )
    .map_err(|e| ApiError::Internal(format!("reading the chain: {e}")))?;
    let (reply, rx) = oneshot::channel();
    ctx.commands
        .send(Command::Submit {
            package: Box::new(package),
            facts,
            registered,
            obsolete,
            reply,
        })
        .map_err(|_| stopped())?;
    match rx.await.map_err(|_| stopped())? {
        Ok(w) => Ok((StatusCode::CREATED, Json(watch_json(&w)))),
        Err(refusal) => Ok((
            StatusCode::CONFLICT,
            Json(json!({
                "error_code": 409,
                "error_message": refusal.to_string(),
                "already_held": refusal.already_held(),
            })),
        )),
    }
}

async fn status(State(ctx): State<MonitorContext>, Path(channel): Path<String>) -> ApiResult {
    let channel = ChannelId(hash(&channel)?);
    ctx.read(move |s| s.watches.get(&channel).map(watch_json))
        .await
        .ok_or_else(stopped)?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no delegation for channel {channel}")))
}

#[derive(Deserialize)]
struct WithdrawBody {
    signature: String,
}

async fn withdraw(
    State(ctx): State<MonitorContext>,
    Path(channel): Path<String>,
    body: Result<Json<WithdrawBody>, JsonRejection>,
) -> ApiResult {
    let channel = ChannelId(hash(&channel)?);
    let Json(b) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let signature: Signature = b
        .signature
        .parse()
        .map_err(|_| ApiError::BadRequest("signature: not 65 hex bytes".into()))?;
    let held = ctx
        .read(move |s| {
            s.watches
                .get(&channel)
                .map(|w| (w.package.delegator, w.package.nonce()))
        })
        .await
        .ok_or_else(stopped)?
        .ok_or_else(|| ApiError::NotFound(format!("no delegation for channel {channel}")))?;
    let (delegator, nonce) = held;
    let signer = recover_eip191(
        &withdraw_bytes(ctx.address, ctx.chain_id, channel, nonce),
        &signature,
    )
    .ok();
    if signer != Some(delegator) {
        return Err(ApiError::BadRequest(
            "the withdraw is not signed by the delegator".into(),
        ));
    }
    let (reply, rx) = oneshot::channel();
    ctx.commands
        .send(Command::Withdraw {
            channel,
            delegator,
            reply,
        })
        .map_err(|_| stopped())?;
    if rx.await.map_err(|_| stopped())? {
        Ok(Json(json!({"withdrawn": channel.to_string()})))
    } else {
        Err(ApiError::NotFound(format!(
            "no delegation for channel {channel}"
        )))
    }
}
