//! No-internet mode and LAN peers: `GET /api/1/switch/{bool}`, `POST /api/1/updatenodes`
//! (and `GET` of the same path to list the LAN peers), and the offline fields of the status.

use super::ApiError;
use super::routes::{ApiResult, ApiState};
use crate::core::{Action, Core};
use crate::primitives::Address;
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;

/// The LAN transport's peers, as the API manages them (persisted by the implementation).
pub trait LanPeers: Send + Sync + 'static {
    /// Adds or moves peers (`Some(ip_port)`) and removes them (`None`); persists the manual
    /// list before applying it.
    fn update(&self, peers: Vec<(Address, Option<SocketAddr>)>) -> Result<(), String>;
    /// Every peer the LAN transport knows, with how it was found and whether it is connected.
    fn list(&self) -> Value;
    /// Where the LAN transport listens.
    fn listen_address(&self) -> SocketAddr;
}

/// One entry of the `POST /api/1/updatenodes` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    /// The peer's address.
    pub address: String,
    /// `"ip:port"` of its LAN transport; `null` removes the peer.
    pub ip_port: Option<String>,
}

/// Unix time in milliseconds: the core's clock (see `node::runtime`).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The no-internet fields of the status and of a channel, read at the current time.
pub(super) fn offline_json(core: &Core, now_ms: u64) -> Value {
    let mode = core.no_internet_at(now_ms);
    json!({
        "no_internet": mode.is_some(),
        "no_internet_reason": mode.map(|m| m.describe()),
        "xmpp_connected": core.xmpp_connected(),
        "last_block_age_s": core.chain_silence_ms_at(now_ms).map(|ms| ms / 1000),
    })
}

/// Adds the node-wide offline fields and the channel's own limit to a channel's JSON.
pub(super) fn add_channel_offline_fields(
    core: &Core,
    channel: &crate::primitives::ChannelId,
    v: &mut Value,
) {
    let now = unix_ms();
    if let (Value::Object(target), Value::Object(extra)) = (&mut *v, offline_json(core, now)) {
        target.extend(extra);
    }
    v["offline_receive_limit_s"] =
        json!(core.offline_receive_limit_ms(*channel).map(|ms| ms / 1000));
    // Whether routing counts the partner as reachable (presence, possibly across federated
    // servers; unknown counts as reachable).
    if let Some(ch) = core.state.channel(channel) {
        v["partner_reachable"] = json!(core.state.is_reachable(&ch.partner.address));
    }
}

/// `GET /api/1/status` fields about the links.
pub(super) async fn status_fields(st: &ApiState) -> Result<Value, ApiError> {
    let now = unix_ms();
    let mut v = st.node.query_core(move |c| offline_json(c, now)).await?;
    v["xmpp_login_error"] = json!(st.xmpp_login_error.get());
    if let Some(lan) = &st.lan {
        v["lan"] = json!({
            "listen": lan.listen_address().to_string(),
            "peers": lan.list(),
        });
    }
    Ok(v)
}

/// `GET /api/1/switch/{true|false}`.
pub(super) async fn switch(State(st): State<ApiState>, Path(on): Path<String>) -> ApiResult {
    let on = match on.as_str() {
        "true" => true,
        "false" => false,
        other => {
            return Err(ApiError::BadRequest(format!(
                "switch takes true or false, not {other:?}"
            )));
        }
    };
    st.node.act(Action::SetNoInternet(on)).await?;
    let now = unix_ms();
    Ok(Json(
        st.node.query_core(move |c| offline_json(c, now)).await?,
    ))
}

/// `POST /api/1/updatenodes` with `[{"address", "ip_port"}]`.
pub(super) async fn update_nodes(
    State(st): State<ApiState>,
    b: Result<Json<Vec<NodeEntry>>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(entries) = b.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if entries.len() > 1024 {
        return Err(ApiError::BadRequest(
            "at most 1024 peers per request".into(),
        ));
    }
    let mut peers = Vec::with_capacity(entries.len());
    for e in entries {
        let address = super::json::address(&e.address)?;
        if address == st.our_address {
            return Err(ApiError::BadRequest("that is our own address".into()));
        }
        let at = e
            .ip_port
            .map(|s| {
                s.parse::<SocketAddr>().map_err(|err| {
                    ApiError::BadRequest(format!("ip_port {s:?} is not ip:port: {err}"))
                })
            })
            .transpose()?;
        peers.push((address, at));
    }
    let lan = st
        .lan
        .as_ref()
        .ok_or_else(|| ApiError::Conflict("the LAN transport is off (--lan-listen)".into()))?;
    lan.update(peers).map_err(ApiError::Internal)?;
    Ok(Json(lan.list()))
}

/// `GET /api/1/updatenodes`: the LAN peers.
pub(super) async fn list_nodes(State(st): State<ApiState>) -> ApiResult {
    match &st.lan {
        Some(lan) => Ok(Json(lan.list())),
        None => Ok(Json(json!([]))),
    }
}
