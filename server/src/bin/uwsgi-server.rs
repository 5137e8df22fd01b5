//! `uwsgi-server`: listen on uwsgi sockets and answer requests.

use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use uwsgi_protocol::Limits;
use uwsgi_server::{Config, ServeError, serve};

/// Options use uWSGI's names.
#[derive(Debug, Parser)]
#[command(name = "uwsgi-server", version, about = "A uwsgi protocol server")]
struct Options {
    /// Socket to listen on: `host:port`, `:port` (all interfaces) or a unix socket path.
    #[arg(short = 's', long)]
    socket: String,
    /// Largest request block in bytes (uWSGI --buffer-size).
    #[arg(short = 'b', long, default_value_t = 4096)]
    buffer_size: u16,
    /// Seconds to wait on each read or write (uWSGI --socket-timeout).
    #[arg(short = 'z', long, default_value_t = 4)]
    socket_timeout: u64,
    /// Message returned with every ping reply (at most 80 bytes).
    #[arg(long, default_value = "")]
    warning_message: String,
}

fn log_outcome(result: Result<usize, ServeError>) {
    match result {
        Ok(_) | Err(ServeError::Empty) => {}
        Err(err) => eprintln!("uwsgi-server: {err}"),
    }
}

/// Serves every accepted connection on its own thread, with socket timeouts applied.
fn accept_loop<S, I>(
    incoming: I,
    config: &Config,
    set_timeouts: impl Fn(&S) -> std::io::Result<()>,
) -> Result<()>
where
    S: std::io::Read + std::io::Write + Send + 'static,
    I: Iterator<Item = std::io::Result<S>>,
{
    for stream in incoming {
        let mut stream = stream.context("accepting")?;
        set_timeouts(&stream)?;
        let config = config.clone();
        std::thread::spawn(move || log_outcome(serve(&mut stream, &config)));
    }
    Ok(())
}

fn main() -> Result<()> {
    let options = Options::parse();
    if options.warning_message.len() > 80 {
        bail!("--warning-message is limited to 80 bytes");
    }
    let config = Config {
        limits: Limits {
            max_datasize: options.buffer_size,
            ..Limits::DEFAULT
        },
        socket_timeout: Duration::from_secs(options.socket_timeout),
        warning_message: options.warning_message.into_bytes(),
    };
    let timeout = Some(config.socket_timeout).filter(|t| !t.is_zero());
    if options.socket.contains('/') {
        let path = PathBuf::from(&options.socket);
        let _ = std::fs::remove_file(&path);
        let listener =
            UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
        eprintln!("uwsgi-server: listening on {}", path.display());
        accept_loop(listener.incoming(), &config, |s| {
            s.set_read_timeout(timeout)?;
            s.set_write_timeout(timeout)
        })?;
    } else {
        let addr = if options.socket.starts_with(':') {
            format!("0.0.0.0{}", options.socket)
        } else {
            options.socket.clone()
        };
        let listener = TcpListener::bind(&addr).with_context(|| format!("binding {addr}"))?;
        eprintln!("uwsgi-server: listening on {}", listener.local_addr()?);
        accept_loop(listener.incoming(), &config, |s| {
            s.set_read_timeout(timeout)?;
            s.set_write_timeout(timeout)
        })?;
    }
    Ok(())
}
