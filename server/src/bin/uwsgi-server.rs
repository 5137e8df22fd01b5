//! `uwsgi-server`: a uwsgi protocol server configured with uWSGI's option names.
//!
//! Options come from the command line, `--ini` files and `UWSGI_*` variables (see
//! docs/server.md). `--wsgi-file`, `--module` or `--mount` host a Python WSGI application;
//! without an application option it serves the built-in example app.

use std::sync::Arc;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;
use uwsgi_server::config::options::{OPTIONS, Support};
use uwsgi_server::{App, HelloApp, Server, ServerConfig, Stopper};

fn print_help() {
    println!("uwsgi-server {}\n", env!("CARGO_PKG_VERSION"));
    println!("usage: uwsgi-server [OPTIONS] [FILE.ini]\n");
    println!(
        "Options use uWSGI's names; every option can also be an ini key or a UWSGI_* variable.\n"
    );
    for spec in OPTIONS {
        let mut names = format!("--{}", spec.name);
        for alias in spec.aliases {
            if alias.len() == 1 {
                names.push_str(&format!(", -{alias}"));
            } else {
                names.push_str(&format!(", --{alias}"));
            }
        }
        let note = match spec.support {
            Support::Supported => String::new(),
            Support::Refused(reason) => format!(" [refused: {reason}]"),
        };
        println!("  {names:<34} {}{note}", spec.help);
    }
    println!(
        "\nExample: uwsgi-server --socket 127.0.0.1:3031 --processes 4 --cache2 name=main,items=1000"
    );
}

/// uWSGI's meanings: SIGTERM stops gracefully (workers finish the request in hand, as
/// with `--die-on-term`); SIGINT and SIGQUIT stop at once.
fn watch_signals(mut signals: Signals, stopper: Stopper, workers: usize) {
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            if signal == SIGTERM {
                eprintln!("uwsgi-server: SIGTERM, finishing in-flight requests");
                stopper.stop(workers);
            } else {
                eprintln!("uwsgi-server: signal {signal}, stopping now");
                std::process::exit(1);
            }
        }
    });
}

/// The Python host when an application option is given, else the built-in example.
#[cfg(feature = "python")]
fn application(config: &ServerConfig) -> Result<Arc<dyn App>> {
    if config.python.wanted() {
        let app = uwsgi_server::python::PythonApp::new(config).context("starting Python")?;
        return Ok(Arc::new(app));
    }
    Ok(Arc::new(HelloApp))
}

#[cfg(not(feature = "python"))]
fn application(_config: &ServerConfig) -> Result<Arc<dyn App>> {
    Ok(Arc::new(HelloApp))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print_help();
        return Ok(());
    }
    if args.iter().any(|a| a == "--version") {
        println!("uwsgi-server {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    // Installed before anything is announced, so a signal sent as soon as the server
    // says it listens is never lost to the default action.
    let signals = Signals::new([SIGTERM, SIGINT, SIGQUIT]).context("installing signal handlers")?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    let config = ServerConfig::from_sources(&args, &env)?;
    let app = application(&config)?;
    let server = Server::bind(config, app).context("starting the server")?;
    for addr in server.local_addrs() {
        eprintln!("uwsgi-server: listening on {addr}");
    }
    let running = server.start();
    watch_signals(signals, running.stopper(), running.workers_per_listener());
    running.wait();
    eprintln!("uwsgi-server: stopped");
    Ok(())
}
