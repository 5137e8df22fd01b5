//! Handlers for the packets that work on shared server state: signals, cache, RPC,
//! spooler and marshal messages; the admin option slots, the subscription table and the
//! cluster packets' node table; and the SNMP agent's datagrams.

pub mod admin;
pub mod cache;
pub mod cluster;
mod marshal;
pub mod rpc;
pub mod send;
pub mod snmp;
pub mod subscription;

use std::io::{self, Read, Write};

use uwsgi_protocol::Packet;
use uwsgi_protocol::packet::{Message, Payload, Reply};

use crate::dispatch::Outcome;
use crate::server::Shared;
use crate::state::spooler::Spoolers;

/// Answers a state packet; modifiers without a handler close the connection, as a uWSGI
/// without that plugin does (spec §1.5).
pub fn answer_state(
    packet: &Packet<'_>,
    body: &mut dyn Read,
    out: &mut dyn Write,
    shared: &Shared,
) -> io::Result<Outcome> {
    let state = &shared.state;
    match packet {
        Packet::Marshal(message) => marshal::answer(message, out, shared),
        Packet::Cache(request) => cache::answer(request, body, out, state.caches(), state.now()),
        Packet::Rpc(request) => rpc::answer(request, out, state.rpc(), &|line| shared.log(line)),
        // spec §7.1: queued → ff 0000 01, queue full → ff 0000 00; registration is not
        // checked here (the delivery logs an unregistered signal).
        Packet::Signal(signal) => {
            out.write_all(&state.signal_queue().raise(signal.number).reply())?;
            Ok(Outcome::Replied)
        }
        // spec §7.5: the job is written before the reply; ff 0000 01 or 00. With no
        // spooler configured the enqueue fails like any other: ff 0000 00, so a client
        // can tell "refused" from "network trouble".
        Packet::Spool(message) => {
            if state.spoolers().is_empty() {
                out.write_all(&Reply::Response(Message::new(0, Payload::EMPTY)).to_vec())?;
                return Ok(Outcome::Replied);
            }
            let result = state.spoolers().enqueue(&message.vars, &[]);
            if let Err(err) = &result {
                shared.log(format_args!("spool request refused: {err}"));
            }
            out.write_all(&Spoolers::reply(&result))?;
            Ok(Outcome::Replied)
        }
        _ => Ok(Outcome::Closed("unavailable modifier requested")),
    }
}
