//! `uwsgi-cli bench`: a load generator for any uwsgi server.
//!
//! One thread per concurrent connection, blocking sockets, one request per connection
//! (uwsgi has no keep-alive). Each thread keeps its own HDR histogram and error counts;
//! they are merged at the end, so the hot loop shares nothing but two atomic counters.
//! The process's own CPU time is read around the run (`CLOCK_PROCESS_CPUTIME_ID`) and
//! reported next to the figures, so a reader can tell whether the load generator was the
//! bottleneck.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use uwsgi_protocol::client::{self, Address, Client, HttpResponse, Phase};

use crate::common::{NetOpts, json_line, parse_duration};
use crate::exit::{self, Failure, Outcome};
use crate::request::{Prepared, RequestOpts};

/// What each request of the benchmark is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// A ping (modifier1 100).
    Ping,
    /// An RPC call: TARGET is FUNCTION [ARGS...].
    Rpc,
    /// A cache get (magic interface): TARGET is KEY; a miss counts as an error.
    CacheGet,
    /// An application request: TARGET is PATH; an HTTP status >= 400 counts as an error.
    Request,
}

/// Options of `bench`.
#[derive(Debug, Args)]
#[command(
    after_help = "Runs for --duration (default 10s) or --requests, with --concurrency \
    connections in flight (one thread each, a new connection per request as uwsgi requires). \
    Reports throughput, latency percentiles from an HDR histogram (p50 p90 p99 p99.9 max), \
    errors by kind, and the bench's own CPU time. A progress bar is drawn on stderr when it \
    is a terminal and --json is not given. Exit code 0 with no error, 1 with some, and the \
    first error's code when nothing succeeded.\n\n\
    Examples:\n  \
    uwsgi-cli bench 127.0.0.1:3031 --duration 10s --concurrency 8\n  \
    uwsgi-cli bench unix:/run/uwsgi.sock --kind rpc hello world -n 100000\n  \
    uwsgi-cli bench 127.0.0.1:3031 --kind cache-get mykey --cache default --json\n  \
    uwsgi-cli bench 127.0.0.1:3031 --kind request /hello -H 'Accept: text/plain' -c 16"
)]
pub struct BenchArgs {
    /// Server: host:port, [v6]:port, unix:/path, a path with a '/', or @abstract.
    pub address: Address,
    /// What to send: rpc: FUNCTION [ARGS...]; cache-get: KEY; request: PATH.
    #[arg(value_name = "TARGET")]
    pub target: Vec<String>,
    /// The request kind.
    #[arg(long, value_enum, default_value = "ping")]
    pub kind: Kind,
    /// Connections in flight.
    #[arg(short = 'c', long, default_value_t = 8)]
    pub concurrency: usize,
    /// How long to run (default 10s unless --requests).
    #[arg(long, value_parser = parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,
    /// How many requests to send.
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,
    /// cache-get: the cache's name.
    #[arg(long, value_name = "NAME")]
    pub cache: Option<String>,
    #[command(flatten)]
    pub request: RequestOpts,
    #[command(flatten)]
    pub net: NetOpts,
}

/// One request, ready to repeat.
#[derive(Debug, Clone)]
enum Op {
    Ping,
    Rpc { function: String, args: Vec<String> },
    CacheGet { key: String, cache: Option<String> },
    Request(Prepared),
}

/// The error kind of a failed request, for the report.
fn error_kind(error: &client::Error) -> &'static str {
    match error {
        client::Error::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::ConnectionRefused => "refused",
            std::io::ErrorKind::ConnectionReset => "reset",
            std::io::ErrorKind::AddrNotAvailable => "no-local-port",
            _ => "io",
        },
        client::Error::Timeout { phase, .. } => match phase {
            Phase::Connect => "timeout-connect",
            Phase::Read => "timeout-read",
            Phase::Write => "timeout-write",
        },
        client::Error::Protocol { .. } => "protocol",
        client::Error::NoReply { .. } => "no-reply",
        client::Error::UnexpectedReply { .. } => "unexpected-reply",
        client::Error::ReplyTooLarge { .. } => "too-large",
        client::Error::Rejected { .. } => "rejected",
        _ => "other",
    }
}

