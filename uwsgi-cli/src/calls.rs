//! `rpc`, `cache`, `signal` and `spool`: one call of the client each.

use std::io::Write;
use std::time::Instant;

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde_json::{Map, Value as Json, json};
use uwsgi_protocol::VarsBuilder;
use uwsgi_protocol::client::{self, Address};

use crate::common::{NetOpts, json_line, millis, parse_var, read_value};
use crate::exit::{self, Failure, Outcome};
use crate::render;

/// Writes a result value: exact bytes with `raw`, otherwise text and a newline.
fn write_value(out: &mut dyn Write, value: &[u8], raw: bool) -> Result<()> {
    if raw {
        out.write_all(value)?;
    } else {
        let text = render::bytes_text_multiline(value);
        writeln!(out, "{}", text.strip_suffix('\n').unwrap_or(&text))?;
    }
    Ok(())
}

/// Options of `rpc`.
#[derive(Debug, Args)]
#[command(
    after_help = "Prints the result. uWSGI 2.0 answers an unknown function and an empty \
    result alike, by closing: both are \"no result\", exit code 1.\n\n\
    Examples:\n  \
    uwsgi-cli rpc 127.0.0.1:3031 hello world\n  \
    uwsgi-cli rpc unix:/run/uwsgi.sock dump_state --raw > state.bin\n  \
    uwsgi-cli rpc 127.0.0.1:3031 add 1 2 --json"
)]
pub struct RpcArgs {
    /// Server: host:port, [v6]:port, unix:/path, a path with a '/', or @abstract.
    pub address: Address,
    /// The function.
    pub function: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Write the result's bytes exactly, with no newline.
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub net: NetOpts,
}

/// Runs `rpc`.
pub fn run_rpc(args: &RpcArgs, out: &mut dyn Write) -> Result<Outcome> {
    let client = args.net.client(&args.address);
    let start = Instant::now();
    let result = client.rpc(&args.function, &args.args)?;
    let elapsed = start.elapsed();
    if args.net.json {
        json_line(
            out,
            &json!({"address": args.address.to_string(), "function": args.function,
                    "args": args.args, "time_ms": millis(elapsed),
                    "result": result.as_deref().map(render::bytes_json)}),
        )?;
    } else if let Some(value) = &result {
        write_value(out, value, args.raw)?;
    } else {
        eprintln!("uwsgi-cli: {}: no result", args.function);
    }
    Ok(Outcome::from_bool(result.is_some()))
}

/// A cache operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CacheOp {
    /// Print the value of KEY.
    Get,
    /// Store VALUE under KEY unless KEY exists.
    Set,
    /// Store VALUE under KEY, replacing any value.
    Update,
    /// Remove KEY.
    Del,
    /// Say whether KEY exists.
    Exists,
    /// Remove every item.
    Clear,
}

/// Options of `cache`.
#[derive(Debug, Args)]
#[command(
    after_help = "Talks to uWSGI 2.0's cache \"magic\" interface (modifier1 111, \
    modifier2 17). uWSGI answers every failure by closing — a miss, set on an existing key, \
    a value over the block size, an unknown cache — so all of them are a negative answer, \
    exit code 1.\n\n\
    Examples:\n  \
    uwsgi-cli cache 127.0.0.1:3031 set greeting hello --expires 60\n  \
    uwsgi-cli cache 127.0.0.1:3031 get greeting\n  \
    uwsgi-cli cache unix:/run/uwsgi.sock update blob @blob.bin --cache images\n  \
    uwsgi-cli cache 127.0.0.1:3031 exists greeting --json\n  \
    uwsgi-cli cache 127.0.0.1:3031 clear"
)]
pub struct CacheArgs {
    /// Server: host:port, [v6]:port, unix:/path, a path with a '/', or @abstract.
    pub address: Address,
    /// What to do.
    #[arg(value_enum)]
    pub op: CacheOp,
    /// The key (all operations but clear).
    pub key: Option<String>,
    /// The value for set and update: text, @FILE, or - for stdin.
    pub value: Option<String>,
    /// The cache's name (--cache2 name=...); the server's default cache otherwise.
    #[arg(long, value_name = "NAME")]
    pub cache: Option<String>,
    /// Seconds until set/update values expire; 0 for never.
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub expires: u64,
    /// Write a got value's bytes exactly, with no newline.
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub net: NetOpts,
}

