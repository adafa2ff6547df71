//! A TCP gate in front of the chain's RPC endpoint, for tests that take the RPC "down for a
//! while": closed, it refuses new connections and cuts the open ones (keep-alive included),
//! as an RPC provider outage would; open, it forwards bytes both ways untouched.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A running gate; dropping it stops it.
pub struct RpcGate {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl RpcGate {
    /// Listens on a free loopback port and forwards to `upstream` (e.g. anvil's address).
    pub async fn start(upstream: SocketAddr) -> std::io::Result<RpcGate> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let open = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (gate_open, live) = (open.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !gate_open.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                let mut live = live.lock().expect("gate lock");
                live.retain(|h| !h.is_finished());
                live.push(task.abort_handle());
            }
        })
        .abort_handle();
        Ok(RpcGate {
            addr,
            open,
            connections,
            accept,
        })
    }

    /// The URL to give the nodes instead of the chain's.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Opens or closes the gate; closing cuts every open connection.
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
        if !open {
            for h in self.connections.lock().expect("gate lock").drain(..) {
                h.abort();
            }
        }
    }

    /// Whether the gate lets connections through.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }
}

impl Drop for RpcGate {
    fn drop(&mut self) {
        self.accept.abort();
        self.set_open(false);
    }
}
