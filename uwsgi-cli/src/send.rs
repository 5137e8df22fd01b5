//! `send` (one raw packet), `multi` (one packet to many nodes) and `route` (forward a
//! packet as it is, body included).

use std::io::{Cursor, Write};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Parser};
use serde_json::{Map, Value as Json, json};
use uwsgi_protocol::client::{Address, OwnedReply, send_multi};
use uwsgi_protocol::{Header, Modifier1, Reply, VarsBuilder};

use crate::common::{NetOpts, PacketOpts, json_line, millis, read_value};
use crate::exit::{self, Failure, Outcome};
use crate::render;

/// Options of `send`.
#[derive(Debug, Args)]
#[command(
    after_help = "The reply is read as the request's modifier1 says (one framed packet, bytes \
    until the server closes, or nothing) and printed decoded; --raw writes its bytes as received.\n\n\
    Examples:\n  \
    uwsgi-cli send 127.0.0.1:3031 -1 100                       # a ping\n  \
    uwsgi-cli send unix:/run/uwsgi.sock -1 173 --item hello --item world\n  \
    uwsgi-cli send 127.0.0.1:3031 --var REQUEST_METHOD=GET --var PATH_INFO=/ --raw\n  \
    uwsgi-cli send 127.0.0.1:3031 -1 101 @payload.bin --json"
)]
pub struct SendArgs {
    /// Server: host:port, [v6]:port, unix:/path, a path with a '/', or @abstract.
    pub address: Address,
    #[command(flatten)]
    pub packet: PacketOpts,
    /// Write the reply's bytes exactly as received.
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub net: NetOpts,
}

/// Negative when nothing came back or the server acknowledged with a failure status.
fn reply_outcome(reply: &Reply<'_>) -> Outcome {
    match reply {
        Reply::Closed => Outcome::Negative,
        Reply::Response(ack) => Outcome::from_bool(ack.modifier2 == 1),
        _ => Outcome::Ok,
    }
}

/// Prints a reply as `send` and `route` do.
fn print_reply(
    out: &mut dyn Write,
    reply: &OwnedReply,
    raw: bool,
    json: bool,
    mut context: Map<String, Json>,
) -> Result<Outcome> {
    let decoded = reply.reply();
    if raw {
        out.write_all(reply.as_bytes())?;
    } else if json {
        context.insert("bytes".into(), json!(reply.as_bytes().len()));
        context.extend(render::reply_fields(&decoded));
        json_line(out, &Json::Object(context))?;
    } else {
        let text = render::reply_text(&decoded);
        out.write_all(text.as_bytes())?;
        // Unframed replies (HTTP responses, raw results) are written as they came.
        if !matches!(decoded, Reply::Http(_) | Reply::Raw(_)) && !text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
    }
    Ok(reply_outcome(&decoded))
}

/// Runs `send`.
pub fn run_send(args: &SendArgs, out: &mut dyn Write) -> Result<Outcome> {
    let block = args.packet.block()?;
    let client = args.net.client(&args.address);
    let start = Instant::now();
    let reply = client.send(args.packet.modifier1, args.packet.modifier2, &block)?;
    let mut context = Map::new();
    context.insert("address".into(), json!(args.address.to_string()));
    context.insert("time_ms".into(), json!(millis(start.elapsed())));
    print_reply(out, &reply, args.raw, args.net.json, context)
}

/// Options of `multi`.
#[derive(Debug, Args)]
#[command(
    after_help = "PACKET OPTIONS (after --) are those of `send`: -1 M1, -2 M2, --var KEY=VALUE..., \
    --item ITEM..., PAYLOAD. --timeout bounds the whole operation: a node still busy then is \
    reported as timed out.\n\n\
    Exit code: 0 when every node answered positively, otherwise the code of the first node \
    (in argument order) that did not.\n\n\
    Examples:\n  \
    uwsgi-cli multi 10.0.0.1:3031 10.0.0.2:3031 -- -1 100\n  \
    uwsgi-cli multi --json --timeout 2s unix:/run/a.sock unix:/run/b.sock -- -1 173 --item hello"
)]
pub struct MultiArgs {
    /// The nodes.
    #[arg(required = true, value_name = "ADDRESS")]
    pub addresses: Vec<Address>,
    /// The packet, as `send` takes it.
    #[arg(last = true, value_name = "PACKET OPTIONS", allow_hyphen_values = true)]
    pub packet: Vec<String>,
    #[command(flatten)]
    pub net: NetOpts,
}

/// The packet options after `--`, parsed on their own.
#[derive(Debug, Parser)]
#[command(
    name = "multi ... --",
    disable_help_flag = true,
    disable_version_flag = true
)]
struct PacketLine {
    #[command(flatten)]
    packet: PacketOpts,
}

