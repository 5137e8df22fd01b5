//! Handlers for the packets that work on shared server state: signals, cache, RPC,
//! spooler and marshal messages.

pub mod cache;
mod marshal;

use std::io::{self, Read, Write};

use uwsgi_protocol::Packet;

use crate::dispatch::Outcome;
use crate::server::Shared;

/// Answers a state packet; modifiers without a handler close the connection, as a uWSGI
/// without that plugin does (spec §1.5).
pub fn answer_state(
    packet: &Packet<'_>,
    _body: &mut dyn Read,
    _out: &mut dyn Write,
    _shared: &Shared,
) -> io::Result<Outcome> {
    match packet {
        Packet::Marshal(message) => marshal::answer(message, _out, _shared),
        _ => Ok(Outcome::Closed("unavailable modifier requested")),
    }
}
