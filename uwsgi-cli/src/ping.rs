//! `uwsgi-cli ping`: like ping(8), for uwsgi servers (modifier1 100).

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use serde_json::json;
use uwsgi_protocol::client::Address;

use crate::common::{NetOpts, json_line, millis, parse_duration};
use crate::exit::{self, Failure, Outcome};

/// Options of `ping`.
#[derive(Debug, Args)]
#[command(
    after_help = "Prints one line per reply with its round-trip time and the server's \
    warning message if it has one (uwsgi.set_warning_message), then a summary. Exit code 0 \
    when every ping was answered, 1 when some were lost, otherwise the code of the last \
    failure (3 connection, 4 timeout, 5 protocol).\n\n\
    Examples:\n  \
    uwsgi-cli ping 127.0.0.1:3031\n  \
    uwsgi-cli ping -c 5 -i 200ms unix:/run/uwsgi.sock\n  \
    uwsgi-cli ping -c 0 [::1]:3031        # until interrupted"
)]
pub struct PingArgs {
    /// Server: host:port, [v6]:port, unix:/path, a path with a '/', or @abstract.
    pub address: Address,
    /// Pings to send; 0 for no end.
    #[arg(short = 'c', long, default_value_t = 1)]
    pub count: u64,
    /// Pause between pings.
    #[arg(short = 'i', long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    #[command(flatten)]
    pub net: NetOpts,
}

/// Runs `ping`.
pub fn run(args: &PingArgs, out: &mut dyn Write) -> Result<Outcome> {
    let client = args.net.client(&args.address);
    let mut times: Vec<f64> = Vec::new();
    let mut last_error = None;
    let mut sent = 0u64;
    while args.count == 0 || sent < args.count {
        if sent > 0 {
            std::thread::sleep(args.interval);
        }
        sent += 1;
        let start = Instant::now();
        let result = client.ping();
        let ms = millis(start.elapsed());
        match result {
            Ok(warning) => {
                times.push(ms);
                if args.net.json {
                    json_line(
                        out,
                        &json!({"address": args.address.to_string(), "seq": sent,
                                "time_ms": ms, "warning": warning}),
                    )?;
                } else {
                    let warning = warning
                        .map(|w| format!(" warning={w:?}"))
                        .unwrap_or_default();
                    writeln!(
                        out,
                        "pong from {}: seq={sent} time={ms:.3} ms{warning}",
                        args.address
                    )?;
                }
            }
            Err(err) => {
                if args.net.json {
                    json_line(
                        out,
                        &json!({"address": args.address.to_string(), "seq": sent,
                                "error": err.to_string(), "exit_code": exit::client_code(&err)}),
                    )?;
                } else {
                    writeln!(out, "no pong from {}: seq={sent}: {err}", args.address)?;
                }
                last_error = Some(err);
            }
        }
        out.flush()?;
    }
    let received = times.len() as u64;
    let loss = if sent == 0 {
        0.0
    } else {
        100.0 * (sent - received) as f64 / sent as f64
    };
    let (min, max, avg, stddev) = stats(&times);
    if args.net.json {
        json_line(
            out,
            &json!({"address": args.address.to_string(), "sent": sent, "received": received,
                    "loss_percent": loss, "min_ms": min, "avg_ms": avg, "max_ms": max,
                    "stddev_ms": stddev}),
        )?;
    } else {
        writeln!(out, "--- {} ping statistics ---", args.address)?;
        writeln!(out, "{sent} sent, {received} received, {loss:.0}% loss")?;
        if received > 0 {
            writeln!(
                out,
                "rtt min/avg/max/stddev = {min:.3}/{avg:.3}/{max:.3}/{stddev:.3} ms"
            )?;
        }
    }
    match last_error {
        None => Ok(Outcome::Ok),
        Some(_) if received > 0 => Ok(Outcome::Negative),
        Some(err) => Err(Failure::error(exit::client_code(&err), err.to_string())),
    }
}

/// min, max, mean and population standard deviation (zeros for no samples).
fn stats(samples: &[f64]) -> (f64, f64, f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0, 0.0, 0.0);
    }
    let n = samples.len() as f64;
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let avg = samples.iter().sum::<f64>() / n;
    let var = samples.iter().map(|s| (s - avg).powi(2)).sum::<f64>() / n;
    let round = |x: f64| (x * 1e3).round() / 1e3;
    (round(min), round(max), round(avg), round(var.sqrt()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn stats() {
        assert_eq!(super::stats(&[]), (0.0, 0.0, 0.0, 0.0));
        assert_eq!(super::stats(&[1.0, 3.0]), (1.0, 3.0, 2.0, 1.0));
    }
}
