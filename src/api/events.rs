//! `GET /api/1/events`: the node's notifications as server-sent events, for the desktop page.
//! The REST API stays the source of truth: an event says what changed, and a listener that
//! fell behind gets a `resync` event telling it to read the state again.

use super::json::amount_json;
use super::routes::ApiState;
use crate::core::Notification;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// How often a listener's stream looks at the node's block (a `block` event when it moved).
const BLOCK_POLL: Duration = Duration::from_millis(500);

/// What the events route shares: the API, and a signal that ends every stream when the node
/// stops (an open stream would otherwise hold the server's graceful shutdown forever).
#[derive(Clone)]
pub struct EventsState {
    /// The API's state.
    pub api: ApiState,
    /// Turns true when the node stops.
    pub closing: tokio::sync::watch::Receiver<bool>,
}

/// The event name and JSON body of a notification.
pub fn notification_event(n: &Notification) -> (&'static str, Value) {
    match n {
        Notification::TransferStarted {
            id,
            token,
            target,
            amount,
            fee,
        } => (
            "transfer_started",
            json!({
                "lock_secret_hash": id.to_string(),
                "token_address": token.to_checksum(),
                "target_address": target.to_checksum(),
                "amount": amount_json(*amount),
                "fee": amount_json(*fee),
            }),
        ),
        Notification::TransferSucceeded { id, fee } => (
            "transfer_succeeded",
            json!({ "lock_secret_hash": id.to_string(), "fee": amount_json(*fee) }),
        ),
        Notification::TransferFailed { id, reason } => (
            "transfer_failed",
            json!({ "lock_secret_hash": id.to_string(), "reason": reason }),
        ),
        Notification::TransferCanceled { id } => (
            "transfer_canceled",
            json!({ "lock_secret_hash": id.to_string() }),
        ),
        Notification::TransferAwaitingSecretRelease { id } => (
            "transfer_awaiting_secret_release",
            json!({ "lock_secret_hash": id.to_string() }),
        ),
        Notification::PaymentReceived {
            id,
            token,
            initiator,
            amount,
        } => (
            "payment_received",
            json!({
                "lock_secret_hash": id.to_string(),
                "token_address": token.to_checksum(),
                "initiator_address": initiator.to_checksum(),
                "amount": amount_json(*amount),
            }),
        ),
        Notification::MediationCompleted { id, fee } => (
            "mediation_completed",
            json!({ "lock_secret_hash": id.to_string(), "fee": amount_json(*fee) }),
        ),
        Notification::ChannelChanged { channel, what } => (
            "channel_changed",
            json!({ "channel_identifier": channel.to_string(), "what": what }),
        ),
        Notification::MessageRejected { from, kind, reason } => (
            "message_rejected",
            json!({
                "from": from.map(|a| a.to_checksum()),
                "kind": kind,
                "reason": reason,
            }),
        ),
        Notification::TransactionFailed { call, reason } => (
            "transaction_failed",
            json!({ "call": call_name(call), "reason": reason }),
        ),
        Notification::ChannelRequestRefused { channel, reason } => (
            "channel_request_refused",
            json!({ "channel_identifier": channel.to_string(), "reason": reason }),
        ),
    }
}

/// The contract function of a call (`OpenChannel`, `Deposit`…), without its arguments.
fn call_name(call: &crate::core::ContractCall) -> String {
    let text = format!("{call:?}");
    text.split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn event(name: &str, data: &Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

/// One listener's feed.
struct Feed {
    st: EventsState,
    rx: tokio::sync::broadcast::Receiver<Notification>,
    tick: tokio::time::Interval,
    last_block: Option<u64>,
    greeted: bool,
}

/// `GET /api/1/events`: `ready` first, then one event per notification (named as
/// [`notification_event`]), `block` when the node's block moves, and `resync` when this
/// listener missed notifications (read the state again).
pub(super) async fn events(
    State(st): State<EventsState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let feed = Feed {
        rx: st.api.notifications.subscribe(),
        tick: tokio::time::interval(BLOCK_POLL),
        st,
        last_block: None,
        greeted: false,
    };
    let stream = futures::stream::unfold(feed, |mut f| async move {
        if !f.greeted {
            f.greeted = true;
            let ready = json!({ "our_address": f.st.api.our_address.to_checksum() });
            return Some((Ok(event("ready", &ready)), f));
        }
        loop {
            if *f.st.closing.borrow() {
                return None;
            }
            tokio::select! {
                r = f.rx.recv() => match r {
                    Ok(n) => {
                        let (name, data) = notification_event(&n);
                        return Some((Ok(event(name, &data)), f));
                    }
                    Err(RecvError::Lagged(missed)) => {
                        log::debug!("an event listener fell {missed} notifications behind");
                        return Some((Ok(event("resync", &json!({ "missed": missed }))), f));
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = f.tick.tick() => {
                    let block = f.st.api.node.query(|s| s.block.0).await.ok()?;
                    if f.last_block != Some(block) {
                        f.last_block = Some(block);
                        return Some((Ok(event("block", &json!({ "block_number": block }))), f));
                    }
                }
                _ = f.st.closing.changed() => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
}
