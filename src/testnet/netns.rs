//! A "LAN lab" of Linux network namespaces: the real processes of a no-internet test (SPEC §4,
//! "No-internet mode") on one machine, where the nodes really lose their route to the XMPP server
//! and the chain while they still reach each other on the LAN.
//!
//! ```text
//!   infra ns                router ns                    lan ns                node ns 1..N
//!  ┌──────────────┐  veth  ┌────────────────────┐ veth ┌─────────────┐ veth ┌────────────────┐
//!  │ anvil,Prosody│────────│10.77.0.1  10.78.0.1│──────│ bridge      │──────│ 10.78.0.11 …   │
//!  │ 10.77.0.2/24 │        │ ip_forward = 1     │      │ (no mcast   │      │ default via    │
//!  │ default via  │        └────────────────────┘      │  snooping)  │      │ 10.78.0.1      │
//!  │ 10.77.0.1    │                                    └─────────────┘      └────────────────┘
//!  └──────────────┘
//! ```
//!
//! Every name carries the creating process's pid and a per-process sequence number (`sr<pid>l<n>`):
//! namespaces are `sr<pid>l<n>-infra|-router|-lan|-n<k>`, interfaces `sr<pid>l<n>` plus a suffix
//! of at most three characters (15 in all), and every veth is created directly inside its
//! namespaces, so the host's own namespace never holds an interface of a lab. [`LanLab::create`]
//! first removes labs whose pid is gone (a test killed before its `Drop` ran).
//!
//! [`LanLab::cut_internet`] deletes the nodes' default routes: a connection to infra then fails at
//! once with "Network is unreachable" (ENETUNREACH), while the LAN subnet stays on-link. mDNS
//! must then pick its interface explicitly ([`LanLab::node_interface`], or bind the node's
//! address): without a route, a multicast send with no interface fails with errno 101.
//!
//! Code of this process can run inside a namespace on a thread of its own ([`LanLab::run_in`],
//! [`LanLab::spawn_in`], through `setns(2)`); the host has no route into the lab, so this process
//! reaches a server there through a forwarding port on its own loopback ([`LanLab::portal`]).
//! [`LanLab::start_anvil`] and [`LanLab::start_prosody`] run the real servers in the infra
//! namespace, listening on its address, ready once a node's namespace can connect.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and `ip` (iproute2).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, warn};

use super::TestnetError;
use crate::chain::devchain::{DevChainPlacement, ReachFn};
use crate::chain::{DevChain, DevChainOptions};
use crate::transport::xmpp::server::ReadyProbe;
use crate::transport::xmpp::{ProsodyOptions, ProsodyServer};

/// Last octet of the router's address on both subnets.
const ROUTER_HOST: u8 = 1;
/// Last octet of the infra namespace's address.
const INFRA_HOST: u8 = 2;
/// Last octet of node 0's address (node `i` has `NODE_HOST_BASE + i`).
const NODE_HOST_BASE: u8 = 11;
/// Longest interface name Linux accepts (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;
/// How long a server in the lab may take to become reachable from a node.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a forwarded connection may take to reach its target inside the lab.
const PORTAL_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Labs created by this process so far; part of every name, so labs of parallel tests differ.
static LAB_SEQ: AtomicU32 = AtomicU32::new(0);

/// Subnets and size of a [`LanLab`].
#[derive(Debug, Clone)]
pub struct LanLabOptions {
    /// Number of node namespaces.
    pub nodes: usize,
    /// The infra /24 (its last octet is ignored): router `.1`, infra `.2`.
    pub infra_subnet: Ipv4Addr,
    /// The LAN /24 (its last octet is ignored): router `.1`, node `i` (0-based) `.11 + i`.
    pub lan_subnet: Ipv4Addr,
}

impl LanLabOptions {
    /// `nodes` nodes on the default subnets 10.77.0.0/24 (infra) and 10.78.0.0/24 (LAN). They
    /// exist only inside the lab's namespaces, so they cannot clash with the host's networks or
    /// with other labs.
    pub fn new(nodes: usize) -> Self {
        LanLabOptions {
            nodes,
            infra_subnet: Ipv4Addr::new(10, 77, 0, 0),
            lan_subnet: Ipv4Addr::new(10, 78, 0, 0),
        }
    }
}

