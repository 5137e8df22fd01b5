//! The SNMP agent (spec §7.6): answers a GetRequest datagram from the `--snmp=ADDR`
//! socket, or from a `--udp` socket when its first byte is `0x30`.
//!
//! | OID (under 1.3.6.1.4.1.35156.17) | answer |
//! |---|---|
//! | `1.1` | total application requests of the instance (the stats' `total_requests`), Counter64 |
//! | `1.(30+N)` | worker N's requests (the stats' per-worker `requests`), Counter64, N = 1..=70 |
//! | other `1.Y` | NULL |
//! | `2.Y` | custom slot Y ([`crate::state::snmp`]): its type and value, NULL when unset |
//!
//! Anything else — a malformed request, a wrong or unset community, an OID of uWSGI
//! 2.0's metrics subsystem (this server has no metrics) — gets no answer, as in uWSGI,
//! which never sends an error PDU. Nothing is logged either, so a flood of bad
//! datagrams cannot fill the log.
//!
//! SNMP reads are not management packets: they change nothing, and the community is
//! their access control, so `--management-allow-from` does not apply (nor
//! `--allowed-modifiers`, which is about uwsgi packets; uWSGI checks neither).

use std::sync::atomic::Ordering;

use uwsgi_protocol::snmp::{Oid, SnmpValue, parse_get_request};

use crate::scoreboard::WorkerField;
use crate::server::Shared;

/// First byte of an SNMP message (a BER SEQUENCE): on a `--udp` socket, datagrams
/// starting with it go to the agent (when it runs) instead of the uwsgi decoder.
pub const SNMP_FIRST_BYTE: u8 = 0x30;

/// First server OID of the per-worker counters: `17.1.(30 + N)` is worker N.
const WORKER_BASE: u8 = 30;

/// The GetResponse for `datagram`, or `None` when uWSGI would stay silent (including
/// when the agent is not enabled).
pub fn reply(datagram: &[u8], shared: &Shared) -> Option<Vec<u8>> {
    let snmp = shared.state.snmp()?;
    let request = parse_get_request(datagram).ok()?;
    if !snmp.community_matches(request.community) {
        return None;
    }
    let value = match request.oid {
        Oid::Server(1) => SnmpValue::Counter64(shared.total_requests()),
        Oid::Server(index) => match usize::from(index.saturating_sub(WORKER_BASE)) {
            worker @ 1.. if worker <= shared.scoreboard.workers() => SnmpValue::Counter64(
                shared
                    .scoreboard
                    .worker(worker - 1, WorkerField::Requests)
                    .load(Ordering::Relaxed),
            ),
            _ => SnmpValue::Null,
        },
        Oid::Custom(slot) => snmp.value(i64::from(slot)),
        Oid::Metric(_) => return None,
    };
    Some(request.response(value))
}

/// Answers `datagram` from `from` on `socket` when the agent has a reply.
pub fn answer(
    datagram: &[u8],
    from: std::net::SocketAddr,
    socket: &std::net::UdpSocket,
    shared: &Shared,
) {
    if let Some(response) = reply(datagram, shared)
        && let Err(err) = socket.send_to(&response, from)
    {
        shared.log(format_args!("snmp reply to {from}: {err}"));
    }
}