/// Runs `cache`.
pub fn run_cache(args: &CacheArgs, out: &mut dyn Write) -> Result<Outcome> {
    let needs_key = args.op != CacheOp::Clear;
    let needs_value = matches!(args.op, CacheOp::Set | CacheOp::Update);
    let usage = |m: &str| Failure::error(exit::USAGE, m.to_owned());
    let key = match (&args.key, needs_key) {
        (Some(key), true) => key.as_bytes(),
        (None, true) => return Err(usage("this operation needs a KEY")),
        (Some(_), false) => return Err(usage("clear takes no KEY")),
        (None, false) => b"",
    };
    let value = match (&args.value, needs_value) {
        (Some(spec), true) => read_value(spec)?,
        (None, true) => return Err(usage("set and update need a VALUE")),
        (Some(_), false) => return Err(usage("only set and update take a VALUE")),
        (None, false) => Vec::new(),
    };
    let client = args.net.client(&args.address);
    let cache = match &args.cache {
        Some(name) => client.cache_named(name.as_bytes()),
        None => client.cache(),
    };
    let start = Instant::now();
    let mut fields = Map::new();
    fields.insert("address".into(), json!(args.address.to_string()));
    let op = args.op.to_possible_value().map(|v| v.get_name().to_owned());
    fields.insert("command".into(), json!(op));
    if needs_key {
        fields.insert("key".into(), render::bytes_json(key));
    }
    let (positive, text) = match args.op {
        CacheOp::Get => {
            let got = cache.get(key)?;
            fields.insert("found".into(), json!(got.is_some()));
            fields.insert(
                "value".into(),
                got.as_deref().map_or(Json::Null, render::bytes_json),
            );
            if let (Some(value), false) = (&got, args.net.json) {
                write_value(out, value, args.raw)?;
            }
            (got.is_some(), got.is_none().then_some("not found"))
        }
        CacheOp::Set | CacheOp::Update => {
            let stored = if args.op == CacheOp::Set {
                cache.set(key, &value, args.expires)?
            } else {
                cache.update(key, &value, args.expires)?
            };
            fields.insert("stored".into(), json!(stored));
            let text = if stored {
                "stored"
            } else if args.op == CacheOp::Set {
                "not stored (the key exists, the value is too large, or no such cache)"
            } else {
                "not stored (the value is too large, or no such cache)"
            };
            (stored, Some(text))
        }
        CacheOp::Del => {
            let deleted = cache.del(key)?;
            fields.insert("deleted".into(), json!(deleted));
            (deleted, Some(if deleted { "deleted" } else { "not found" }))
        }
        CacheOp::Exists => {
            let exists = cache.exists(key)?;
            fields.insert("exists".into(), json!(exists));
            (exists, Some(if exists { "exists" } else { "not found" }))
        }
        CacheOp::Clear => {
            let cleared = cache.clear()?;
            fields.insert("cleared".into(), json!(cleared));
            (
                cleared,
                Some(if cleared {
                    "cleared"
                } else {
                    "not cleared (no such cache)"
                }),
            )
        }
    };
    fields.insert("time_ms".into(), json!(millis(start.elapsed())));
    if args.net.json {
        json_line(out, &Json::Object(fields))?;
    } else if let Some(text) = text {
        if positive {
            writeln!(out, "{text}")?;
        } else {
            eprintln!("uwsgi-cli: {text}");
        }
    }
    Ok(Outcome::from_bool(positive))
}

/// Options of `signal`.
#[derive(Debug, Args)]
#[command(
    after_help = "uWSGI queues the signal for its handler (registered or not) and answers \
    at once; a full queue is a refusal, exit code 1.\n\n\
    Examples:\n  \
    uwsgi-cli signal 127.0.0.1:3031 17\n  \
    uwsgi-cli signal unix:/run/uwsgi.sock 30 --json"
)]
pub struct SignalArgs {
    /// Server: host:port, [v6]:port, unix:/path, a path with a '/', or @abstract.
    pub address: Address,
    /// The uWSGI signal number, 0–255.
    pub number: u8,
    #[command(flatten)]
    pub net: NetOpts,
}

/// Maps a refusal (`ff 0000 00`) to a negative answer, other errors through.
fn acknowledged(result: client::Result<()>) -> Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(client::Error::Rejected { .. }) => Ok(false),
        Err(other) => Err(other.into()),
    }
}

/// Runs `signal`.
pub fn run_signal(args: &SignalArgs, out: &mut dyn Write) -> Result<Outcome> {
    let client = args.net.client(&args.address);
    let start = Instant::now();
    let queued = acknowledged(client.signal(args.number))?;
    if args.net.json {
        json_line(
            out,
            &json!({"address": args.address.to_string(), "signal": args.number,
                    "queued": queued, "time_ms": millis(start.elapsed())}),
        )?;
    } else if queued {
        writeln!(out, "signal {} queued", args.number)?;
    } else {
        eprintln!("uwsgi-cli: signal {} refused (queue full)", args.number);
    }
    Ok(Outcome::from_bool(queued))
}

/// Options of `spool`.
#[derive(Debug, Args)]
#[command(
    after_help = "Enqueues a spooler job (modifier1 17) described by vars; the server's \
    spooler function receives them as a dict. uWSGI's remote spool request carries vars only, \
    so --body travels as the var `body`, which the Python spooler sees as env['body'] as it \
    would a local uwsgi.spool(body=...). Exit code 1 when the server refuses (no spooler).\n\n\
    Examples:\n  \
    uwsgi-cli spool 127.0.0.1:3031 --var job=resize --var image=42\n  \
    uwsgi-cli spool unix:/run/uwsgi.sock --var task=import --body @data.csv --json"
)]
pub struct SpoolArgs {
    /// Server: host:port, [v6]:port, unix:/path, a path with a '/', or @abstract.
    pub address: Address,
    /// A job var, KEY=VALUE (repeatable, order kept).
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var, required = true)]
    pub vars: Vec<(String, String)>,
    /// The job's body: text, @FILE, or - for stdin (sent as the var `body`).
    #[arg(long, value_name = "DATA")]
    pub body: Option<String>,
    #[command(flatten)]
    pub net: NetOpts,
}

/// Runs `spool`.
pub fn run_spool(args: &SpoolArgs, out: &mut dyn Write) -> Result<Outcome> {
    let mut vars = VarsBuilder::new();
    for (k, v) in &args.vars {
        vars.push(k, v)?;
    }
    if let Some(spec) = &args.body {
        vars.push("body", read_value(spec)?)?;
    }
    let client = args.net.client(&args.address);
    let start = Instant::now();
    let spooled = acknowledged(client.spool(vars.as_vars()))?;
    if args.net.json {
        json_line(
            out,
            &json!({"address": args.address.to_string(), "spooled": spooled,
                    "vars": vars.len(), "time_ms": millis(start.elapsed())}),
        )?;
    } else if spooled {
        writeln!(out, "job spooled")?;
    } else {
        eprintln!("uwsgi-cli: spool request refused (no spooler?)");
    }
    Ok(Outcome::from_bool(spooled))
}