/// Host `host` of the /24 that `subnet` belongs to.
fn on_subnet(subnet: Ipv4Addr, host: u8) -> Ipv4Addr {
    let [a, b, c, _] = subnet.octets();
    Ipv4Addr::new(a, b, c, host)
}

/// The lab: namespaces, links, addresses and routes. [`Drop`] closes its portals, kills every
/// process still inside its namespaces (also ones started by hand with [`LanLab::command_in`]),
/// and deletes the namespaces, which destroys their veths; it runs on unwind too.
pub struct LanLab {
    prefix: String,
    infra_ns: String,
    router_ns: String,
    lan_ns: String,
    node_ns: Vec<String>,
    node_if: Vec<String>,
    options: LanLabOptions,
    portals: Mutex<Vec<Portal>>,
    /// The namespaces made so far, held open: their processes are found by the namespaces'
    /// inode numbers, also after the names are gone, and holding them keeps those numbers from
    /// being reused by another namespace until teardown is over.
    ns_held: Vec<HeldNetns>,
}

/// An open handle on a namespace and its inode number (`/proc/PID/ns/net` → `net:[N]`).
struct HeldNetns {
    _file: std::fs::File,
    id: u64,
}

impl HeldNetns {
    fn open(ns: &str) -> io::Result<HeldNetns> {
        use std::os::unix::fs::MetadataExt;
        let file = std::fs::File::open(format!("/run/netns/{ns}"))?;
        let id = file.metadata()?.ino();
        Ok(HeldNetns { _file: file, id })
    }
}

impl std::fmt::Debug for LanLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanLab")
            .field("prefix", &self.prefix)
            .field("nodes", &self.node_ns.len())
            .finish()
    }
}

impl LanLab {
    /// A lab with `nodes` nodes on the default subnets.
    pub fn create(nodes: usize) -> Result<LanLab, TestnetError> {
        Self::create_with(LanLabOptions::new(nodes))
    }

    /// A lab as `options` say. Removes stale labs of dead processes first.
    pub fn create_with(options: LanLabOptions) -> Result<LanLab, TestnetError> {
        if options.nodes > 99 || usize::from(NODE_HOST_BASE) + options.nodes > 255 {
            return Err(TestnetError::Setup(format!(
                "a LAN lab holds at most 99 nodes, not {}",
                options.nodes
            )));
        }
        if options.infra_subnet.octets()[..3] == options.lan_subnet.octets()[..3] {
            return Err(TestnetError::Setup(format!(
                "the infra and LAN subnets must differ ({} / {})",
                options.infra_subnet, options.lan_subnet
            )));
        }
        remove_stale_labs();
        let seq = LAB_SEQ.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("sr{}l{seq}", std::process::id());
        if prefix.len() + 3 > IFNAME_MAX {
            return Err(TestnetError::Setup(format!(
                "lab prefix {prefix} too long for interface names"
            )));
        }
        let ns = |suffix: &str| format!("{prefix}-{suffix}");
        let mut lab = LanLab {
            infra_ns: ns("infra"),
            router_ns: ns("router"),
            lan_ns: ns("lan"),
            node_ns: (1..=options.nodes).map(|k| ns(&format!("n{k}"))).collect(),
            node_if: (1..=options.nodes)
                .map(|k| format!("{prefix}n{k}"))
                .collect(),
            prefix,
            options,
            portals: Mutex::new(Vec::new()),
            ns_held: Vec::new(),
        };
        // From here on, Drop removes whatever part was made.
        lab.build()?;
        Ok(lab)
    }

