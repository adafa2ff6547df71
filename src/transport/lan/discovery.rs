//! mDNS / DNS-SD discovery (SPEC §4): announce `_smartraiden._tcp.local.` with instance name =
//! our lowercase hex address and TXT `address=0x…`, `chain_id=…`; browse the same service and
//! report every resolved instance on our chain that is not us as a [`TaskMsg::Sighting`].
//!
//! A sighting is only a hint where to dial: the peer counts for nothing until its hello.
//! mdns-sd runs its own thread; its events are awaited with `recv_async`, never a blocking
//! receive on the runtime.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use mdns_sd::{IfKind, ResolvedService, ScopedIp, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::sync::mpsc;

use super::LanError;
use super::worker::TaskMsg;
use crate::primitives::Address;

/// The DNS-SD service type of SmartRaiden nodes.
pub const SERVICE_TYPE: &str = "_smartraiden._tcp.local.";

/// How long a goodbye and the daemon's shutdown may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// Our mDNS daemon with our service registered.
pub struct Discovery {
    daemon: ServiceDaemon,
    fullname: String,
    me: Address,
}

fn mdns_err(what: &str, e: mdns_sd::Error) -> LanError {
    LanError::Mdns(format!("{what}: {e}"))
}

impl Discovery {
    /// Starts the daemon (on `interface` only, if given) and announces us at `port`.
    pub fn start(
        me: Address,
        chain_id: u64,
        port: u16,
        interface: Option<&str>,
    ) -> Result<Discovery, LanError> {
        let daemon = ServiceDaemon::new().map_err(|e| mdns_err("starting the daemon", e))?;
        if let Some(name) = interface {
            daemon
                .disable_interface(IfKind::All)
                .map_err(|e| mdns_err("disabling interfaces", e))?;
            daemon
                .enable_interface(IfKind::Name(name.to_owned()))
                .map_err(|e| mdns_err("enabling the interface", e))?;
        }
        let instance = me.to_lower_hex();
        let host = format!("{instance}.local.");
        let props = [
            ("address".to_owned(), format!("0x{instance}")),
            ("chain_id".to_owned(), chain_id.to_string()),
        ];
        let mut info = ServiceInfo::new(SERVICE_TYPE, &instance, &host, (), port, &props[..])
            .map_err(|e| mdns_err("describing our service", e))?
            .enable_addr_auto();
        if let Some(name) = interface {
            info.set_interfaces(vec![IfKind::Name(name.to_owned())]);
        }
        let fullname = info.get_fullname().to_owned();
        daemon
            .register(info)
            .map_err(|e| mdns_err("registering our service", e))?;
        log::info!("lan {me:?}: announcing {fullname} on port {port} (mDNS)");
        Ok(Discovery {
            daemon,
            fullname,
            me,
        })
    }

    /// A browse loop to run as a task until the transport stops; it re-browses every `refresh`
    /// so peers still announced are seen again (and silent ones age out).
    pub fn browser(
        &self,
        chain_id: u64,
        refresh: Duration,
        tasks: mpsc::Sender<TaskMsg>,
    ) -> impl Future<Output = ()> + Send + 'static {
        browse(self.daemon.clone(), self.me, chain_id, refresh, tasks)
    }

    /// Says goodbye on the network and stops the daemon's thread.
    pub async fn shutdown(self) {
        if let Ok(rx) = self.daemon.unregister(&self.fullname) {
            let _ = tokio::time::timeout(STOP_TIMEOUT, rx.recv_async()).await;
        }
        if let Ok(rx) = self.daemon.shutdown() {
            let _ = tokio::time::timeout(STOP_TIMEOUT, rx.recv_async()).await;
        }
    }
}

async fn browse(
    daemon: ServiceDaemon,
    me: Address,
    chain_id: u64,
    refresh: Duration,
    tasks: mpsc::Sender<TaskMsg>,
) {
    let mut ticks = tokio::time::interval(refresh);
    ticks.tick().await;
    let mut events = match daemon.browse(SERVICE_TYPE) {
        Ok(rx) => rx,
        Err(e) => {
            log::error!("lan {me:?}: mDNS browse failed: {e}");
            return;
        }
    };
    // False once the current receiver is closed (replaced by a re-browse, or the daemon
    // stopped): then only the next tick can bring a new one.
    let mut live = true;
    loop {
        tokio::select! {
            ev = events.recv_async(), if live => match ev {
                Ok(ServiceEvent::ServiceResolved(service)) => {
                    if let Some((peer, at)) = sighting(&service, me, chain_id)
                        && tasks.send(TaskMsg::Sighting { peer, at }).await.is_err()
                    {
                        return;
                    }
                }
                Ok(other) => log::trace!("lan {me:?}: mDNS {other:?}"),
                Err(_) => live = false,
            },
            _ = ticks.tick() => {
                let _ = daemon.stop_browse(SERVICE_TYPE);
                match daemon.browse(SERVICE_TYPE) {
                    Ok(rx) => {
                        events = rx;
                        live = true;
                    }
                    Err(e) => log::warn!("lan {me:?}: mDNS re-browse failed: {e}"),
                }
            }
        }
    }
}

/// The peer and where to dial it, if `service` is a SmartRaiden node on our chain, not us.
fn sighting(
    service: &ResolvedService,
    me: Address,
    chain_id: u64,
) -> Option<(Address, SocketAddr)> {
    let their_chain = service.get_property_val_str("chain_id")?;
    if their_chain.parse::<u64>().ok()? != chain_id {
        log::debug!(
            "lan {me:?}: ignoring {} on chain {their_chain}",
            service.fullname
        );
        return None;
    }
    let peer: Address = service.get_property_val_str("address")?.parse().ok()?;
    if peer == me {
        return None;
    }
    let ip = best_ip(service.get_addresses().iter())?;
    Some((peer, with_port(ip, service.get_port())))
}

/// Prefers IPv4 (routable before loopback), then IPv6 (global before link-local).
fn best_ip<'a>(ips: impl Iterator<Item = &'a ScopedIp>) -> Option<(IpAddr, u32)> {
    ips.map(|ip| {
        let scope = match ip {
            ScopedIp::V6(v6) => v6.scope_id().index,
            _ => 0,
        };
        (ip.to_ip_addr(), scope)
    })
    .min_by_key(|(ip, _)| match ip {
        IpAddr::V4(v4) if !v4.is_loopback() => 0,
        IpAddr::V4(_) => 1,
        IpAddr::V6(v6) if !v6.is_unicast_link_local() => 2,
        IpAddr::V6(_) => 3,
    })
}

fn with_port((ip, scope): (IpAddr, u32), port: u16) -> SocketAddr {
    match ip {
        IpAddr::V6(v6) if v6.is_unicast_link_local() => {
            SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope))
        }
        ip => SocketAddr::new(ip, port),
    }
}
