//! Discovery (SPEC §4): the node publishes its JID in the Discovery contract when that differs
//! from what is stored, and learns every other node's XMPP domain from the contract's
//! `AddressRegistered` events (read from block 0 at start, then followed). A node with no entry
//! is reached at our own (default) domain. Only the XMPP transport's peer-domain table changes:
//! routing and delivery do not assume one server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::chain::ChainExecutor;
use crate::primitives::Address;
use crate::transport::xmpp::XmppTransport;

/// How often new `AddressRegistered` events are looked for.
const POLL: Duration = Duration::from_secs(1);
/// Wait after a failed chain call (RPC down) before trying again.
const RETRY: Duration = Duration::from_secs(5);

/// Our published endpoint: the bare JID.
pub fn endpoint_for(us: &Address, domain: &str) -> String {
    format!("{}@{}", us.to_lower_hex(), domain.to_ascii_lowercase())
}

/// The XMPP domain of `who`'s published endpoint, if it is `<who's address>@<domain>` with a
/// plausible domain (an address sets only its own entry, but its content is still unchecked
/// input).
pub fn domain_of(who: &Address, endpoint: &str) -> Option<String> {
    let (local, domain) = endpoint.trim().split_once('@')?;
    if !local.eq_ignore_ascii_case(&who.to_lower_hex()) {
        return None;
    }
    let plausible = !domain.is_empty()
        && domain.len() <= 253
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    plausible.then(|| domain.to_ascii_lowercase())
}

/// Follows the contract's events for ever, telling the transport each peer's domain, and
/// publishes our endpoint if needed (retried every [`RETRY`] until it is stored; a failing
/// publication does not hold up learning the peers').
pub async fn run(
    executor: Arc<ChainExecutor>,
    transport: Arc<XmppTransport>,
    us: Address,
    domain: String,
) {
    let ours = endpoint_for(&us, &domain);
    let mut publish_at = Some(tokio::time::Instant::now());
    let mut known: HashMap<Address, String> = HashMap::new();
    let mut next_block = 0u64;
    loop {
        if publish_at.is_some_and(|at| tokio::time::Instant::now() >= at) {
            publish_at = match publish(&executor, us, &ours).await {
                true => None,
                false => Some(tokio::time::Instant::now() + RETRY),
            };
        }
        let head = match executor.client().block_number().await {
            Ok(h) => h,
            Err(e) => {
                log::debug!("discovery: {e}");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if head >= next_block {
            match executor.discovery_published(next_block, head).await {
                Ok(entries) => {
                    for (who, endpoint) in entries {
                        learn(&transport, &mut known, us, who, &endpoint, &domain);
                    }
                    next_block = head + 1;
                }
                Err(e) => {
                    log::debug!("discovery: reading events: {e}");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Publishes `ours` unless the contract holds it already; true once it does.
async fn publish(executor: &ChainExecutor, us: Address, ours: &str) -> bool {
    match executor.discovery_endpoint(us).await {
        Ok(Some(stored)) if stored == ours => true,
        Ok(_) => match executor.discovery_register(ours).await {
            Ok(_) => {
                log::info!("discovery: published {ours}");
                true
            }
            Err(e) => {
                log::warn!("discovery: publishing {ours} failed: {e}");
                false
            }
        },
        Err(e) => {
            log::debug!("discovery: chain not reachable yet: {e}");
            false
        }
    }
}

/// Applies one published endpoint.
fn learn(
    transport: &XmppTransport,
    known: &mut HashMap<Address, String>,
    us: Address,
    who: Address,
    endpoint: &str,
    own_domain: &str,
) {
    if who == us {
        return;
    }
    let Some(domain) = domain_of(&who, endpoint) else {
        log::warn!("discovery: ignoring {who}'s endpoint {endpoint:?}: not <address>@<domain>");
        return;
    };
    if known.get(&who) == Some(&domain) {
        return;
    }
    if domain != own_domain.to_ascii_lowercase() || known.contains_key(&who) {
        log::info!("discovery: {who} is at {domain}");
        if let Err(e) = transport.set_peer_domain(who, &domain) {
            log::warn!("discovery: {e}");
            return;
        }
    }
    known.insert(who, domain);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_endpoint_gives_the_domain_only_for_its_own_address() {
        let who = Address([0xab; 20]);
        let other = Address([0xcd; 20]);
        let ours = endpoint_for(&who, "XMPP-B.test");
        assert_eq!(ours, format!("{}@xmpp-b.test", who.to_lower_hex()));
        assert_eq!(domain_of(&who, &ours), Some("xmpp-b.test".into()));
        assert_eq!(domain_of(&other, &ours), None);
        for bad in [
            "xmpp-b.test".to_string(),
            format!("{}@", who.to_lower_hex()),
            format!("{}@bad domain", who.to_lower_hex()),
            format!("{}@x/y", who.to_lower_hex()),
        ] {
            assert_eq!(domain_of(&who, &bad), None, "{bad:?}");
        }
    }
}
