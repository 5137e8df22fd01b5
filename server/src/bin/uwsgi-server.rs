//! `uwsgi-server`: a uwsgi protocol server configured with uWSGI's option names.
//!
//! Options come from the command line, `--ini` files and `UWSGI_*` variables (see
//! docs/server.md). `--wsgi-file`, `--module` or `--mount` host a Python WSGI application;
//! without an application option it serves the built-in example app.

use std::sync::Arc;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;
use uwsgi_server::config::options::{OPTIONS, Support};
use uwsgi_server::{App, HelloApp, Server, ServerConfig, Stopper, master};

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

/// Without a master this process is the one worker, and reacts as a lone uWSGI worker
/// does: SIGTERM and SIGHUP finish the requests in hand and stop (nobody is there to
/// reload it), SIGINT and SIGQUIT stop at once, SIGUSR1 and SIGUSR2 are ignored.
fn watch_signals(mut signals: Signals, stopper: Stopper, workers: usize) {
    std::thread::spawn(move || {
        for signal in signals.forever() {
            match signal {
                SIGTERM | SIGHUP => {
                    eprintln!("uwsgi-server: signal {signal}, finishing in-flight requests");
                    stopper.stop(workers);
                    return;
                }
                SIGINT | SIGQUIT => {
                    eprintln!("uwsgi-server: signal {signal}, stopping now");
                    std::process::exit(1);
                }
                _ => {}
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

/// uWSGI's "SNMP server enabled on ADDR" / "SNMP agent enabled." lines.
fn announce_snmp(server: &Server) {
    let shared = server.shared();
    let Some(snmp) = shared.state.snmp() else {
        return;
    };
    match server.snmp_addr() {
        Some(addr) => eprintln!("uwsgi-server: SNMP agent on {addr}"),
        None => eprintln!("uwsgi-server: SNMP agent enabled (on the --udp sockets)"),
    }
    if snmp.community().is_empty() {
        eprintln!(
            "uwsgi-server: the SNMP agent has no community (--snmp-community): it answers nothing until one is set"
        );
    }
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
    let signals = Signals::new(master::SIGNALS).context("installing signal handlers")?;
    // A reloading master blocked them across its re-exec; what came meanwhile is
    // delivered now, to the handlers.
    master::unblock_signals();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let config = ServerConfig::from_sources(&args, &env)?;
    let app = application(&config)?;
    if config.uses_master() {
        let server = master::prepare(config, app).context("starting the server")?;
        for addr in server.local_addrs() {
            eprintln!("uwsgi-server: listening on {addr}");
        }
        if let Some(addr) = server.stats_addr() {
            eprintln!("uwsgi-server: stats server on {addr}");
        }
        announce_snmp(&server);
        master::run(server, signals).context("master")?;
        eprintln!("uwsgi-server: stopped");
        return Ok(());
    }
    let server = Server::bind(config, app).context("starting the server")?;
    for addr in server.local_addrs() {
        eprintln!("uwsgi-server: listening on {addr}");
    }
    announce_snmp(&server);
    let running = server.start();
    watch_signals(signals, running.stopper(), running.workers_per_listener());
    running.wait();
    eprintln!("uwsgi-server: stopped");
    Ok(())
}
