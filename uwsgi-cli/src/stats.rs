//! `uwsgi-cli stats`: read a uWSGI stats server (`--stats ADDR`) and summarize it.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use serde_json::Value as Json;
use uwsgi_protocol::client::Address;

use crate::common::{NetOpts, parse_duration};
use crate::exit::{self, Failure, Outcome};

/// Options of `stats`.
#[derive(Debug, Args)]
#[command(
    after_help = "uWSGI's stats server writes one JSON document on connect. The summary \
    shows the instance, its sockets, every worker (status, requests, exceptions, average \
    response time, memory), caches and spoolers; --watch refreshes it and adds request \
    rates. --json writes the document as received (one per refresh with --watch).\n\n\
    Examples:\n  \
    uwsgi-cli stats 127.0.0.1:9191\n  \
    uwsgi-cli stats unix:/run/uwsgi-stats.sock --watch 2\n  \
    uwsgi-cli stats 127.0.0.1:9191 --json | jq '.workers[].requests'\n  \
    uwsgi-cli stats 127.0.0.1:9191 --http     # a server started with --stats-http"
)]
pub struct StatsArgs {
    /// The stats server: host:port, [v6]:port, unix:/path, a path with a '/', or @abstract.
    pub address: Address,
    /// Refresh every DURATION (e.g. 2, 500ms) until interrupted (or --count).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub watch: Option<Duration>,
    /// With --watch: stop after this many reads.
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// The server was started with --stats-http: send an HTTP request first.
    #[arg(long)]
    pub http: bool,
    #[command(flatten)]
    pub net: NetOpts,
}

/// Runs `stats`.
pub fn run(args: &StatsArgs, out: &mut dyn Write) -> Result<Outcome> {
    let client = args.net.client(&args.address);
    let clear = args.watch.is_some() && !args.net.json && std::io::stdout().is_terminal();
    let mut previous: Option<(Instant, Json)> = None;
    let mut reads = 0u64;
    loop {
        let document = if args.http {
            client.stats_http()?
        } else {
            client.stats()?
        };
        let now = Instant::now();
        reads += 1;
        if args.net.json {
            out.write_all(&document)?;
            if !document.ends_with(b"\n") {
                out.write_all(b"\n")?;
            }
        } else {
            let value: Json = serde_json::from_slice(&document).map_err(|e| {
                Failure::error(
                    exit::PROTOCOL,
                    format!("the stats document is not valid JSON: {e}"),
                )
            })?;
            let rates = previous
                .as_ref()
                .map(|(at, before)| (now.duration_since(*at), before));
            let text = summary(&value, rates);
            if clear {
                out.write_all(b"\x1b[H\x1b[2J")?;
            }
            out.write_all(text.as_bytes())?;
            previous = Some((now, value));
        }
        out.flush()?;
        match args.watch {
            Some(interval) if args.count == 0 || reads < args.count => {
                std::thread::sleep(interval);
                if !clear && !args.net.json {
                    writeln!(out)?;
                }
            }
            _ => return Ok(Outcome::Ok),
        }
    }
}

fn u64_of(value: &Json, key: &str) -> u64 {
    value.get(key).and_then(Json::as_u64).unwrap_or(0)
}

fn str_of<'a>(value: &'a Json, key: &str) -> &'a str {
    value.get(key).and_then(Json::as_str).unwrap_or("-")
}

fn list<'a>(value: &'a Json, key: &str) -> &'a [Json] {
    value
        .get(key)
        .and_then(Json::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Bytes in binary units.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Microseconds, readably.
fn micros(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2} s", us as f64 / 1e6)
    } else if us >= 1_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{us} us")
    }
}

