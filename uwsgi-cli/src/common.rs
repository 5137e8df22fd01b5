//! Options and helpers shared by the network subcommands: timeouts, `--json`, payloads,
//! vars, and writing results.

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value as Json;
use uwsgi_protocol::client::{Address, Client, Timeouts};
use uwsgi_protocol::{ArrayBuilder, VarsBuilder};

/// `--timeout` and `--json`, on every network subcommand.
#[derive(Debug, Clone, Args)]
pub struct NetOpts {
    /// Limit for each connect, write and read: `4`, `1.5s`, `500ms`, `2m`; `0` for none.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "4s")]
    pub timeout: Duration,
    /// Print one JSON object per result (per line) instead of text.
    #[arg(long)]
    pub json: bool,
}

impl NetOpts {
    /// A client for `address` with these timeouts.
    pub fn client(&self, address: &Address) -> Client {
        Client::new(address.clone()).with_timeouts(Timeouts::uniform(self.timeout))
    }
}

/// Parses `4`, `4s`, `1.5s`, `500ms`, `250us`, `2m` into a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 4, 1.5s, 500ms)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (s, ms, us, m, h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

/// Parses `KEY=VALUE` (the value may be empty and may contain `=`).
pub fn parse_var(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

/// Bytes from a command-line value: `-` reads stdin, `@path` reads a file, anything
/// else is taken literally.
pub fn read_value(spec: &str) -> Result<Vec<u8>> {
    if spec == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading stdin")?;
        Ok(buf)
    } else if let Some(path) = spec.strip_prefix('@') {
        std::fs::read(path).with_context(|| format!("reading {path}"))
    } else {
        Ok(spec.as_bytes().to_vec())
    }
}

/// The block and header bytes of a packet given on the command line.
#[derive(Debug, Clone, Args)]
pub struct PacketOpts {
    /// modifier1 (0 WSGI, 17 spooler, 100 ping, 110 signal, 111 cache, 173 RPC, …).
    #[arg(short = '1', long, default_value_t = 0, value_name = "M1")]
    pub modifier1: u8,
    /// modifier2.
    #[arg(short = '2', long, default_value_t = 0, value_name = "M2")]
    pub modifier2: u8,
    /// Build a vars block: one KEY=VALUE per use, order kept.
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var,
          conflicts_with_all = ["items", "payload"])]
    pub vars: Vec<(String, String)>,
    /// Build an array block (RPC calls): one item per use, order kept.
    #[arg(long = "item", value_name = "ITEM", conflicts_with = "payload")]
    pub items: Vec<String>,
    /// The block as is: text, @FILE, or - for stdin (empty when nothing builds one).
    #[arg(value_name = "PAYLOAD")]
    pub payload: Option<String>,
}

impl PacketOpts {
    /// The block these options describe.
    pub fn block(&self) -> Result<Vec<u8>> {
        if !self.vars.is_empty() {
            let mut builder = VarsBuilder::new();
            for (k, v) in &self.vars {
                builder.push(k, v)?;
            }
            return Ok(builder.into_block());
        }
        if !self.items.is_empty() {
            return Ok(ArrayBuilder::from_items(&self.items)?
                .as_array()
                .as_bytes()
                .to_vec());
        }
        match &self.payload {
            Some(spec) => read_value(spec),
            None => Ok(Vec::new()),
        }
    }
}

/// Writes one JSON value on its own line.
pub fn json_line(out: &mut dyn Write, value: &Json) -> Result<()> {
    writeln!(out, "{value}")?;
    Ok(())
}

/// Milliseconds as a float with microsecond precision, for JSON and text.
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("4"), Ok(Duration::from_secs(4)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn vars() {
        assert_eq!(parse_var("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_var("a="), Ok(("a".into(), String::new())));
        assert!(parse_var("a").is_err());
    }
}
