//! The SPEC §6 routes.

use super::ApiError;
use super::json::*;
use crate::core::{Action, ContractCall, NodeState, Notification, TransferRequest};
use crate::node::{NodeHandle, TransferOutcome};
use crate::primitives::{Address, BlockCount, ChannelId, H256, Secret, SecretHash, TokenAmount};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed future, for the object-safe [`ChainOps`].
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Chain operations the API needs that are not protocol actions.
pub trait ChainOps: Send + Sync + 'static {
    /// Creates (or finds) the token network of `token`; returns its address.
    fn register_token(&self, token: Address) -> BoxFuture<Result<Address, String>>;
    /// On-chain token balance of `who`.
    fn token_balance(&self, token: Address, who: Address)
    -> BoxFuture<Result<TokenAmount, String>>;
    /// The block in which the SecretRegistry registered the secret of `secrethash`, if any.
    fn secret_registered(&self, secrethash: SecretHash) -> BoxFuture<Result<Option<u64>, String>>;
}

/// Transfer records kept by the node's storage.
pub trait TransferLog: Send + Sync + 'static {
    /// The record of transfer `id`.
    fn get(&self, id: &H256) -> Option<Value>;
    /// Transfers we sent, oldest first, as a JSON array (built record by record: a long
    /// history must not be held in memory several times over).
    fn sent(&self) -> Result<Vec<u8>, String>;
    /// Transfers we received, oldest first, as a JSON array.
    fn received(&self) -> Result<Vec<u8>, String>;
}

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The event loop.
    pub node: NodeHandle,
    /// Our account.
    pub our_address: Address,
    /// Chain access.
    pub chain: Arc<dyn ChainOps>,
    /// Transfer history.
    pub history: Arc<dyn TransferLog>,
    /// Notifications, to wait for on-chain effects.
    pub notifications: tokio::sync::broadcast::Sender<Notification>,
    /// Fired by `POST /api/1/stop`.
    pub shutdown: Arc<tokio::sync::Notify>,
    /// How long a request waits for the chain or a `sync` transfer.
    pub timeout: Duration,
    /// Settle timeout of channels opened without one.
    pub default_settle_timeout: u64,
    /// The LAN transport's peers, when it runs.
    pub lan: Option<Arc<dyn super::offline::LanPeers>>,
    /// Pushes to a monitoring service (`--monitor`), shown in each channel's JSON.
    pub monitor: Option<Arc<crate::node::monitor_push::MonitorPush>>,
    /// The XMPP transport's last login refusal (key-bound logins, TLS), shown by the status.
    pub xmpp_login_error: crate::transport::xmpp::LoginErrorSlot,
}

/// The router of every SPEC §6 path.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/1/address", get(our_address))
        .route("/api/1/tokens", get(tokens))
        .route("/api/1/tokens/{token}", put(register_token))
        .route("/api/1/tokens/{token}/partners", get(partners))
        .route("/api/1/channels", get(channels).put(open_channel))
        .route("/api/1/channels/{id}", get(channel).patch(patch_channel))
        .route("/api/1/withdraw/{id}", put(withdraw))
        .route(
            "/api/1/transfers/allowrevealsecret",
            post(allow_reveal_secret),
        )
        .route("/api/1/transfers/{token}/{target}", post(transfer))
        .route("/api/1/transferstatus/{token}/{hash}", get(transfer_status))
        .route(
            "/api/1/transfercancel/{token}/{hash}",
            post(transfer_cancel),
        )
        .route("/api/1/secret", get(fresh_secret))
        .route("/api/1/registersecret", post(register_secret))
        .route("/api/1/querysenttransfer", get(sent_transfers))
        .route("/api/1/queryreceivedtransfer", get(received_transfers))
        .route("/api/1/debug/balance/{token}/{addr}", get(debug_balance))
        .route("/api/1/debug/outbox", get(debug_outbox))
        .route("/api/1/status", get(status))
        .route("/api/1/switch/{on}", get(super::offline::switch))
        .route(
            "/api/1/updatenodes",
            get(super::offline::list_nodes).post(super::offline::update_nodes),
        )
        .route(
            "/api/1/thirdparty/{id}/{delegate}",
            get(super::thirdparty::package),
        )
        .route("/api/1/stop", post(stop))
        .with_state(state)
}

