//! Loopback ports for servers that tests and local testnets start (Prosody, anvil, nodes).

use rand_core::RngCore;
use std::net::{Ipv4Addr, TcpListener};

/// A loopback port free now, for a server started next. Taken at random below the kernel's
/// ephemeral range: a port from that range (what binding port 0 gives) can be taken by any
/// outgoing connection between this check and the server's own bind, which made parallel
/// tests fail with "Address already in use". Port 0's choice only if no random pick is free.
pub fn free_loopback_port() -> std::io::Result<u16> {
    let (low, high) = (10_000u16, ephemeral_from().max(10_001));
    for _ in 0..64 {
        let port = low + (rand_core::OsRng.next_u32() % u32::from(high - low)) as u16;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// The first port of the kernel's ephemeral range (outgoing connections' local ports).
fn ephemeral_from() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_port_below_the_ephemeral_range_that_is_free() {
        let port = super::free_loopback_port().unwrap();
        assert!(
            (10_000..super::ephemeral_from().max(10_001)).contains(&port),
            "{port}"
        );
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    }
}