/// The readable summary of a stats document. `rates` is the time since the previous
/// document and that document, for request rates.
pub fn summary(doc: &Json, rates: Option<(Duration, &Json)>) -> String {
    let mut s = String::new();
    let version = doc
        .get("version")
        .and_then(Json::as_str)
        .unwrap_or("(unknown)");
    let _ = writeln!(
        s,
        "uWSGI {version}  pid {}  uid {}  gid {}  cwd {}",
        u64_of(doc, "pid"),
        u64_of(doc, "uid"),
        u64_of(doc, "gid"),
        str_of(doc, "cwd")
    );
    let _ = writeln!(
        s,
        "listen queue {} (errors {})  signal queue {}  load {}",
        u64_of(doc, "listen_queue"),
        u64_of(doc, "listen_queue_errors"),
        u64_of(doc, "signal_queue"),
        u64_of(doc, "load")
    );
    let sockets: Vec<String> = list(doc, "sockets")
        .iter()
        .map(|sock| {
            format!(
                "{} ({}, queue {}/{})",
                str_of(sock, "name"),
                str_of(sock, "proto"),
                u64_of(sock, "queue"),
                u64_of(sock, "max_queue")
            )
        })
        .collect();
    if !sockets.is_empty() {
        let _ = writeln!(s, "sockets: {}", sockets.join(", "));
    }
    let workers = list(doc, "workers");
    let busy = workers
        .iter()
        .filter(|w| str_of(w, "status") == "busy")
        .count();
    let idle = workers
        .iter()
        .filter(|w| str_of(w, "status") == "idle")
        .count();
    let total: u64 = workers.iter().map(|w| u64_of(w, "requests")).sum();
    let exceptions: u64 = workers.iter().map(|w| u64_of(w, "exceptions")).sum();
    let tx: u64 = workers.iter().map(|w| u64_of(w, "tx")).sum();
    let rate = |before: Option<&Json>, now: u64, elapsed: Duration| -> Option<f64> {
        let before = before?;
        let secs = elapsed.as_secs_f64();
        (secs > 0.0).then(|| now.saturating_sub(u64_of(before, "requests")) as f64 / secs)
    };
    let mut line = format!(
        "workers: {} ({idle} idle, {busy} busy)  requests {total}  exceptions {exceptions}  tx {}",
        workers.len(),
        size(tx)
    );
    if let Some((elapsed, before)) = rates {
        let before_total: u64 = list(before, "workers")
            .iter()
            .map(|w| u64_of(w, "requests"))
            .sum();
        let secs = elapsed.as_secs_f64();
        if secs > 0.0 {
            let _ = write!(
                line,
                "  {:.1} req/s",
                total.saturating_sub(before_total) as f64 / secs
            );
        }
    }
    let _ = writeln!(s, "{line}");
    let _ = writeln!(
        s,
        "  {:>3} {:>8} {:<8} {:>9} {:>6} {:>9} {:>10} {:>10} {:>8}{}",
        "id",
        "pid",
        "status",
        "requests",
        "exc",
        "avg rt",
        "rss",
        "vsz",
        "respawns",
        if rates.is_some() { "    req/s" } else { "" }
    );
    for w in workers {
        let id = u64_of(w, "id");
        let mut row = format!(
            "  {:>3} {:>8} {:<8} {:>9} {:>6} {:>9} {:>10} {:>10} {:>8}",
            id,
            u64_of(w, "pid"),
            str_of(w, "status"),
            u64_of(w, "requests"),
            u64_of(w, "exceptions"),
            micros(u64_of(w, "avg_rt")),
            size(u64_of(w, "rss")),
            size(u64_of(w, "vsz")),
            u64_of(w, "respawn_count")
        );
        if let Some((elapsed, before)) = rates {
            let before_worker = list(before, "workers")
                .iter()
                .find(|b| u64_of(b, "id") == id);
            if let Some(r) = rate(before_worker, u64_of(w, "requests"), elapsed) {
                let _ = write!(row, " {r:>8.1}");
            }
        }
        let _ = writeln!(s, "{row}");
    }
    let caches = list(doc, "caches");
    if !caches.is_empty() {
        let _ = writeln!(s, "caches:");
        for c in caches {
            let _ = writeln!(
                s,
                "  {}  items {}/{}  hits {}  miss {}  full {}  blocksize {}",
                str_of(c, "name"),
                u64_of(c, "items"),
                u64_of(c, "max_items"),
                u64_of(c, "hits"),
                u64_of(c, "miss"),
                u64_of(c, "full"),
                u64_of(c, "blocksize")
            );
        }
    }
    let spoolers = list(doc, "spoolers");
    if !spoolers.is_empty() {
        let _ = writeln!(s, "spoolers:");
        for sp in spoolers {
            let _ = writeln!(
                s,
                "  {}  pid {}  tasks {}  running {}  respawns {}",
                str_of(sp, "dir"),
                u64_of(sp, "pid"),
                u64_of(sp, "tasks"),
                u64_of(sp, "running"),
                u64_of(sp, "respawns")
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarizes_a_small_document() {
        let doc: Json = serde_json::json!({
            "version": "2.0.30", "pid": 10, "uid": 0, "gid": 0, "cwd": "/srv",
            "listen_queue": 0, "signal_queue": 0, "load": 0,
            "sockets": [{"name": "127.0.0.1:3031", "proto": "uwsgi", "queue": 0, "max_queue": 100}],
            "workers": [{"id": 1, "pid": 11, "status": "idle", "requests": 7, "exceptions": 0,
                         "avg_rt": 1500, "rss": 0, "vsz": 0, "respawn_count": 1, "tx": 2048}],
            "caches": [{"name": "default", "items": 1, "max_items": 100, "hits": 2, "miss": 1,
                        "full": 0, "blocksize": 4096}]
        });
        let text = summary(&doc, None);
        assert!(text.starts_with("uWSGI 2.0.30  pid 10"), "{text}");
        assert!(
            text.contains("workers: 1 (1 idle, 0 busy)  requests 7"),
            "{text}"
        );
        assert!(text.contains("1.5 ms"), "{text}");
        assert!(
            text.contains("default  items 1/100  hits 2  miss 1"),
            "{text}"
        );
        assert_eq!(size(2048), "2.0 KiB");
        let later = summary(&doc, Some((Duration::from_secs(1), &doc)));
        assert!(later.contains("0.0 req/s"), "{later}");
    }
}