pub(super) type ApiResult = Result<Json<Value>, ApiError>;

fn body<T>(r: Result<Json<T>, axum::extract::rejection::JsonRejection>) -> Result<T, ApiError> {
    r.map(|Json(v)| v)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// One channel as `GET /channels/{id}` shows it: the list's fields, the node's block and,
/// while closed, the block after which it can be settled.
fn channel_json(s: &NodeState, id: &ChannelId) -> Option<Value> {
    s.channel(id).map(|c| {
        let mut v = serde_json::to_value(ChannelJson::from(c)).expect("serializable");
        v["block_number"] = json!(s.block.0);
        if let Some(after) = c.settle_possible_after() {
            v["settle_after_block"] = json!(after.0);
        }
        v
    })
}

/// Waits until `pred` holds on the committed state, re-checking after every notification.
async fn wait_until<T: Send + 'static>(
    st: &ApiState,
    pred: impl Fn(&NodeState) -> Option<T> + Send + Sync + Clone + 'static,
) -> Result<T, ApiError> {
    wait_until_or_failed(st, st.notifications.subscribe(), pred, |_| false).await
}

/// As [`wait_until`], but ends with an error when a transaction `ours` recognises fails
/// (opening and depositing, which the node does not retry). `rx` must be subscribed before
/// the action that submits the transaction.
async fn wait_until_or_failed<T: Send + 'static>(
    st: &ApiState,
    mut rx: tokio::sync::broadcast::Receiver<Notification>,
    pred: impl Fn(&NodeState) -> Option<T> + Send + Sync + Clone + 'static,
    ours: impl Fn(&ContractCall) -> bool,
) -> Result<T, ApiError> {
    let deadline = tokio::time::Instant::now() + st.timeout;
    loop {
        let p = pred.clone();
        if let Some(v) = st.node.query(move |s| p(s)).await? {
            return Ok(v);
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(Notification::TransactionFailed { call, reason })) if ours(&call) => {
                return Err(ApiError::Conflict(format!(
                    "the transaction failed: {reason}"
                )));
            }
            Err(_) => {
                return Err(ApiError::Timeout(format!(
                    "the chain did not confirm within {:?}",
                    st.timeout
                )));
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                return Err(ApiError::Internal("the node is shutting down".into()));
            }
            Ok(_) => {}
        }
    }
}

async fn our_address(State(st): State<ApiState>) -> ApiResult {
    Ok(Json(json!({ "our_address": st.our_address.to_checksum() })))
}

async fn tokens(State(st): State<ApiState>) -> ApiResult {
    let list = st
        .node
        .query(|s| s.tokens.keys().map(|t| t.to_checksum()).collect::<Vec<_>>())
        .await?;
    Ok(Json(json!(list)))
}

async fn register_token(State(st): State<ApiState>, Path(token): Path<String>) -> ApiResult {
    let token = address(&token)?;
    let tn = st
        .chain
        .register_token(token)
        .await
        .map_err(ApiError::Conflict)?;
    wait_until(&st, move |s| s.tokens.contains_key(&token).then_some(())).await?;
    Ok(Json(json!({ "token_network_address": tn.to_checksum() })))
}

