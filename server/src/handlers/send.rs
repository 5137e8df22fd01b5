//! Writing a reply packet in one write.

use std::io::{self, Write};

use uwsgi_protocol::Reply;

/// Replies up to this size are encoded on the stack: pongs, acknowledgements, RPC
/// results and cache values of the common small sizes need no allocation.
const ON_STACK: usize = 512;

/// Writes `reply` with one `write_all`.
pub fn reply(out: &mut dyn Write, reply: &Reply<'_>) -> io::Result<()> {
    let len = reply.encoded_len();
    if len <= ON_STACK {
        let mut buf = [0u8; ON_STACK];
        let mut dst = &mut buf[..];
        reply.encode(&mut dst);
        out.write_all(&buf[..len])
    } else {
        out.write_all(&reply.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use uwsgi_protocol::packet::{Message, Payload};

    use super::*;

    #[test]
    fn small_and_large_replies_are_written_whole() {
        for size in [0, 13, ON_STACK - 4, ON_STACK - 3, 60_000] {
            let data = vec![b'x'; size];
            let sent = Reply::RpcResult(Payload::new(&data).unwrap());
            let mut out = Vec::new();
            reply(&mut out, &sent).unwrap();
            assert_eq!(out, sent.to_vec(), "{size} bytes");
        }
        let mut out = Vec::new();
        reply(&mut out, &Reply::Pong(Message::new(1, Payload::EMPTY))).unwrap();
        assert_eq!(out, [100, 0, 0, 1]);
    }
}