    /// Creates the namespaces, links, addresses and routes.
    fn build(&mut self) -> Result<(), TestnetError> {
        let p = self.prefix.clone();
        let (infra, router, lan) = (
            self.infra_ns.clone(),
            self.router_ns.clone(),
            self.lan_ns.clone(),
        );
        let infra_net = self.options.infra_subnet;
        let lan_net = self.options.lan_subnet;
        for ns in self.namespaces() {
            ip(&["netns", "add", &ns])?;
            let held = HeldNetns::open(&ns)
                .map_err(|e| TestnetError::Setup(format!("opening namespace {ns}: {e}")))?;
            self.ns_held.push(held);
            ip(&["-n", &ns, "link", "set", "dev", "lo", "up"])?;
        }
        // Router ↔ infra.
        let (router_infra, infra_if) = (format!("{p}ri"), format!("{p}i"));
        ip(&[
            "-n",
            &router,
            "link",
            "add",
            "dev",
            &router_infra,
            "type",
            "veth",
            "peer",
            "name",
            &infra_if,
            "netns",
            &infra,
        ])?;
        // Router ↔ LAN bridge.
        let (router_lan, bridge_router) = (format!("{p}rl"), format!("{p}lr"));
        ip(&[
            "-n",
            &router,
            "link",
            "add",
            "dev",
            &router_lan,
            "type",
            "veth",
            "peer",
            "name",
            &bridge_router,
            "netns",
            &lan,
        ])?;
        // The bridge floods multicast (no IGMP snooping, so no querier is needed for mDNS).
        let bridge = format!("{p}br");
        ip(&[
            "-n",
            &lan,
            "link",
            "add",
            "dev",
            &bridge,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        ip(&["-n", &lan, "link", "set", "dev", &bridge, "up"])?;
        ip(&[
            "-n",
            &lan,
            "link",
            "set",
            "dev",
            &bridge_router,
            "master",
            &bridge,
            "up",
        ])?;
        for (k, (ns, dev)) in self.node_ns.iter().zip(&self.node_if).enumerate() {
            let port = format!("{p}b{}", k + 1);
            ip(&[
                "-n", ns, "link", "add", "dev", dev, "type", "veth", "peer", "name", &port,
                "netns", &lan,
            ])?;
            ip(&[
                "-n", &lan, "link", "set", "dev", &port, "master", &bridge, "up",
            ])?;
        }
        // Addresses and routes.
        let cidr = |net, host| format!("{}/24", on_subnet(net, host));
        let infra_gw = on_subnet(infra_net, ROUTER_HOST).to_string();
        let lan_gw = on_subnet(lan_net, ROUTER_HOST).to_string();
        for (ns, dev, addr) in [
            (&router, &router_infra, cidr(infra_net, ROUTER_HOST)),
            (&router, &router_lan, cidr(lan_net, ROUTER_HOST)),
            (&infra, &infra_if, cidr(infra_net, INFRA_HOST)),
        ] {
            ip(&["-n", ns, "addr", "add", &addr, "dev", dev])?;
            ip(&["-n", ns, "link", "set", "dev", dev, "up"])?;
        }
        ip(&["-n", &infra, "route", "add", "default", "via", &infra_gw])?;
        for (k, (ns, dev)) in self.node_ns.iter().zip(&self.node_if).enumerate() {
            let addr = cidr(lan_net, NODE_HOST_BASE + k as u8);
            ip(&["-n", ns, "addr", "add", &addr, "dev", dev])?;
            ip(&["-n", ns, "link", "set", "dev", dev, "up"])?;
            ip(&["-n", ns, "route", "add", "default", "via", &lan_gw])?;
        }
        // Forwarding is per namespace; /proc/sys/net belongs to the namespace of the thread
        // that opens it, so write it from a thread inside the router namespace.
        run_in_netns(&router, || {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        })
        .and_then(|r| r)
        .map_err(|e| TestnetError::Setup(format!("enabling forwarding in {router}: {e}")))?;
        debug!("LAN lab {p} ready ({} nodes)", self.node_ns.len());
        Ok(())
    }

    /// Every namespace of the lab, infra first.
    fn namespaces(&self) -> Vec<String> {
        let mut all = vec![
            self.infra_ns.clone(),
            self.router_ns.clone(),
            self.lan_ns.clone(),
        ];
        all.extend(self.node_ns.iter().cloned());
        all
    }

    /// The prefix of every name in this lab (`sr<pid>l<n>`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Every namespace of this lab: infra, router, LAN, then the nodes.
    pub fn namespace_names(&self) -> Vec<String> {
        self.namespaces()
    }

    /// Number of node namespaces.
    pub fn nodes(&self) -> usize {
        self.node_ns.len()
    }

    /// The infra namespace (where anvil and Prosody run).
    pub fn infra_ns(&self) -> &str {
        &self.infra_ns
    }

    /// The router namespace.
    pub fn router_ns(&self) -> &str {
        &self.router_ns
    }

    /// The namespace holding the LAN bridge.
    pub fn lan_ns(&self) -> &str {
        &self.lan_ns
    }

    /// The infra namespace's address (servers listen here).
    pub fn infra_ip(&self) -> Ipv4Addr {
        on_subnet(self.options.infra_subnet, INFRA_HOST)
    }

    /// The router's address on the LAN (the nodes' default gateway).
    pub fn lan_gateway(&self) -> Ipv4Addr {
        on_subnet(self.options.lan_subnet, ROUTER_HOST)
    }

    /// Node `i`'s (0-based) namespace.
    pub fn node_ns(&self, i: usize) -> &str {
        &self.node_ns[i]
    }

    /// Node `i`'s (0-based) address on the LAN.
    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        assert!(i < self.node_ns.len(), "node {i} of {}", self.node_ns.len());
        on_subnet(self.options.lan_subnet, NODE_HOST_BASE + i as u8)
    }

    /// Node `i`'s (0-based) LAN interface, inside its namespace (for mDNS without a default
    /// route: send and join multicast groups on this interface).
    pub fn node_interface(&self, i: usize) -> &str {
        &self.node_if[i]
    }

    /// `program args…` inside namespace `ns`: `ip netns exec ns program args…` (`ip` execs the
    /// program in place, so the child's pid is the program's). The child also enters `ns`
    /// itself before it runs `ip`, so it is inside as soon as `spawn` returns, and [`Drop`]
    /// (which kills every process in the lab's namespaces) cannot miss one still starting.
    pub fn command_in<S: AsRef<OsStr>>(
        &self,
        ns: &str,
        program: impl AsRef<OsStr>,
        args: impl IntoIterator<Item = S>,
    ) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).arg(program).args(args);
        // Opened now (close-on-exec), used in the child between fork and exec.
        let file = std::fs::File::open(format!("/run/netns/{ns}"));
        use std::os::unix::process::CommandExt;
        // SAFETY: the hook only makes the setns(2) system call on a descriptor opened before the
        // fork (async-signal-safe) and builds errors from OS codes; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || match &file {
                Ok(f) if setns(f.as_raw_fd(), CLONE_NEWNET) == 0 => Ok(()),
                Ok(_) => Err(io::Error::last_os_error()),
                // ENOENT: `spawn` fails as `ip netns exec` would ("no such namespace").
                Err(_) => Err(io::Error::from_raw_os_error(2)),
            });
        }
        cmd
    }

    /// Runs `f` on a new thread inside namespace `ns` and returns its result: sockets it opens
    /// belong to `ns`. Fails if the thread cannot enter `ns`; a panic in `f` is passed on.
    pub fn run_in<T: Send + 'static>(
        &self,
        ns: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<T> {
        run_in_netns(ns, f)
    }

    /// Like [`LanLab::run_in`] without waiting: the thread's handle (e.g. a receiver that must
    /// run while this thread sends).
    pub fn spawn_in<T: Send + 'static>(
        &self,
        ns: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<io::Result<T>> {
        spawn_in_netns(ns.to_owned(), f)
    }

    /// Nodes lose their route to infra: their default routes go, so a connection to infra
    /// fails at once with "Network is unreachable"; the LAN subnet stays on-link. Idempotent.
    pub fn cut_internet(&self) -> Result<(), TestnetError> {
        (0..self.node_ns.len()).try_for_each(|i| self.cut_internet_of(i))
    }

    /// Gives the nodes their default route back (after [`LanLab::cut_internet`]). Idempotent.
    pub fn restore_internet(&self) -> Result<(), TestnetError> {
        (0..self.node_ns.len()).try_for_each(|i| self.restore_internet_of(i))
    }

    /// [`LanLab::cut_internet`] for node `i` (0-based) alone. Idempotent.
    pub fn cut_internet_of(&self, i: usize) -> Result<(), TestnetError> {
        let ns = &self.node_ns[i];
        let out = ip_output(&["-n", ns, "route", "del", "default"])?;
        if !out.status.success()
            && !String::from_utf8_lossy(&out.stderr).contains("No such process")
        {
            return Err(TestnetError::Setup(format!(
                "ip -n {ns} route del default: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// [`LanLab::restore_internet`] for node `i` (0-based) alone. Idempotent.
    pub fn restore_internet_of(&self, i: usize) -> Result<(), TestnetError> {
        let gw = self.lan_gateway().to_string();
        ip(&[
            "-n",
            &self.node_ns[i],
            "route",
            "replace",
            "default",
            "via",
            &gw,
        ])
    }

    /// Whether `addr` accepts a TCP connection from inside `ns` (within 200 ms).
    pub fn tcp_reachable_from(&self, ns: &str, addr: SocketAddr) -> bool {
        tcp_probe(ns.to_owned())(addr)
    }

    /// The namespace readiness is checked from: node 0's, or the router's in a lab without
    /// nodes.
    fn probe_ns(&self) -> &str {
        self.node_ns.first().unwrap_or(&self.router_ns)
    }

    /// Waits until `addr` accepts a TCP connection from the namespace of node 0 (the router's
    /// without nodes), polling until `timeout`.
    pub fn wait_reachable(&self, addr: SocketAddr, timeout: Duration) -> Result<(), TestnetError> {
        wait_tcp(self.probe_ns(), addr, timeout).map_err(TestnetError::Setup)
    }

    /// A port on this process's loopback (`127.0.0.1:P`, returned) whose connections are
    /// forwarded to `target` as seen from namespace `ns` (the host has no route into the lab).
    /// It lives as long as the lab.
    pub fn portal(&self, ns: &str, target: SocketAddr) -> Result<SocketAddr, TestnetError> {
        let portal = Portal::open(ns.to_owned(), target)
            .map_err(|e| TestnetError::Setup(format!("portal to {target} in {ns}: {e}")))?;
        let addr = portal.addr;
        self.portals.lock().expect("portal list").push(portal);
        Ok(addr)
    }

    /// Starts anvil in the infra namespace, listening on [`LanLab::infra_ip`], and returns once a
    /// node's namespace can connect to it. [`DevChain::url`] is the address the nodes use;
    /// this process talks to anvil through a [`LanLab::portal`] ([`DevChain::harness_url`]).
    pub async fn start_anvil(&self, options: DevChainOptions) -> Result<DevChain, TestnetError> {
        let probe_ns = self.probe_ns().to_owned();
        let infra = self.infra_ns.clone();
        let portal_target = Arc::new(Mutex::new(None::<Portal>));
        let slot = portal_target.clone();
        let reach: ReachFn = Box::new(move |addr| {
            wait_tcp(&probe_ns, addr, READY_TIMEOUT)?;
            let portal = Portal::open(infra.clone(), addr)
                .map_err(|e| format!("portal into {infra}: {e}"))?;
            let url = format!("http://{}", portal.addr);
            *slot.lock().expect("portal slot") = Some(portal);
            Ok(url)
        });
        let chain = DevChain::start_in(
            options,
            DevChainPlacement {
                netns: Some(self.infra_ns.clone()),
                host: self.infra_ip(),
                reach: Some(reach),
            },
        )
        .await?;
        if let Some(portal) = portal_target.lock().expect("portal slot").take() {
            self.portals.lock().expect("portal list").push(portal);
        }
        Ok(chain)
    }

    /// Starts Prosody for `domain` in the infra namespace, listening on [`LanLab::infra_ip`]
    /// (overrides `options.netns`, `interface` and `ready_probe`), ready once a node's namespace
    /// can connect. [`ProsodyServer::addr`] is the address the nodes use; `register` works from
    /// here (it writes files); for a client in this process, open a [`LanLab::portal`].
    pub fn start_prosody(
        &self,
        domain: &str,
        options: ProsodyOptions,
    ) -> Result<ProsodyServer, TestnetError> {
        let options = ProsodyOptions {
            netns: Some(self.infra_ns.clone()),
            interface: self.infra_ip(),
            ready_probe: Some(ReadyProbe(Arc::new(tcp_probe(self.probe_ns().to_owned())))),
            ..options
        };
        Ok(ProsodyServer::start_with(domain, options)?)
    }
}

impl Drop for LanLab {
    fn drop(&mut self) {
        let portals = self.portals.get_mut().unwrap_or_else(|e| e.into_inner());
        for portal in std::mem::take(portals) {
            portal.close();
        }
        let ids: Vec<u64> = self.ns_held.iter().map(|h| h.id).collect();
        kill_processes_in(&ids);
        for ns in self.namespaces() {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                // Never created (a failed build) or already gone.
                debug!("LAN lab teardown: {e}");
            }
        }
        // A process that opened a namespace before its name went (e.g. a server spawned by
        // another thread just now) would keep it, and its veths, alive: look once more.
        kill_processes_in(&ids);
        // Closing the handles lets the kernel free the namespaces and their veths.
        self.ns_held.clear();
    }
}

// ---- namespaces of this process's threads -------------------------------------------------

/// `CLONE_NEWNET` of `<sched.h>`.
const CLONE_NEWNET: std::os::raw::c_int = 0x4000_0000;

unsafe extern "C" {
    /// glibc's `setns(2)`: moves the calling thread into the namespace `fd` refers to.
    fn setns(fd: std::os::raw::c_int, nstype: std::os::raw::c_int) -> std::os::raw::c_int;
}

/// Moves the calling thread (only it) into network namespace `ns` for the rest of its life.
fn enter_netns(ns: &str) -> io::Result<()> {
    let file = std::fs::File::open(format!("/run/netns/{ns}"))?;
    // SAFETY: `setns` only reads the descriptor, which stays open for the call; moving one
    // thread into another network namespace affects the sockets it opens afterwards and
    // nothing else of this process. Only threads spawned for this purpose call it.
    let rc = unsafe { setns(file.as_raw_fd(), CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn spawn_in_netns<T: Send + 'static>(
    ns: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<io::Result<T>> {
    std::thread::spawn(move || {
        enter_netns(&ns)
            .map_err(|e| io::Error::new(e.kind(), format!("entering namespace {ns}: {e}")))?;
        Ok(f())
    })
}

fn run_in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    match spawn_in_netns(ns.to_owned(), f).join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// A check that `addr` accepts a TCP connection from namespace `ns` within 200 ms.
fn tcp_probe(ns: String) -> impl Fn(SocketAddr) -> bool + Send + Sync + 'static {
    move |addr| {
        run_in_netns(&ns, move || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        })
        .unwrap_or(false)
    }
}

/// Polls until `addr` accepts a TCP connection from namespace `ns`.
fn wait_tcp(ns: &str, addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let probe = tcp_probe(ns.to_owned());
    let deadline = Instant::now() + timeout;
    loop {
        if probe(addr) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{addr} not reachable from {ns} within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---- portals: host loopback → a server inside the lab -------------------------------------

/// A TCP forwarder: accepts on this process's loopback (in the host namespace) and connects to
/// `target` from a thread inside the lab namespace, copying bytes both ways.
struct Portal {
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
    shared: Arc<PortalShared>,
}

/// What a portal's threads share.
#[derive(Default)]
struct PortalShared {
    /// Set by [`Portal::close`]: accept nothing more, forward nothing more.
    stop: AtomicBool,
    /// Both ends of every forwarded connection (the client's from accept on, the target's once
    /// connected), so closing can shut them down and end the copying threads.
    conns: Mutex<HashMap<u64, Vec<TcpStream>>>,
    /// Forwarding threads alive (each sits in the lab namespace, keeping it alive).
    active: AtomicUsize,
}

impl PortalShared {
    /// Keeps a clone of `stream` under connection `id`; shuts it down at once if the portal is
    /// closing (closing may have swept the list already).
    fn track(&self, id: u64, stream: &TcpStream) {
        if let Ok(clone) = stream.try_clone() {
            self.conns
                .lock()
                .expect("portal conns")
                .entry(id)
                .or_default()
                .push(clone);
        }
        if self.stop.load(Ordering::SeqCst) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    fn shutdown_all(&self) {
        for stream in self.conns.lock().expect("portal conns").values().flatten() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Portal {
    fn open(ns: String, target: SocketAddr) -> io::Result<Portal> {
        // Bound by this (host-namespace) thread, so the listener is on the host's loopback.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(PortalShared::default());
        let accept = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let ids = AtomicU64::new(0);
                for client in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let id = ids.fetch_add(1, Ordering::Relaxed);
                    shared.track(id, &client);
                    shared.active.fetch_add(1, Ordering::SeqCst);
                    let (ns, shared) = (ns.clone(), shared.clone());
                    std::thread::spawn(move || {
                        match enter_netns(&ns) {
                            Ok(()) => forward(id, client, target, &shared),
                            Err(e) => warn!("LAN lab portal: cannot enter {ns}: {e}"),
                        }
                        shared.conns.lock().expect("portal conns").remove(&id);
                        shared.active.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            })
        };
        Ok(Portal {
            addr,
            accept: Some(accept),
            shared,
        })
    }

    /// Stops accepting, cuts every forwarded connection and waits for the forwarding threads,
    /// which hold references to the lab's namespace while they live.
    fn close(mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        // Sweep until every thread is gone: a connection still being made is tracked (and shut
        // down) by its own thread once made.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            self.shared.shutdown_all();
            if self.shared.active.load(Ordering::SeqCst) == 0 {
                return;
            }
            if Instant::now() >= deadline {
                warn!(
                    "LAN lab portal {}: forwarding threads still running",
                    self.addr
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Connects to `target` (from the calling thread's namespace) and copies `client` ↔ target
/// until both directions end.
fn forward(id: u64, client: TcpStream, target: SocketAddr, shared: &PortalShared) {
    let server = match TcpStream::connect_timeout(&target, PORTAL_CONNECT_TIMEOUT) {
        Ok(s) => s,
        Err(e) => {
            warn!("LAN lab portal: cannot reach {target}: {e}");
            return;
        }
    };
    shared.track(id, &server);
    let _ = server.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let clones = (client.try_clone(), server.try_clone());
    let (Ok(client2), Ok(server2)) = clones else {
        return;
    };
    let upstream = std::thread::spawn(move || pump(client2, server2));
    pump(server, client);
    let _ = upstream.join();
}

/// Copies `from` into `to` until end of stream, then half-closes `to`.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Write);
}

// ---- ip(8) --------------------------------------------------------------------------------

fn ip_output(args: &[&str]) -> Result<std::process::Output, TestnetError> {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| TestnetError::Setup(format!("cannot run ip {}: {e}", args.join(" "))))
}

/// Runs `ip args…`; an error quotes its stderr.
fn ip(args: &[&str]) -> Result<(), TestnetError> {
    let out = ip_output(args)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(TestnetError::Setup(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Pids of the processes with a thread in one of the namespaces `ids` (like `ip netns pids`,
/// but also for namespaces whose name is gone), never this process.
fn pids_in(ids: &[u64]) -> Vec<u32> {
    if ids.is_empty() {
        return Vec::new();
    }
    let me = std::process::id();
    let links: Vec<String> = ids.iter().map(|id| format!("net:[{id}]")).collect();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                return false;
            };
            tasks.flatten().any(|t| {
                std::fs::read_link(t.path().join("ns/net"))
                    .is_ok_and(|l| links.iter().any(|want| l.as_os_str() == want.as_str()))
            })
        })
        .collect()
}

/// SIGKILLs every process inside the namespaces `ids` and waits (up to 5 s) until none is left.
fn kill_processes_in(ids: &[u64]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = pids_in(ids);
        if pids.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            warn!("LAN lab teardown: processes still running: {pids:?}");
            return;
        }
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(u32::to_string))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pid in a lab namespace name `sr<pid>l<n>-…`.
fn lab_pid(ns: &str) -> Option<u32> {
    let rest = ns.strip_prefix("sr")?;
    let (pid, rest) = rest.split_once('l')?;
    let (seq, _) = rest.split_once('-')?;
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Deletes the namespaces (and so the veths) of labs whose process is gone, killing anything
/// still running inside them first.
fn remove_stale_labs() {
    let Ok(out) = ip_output(&["netns", "list"]) else {
        return;
    };
    let stale: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|ns| {
            lab_pid(ns).is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
        })
        .map(str::to_owned)
        .collect();
    if stale.is_empty() {
        return;
    }
    warn!("removing stale LAN lab namespaces of dead processes: {stale:?}");
    let held: Vec<HeldNetns> = stale
        .iter()
        .filter_map(|ns| HeldNetns::open(ns).ok())
        .collect();
    let ids: Vec<u64> = held.iter().map(|h| h.id).collect();
    kill_processes_in(&ids);
    for ns in stale {
        let _ = ip(&["netns", "del", &ns]);
    }
    kill_processes_in(&ids);
    drop(held);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_names_carry_the_pid() {
        assert_eq!(lab_pid("sr1234l0-infra"), Some(1234));
        assert_eq!(lab_pid("sr1234l12-n3"), Some(1234));
        assert_eq!(lab_pid("srfoo-infra"), None);
        assert_eq!(lab_pid("sr12l-x"), None);
        assert_eq!(lab_pid("other"), None);
    }

    #[test]
    fn addresses_follow_the_subnets() {
        let o = LanLabOptions::new(2);
        assert_eq!(
            on_subnet(o.infra_subnet, INFRA_HOST),
            Ipv4Addr::new(10, 77, 0, 2)
        );
        assert_eq!(
            on_subnet(o.lan_subnet, NODE_HOST_BASE + 1),
            Ipv4Addr::new(10, 78, 0, 12)
        );
    }
}
