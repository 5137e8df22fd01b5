//! `uwsgi-cli` as a library: every subcommand's options (clap derive) and its `run`
//! function, so that tests and fuzz targets reach all of the tool's logic without a
//! process. The binary (`main.rs`) only parses the command line, calls [`run`] and turns
//! the result into an exit code with [`exit::code`].
//!
//! The protocol work is done by `uwsgi-protocol` (its codec and its `client` feature);
//! this crate parses arguments and formats output. [`decode::render_input`] is the pure
//! core of `decode` (bytes in, text or a typed error out).

pub mod bench;
pub mod calls;
pub mod common;
pub mod decode;
pub mod encode;
pub mod exit;
pub mod input;
pub mod multicast;
pub mod pcap;
pub mod ping;
pub mod render;
pub mod request;
pub mod send;
pub mod stats;

use std::io::Write;

use clap::{Parser, Subcommand};

pub use exit::Outcome;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "uwsgi-cli",
    version,
    about = "Talk to uwsgi servers (uWSGI, nginx upstreams, uwsgi-rs) and inspect uwsgi packets",
    after_help = "Addresses: host:port, [v6]:port, unix:/path, any path with a '/', @abstract.\n\
        Every network subcommand takes --timeout (default 4s; 0 for none) and --json.\n\n\
        Examples:\n  \
        uwsgi-cli ping 127.0.0.1:3031\n  \
        uwsgi-cli request unix:/run/uwsgi.sock /hello -i\n  \
        uwsgi-cli rpc 127.0.0.1:3031 hello world\n  \
        uwsgi-cli cache 127.0.0.1:3031 get mykey --json\n  \
        uwsgi-cli stats 127.0.0.1:9191 --watch 2\n  \
        uwsgi-cli bench 127.0.0.1:3031 --kind request /hello -c 8 --duration 10s\n  \
        uwsgi-cli encode request --var REQUEST_METHOD=GET --var PATH_INFO=/ | uwsgi-cli decode\n\n\
        Exit codes: 0 ok; 1 negative answer (not found, false, no result, refused); 2 usage;\n\
        3 connection failure; 4 timeout; 5 protocol error (invalid reply or input)."
)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send one raw packet and print the reply.
    Send(send::SendArgs),
    /// Send an application request (curl for uwsgi) and print the response.
    Request(request::RequestArgs),
    /// Ping a server, like ping(8): latencies, warning message, summary.
    Ping(ping::PingArgs),
    /// Call an RPC function and print its result.
    Rpc(calls::RpcArgs),
    /// Get, set, update, delete, test or clear cache items.
    Cache(calls::CacheArgs),
    /// Raise a uWSGI signal on a server.
    Signal(calls::SignalArgs),
    /// Enqueue a spooler job.
    Spool(calls::SpoolArgs),
    /// Send one packet to many nodes at once and gather every reply.
    Multi(send::MultiArgs),
    /// Send a datagram to a multicast group (or broadcast), or listen on one.
    Multicast(multicast::MulticastArgs),
    /// Forward a complete packet (body included) to a server and print the reply.
    Route(send::RouteArgs),
    /// Decode packets from a file, stdin or a pcap capture, or one marshal value.
    Decode(decode::DecodeArgs),
    /// Build a packet from options and write its bytes to stdout.
    Encode(encode::EncodeArgs),
    /// Load-test a server: throughput, latency percentiles, errors, own CPU time.
    Bench(bench::BenchArgs),
    /// Read a uWSGI stats server and summarize workers and requests.
    Stats(stats::StatsArgs),
}

/// Runs a parsed command line, writing results to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let outcome = match &cli.command {
        Command::Send(args) => send::run_send(args, out),
        Command::Request(args) => request::run(args, out),
        Command::Ping(args) => ping::run(args, out),
        Command::Rpc(args) => calls::run_rpc(args, out),
        Command::Cache(args) => calls::run_cache(args, out),
        Command::Signal(args) => calls::run_signal(args, out),
        Command::Spool(args) => calls::run_spool(args, out),
        Command::Multi(args) => send::run_multi(args, out),
        Command::Multicast(args) => multicast::run(args, out),
        Command::Route(args) => send::run_route(args, out),
        Command::Decode(args) => decode::run(args, out),
        Command::Encode(args) => encode::run(args, out),
        Command::Bench(args) => bench::run(args, out),
        Command::Stats(args) => stats::run(args, out),
    }?;
    out.flush()?;
    Ok(outcome)
}