/// One request; `Err((kind, exit code))` when it failed.
fn once(client: &Client, op: &Op) -> Result<(), (&'static str, u8)> {
    let failed = |e: client::Error| (error_kind(&e), exit::client_code(&e));
    match op {
        Op::Ping => client.ping().map(drop).map_err(failed),
        Op::Rpc { function, args } => match client.rpc(function, args).map_err(failed)? {
            Some(_) => Ok(()),
            None => Err(("no-result", exit::NEGATIVE)),
        },
        Op::CacheGet { key, cache } => {
            let cache = match cache {
                Some(name) => client.cache_named(name.as_bytes()),
                None => client.cache(),
            };
            match cache.get(key.as_bytes()).map_err(failed)? {
                Some(_) => Ok(()),
                None => Err(("miss", exit::NEGATIVE)),
            }
        }
        Op::Request(prepared) => {
            let response = client
                .request(prepared.vars.as_vars(), &prepared.body)
                .map_err(failed)?;
            match HttpResponse::parse(&response) {
                None => Err(("not-http", exit::PROTOCOL)),
                Some(http) if http.status >= 500 => Err(("http-5xx", exit::NEGATIVE)),
                Some(http) if http.status >= 400 => Err(("http-4xx", exit::NEGATIVE)),
                Some(_) => Ok(()),
            }
        }
    }
}

/// What one worker thread measured.
#[derive(Debug)]
struct Tally {
    latencies: Histogram<u64>,
    errors: BTreeMap<&'static str, u64>,
    first_error: Option<u8>,
}

/// The largest latency recorded: 10 minutes, in nanoseconds; longer ones saturate.
const MAX_LATENCY_NS: u64 = 600_000_000_000;

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).context("creating the latency histogram")
}

/// This process's CPU time (user + system, all threads).
fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// The results of a run, as reported.
#[derive(Debug)]
pub struct Report {
    /// Successful requests.
    pub ok: u64,
    /// Failed requests by kind.
    pub errors: BTreeMap<&'static str, u64>,
    /// Wall-clock time of the run.
    pub wall: Duration,
    /// The bench's own CPU time during the run.
    pub cpu: Duration,
    /// Latencies of successful requests, nanoseconds.
    pub latencies: Histogram<u64>,
    first_error: Option<u8>,
}

fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

impl Report {
    /// Successful requests per second.
    pub fn throughput(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    /// CPU time over wall time, in % of one core.
    pub fn cpu_percent(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs > 0.0 {
            100.0 * self.cpu.as_secs_f64() / secs
        } else {
            0.0
        }
    }

    fn percentile(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            0.0
        } else {
            ms(self.latencies.value_at_quantile(q))
        }
    }
}

fn run_threads(args: &BenchArgs, op: &Op) -> Result<Report> {
    let client = args.net.client(&args.address);
    let done = Arc::new(AtomicU64::new(0));
    let issued = Arc::new(AtomicU64::new(0));
    let duration = match (args.duration, args.requests) {
        (Some(d), _) => Some(d),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let draw = if args.net.json || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let (length, template) = match (duration, args.requests) {
        (Some(d), _) => (
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            "{spinner} [{elapsed_precise}] {bar:40} {msg}",
        ),
        (None, Some(n)) => (
            n,
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}",
        ),
        (None, None) => (0, "{spinner} {msg}"),
    };
    let bar = ProgressBar::with_draw_target(Some(length), draw);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    let cpu_start = cpu_time();
    let start = Instant::now();
    let end = duration.map(|d| start + d);
    let limit = args.requests;
    let threads: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let client = client.clone();
            let op = op.clone();
            let done = Arc::clone(&done);
            let issued = Arc::clone(&issued);
            let mut tally = Tally {
                latencies: histogram()?,
                errors: BTreeMap::new(),
                first_error: None,
            };
            std::thread::Builder::new()
                .name("bench".into())
                .spawn(move || {
                    loop {
                        if let Some(n) = limit {
                            if issued.fetch_add(1, Ordering::Relaxed) >= n {
                                break;
                            }
                        }
                        let t0 = Instant::now();
                        if end.is_some_and(|end| t0 >= end) {
                            break;
                        }
                        match once(&client, &op) {
                            Ok(()) => {
                                let ns = u64::try_from(t0.elapsed().as_nanos())
                                    .unwrap_or(u64::MAX)
                                    .clamp(1, MAX_LATENCY_NS);
                                tally.latencies.saturating_record(ns);
                            }
                            Err((kind, code)) => {
                                *tally.errors.entry(kind).or_insert(0) += 1;
                                tally.first_error.get_or_insert(code);
                            }
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    tally
                })
                .context("starting a bench thread")
        })
        .collect::<Result<_>>()?;
    while !threads.iter().all(|t| t.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
        let n = done.load(Ordering::Relaxed);
        let secs = start.elapsed().as_secs_f64();
        if duration.is_some() {
            bar.set_position(u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX));
        } else {
            bar.set_position(n);
        }
        bar.set_message(format!("{n} requests, {:.0} req/s", n as f64 / secs));
    }
    let wall = start.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_start);
    bar.finish_and_clear();
    let mut report = Report {
        ok: 0,
        errors: BTreeMap::new(),
        wall,
        cpu,
        latencies: histogram()?,
        first_error: None,
    };
    for thread in threads {
        let tally = thread
            .join()
            .map_err(|_| anyhow::anyhow!("a bench thread panicked"))?;
        report
            .latencies
            .add(&tally.latencies)
            .context("merging latencies")?;
        for (kind, n) in tally.errors {
            *report.errors.entry(kind).or_insert(0) += n;
        }
        if report.first_error.is_none() {
            report.first_error = tally.first_error;
        }
    }
    report.ok = report.latencies.len();
    Ok(report)
}

