//! `uwsgi-cli multicast`: send a uwsgi datagram to a multicast group (or broadcast, or
//! any UDP or unix datagram address), or listen on one and print what arrives.

use std::io::Write;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::{Map, Value as Json, json};
use uwsgi_protocol::client::{
    Address, Client, DatagramListener, DatagramOptions, ListenOptions, Timeouts,
};
use uwsgi_protocol::{Limits, Packet};

use crate::common::{json_line, parse_duration, read_value};
use crate::exit::{self, Failure, Outcome};
use crate::render;

/// Options of `multicast`.
#[derive(Debug, Args)]
#[command(
    after_help = "Sending writes one datagram, modifier1 74 (uWSGI's custom multicast \
    message) unless -1 says otherwise, from a fresh socket. Listening binds the group's port, \
    joins the group (on --interface), prints \"listening on ADDRESS\" on stderr, then one \
    decoded packet per datagram; it stops after --count datagrams, or with exit code 4 when \
    --timeout passes without one.\n\n\
    Examples:\n  \
    uwsgi-cli multicast 239.255.0.1:5000 'hello cluster' --ttl 2\n  \
    uwsgi-cli multicast --listen 239.255.0.1:5000 --interface 127.0.0.1 --json\n  \
    uwsgi-cli multicast 239.255.0.1:5000 hi --loop --interface 127.0.0.1   # loopback only\n  \
    uwsgi-cli multicast 255.255.255.255:5000 hi --broadcast\n  \
    uwsgi-cli multicast --listen 127.0.0.1:0 --count 1     # any UDP port; 0 picks one"
)]
pub struct MulticastArgs {
    /// GROUP:PORT, or any UDP host:port, 255.255.255.255:PORT, a unix datagram path.
    pub address: Address,
    /// The message: text, @FILE, or - for stdin.
    #[arg(required_unless_present = "listen", conflicts_with = "listen")]
    pub message: Option<String>,
    /// Listen on ADDRESS and print the datagrams that arrive.
    #[arg(long)]
    pub listen: bool,
    /// modifier1 of the datagram sent.
    #[arg(short = '1', long, default_value_t = 74, value_name = "M1")]
    pub modifier1: u8,
    /// modifier2 of the datagram sent.
    #[arg(short = '2', long, default_value_t = 0, value_name = "M2")]
    pub modifier2: u8,
    /// Multicast TTL (IPv6: hop limit) of the datagram sent; the kernel's default is 1.
    #[arg(long)]
    pub ttl: Option<u32>,
    /// Loop the datagram back to listeners on this host (the kernel's default).
    #[arg(long = "loop", overrides_with = "no_loop")]
    pub loop_back: bool,
    /// Do not loop the datagram back to listeners on this host.
    #[arg(long = "no-loop")]
    pub no_loop: bool,
    /// Local IPv4 address of the interface to send from or to join on (e.g. 127.0.0.1).
    #[arg(long, value_name = "IPV4")]
    pub interface: Option<Ipv4Addr>,
    /// Allow sending to a broadcast address.
    #[arg(long)]
    pub broadcast: bool,
    /// Listening: stop after this many datagrams (0: never).
    #[arg(short = 'c', long, default_value_t = 0)]
    pub count: u64,
    /// Listening: longest wait for a datagram (default none); sending: the write timeout.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Print one JSON object per result instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `multicast`.
pub fn run(args: &MulticastArgs, out: &mut dyn Write) -> Result<Outcome> {
    if args.listen {
        return listen(args, out);
    }
    let payload = read_value(args.message.as_deref().unwrap_or_default())?;
    let options = DatagramOptions {
        multicast_ttl: args.ttl,
        multicast_loop: if args.loop_back {
            Some(true)
        } else if args.no_loop {
            Some(false)
        } else {
            None
        },
        multicast_interface: args.interface,
        broadcast: args.broadcast,
    };
    let timeout = args.timeout.unwrap_or(Timeouts::DEFAULT.write);
    Client::new(args.address.clone())
        .with_timeouts(Timeouts::uniform(timeout))
        .send_datagram(args.modifier1, args.modifier2, &payload, &options)?;
    let bytes = payload.len() + 4;
    if args.json {
        json_line(
            out,
            &json!({"address": args.address.to_string(), "sent": true, "bytes": bytes,
                    "modifier1": args.modifier1, "modifier2": args.modifier2}),
        )?;
    } else {
        writeln!(out, "sent {bytes} bytes to {}", args.address)?;
    }
    Ok(Outcome::Ok)
}

fn listen(args: &MulticastArgs, out: &mut dyn Write) -> Result<Outcome> {
    let options = ListenOptions {
        interface: args.interface,
        interface_index: 0,
    };
    let mut listener = DatagramListener::bind(&args.address, &options)?;
    eprintln!("listening on {}", listener.local_address());
    let limits = Limits {
        max_datasize: u16::MAX,
        ..Limits::DEFAULT
    };
    let mut received = 0u64;
    while args.count == 0 || received < args.count {
        let datagram = match listener.recv(args.timeout) {
            Ok(datagram) => datagram,
            Err(err) if err.is_timeout() => {
                return Err(Failure::error(
                    exit::TIMEOUT,
                    format!("no datagram on {} within the timeout", args.address),
                ));
            }
            Err(err) => return Err(err.into()),
        };
        received += 1;
        let source = datagram.source.clone().unwrap_or_else(|| "-".into());
        let mut fields = Map::new();
        fields.insert("source".into(), json!(source));
        fields.insert("bytes".into(), json!(datagram.bytes.len()));
        match Packet::decode_datagram(&datagram.bytes, &limits) {
            Ok(packet) => {
                if args.json {
                    if let Json::Object(p) = render::packet_json(&packet, 0, 0) {
                        fields.extend(p.into_iter().filter(|(k, _)| k != "offset"));
                    }
                    json_line(out, &Json::Object(fields))?;
                } else {
                    let text =
                        render::packet_text(&packet, usize::try_from(received).unwrap_or(0), 0, 0);
                    writeln!(out, "from {source}: {text}")?;
                }
            }
            Err(err) => {
                if args.json {
                    fields.insert("error".into(), json!(err.to_string()));
                    fields.insert("payload".into(), render::bytes_json(&datagram.bytes));
                    json_line(out, &Json::Object(fields))?;
                } else {
                    writeln!(
                        out,
                        "from {source}: not a uwsgi datagram ({err}): {}",
                        render::bytes_text(&datagram.bytes)
                    )?;
                }
            }
        }
        out.flush()?;
    }
    Ok(Outcome::Ok)
}
