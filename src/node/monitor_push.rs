//! `smartraiden run --monitor URL`: the shell's side of delegation, with no decision of its
//! own. It asks the service for its address once (`MonitorReport::Ready`), then carries every
//! package the core hands over (`Output::Delegate`) to the service and reports back the ones
//! it holds (`MonitorReport::Holds`), on which the core forwards mediated transfers that
//! waited for it. A failed push is retried with backoff until it lands or a newer package of
//! the channel replaces it, and is shown in the channel's JSON (`"monitor"`), never dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::{debug, info, warn};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use super::NodeHandle;
use super::runtime::Delegation;
use crate::core::{DelegationPrint, Input, MonitorReport};
use crate::primitives::{Address, ChannelId};

/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where the pushes of one channel stand.
#[derive(Clone, Debug, Default)]
pub struct ChannelPush {
    /// What the monitor holds (as last acknowledged).
    pushed: Option<DelegationPrint>,
    /// What is waiting to be pushed.
    pending: Option<DelegationPrint>,
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
            "pushed_nonce": p.pushed.map(|f| f.nonce.0),
            "pending": p.pending.is_some(),
            "failures": p.failures,
            "last_error": p.last_error,
        })
    }

    fn record(&self, channel: ChannelId, outcome: Result<DelegationPrint, String>) {
        let mut channels = self.channels.lock().expect("not poisoned");
        let p = channels.entry(channel).or_default();
        match outcome {
            Ok(print) => {
                p.pushed = Some(print);
                if p.pending == Some(print) {
                    p.pending = None;
                }
                p.failures = 0;
                p.last_error = None;
            }
            Err(e) => {
                p.failures += 1;
                p.last_error = Some(e);
            }
        }
    }
}

/// Runs the pushes until the node stops.
pub async fn run(
    push: Arc<MonitorPush>,
    node: NodeHandle,
    mut packages: UnboundedReceiver<Delegation>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a default HTTP client");
    // The service's address first: the core binds every package to it.
    let mut backoff = Duration::from_millis(200);
    loop {
        match monitor_address(&http, &push.url).await {
            Ok(address) => {
                info!("delegating to monitor {address} at {}", push.url);
                if node
                    .input(Input::Monitor(MonitorReport::Ready(address)))
                    .is_err()
                {
                    return;
                }
                break;
            }
            Err(e) => {
                warn!("monitor {}: {e}; asking again in {backoff:?}", push.url);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    // Packages not yet held by the service, newest per channel.
    let mut due: BTreeMap<ChannelId, Delegation> = BTreeMap::new();
    let mut backoff = Duration::from_millis(200);
    loop {
        // Everything handed over so far, then one round of pushes.
        while let Ok((print, package)) = packages.try_recv() {
            queue(&push, &mut due, print, package);
        }
        let mut failed = false;
        for (channel, (print, package)) in std::mem::take(&mut due) {
            match deliver(&http, &push.url, &package).await {
                Ok(()) => {
                    debug!("{channel}: delegation with nonce {} held", print.nonce);
                    push.record(channel, Ok(print));
                    let held = MonitorReport::Holds { channel, print };
                    if node.input(Input::Monitor(held)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    warn!("{channel}: pushing the delegation failed: {e}");
                    push.record(channel, Err(e));
                    failed = true;
                    // Retried, unless a newer package of the channel replaces it first.
                    due.entry(channel).or_insert((print, package));
                }
            }
        }
        backoff = if failed {
            (backoff * 2).min(MAX_BACKOFF)
        } else {
            Duration::from_millis(200)
        };
        // Wait for the next package, or to retry.
        let next = if due.is_empty() {
            packages.recv().await
        } else {
            match tokio::time::timeout(backoff, packages.recv()).await {
                Ok(next) => next,
                Err(_) => continue,
            }
        };
        match next {
            Some((print, package)) => queue(&push, &mut due, print, package),
            None => return,
        }
    }
}

/// Queues a package, replacing an older one of its channel.
fn queue(
    push: &MonitorPush,
    due: &mut BTreeMap<ChannelId, Delegation>,
    print: DelegationPrint,
    package: Box<crate::delegation::DelegationPackage>,
) {
    let channel = package.channel_identifier;
    push.channels
        .lock()
        .expect("not poisoned")
        .entry(channel)
        .or_default()
        .pending = Some(print);
    due.insert(channel, (print, package));
}

async fn monitor_address(http: &reqwest::Client, url: &str) -> Result<Address, String> {
    let info: Value = http
        .get(format!("{url}/api/1/monitor/info"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    info["address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("no address in its info: {info}"))
}

/// Hands one package to the service: `Ok` once it holds it (or, answering 409 with `"already_held": true`, a
/// package at least as new, or the chain holds a newer proof).
async fn deliver(
    http: &reqwest::Client,
    url: &str,
    package: &crate::delegation::DelegationPackage,
) -> Result<(), String> {
    let r = http
        .post(format!("{url}/api/1/monitor/delegations"))
        .json(package)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    if status.is_success() {
        return Ok(());
    }
    let body: Value = r.json().await.unwrap_or_default();
    let message = body["error_message"].as_str().unwrap_or_default();
    // Already held (the service or the chain holds it or newer): nothing more to push. Any
    // other conflict (quota, window over) is a failure to show.
    if status == reqwest::StatusCode::CONFLICT && body["already_held"] == Value::Bool(true) {
        debug!(
            "{}: monitor holds it already: {message}",
            package.channel_identifier
        );
        return Ok(());
    }
    Err(format!("{status}: {message}"))
}
