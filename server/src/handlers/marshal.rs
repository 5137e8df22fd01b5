//! Marshalled messages (modifier1 33, spec §4.2): unmarshal, hand the object and
//! modifier2 to the app, marshal its answer (version 1, as uWSGI wrote it) back under the
//! request's header with the size replaced.

use std::io::{self, Write};

use uwsgi_protocol::marshal;
use uwsgi_protocol::packet::{Message, Payload, Reply};

use crate::dispatch::Outcome;
use crate::server::Shared;

/// The marshal version replies are written in (uWSGI's clients wrote and read 1).
const REPLY_VERSION: u8 = 1;

pub(super) fn answer(
    message: &Message<'_>,
    out: &mut dyn Write,
    shared: &Shared,
) -> io::Result<Outcome> {
    let value = match marshal::from_slice(message.payload.as_bytes()) {
        Ok(value) => value,
        Err(err) => {
            shared.log(format_args!("invalid marshal message: {err}"));
            return Ok(Outcome::Closed("invalid marshal payload"));
        }
    };
    let Some(answer) = shared.app.marshal_message(value, message.modifier2) else {
        return Ok(Outcome::Closed("no marshal message handler"));
    };
    let bytes = match marshal::to_vec(&answer, REPLY_VERSION) {
        Ok(bytes) => bytes,
        Err(err) => {
            shared.log(format_args!(
                "cannot marshal the message handler's answer: {err}"
            ));
            return Ok(Outcome::Closed("unmarshallable answer"));
        }
    };
    let Ok(payload) = Payload::new(&bytes) else {
        shared.log(format_args!(
            "marshal answer of {} bytes does not fit a packet (65535 max)",
            bytes.len()
        ));
        return Ok(Outcome::Closed("answer too large"));
    };
    super::send::reply(
        out,
        &Reply::Marshal(Message::new(message.modifier2, payload)),
    )?;
    Ok(Outcome::Replied)
}
