//! # uwsgi-server
//!
//! A uwsgi protocol server for nginx's `uwsgi_pass` and uWSGI's clients, configured with
//! uWSGI's option names. The crate is split by job:
//!
//! * [`config`]: command line, ini files and `UWSGI_*` variables → [`config::ServerConfig`];
//! * [`listen`]: address forms and socket binding;
//! * [`connection`]: one request per connection, framed strictly by the protocol;
//! * [`http`]: `--http-socket`, plain HTTP/1.1 with keep-alive into the same app;
//! * [`dispatch`] and [`handlers`]: the reply for each modifier1;
//! * [`app`]: the [`app::App`] trait an application implements, and a built-in example;
//! * [`server`]: the workers and what they share.

pub mod app;
mod background;
pub mod config;
pub mod connection;
pub mod dispatch;
pub mod handlers;
pub mod http;
pub mod listen;
#[cfg(feature = "python")]
pub mod python;
pub mod reqlog;
mod schedule;
pub mod server;
pub use uwsgi_server_state as state;
pub mod master;
pub mod mules;
pub mod scoreboard;
pub mod stats;

pub use app::{App, HelloApp, Output};
pub use config::ServerConfig;
pub use server::{HttpConnections, Running, Server, Shared, Stopper};

/// The host name (for `%h` and `uwsgi.hostname`), `localhost` if the kernel won't say.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
