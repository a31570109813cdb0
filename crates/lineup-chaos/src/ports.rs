//! Ports for the processes the harness starts, chosen below the kernel's ephemeral range.
//! The relays and clients of a run bind port 0 all through it, and the kernel could hand
//! one of them a port picked for a node that has not bound it yet (its start then fails
//! with "address in use"); below the ephemeral range it never hands any out.

use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out.
const PORTS_FLOOR: u32 = 10_000;
/// The ephemeral range's start when the kernel does not say (Linux's default).
const EPHEMERAL_LOW_DEFAULT: u32 = 32_768;
/// Candidates tried before giving up.
const PORT_TRIES_MAX: u32 = 2_000;
/// A stride coprime with the range's size spreads one run's ports and keeps runs of
/// different processes apart.
const PORT_STRIDE: u32 = 7_919;

static NEXT_CANDIDATE: AtomicU32 = AtomicU32::new(0);

#[derive(Clone, Copy, Debug)]
pub enum Protocol {
    Udp,
    Tcp,
}

/// The start of the kernel's ephemeral port range.
fn ephemeral_low() -> u32 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let low = range.split_whitespace().next().and_then(|low| low.parse().ok());
    low.filter(|low| *low > PORTS_FLOOR + 1_000).unwrap_or(EPHEMERAL_LOW_DEFAULT)
}

/// A loopback port free for `protocol` now, below the ephemeral range.
pub fn free_port(protocol: Protocol) -> anyhow::Result<u16> {
    let span = ephemeral_low() - PORTS_FLOOR;
    let start = std::process::id().wrapping_mul(PORT_STRIDE);
    for _ in 0..PORT_TRIES_MAX {
        let k = NEXT_CANDIDATE.fetch_add(1, Ordering::Relaxed);
        let port = (PORTS_FLOOR + start.wrapping_add(k.wrapping_mul(PORT_STRIDE)) % span) as u16;
        let free = match protocol {
            Protocol::Udp => std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok(),
            Protocol::Tcp => std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        };
        if free {
            return Ok(port);
        }
    }
    anyhow::bail!("no free {protocol:?} port below {} after {PORT_TRIES_MAX} tries", ephemeral_low())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_distinct_and_bindable() {
        let low = ephemeral_low();
        let ports: Vec<u16> = (0..20).map(|_| free_port(Protocol::Udp).unwrap()).collect();
        assert!(ports.iter().all(|p| u32::from(*p) >= PORTS_FLOOR && u32::from(*p) < low), "{ports:?}");
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        let tcp = free_port(Protocol::Tcp).unwrap();
        assert!(std::net::TcpListener::bind(("127.0.0.1", tcp)).is_ok());
    }
}
