//! One packet to many peers at once (the intent of uWSGI's `send_multi_message`).

use std::time::{Duration, Instant};

use super::{Address, Client, OwnedReply, Result, raw_packet};
use crate::header::Modifier1;

/// What one peer of [`send_multi`] did.
#[derive(Debug)]
pub struct NodeReply {
    /// The peer.
    pub address: Address,
    /// From the start of the whole send to the end of this peer's exchange.
    pub elapsed: Duration,
    /// The reply, or why there is none. A peer still busy when the overall timeout
    /// expires gets [`Error::Timeout`](super::Error::Timeout).
    pub result: Result<OwnedReply>,
}

/// Sends the same packet — `modifier1`, `modifier2`, `payload` as the block — to every
/// client's peer concurrently (one thread per peer), and gathers every reply in the order
/// of `nodes`.
///
/// Each exchange keeps its client's own [`Timeouts`](super::Timeouts) and reply cap;
/// `timeout` bounds the whole operation on top: every connect, write and read ends by
/// `start + timeout` (`Duration::ZERO`: no overall limit). Host name resolution is not
/// bounded by it. Fails only when the packet cannot be encoded; per-peer failures are in
/// [`NodeReply::result`].
pub fn send_multi(
    nodes: &[Client],
    modifier1: impl Into<Modifier1>,
    modifier2: u8,
    payload: &[u8],
    timeout: Duration,
) -> Result<Vec<NodeReply>> {
    let packet = raw_packet(modifier1.into(), modifier2, payload)?;
    let start = Instant::now();
    let deadline = (!timeout.is_zero()).then(|| start + timeout);
    let replies = std::thread::scope(|scope| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|client| {
                let packet = &packet;
                scope.spawn(move || {
                    let result = client.exchange_until(packet, &[], deadline);
                    (result, start.elapsed())
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(nodes)
            .map(|(handle, client)| {
                let (result, elapsed) = handle.join().unwrap_or_else(|_| {
                    // The exchange does not panic; should it ever, report it as an I/O
                    // failure of that node rather than bringing the caller down.
                    let e = std::io::Error::other("the exchange thread panicked");
                    (
                        Err(super::Error::io(client.address(), super::Phase::Read, e)),
                        start.elapsed(),
                    )
                });
                NodeReply {
                    address: client.address().clone(),
                    elapsed,
                    result,
                }
            })
            .collect()
    });
    Ok(replies)
}