/// Runs `bench`.
pub fn run(args: &BenchArgs, out: &mut dyn Write) -> Result<Outcome> {
    let usage = |m: &str| Failure::error(exit::USAGE, m.to_owned());
    let op = match args.kind {
        Kind::Ping if args.target.is_empty() => Op::Ping,
        Kind::Ping => return Err(usage("--kind ping takes no TARGET")),
        Kind::Rpc => match args.target.split_first() {
            Some((function, rest)) => Op::Rpc {
                function: function.clone(),
                args: rest.to_vec(),
            },
            None => return Err(usage("--kind rpc needs TARGET: FUNCTION [ARGS...]")),
        },
        Kind::CacheGet => match args.target.as_slice() {
            [key] => Op::CacheGet {
                key: key.clone(),
                cache: args.cache.clone(),
            },
            _ => return Err(usage("--kind cache-get needs TARGET: one KEY")),
        },
        Kind::Request => match args.target.as_slice() {
            [] => Op::Request(args.request.prepare(&args.address, "/")?),
            [path] => Op::Request(args.request.prepare(&args.address, path)?),
            _ => return Err(usage("--kind request takes one TARGET: PATH")),
        },
    };
    if args.requests == Some(0) {
        return Err(usage("--requests must be at least 1"));
    }
    let report = run_threads(args, &op)?;
    let failed: u64 = report.errors.values().sum();
    let kind = args
        .kind
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if args.net.json {
        json_line(
            out,
            &json!({
                "address": args.address.to_string(),
                "kind": kind,
                "concurrency": args.concurrency.max(1),
                "duration_s": (report.wall.as_secs_f64() * 1e3).round() / 1e3,
                "requests": report.ok + failed,
                "ok": report.ok,
                "errors": report.errors,
                "throughput_rps": (report.throughput() * 10.0).round() / 10.0,
                "latency_ms": {
                    "min": if report.ok > 0 { ms(report.latencies.min()) } else { 0.0 },
                    "mean": (report.latencies.mean() / 1e3).round() / 1e3,
                    "p50": report.percentile(0.50),
                    "p90": report.percentile(0.90),
                    "p99": report.percentile(0.99),
                    "p99_9": report.percentile(0.999),
                    "max": ms(report.latencies.max()),
                },
                "cpu_s": (report.cpu.as_secs_f64() * 1e3).round() / 1e3,
                "cpu_percent_of_one_core": (report.cpu_percent() * 10.0).round() / 10.0,
                "cores": cores,
            }),
        )?;
    } else {
        writeln!(
            out,
            "{kind} to {}: concurrency {}, {:.2} s",
            args.address,
            args.concurrency.max(1),
            report.wall.as_secs_f64()
        )?;
        writeln!(
            out,
            "requests   {} ok, {failed} failed, {:.1} req/s",
            report.ok,
            report.throughput()
        )?;
        writeln!(
            out,
            "latency    p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  (mean {:.3} ms)",
            report.percentile(0.50),
            report.percentile(0.90),
            report.percentile(0.99),
            report.percentile(0.999),
            ms(report.latencies.max()),
            report.latencies.mean() / 1e6
        )?;
        if failed > 0 {
            let kinds: Vec<String> = report
                .errors
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            writeln!(out, "errors     {}", kinds.join(", "))?;
        }
        writeln!(
            out,
            "bench CPU  {:.2} s (user+system) = {:.1}% of one core; {cores} core(s) on this machine",
            report.cpu.as_secs_f64(),
            report.cpu_percent()
        )?;
    }
    match (report.ok, failed, report.first_error) {
        (_, 0, _) => Ok(Outcome::Ok),
        (0, _, Some(code)) if code != exit::NEGATIVE => {
            let kinds: Vec<String> = report
                .errors
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            Err(Failure::error(
                code,
                format!("no request succeeded ({})", kinds.join(", ")),
            ))
        }
        _ => Ok(Outcome::Negative),
    }
}
