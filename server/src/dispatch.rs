//! Answers one decoded packet: the table from modifier1 to handler (spec §1.5, §1.6).
//! Every handler writes uWSGI's reply bytes for its modifier or, where uWSGI sends
//! nothing, says why the connection is closed without a reply.

use std::io::{self, Read};
use std::time::Instant;

use uwsgi_protocol::Packet;
use uwsgi_protocol::packet::{Message, Payload, Reply};

use crate::connection::Peer;
use crate::handlers::cluster;
use crate::server::Shared;

/// What happened to a request that was decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A reply was written.
    Replied,
    /// The connection is closed without reply bytes, as uWSGI does in this case.
    Closed(&'static str),
}

/// Whether `packet` is a management packet: one that changes server state or reaches
/// other processes, and so is limited to trusted peers.
pub fn is_management(packet: &Packet<'_>) -> bool {
    use uwsgi_protocol::packet::CacheRequest as C;
    match packet {
        Packet::Signal(_) | Packet::Spool(_) | Packet::Admin(_) | Packet::Subscription(_) => true,
        Packet::ClusterNode(_) | Packet::ClusterConfig(_) | Packet::ClusterReload(_) => true,
        Packet::Cache(request) => {
            !matches!(
                request,
                C::Get { .. } | C::GetStream { .. } | C::DictGet { .. }
            ) && !crate::handlers::cache::is_read_only_magic(request)
        }
        _ => false,
    }
}

/// Writes the reply to `packet` (reading its body from `body` where it has one).
pub fn answer(
    packet: &Packet<'_>,
    body: &mut (dyn Read + Send),
    out: &mut dyn crate::app::Output,
    peer: Peer,
    shared: &Shared,
) -> io::Result<Outcome> {
    let modifier1 = packet.header().modifier1.value();
    if !shared.modifier_allowed(modifier1) {
        return Ok(Outcome::Closed("modifier not in --allowed-modifiers"));
    }
    if is_management(packet) && !shared.management_allowed(peer) {
        shared.log(format_args!(
            "refused management packet (modifier1 {modifier1}) from {peer}: see --management-allow-from"
        ));
        return Ok(Outcome::Closed("management packet from an untrusted peer"));
    }
    match packet {
        Packet::Request(request) if !shared.app.serves(request.modifier1) => {
            Ok(Outcome::Closed("unavailable modifier requested"))
        }
        Packet::Request(request) => {
            let started = Instant::now();
            let status = shared.app.call(request, body, out).inspect_err(|_| {
                let (worker, _) = crate::server::current_worker();
                shared
                    .scoreboard
                    .worker(worker, crate::scoreboard::WorkerField::Exceptions)
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })?;
            shared.log_request(request, peer, &status, started.elapsed());
            Ok(Outcome::Replied)
        }
        Packet::Ping(_) => {
            let warning = shared.warning_message();
            let payload = Payload::new(&warning).unwrap_or(Payload::EMPTY);
            crate::handlers::send::reply(out, &Reply::Pong(Message::new(1, payload)))?;
            Ok(Outcome::Replied)
        }
        Packet::Echo(message) => {
            out.write_all(message.payload.as_bytes())?;
            Ok(Outcome::Replied)
        }
        Packet::Admin(request) => {
            if let uwsgi_protocol::packet::Admin::Set { option, value } = request {
                shared.log(format_args!(
                    "admin: setting option {option} to {value} (from {peer})"
                ));
            }
            out.write_all(&shared.admin.answer(request))?;
            Ok(Outcome::Replied)
        }
        // uWSGI's subscription servers listen on UDP only; a uwsgi socket has no 224
        // handler. Recording only datagrams also keeps the table in the process that
        // serves the stats (the master, with --master).
        Packet::Subscription(_) => Ok(Outcome::Closed(
            "subscriptions are received on --udp sockets",
        )),
        other => crate::handlers::answer_state(other, body, out, shared),
    }
}

