//! Work-around for a driver defect: neo4rs (0.9) never sets `TCP_NODELAY` on its
//! Bolt sockets, unlike Neo4j's official drivers. A statement whose message is
//! larger than the driver's 8 KiB write buffer leaves as a 2-byte chunk header
//! followed by the chunk; with Nagle's algorithm the kernel holds the chunk until the
//! header is acknowledged, and the server delays that acknowledgement (Linux: about
//! 40 ms) because it waits for the rest of the message. Every such statement then
//! costs 40 ms more — on Neo4j as on any Bolt server; measured in
//! `bench/neo4j/RESULTS.md`.
//!
//! The driver exposes no socket, so on Linux this finds the process's TCP sockets
//! connected to the Bolt server (`/proc/self/fd`), takes a duplicate of each through
//! `pidfd_getfd(2)` (our own process: no privilege needed) and sets `TCP_NODELAY` on
//! it; the option belongs to the socket, so the driver's descriptor gets it. Any
//! failure (old kernel, seccomp, no `/proc`) only leaves the driver as it is.
//! Remove this module once neo4rs sets the option itself.

use std::collections::BTreeSet;
use std::net::SocketAddr;

/// Sets `TCP_NODELAY` on every socket of this process connected to one of `peers`
/// that is not in `done` (socket inode numbers, updated). Returns how many sockets
/// were changed.
#[cfg(target_os = "linux")]
pub(crate) fn apply(peers: &[SocketAddr], done: &mut BTreeSet<u64>) -> usize {
    use rustix::net::sockopt;
    use rustix::process::{getpid, pidfd_getfd, pidfd_open, PidfdFlags, PidfdGetfdFlags};
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut pidfd = None;
    let mut changed = 0;
    for entry in dir.flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let Some(inode) = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse::<u64>().ok())
        else {
            continue;
        };
        if done.contains(&inode) {
            continue;
        }
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pidfd.is_none() {
            match pidfd_open(getpid(), PidfdFlags::empty()) {
                Ok(p) => pidfd = Some(p),
                Err(_) => return changed,
            }
        }
        let Some(p) = pidfd.as_ref() else {
            return changed;
        };
        let Ok(dup) = pidfd_getfd(p, fd, PidfdGetfdFlags::empty()) else {
            // seccomp or an old kernel: nothing to do at all.
            return changed;
        };
        let peer = rustix::net::getpeername(&dup)
            .ok()
            .flatten()
            .and_then(|a| SocketAddr::try_from(a).ok());
        if peer.is_some_and(|a| peers.contains(&a)) && sockopt::set_tcp_nodelay(&dup, true).is_ok()
        {
            done.insert(inode);
            changed += 1;
        }
    }
    changed
}

/// Not Linux: nothing (the driver keeps Nagle's algorithm).
#[cfg(not(target_os = "linux"))]
pub(crate) fn apply(_peers: &[SocketAddr], _done: &mut BTreeSet<u64>) -> usize {
    0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The work-around reaches a socket the test cannot give to it otherwise (as the
    /// driver's are): only the one connected to the given peer gets `TCP_NODELAY`.
    #[test]
    fn sets_nodelay_on_sockets_connected_to_the_peer_only() {
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = server.local_addr().unwrap();
        let ours = std::net::TcpStream::connect(peer).unwrap();
        let theirs = std::net::TcpStream::connect(other.local_addr().unwrap()).unwrap();
        assert!(!ours.nodelay().unwrap(), "a new socket has Nagle on");
        let mut done = BTreeSet::new();
        let changed = apply(&[peer], &mut done);
        assert!(changed >= 1, "no socket changed (pidfd_getfd refused?)");
        assert!(ours.nodelay().unwrap());
        assert!(
            !theirs.nodelay().unwrap(),
            "a socket to another peer was changed"
        );
        // Sockets already done are skipped.
        assert_eq!(apply(&[peer], &mut done), 0);
    }
}