async fn partners(State(st): State<ApiState>, Path(token): Path<String>) -> ApiResult {
    let token = address(&token)?;
    let list = st
        .node
        .query(move |s| {
            let tn = s.tokens.get(&token)?;
            Some(
                s.token_networks[tn]
                    .channels
                    .values()
                    .map(|c| {
                        json!({
                            "partner_address": c.partner.address.to_checksum(),
                            "channel": format!("/api/1/channels/{}", c.identifier),
                        })
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("token {token} is not registered")))?;
    Ok(Json(json!(list)))
}

async fn channels(State(st): State<ApiState>) -> ApiResult {
    let list = st
        .node
        .query(|s| {
            s.channels()
                .map(|c| serde_json::to_value(ChannelJson::from(c)).expect("serializable"))
                .collect::<Vec<_>>()
        })
        .await?;
    Ok(Json(json!(list)))
}

async fn channel(State(st): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    let id = ChannelId(hash(&id)?);
    st.node
        .query_core(move |c| {
            channel_json(&c.state, &id).map(|mut v| {
                super::offline::add_channel_offline_fields(c, &id, &mut v);
                (v, c.forwards_waiting_for_monitor(&id))
            })
        })
        .await?
        .map(|(mut v, waiting)| {
            if let Some(m) = &st.monitor {
                v["monitor"] = m.channel_json(&id);
                v["monitor"]["forwards_waiting"] = waiting.into();
            }
            v
        })
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no channel {id}")))
}

async fn open_channel(
    State(st): State<ApiState>,
    b: Result<Json<OpenChannelBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let b = body(b)?;
    let (partner, token) = (address(&b.partner_address)?, address(&b.token_address)?);
    let deposit = b.balance.map(|a| a.0).unwrap_or_default();
    let settle_timeout = BlockCount(b.settle_timeout.unwrap_or(st.default_settle_timeout));
    let rx = st.notifications.subscribe();
    st.node
        .act(Action::OpenChannel {
            token,
            partner,
            deposit,
            settle_timeout,
        })
        .await?;
    let v = wait_until_or_failed(
        &st,
        rx,
        move |s| {
            let c = s.channel_with(&token, &partner)?;
            (c.our.deposit >= deposit)
                .then(|| channel_json(s, &c.identifier))
                .flatten()
        },
        move |call| matches!(call, ContractCall::OpenChannel { partner: p, .. } if *p == partner),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(v)))
}

async fn patch_channel(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    b: Result<Json<PatchChannelBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let id = ChannelId(hash(&id)?);
    let b = body(b)?;
    let last = st
        .node
        .query(move |s| channel_json(s, &id))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no channel {id}")))?;
    match (b.balance, b.state.as_deref()) {
        (Some(amount), None) => {
            let (before, partner) = st
                .node
                .query(move |s| s.channel(&id).map(|c| (c.our.deposit, c.partner.address)))
                .await?
                .unwrap_or_default();
            let rx = st.notifications.subscribe();
            st.node.act(Action::Deposit { channel: id, amount: amount.0 }).await?;
            let target = before.saturating_add(amount.0);
            Ok(Json(
                wait_until_or_failed(
                    &st,
                    rx,
                    move |s| {
                        s.channel(&id).filter(|c| c.our.deposit >= target).and_then(|_| channel_json(s, &id))
                    },
                    move |call| matches!(call, ContractCall::Deposit { partner: p, .. } if *p == partner),
                )
                .await?,
            ))
        }
        (None, Some("closed")) if b.force => {
            st.node.act(Action::Close { channel: id }).await?;
            Ok(Json(
                wait_until(&st, move |s| s.channel(&id).filter(|c| c.status.is_closed()).and_then(|_| channel_json(s, &id)))
                    .await?,
            ))
        }
        (None, Some("closed")) => {
            st.node.act(Action::CooperativeSettle { channel: id }).await?;
            wait_until(&st, move |s| s.channel(&id).is_none().then_some(())).await?;
            Ok(Json(settled(last)))
        }
        (None, Some("settled")) => {
            st.node.act(Action::Settle { channel: id }).await?;
            wait_until(&st, move |s| s.channel(&id).is_none().then_some(())).await?;
            Ok(Json(settled(last)))
        }
        _ => Err(ApiError::BadRequest(
            "give either {\"balance\": n}, {\"state\": \"closed\", \"force\": true}, {\"state\": \"closed\"} or {\"state\": \"settled\"}".into(),
        )),
    }
}

fn settled(mut last: Value) -> Value {
    last["state"] = json!("settled");
    last
}

async fn withdraw(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    b: Result<Json<WithdrawBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let id = ChannelId(hash(&id)?);
    let b = body(b)?;
    let epoch = st
        .node
        .query(move |s| s.channel(&id).map(|c| c.open_block_number))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no channel {id}")))?;
    let mut refusals = st.notifications.subscribe();
    st.node
        .act(Action::Withdraw {
            channel: id,
            amount: b.amount.0,
        })
        .await?;
    let done = wait_until(&st, move |s| {
        s.channel(&id)
            .filter(|c| c.open_block_number != epoch)
            .and_then(|_| channel_json(s, &id))
    });
    tokio::select! {
        v = done => Ok(Json(v?)),
        reason = async {
            loop {
                match refusals.recv().await {
                    Ok(Notification::ChannelRequestRefused { channel, reason }) if channel == id => return reason,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return "node stopped".to_string(),
                    _ => {}
                }
            }
        } => Err(ApiError::Conflict(format!("withdraw refused: {reason}"))),
    }
}

async fn transfer(
    State(st): State<ApiState>,
    Path((token, target)): Path<(String, String)>,
    b: Result<Json<TransferBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let (token, target) = (address(&token)?, address(&target)?);
    let b = body(b)?;
    let secret = b.secret.as_deref().map(hash).transpose()?.map(Secret);
    // A secret already public on chain lets anyone on the route claim the lock at once.
    if let Some(secret) = secret
        && !b.is_direct
        && let Some(block) = st
            .chain
            .secret_registered(secret.hash())
            .await
            .map_err(|e| ApiError::Internal(format!("checking the secret on chain: {e}")))?
    {
        return Err(ApiError::BadRequest(format!(
            "this secret was registered on chain in block {block}: anyone could claim the lock; use a fresh one (GET /api/1/secret)"
        )));
    }
    let req = TransferRequest {
        token,
        target,
        amount: b.amount.0,
        max_fee: b.fee.map(|f| f.0),
        is_direct: b.is_direct,
        secret,
        identifier: b.identifier,
    };
    // A sync transfer registers its end waiter with the action (one hand-off).
    let (notes, end) = if b.sync {
        let (notes, end) = st.node.start_transfer(req).await?;
        (notes, Some(end))
    } else {
        (st.node.act(Action::Transfer(req)).await?, None)
    };
    let (id, mut fee) = notes
        .iter()
        .find_map(|n| {
            if let Notification::TransferStarted { id, fee, .. } = n {
                Some((*id, *fee))
            } else {
                None
            }
        })
        .ok_or_else(|| ApiError::Internal("transfer started without an id".into()))?;
    if let Some(end) = end {
        let outcome = end.wait(st.timeout).await.map_err(|e| match e {
            // Sent and committed: it may still complete (a payee can hold the signed proof
            // without acknowledging it). Say so, so that nobody pays twice by retrying.
            crate::node::NodeError::Timeout(t) => ApiError::Timeout(format!(
                "transfer {id} was sent but has not completed within {t:?}; it may still \
                 complete, so do not send it again: follow it at \
                 /api/1/transferstatus/{}/{id}",
                token.to_checksum()
            )),
            other => other.into(),
        })?;
        match outcome {
            TransferOutcome::Success { fee: paid } => fee = paid,
            TransferOutcome::Failed(reason) => {
                return Err(ApiError::Conflict(format!("transfer failed: {reason}")));
            }
            TransferOutcome::Canceled => {
                return Err(ApiError::Conflict("transfer canceled".into()));
            }
        }
    }
    Ok(Json(json!({
        "initiator_address": st.our_address.to_checksum(),
        "target_address": target.to_checksum(),
        "token_address": token.to_checksum(),
        "amount": amount_json(b.amount.0),
        "fee": amount_json(fee),
        "lock_secret_hash": id.to_string(),
    })))
}

async fn transfer_status(
    State(st): State<ApiState>,
    Path((_token, h)): Path<(String, String)>,
) -> ApiResult {
    let id = hash(&h)?;
    st.history
        .get(&id)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no transfer {id}")))
}

async fn transfer_cancel(
    State(st): State<ApiState>,
    Path((_token, h)): Path<(String, String)>,
) -> ApiResult {
    let secrethash = SecretHash(hash(&h)?);
    st.node.act(Action::CancelTransfer { secrethash }).await?;
    Ok(Json(
        json!({ "lock_secret_hash": secrethash.to_string(), "status": "canceled" }),
    ))
}

async fn fresh_secret() -> ApiResult {
    let mut b = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    let secret = Secret(H256(b));
    Ok(Json(
        json!({ "secret": secret.to_string(), "lock_secret_hash": secret.hash().to_string() }),
    ))
}

async fn allow_reveal_secret(
    State(st): State<ApiState>,
    b: Result<Json<SecretHashBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let b = body(b)?;
    address(&b.token_address)?;
    let secrethash = SecretHash(hash(&b.lock_secret_hash)?);
    st.node
        .act(Action::AllowRevealSecret { secrethash })
        .await?;
    Ok(Json(json!({})))
}

async fn register_secret(
    State(st): State<ApiState>,
    b: Result<Json<RegisterSecretBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let b = body(b)?;
    if let Some(t) = &b.token_address {
        address(t)?;
    }
    let secret = Secret(hash(&b.secret)?);
    st.node.act(Action::RegisterSecret { secret }).await?;
    Ok(Json(
        json!({ "lock_secret_hash": secret.hash().to_string() }),
    ))
}

async fn sent_transfers(State(st): State<ApiState>) -> Result<Response, ApiError> {
    json_bytes(st.history.sent())
}

async fn received_transfers(State(st): State<ApiState>) -> Result<Response, ApiError> {
    json_bytes(st.history.received())
}

/// A JSON body already serialized.
fn json_bytes(body: Result<Vec<u8>, String>) -> Result<Response, ApiError> {
    let body = body.map_err(|e| ApiError::Internal(format!("transfer history: {e}")))?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// Messages sent and not yet acknowledged, in all and per recipient (a peer that stays
/// unreachable shows here).
async fn debug_outbox(State(st): State<ApiState>) -> ApiResult {
    let by_peer = st
        .node
        .query(|s| {
            let mut by_peer = std::collections::BTreeMap::<String, u64>::new();
            for p in s.delivery.all() {
                *by_peer.entry(p.to.to_checksum()).or_default() += 1;
            }
            by_peer
        })
        .await?;
    let total: u64 = by_peer.values().sum();
    Ok(Json(json!({ "unacknowledged": total, "by_peer": by_peer })))
}

/// The node's view of the chain: the block it has processed, the head the chain follower saw,
/// and why it takes on no new lock (`chain_behind`), if it does not.
async fn status(State(st): State<ApiState>) -> ApiResult {
    let (block, head, behind, unacknowledged) = st
        .node
        .query_core(|c| {
            (
                c.state.block.0,
                c.chain_view().head().map(|h| h.0),
                c.chain_behind(),
                c.state.delivery.len(),
            )
        })
        .await?;
    let mut v = json!({
        "our_address": st.our_address.to_checksum(),
        "block_number": block,
        "chain_head": head,
        "chain_behind": behind,
        "unacknowledged": unacknowledged,
    });
    if let (Value::Object(v), Value::Object(links)) =
        (&mut v, super::offline::status_fields(&st).await?)
    {
        v.extend(links);
    }
    Ok(Json(v))
}

async fn debug_balance(
    State(st): State<ApiState>,
    Path((token, who)): Path<(String, String)>,
) -> ApiResult {
    let (token, who) = (address(&token)?, address(&who)?);
    // Only a registered token is known to be a contract (another address has no balanceOf).
    if !st
        .node
        .query(move |s| s.tokens.contains_key(&token))
        .await?
    {
        return Err(ApiError::NotFound(format!(
            "token {token} is not registered"
        )));
    }
    let balance = st
        .chain
        .token_balance(token, who)
        .await
        .map_err(ApiError::Internal)?;
    Ok(Json(json!({ "balance": amount_json(balance) })))
}

async fn stop(State(st): State<ApiState>) -> ApiResult {
    st.shutdown.notify_waiters();
    Ok(Json(json!({ "stopping": true })))
}
