//! `uwsgi-cli encode`: build one packet from options and write its bytes.

use std::io::Write;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use uwsgi_protocol::packet::{Message, Payload, Request, RpcCall, RpcRequest, Signal};
use uwsgi_protocol::{Modifier1, Packet, VarsBuilder};

use crate::exit::Outcome;
use crate::input;

/// Options of `encode`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    uwsgi-cli encode request --var REQUEST_METHOD=GET --var PATH_INFO=/ --hex\n  \
    uwsgi-cli encode request --var REQUEST_METHOD=POST --body 'a=1' | nc -q1 127.0.0.1 3031\n  \
    uwsgi-cli encode rpc hello a b --hex")]
pub struct EncodeArgs {
    #[command(subcommand)]
    packet: Kind,
    /// Write hex text instead of raw bytes.
    #[arg(long, global = true)]
    hex: bool,
}

#[derive(Debug, Subcommand)]
enum Kind {
    /// An application request (vars, then the body).
    Request {
        /// modifier1 (0 = WSGI).
        #[arg(short = '1', long, default_value_t = 0)]
        modifier1: u8,
        /// modifier2.
        #[arg(short = '2', long, default_value_t = 0)]
        modifier2: u8,
        /// A var as KEY=VALUE (repeatable, order kept).
        #[arg(long = "var", value_name = "KEY=VALUE")]
        vars: Vec<String>,
        /// Request body; CONTENT_LENGTH is set from it unless given with --var.
        #[arg(long)]
        body: Option<String>,
    },
    /// An RPC call (modifier1 173).
    Rpc {
        /// Function name.
        function: String,
        /// Arguments.
        args: Vec<String>,
        /// Ask for the raw (unframed) result, modifier2 1.
        #[arg(long)]
        raw: bool,
    },
    /// A ping (modifier1 100).
    Ping,
    /// Raise a uWSGI signal (modifier1 110).
    Signal {
        /// Signal number 0–255.
        number: u8,
    },
}

fn split_var(var: &str) -> Result<(&str, &str)> {
    var.split_once('=')
        .with_context(|| format!("--var {var:?} is not KEY=VALUE"))
}

/// Runs `encode`.
pub fn run(args: &EncodeArgs, stdout: &mut dyn Write) -> Result<Outcome> {
    let mut out = Vec::new();
    match &args.packet {
        Kind::Request {
            modifier1,
            modifier2,
            vars,
            body,
        } => {
            let mut builder = VarsBuilder::new();
            let mut has_length = false;
            for var in vars {
                let (k, v) = split_var(var)?;
                has_length |= k == "CONTENT_LENGTH";
                builder.push(k, v)?;
            }
            let body = body.as_deref().unwrap_or("");
            if !has_length && !body.is_empty() {
                builder.push("CONTENT_LENGTH", body.len().to_string())?;
            }
            let modifier1 = Modifier1::from(*modifier1);
            if !modifier1.is_app_request() {
                bail!("modifier1 {modifier1} is not an application request slot");
            }
            Request {
                modifier1,
                modifier2: *modifier2,
                vars: builder.as_vars(),
            }
            .encode(&mut out);
            out.extend_from_slice(body.as_bytes());
        }
        Kind::Rpc {
            function,
            args: call_args,
            raw,
        } => {
            let items = RpcCall::build(function.as_bytes(), call_args)?;
            let call = if *raw {
                RpcCall::raw(items.as_array())?
            } else {
                RpcCall::framed(items.as_array())?
            };
            Packet::Rpc(RpcRequest::Call(call)).encode(&mut out);
        }
        Kind::Ping => Packet::Ping(Message::new(0, Payload::EMPTY)).encode(&mut out),
        Kind::Signal { number } => Packet::Signal(Signal::new(*number)).encode(&mut out),
    }
    if args.hex {
        writeln!(stdout, "{}", input::encode_hex(&out))?;
    } else {
        stdout.write_all(&out)?;
    }
    Ok(Outcome::Ok)
}