/// Handles one UDP datagram. Nothing is sent back, as uWSGI's UDP services do not
/// answer, except to a cluster configuration request (modifier1 99, modifier2 0).
pub fn answer_datagram(
    packet: &Packet<'_>,
    socket: &std::net::UdpSocket,
    from: std::net::SocketAddr,
    peer: Peer,
    shared: &Shared,
) {
    let modifier1 = packet.header().modifier1.value();
    if !shared.modifier_allowed(modifier1) {
        return;
    }
    if is_management(packet) && !shared.management_allowed(peer) {
        shared.log(format_args!(
            "refused management datagram (modifier1 {modifier1}) from {from}: see --management-allow-from"
        ));
        return;
    }
    match packet {
        Packet::Subscription(message) => {
            shared
                .subscriptions
                .record(message, crate::stats::unix_now(), &|line| shared.log(line));
        }
        Packet::ClusterAnnounce(message) => shared.log(format_args!(
            "new node available: {}",
            cluster::escape(message.payload.as_bytes())
        )),
        // 1.4's generic UDP logger: the raw datagram, header included.
        Packet::Multicast(_) => shared.log(format_args!(
            "[udp:{}:{}] {}",
            from.ip(),
            from.port(),
            cluster::escape(&packet.to_vec())
        )),
        Packet::ClusterNode(message) => {
            let _ = shared
                .cluster
                .record(message, crate::stats::unix_now(), &|line| shared.log(line));
        }
        Packet::ClusterConfig(message) if message.modifier2 == 0 => {
            let reply = &shared.cluster_config;
            match socket.send_to(&reply.datagram, from) {
                Ok(_) if reply.skipped > 0 => shared.log(format_args!(
                    "cluster configuration sent to {from}: {} options, {} left out (one datagram holds at most {} bytes)",
                    reply.sent,
                    reply.skipped,
                    cluster::MAX_REPLY
                )),
                Ok(_) => {}
                Err(err) => shared.log(format_args!(
                    "cluster configuration reply to {from} failed: {err}"
                )),
            }
        }
        Packet::ClusterConfig(message) => shared.log(format_args!(
            "cluster configuration reply (modifier2 {}) from {from} ignored: this server asks for none",
            message.modifier2
        )),
        other => shared.log(format_args!(
            "datagram from {from}: no UDP handler for modifier1 {} ({})",
            modifier1,
            other.kind()
        )),
    }
}

/// Datagrams a cache sync address dropped in this process (refused peer, malformed,
/// or refused by the cache), logged sparsely so a flood cannot fill the log.
static SYNC_DROPPED: crate::state::sampled_log::SampledLog =
    crate::state::sampled_log::SampledLog::new();

/// Handles one datagram received on a cache's sync address (`--cache-udp-server`, the
/// `udp=` of `--cache2`): from a peer `--management-allow-from` lets through, a well-formed
/// sync datagram is applied to `cache` locally (never sent on to its own nodes). Anything
/// else is dropped and logged (rate-limited); nothing is sent back.
pub fn apply_cache_sync(
    datagram: &[u8],
    cache: &str,
    from: std::net::SocketAddr,
    peer: Peer,
    shared: &Shared,
) {
    let dropped = |why: std::fmt::Arguments<'_>| {
        SYNC_DROPPED.count(|n| {
            shared.log(format_args!(
                "[cache-udp-server] cache \"{cache}\": {why} ({n} dropped so far in this process)"
            ));
        });
    };
    if !shared.management_allowed(peer) {
        dropped(format_args!(
            "refused cache sync datagram from {from}: see --management-allow-from"
        ));
        return;
    }
    let Some(target) = shared.state.caches().by_name(cache.as_bytes()) else {
        // Unreachable: the address was bound for this configured cache.
        dropped(format_args!("datagram from {from} for an unknown cache"));
        return;
    };
    if let Err(err) = crate::state::cache_sync::apply(target, datagram, crate::stats::unix_now()) {
        dropped(format_args!("datagram from {from} not applied: {err}"));
    }
}