/// Runs `multi`.
pub fn run_multi(args: &MultiArgs, out: &mut dyn Write) -> Result<Outcome> {
    let line = PacketLine::try_parse_from(
        std::iter::once("multi --".to_owned()).chain(args.packet.iter().cloned()),
    )
    .map_err(|e| Failure::error(exit::USAGE, e.to_string().trim_end().to_owned()))?;
    let block = line.packet.block()?;
    // --timeout is the overall deadline (and so bounds every step too).
    let clients: Vec<_> = args.addresses.iter().map(|a| args.net.client(a)).collect();
    let replies = send_multi(
        &clients,
        line.packet.modifier1,
        line.packet.modifier2,
        &block,
        args.net.timeout,
    )?;
    let mut code = exit::OK;
    for node in &replies {
        let mut fields = Map::new();
        fields.insert("address".into(), json!(node.address.to_string()));
        let (status, node_code, detail) = match &node.result {
            Ok(reply) => {
                let decoded = reply.reply();
                let outcome = reply_outcome(&decoded);
                let reply_fields = render::reply_fields(&decoded);
                let detail = render::reply_text(&decoded).replace("\n    ", "  ");
                fields.insert(
                    "status".into(),
                    json!(if outcome == Outcome::Ok {
                        "ok"
                    } else {
                        "negative"
                    }),
                );
                fields.insert("time_ms".into(), json!(millis(node.elapsed)));
                fields.insert("exit_code".into(), json!(outcome.code()));
                fields.extend(reply_fields);
                (outcome == Outcome::Ok, outcome.code(), detail)
            }
            Err(err) => {
                let node_code = exit::client_code(err);
                fields.insert(
                    "status".into(),
                    json!(if err.is_timeout() { "timeout" } else { "error" }),
                );
                fields.insert("time_ms".into(), json!(millis(node.elapsed)));
                fields.insert("exit_code".into(), json!(node_code));
                fields.insert("error".into(), json!(err.to_string()));
                (false, node_code, err.to_string())
            }
        };
        if !status && code == exit::OK {
            code = node_code;
        }
        if args.net.json {
            json_line(out, &Json::Object(fields))?;
        } else {
            let shown = fields
                .get("status")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_owned();
            let detail: String = detail.chars().take(100).collect();
            writeln!(
                out,
                "{:<28} {:<8} {:>9.3} ms  {}",
                node.address.to_string(),
                shown,
                millis(node.elapsed),
                detail
            )?;
        }
    }
    match code {
        exit::OK => Ok(Outcome::Ok),
        exit::NEGATIVE => Ok(Outcome::Negative),
        other => Err(Failure::error(
            other,
            format!("not every node answered (exit code {other} from the first that did not)"),
        )),
    }
}

/// Options of `route`.
#[derive(Debug, Args)]
#[command(
    after_help = "Forwards one complete packet — header, block and the body it announces \
    (CONTENT_LENGTH) — byte for byte to ADDRESS, as uWSGI 1.4's uwsgi.route() re-sends a \
    request, and prints the reply. The packet is read from --input (default stdin) unless \
    packet options build it.\n\n\
    Examples:\n  \
    uwsgi-cli encode request --var REQUEST_METHOD=POST --var PATH_INFO=/x --body hi | uwsgi-cli route 127.0.0.1:3031\n  \
    uwsgi-cli route unix:/run/uwsgi.sock --input captured-request.bin --raw\n  \
    uwsgi-cli route 127.0.0.1:3031 --var REQUEST_METHOD=PUT --var PATH_INFO=/doc --body @doc.json"
)]
pub struct RouteArgs {
    /// Destination: host:port, [v6]:port, unix:/path, a path with a '/', or @abstract.
    pub address: Address,
    /// Read the packet from FILE (`-`: stdin, the default).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub input: Option<String>,
    #[command(flatten)]
    pub packet: PacketOpts,
    /// Body to append to a built packet (text, @FILE, or -); CONTENT_LENGTH is added to
    /// the vars of an application request unless given.
    #[arg(long, value_name = "DATA", requires = "vars")]
    pub body: Option<String>,
    /// Write the reply's bytes exactly as received.
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub net: NetOpts,
}

/// Runs `route`.
pub fn run_route(args: &RouteArgs, out: &mut dyn Write) -> Result<Outcome> {
    let p = &args.packet;
    let built = !(p.vars.is_empty() && p.items.is_empty() && p.payload.is_none());
    if built && args.input.is_some() {
        return Err(Failure::error(
            exit::USAGE,
            "--input and packet options exclude each other",
        ));
    }
    let client = args.net.client(&args.address);
    let start = Instant::now();
    let reply = if built {
        let body = match &args.body {
            Some(spec) => read_value(spec)?,
            None => Vec::new(),
        };
        let modifier1 = Modifier1::from(p.modifier1);
        let block = if !p.vars.is_empty() {
            let mut vars = VarsBuilder::new();
            for (k, v) in &p.vars {
                vars.push(k, v)?;
            }
            let declared = p.vars.iter().any(|(k, _)| k == "CONTENT_LENGTH");
            if modifier1.is_app_request() && !declared && !body.is_empty() {
                vars.push("CONTENT_LENGTH", body.len().to_string())?;
            }
            vars.into_block()
        } else {
            p.block()?
        };
        let datasize = u16::try_from(block.len())
            .map_err(|_| Failure::error(exit::USAGE, "the block is over 65535 bytes"))?;
        let mut packet = Header::new(modifier1, datasize, p.modifier2)
            .to_bytes()
            .to_vec();
        packet.extend_from_slice(&block);
        packet.extend_from_slice(&body);
        client.forward(&mut Cursor::new(packet))?
    } else {
        match args.input.as_deref() {
            None | Some("-") => client.forward(&mut std::io::stdin().lock())?,
            Some(path) => {
                let mut file =
                    std::fs::File::open(path).with_context(|| format!("reading {path}"))?;
                client.forward(&mut file)?
            }
        }
    };
    let mut context = Map::new();
    context.insert("address".into(), json!(args.address.to_string()));
    context.insert("time_ms".into(), json!(millis(start.elapsed())));
    print_reply(out, &reply, args.raw, args.net.json, context)
}
