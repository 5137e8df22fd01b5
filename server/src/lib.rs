//! # uwsgi-server
//!
//! The server side of uwsgi-rs. This first cut serves the protocol's built-in
//! capabilities that need no application — ping (modifier1 100, with the warning
//! message) and echo (101) — over TCP and unix stream sockets, one request per
//! connection as uWSGI does, with uWSGI's limits (`--buffer-size`, `--socket-timeout`).
//! Every other modifier is answered as a uWSGI without that plugin answers it: the
//! connection is closed with no bytes. Application hosting, the process model and the
//! remaining handlers build on [`connection::serve`].

pub mod connection;

pub use connection::{Config, ServeError, serve};
