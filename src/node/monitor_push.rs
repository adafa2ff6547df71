//! `smartraiden run --monitor URL`: hands a fresh delegation package of every channel to a
//! monitoring service whenever what it would carry changes (a new balance proof from the
//! partner, a secret learned for one of its locks, a lock it gave back) and again for every
//! channel on the way into no-internet mode. A failed push is
//! retried with backoff and shown in the channel's JSON (`"monitor"`), never dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::{debug, info, warn};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::NodeHandle;
use crate::core::Notification;
use crate::primitives::{Address, ChannelId};

/// What a package would carry: pushed again whenever it changes.
type Fingerprint = (u64, usize, usize);

/// Where the pushes of one channel stand.
#[derive(Clone, Debug, Default)]
pub struct ChannelPush {
    /// What the monitor holds (as last acknowledged).
    pushed: Option<Fingerprint>,
    /// What is waiting to be pushed.
    pending: Option<Fingerprint>,
    /// Failed attempts in a row.
    failures: u32,
    /// The last failure.
    last_error: Option<String>,
}

/// The pushes to one monitoring service.
pub struct MonitorPush {
    url: String,
    channels: Mutex<BTreeMap<ChannelId, ChannelPush>>,
}

impl MonitorPush {
    /// Pushes to the service at `url` (e.g. `http://127.0.0.1:5100`).
    pub fn new(url: impl Into<String>) -> Arc<MonitorPush> {
        Arc::new(MonitorPush {
            url: url.into().trim_end_matches('/').to_owned(),
            channels: Mutex::new(BTreeMap::new()),
        })
    }

    /// The channel's push state for its JSON.
    pub fn channel_json(&self, channel: &ChannelId) -> Value {
        let channels = self.channels.lock().expect("not poisoned");
        let p = channels.get(channel).cloned().unwrap_or_default();
        json!({
            "url": self.url,
            "pushed_nonce": p.pushed.map(|f| f.0),
            "pending": p.pending.is_some() && p.pending != p.pushed,
            "failures": p.failures,
            "last_error": p.last_error,
        })
    }
}

/// Runs the pushes until the node stops.
pub async fn run(
    push: Arc<MonitorPush>,
    node: NodeHandle,
    mut notes: broadcast::Receiver<Notification>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a default HTTP client");
    let mut backoff = Duration::from_millis(200);
    let mut delegate: Option<Address> = None;
    let mut offline = false;
    loop {
        if delegate.is_none() {
            delegate = monitor_address(&http, &push.url).await;
        }
        // On the way into no-internet mode every channel is handed over again, so the monitor
        // is known to hold the latest of each (a package it holds already answers 409).
        let now_offline = node
            .query_core(|c| c.no_internet().is_some())
            .await
            .unwrap_or(false);
        if now_offline && !offline {
            info!("entering no-internet mode: handing every channel to the monitor again");
            for p in push.channels.lock().expect("not poisoned").values_mut() {
                p.pushed = None;
            }
        }
        offline = now_offline;
        let failed = match delegate {
            Some(d) => !push_changed(&push, &node, &http, d).await,
            None => true,
        };
        if failed {
            backoff = (backoff * 2).min(Duration::from_secs(30));
        } else {
            backoff = Duration::from_millis(200);
        }
        // Wake on the node's next change, or to retry.
        let wait = if failed {
            backoff
        } else {
            Duration::from_secs(1)
        };
        match tokio::time::timeout(wait, notes.recv()).await {
            Err(_) | Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => return,
        }
    }
}

async fn monitor_address(http: &reqwest::Client, url: &str) -> Option<Address> {
    let info: Value = match http.get(format!("{url}/api/1/monitor/info")).send().await {
        Ok(r) => r.json().await.ok()?,
        Err(e) => {
            warn!("monitor {url}: {e}");
            return None;
        }
    };
    let address = info["address"].as_str()?.parse().ok()?;
    info!("pushing delegations to monitor {address} at {url}");
    Some(address)
}

/// Pushes every channel whose package changed; false if any push failed.
async fn push_changed(
    push: &MonitorPush,
    node: &NodeHandle,
    http: &reqwest::Client,
    delegate: Address,
) -> bool {
    let Ok(prints) = node
        .query(|s| {
            s.channels()
                .filter(|c| c.partner.latest_proof.is_some())
                .map(|c| {
                    let secrets = c
                        .claimable_locks()
                        .filter(|l| c.partner.secrets.contains_key(&l.secrethash))
                        .count();
                    (
                        c.identifier,
                        (c.partner.nonce.0, secrets, c.disposed_to_us.len()),
                    )
                })
                .collect::<Vec<_>>()
        })
        .await
    else {
        return true;
    };
    let due: Vec<(ChannelId, Fingerprint)> = {
        let mut channels = push.channels.lock().expect("not poisoned");
        prints
            .into_iter()
            .filter(|(id, print)| {
                let p = channels.entry(*id).or_default();
                p.pending = Some(*print);
                p.pushed != Some(*print)
            })
            .collect()
    };
    let mut ok = true;
    for (id, print) in due {
        let Ok(Some(package)) = node
            .query_core(move |c| c.delegation_package(&id, delegate))
            .await
        else {
            continue;
        };
        let result = http
            .post(format!("{}/api/1/monitor/delegations", push.url))
            .json(&package)
            .send()
            .await;
        let outcome = match result {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) if r.status() == reqwest::StatusCode::CONFLICT => {
                let body: Value = r.json().await.unwrap_or_default();
                let message = body["error_message"].as_str().unwrap_or_default();
                // Already held (the same package, or the chain holds a newer proof): nothing
                // more to push. Any other conflict (quota, window over) is a failure to show.
                if message.contains("not newer") {
                    debug!("{id}: monitor holds it already: {message}");
                    Ok(())
                } else {
                    Err(format!("409: {message}"))
                }
            }
            Ok(r) => {
                let status = r.status();
                let body: Value = r.json().await.unwrap_or_default();
                Err(format!("{status}: {}", body["error_message"]))
            }
            Err(e) => Err(e.to_string()),
        };
        let mut channels = push.channels.lock().expect("not poisoned");
        let p = channels.entry(id).or_default();
        match outcome {
            Ok(()) => {
                debug!("{id}: delegation with nonce {} pushed", print.0);
                p.pushed = Some(print);
                p.failures = 0;
                p.last_error = None;
            }
            Err(e) => {
                warn!("{id}: pushing the delegation failed: {e}");
                p.failures += 1;
                p.last_error = Some(e);
                ok = false;
            }
        }
    }
    ok
}
