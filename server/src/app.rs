//! What a server hosts: the [`App`] trait (a Rust handler now; the Python WSGI host
//! implements the same trait) and the HTTP response head writer every app uses, which
//! refuses CR, LF and NUL in header names and values.

use std::io::{self, Read, Write};

use std::sync::Arc;
use uwsgi_protocol::Modifier1;

use crate::state::ServerState;
use crate::state::rpc::RpcError;
use crate::state::signals::HandlerFailure;
use crate::state::spooler::{SpoolOutcome, SpoolTask};
use uwsgi_protocol::marshal::Value;
use uwsgi_protocol::packet::Request;

/// An application behind the uwsgi protocol.
pub trait App: Send + Sync {
    /// Called once when the server is built, before any request: register RPC
    /// functions and signal handlers here (uWSGI apps do it at import time).
    fn init(&self, state: &Arc<ServerState>) -> Result<(), String> {
        let _ = state;
        Ok(())
    }

    /// Called once before [`App::init`] with the descriptors of the listening sockets,
    /// in `--socket` order (the Python host shows them as `uwsgi.sockets`).
    fn sockets_bound(&self, fds: &[i32]) {
        let _ = fds;
    }

    /// Runs one spool job (uWSGI's `uwsgi.spooler`). The default leaves every job in
    /// place ([`SpoolOutcome::Ignore`]), as a spooler without a function does.
    fn spool(&self, task: &SpoolTask) -> SpoolOutcome {
        let _ = task;
        SpoolOutcome::Ignore
    }

    /// Whether this app answers requests of `modifier1`. By default the WSGI slots: 0
    /// and 30 (WSGI with `SCRIPT_NAME` stripped from `PATH_INFO`). Other slots are
    /// closed without reply, as a uWSGI without that language plugin does.
    fn serves(&self, modifier1: Modifier1) -> bool {
        matches!(modifier1, Modifier1::Wsgi | Modifier1::WsgiScriptName)
    }

    /// Handles a marshalled message (modifier1 33) the way uWSGI 0.9's
    /// `message_manager_marshal` did: called with the unmarshalled object and the
    /// packet's modifier2, its return value is marshalled back. `None` (the default: no
    /// handler) closes the connection without reply, as uWSGI 1.x and 2.0 do.
    fn marshal_message(&self, value: Value, modifier2: u8) -> Option<Value> {
        let _ = (value, modifier2);
        None
    }

    /// Called once the server around this app is built, with what its workers share
    /// (the scoreboard of every worker process among it): apps that report on the
    /// server keep a weak reference.
    fn attach_server(&self, shared: &Arc<crate::server::Shared>) {
        let _ = shared;
    }

    /// Runs in the process that is about to fork a worker, right before `fork(2)`
    /// (the Python host takes the interpreter's fork locks here, as `os.fork` does).
    fn before_fork(&self) {}

    /// Runs in the parent right after `fork(2)` returned, whatever it returned.
    fn after_fork_parent(&self) {}

    /// Runs once in each worker process before it accepts requests: `worker_id` is
    /// uWSGI's 1-based worker number, and `forked` says whether this process was forked
    /// from a master (then the Python host resets the interpreter's state for the child
    /// first). `--lazy-apps` loads the application here, and `uwsgi.post_fork_hook`
    /// runs here. An error stops the worker.
    fn start_worker(&self, worker_id: usize, forked: bool) -> Result<(), String> {
        let _ = (worker_id, forked);
        Ok(())
    }

    /// Runs first in every thread that serves requests (each `--threads` core of a
    /// worker, the `--http-socket` threads), before it takes a connection. The Python
    /// host gives the thread a Python thread state kept for its life here, so RPC
    /// functions, signal handlers and marshal messages run in it as WSGI requests do.
    fn start_thread(&self) {}

    /// Runs once in a worker process that is exiting normally (uWSGI's `uwsgi.atexit`).
    fn stop_worker(&self) {}

    /// The body of mule `mule_id` (1-based; `--mule`), in a process forked from the
    /// master: run `script`, or without one the message loop (each message read from
    /// `mules` goes to the app; the Python host calls `uwsgi.mule_msg_hook`). Returns
    /// the process's exit code; the master respawns a mule that ended. The default,
    /// for apps that take no messages, reads and drops them until an error.
    fn run_mule(
        &self,
        mule_id: usize,
        script: Option<&std::path::Path>,
        mules: &crate::mules::Mules,
    ) -> i32 {
        let _ = (mule_id, script);
        while mules.receive(true, crate::mules::MAX_MESSAGE, None).is_ok() {}
        1
    }

    /// Serves an application request (modifier1 0 and the other language slots): read
    /// at most the request's body from `body`, write a raw HTTP response to `out`. Both
    /// are `Send`, so an app may read and write from a helper thread it scopes to the
    /// call (the Python host streams large bodies that way).
    fn call(
        &self,
        request: &Request<'_>,
        body: &mut (dyn Read + Send),
        out: &mut dyn Output,
    ) -> io::Result<Status>;

    /// What the request this thread just served (its [`App::call`] has returned) adds
    /// to the request log: the log variables it set (`uwsgi.set_logvar`) and the vars
    /// it added (`uwsgi.add_var`). Taken once; the default has none.
    fn take_log_extras(&self) -> LogExtras {
        LogExtras::default()
    }
}

/// What an application adds to its request's log line (see [`App::take_log_extras`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogExtras {
    /// Log variables, `%(name)` in `--logformat`.
    pub logvars: Vec<(Vec<u8>, Vec<u8>)>,
    /// Vars added to the request, seen by `%(var.NAME)` after the request's own.
    pub vars: Vec<(Vec<u8>, Vec<u8>)>,
    /// `uwsgi.log_this_request()`: logged even under `--disable-logging`.
    pub log_this: bool,
}

/// Where an app writes its response: a writer that can also send a file's bytes the
/// fastest way it knows (`sendfile(2)` on a socket). It is `Send` so that an app can
/// write with its own locks released (the Python host releases the GIL).
pub trait Output: Write + Send {
    /// Sends `len` bytes of `file` from `offset`, returning how many were sent (fewer
    /// only when the file is shorter). The default reads the file and writes the bytes.
    fn send_file(&mut self, file: &std::fs::File, offset: u64, len: u64) -> io::Result<u64> {
        copy_file(file, offset, len, self)
    }

    /// The connection's file descriptor, when it has one (`uwsgi.connection_fd()`).
    fn raw_fd(&self) -> Option<i32> {
        None
    }

    /// Writes as much of `parts` as the connection takes at once, without waiting (a
    /// non-blocking send), and returns how many bytes that was: 0 when the connection
    /// would block, and always 0 where there is no such send (the default). The caller
    /// writes the rest the ordinary, blocking way; an app that holds a lock the blocking
    /// way must not (the Python host's GIL) gets the common small response out without
    /// releasing it.
    fn write_now(&mut self, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let _ = parts;
        Ok(0)
    }

    /// A handle on the connection that the app owns, for response objects that may
    /// outlive this borrow (Python's `write()` callable, `uwsgi.disconnect()`): the
    /// server's own reference-counted connection, so getting one costs no system call.
    /// The app must drop it when the request ends (the server closes the connection
    /// when the last handle goes). `None` where there is none.
    fn try_clone_connection(&self) -> Option<SharedConnection> {
        None
    }
}

/// [`Output::send_file`]'s portable way: positional reads and ordinary writes.
pub fn copy_file<W: Write + ?Sized>(
    file: &std::fs::File,
    offset: u64,
    len: u64,
    out: &mut W,
) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    while sent < len {
        let want = usize::try_from(len - sent)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = file.read_at(&mut buf[..want], offset + sent)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        sent += n as u64;
    }
    Ok(sent)
}

impl Output for Vec<u8> {}
impl Output for io::Sink {}
impl<W: Output + ?Sized> Output for &mut W {
    fn send_file(&mut self, file: &std::fs::File, offset: u64, len: u64) -> io::Result<u64> {
        (**self).send_file(file, offset, len)
    }
    fn raw_fd(&self) -> Option<i32> {
        (**self).raw_fd()
    }
    fn write_now(&mut self, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
        (**self).write_now(parts)
    }
    fn try_clone_connection(&self) -> Option<SharedConnection> {
        (**self).try_clone_connection()
    }
}

/// A connection shared between the server and an app for the time of a request (see
/// [`Output::try_clone_connection`]).
pub type SharedConnection = Arc<dyn std::os::fd::AsFd + Send + Sync>;

/// What an app answered, for the request log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// HTTP status code.
    pub code: u16,
    /// Number of response headers.
    pub headers: usize,
    /// Bytes of the response head.
    pub head_bytes: usize,
    /// Bytes of the response body.
    pub body_bytes: usize,
}

/// A header that would break the response framing (response splitting).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("response header {name:?} contains CR, LF or NUL, or an invalid name")]
pub struct BadHeader {
    /// The name as given (lossy).
    pub name: String,
}

/// Writes `<protocol> <status>\r\n`, the headers and the blank line, as uWSGI does (the
/// status line uses the request's `SERVER_PROTOCOL`, `HTTP/1.0` when absent). Returns the
/// bytes written, or refuses a header carrying CR, LF or NUL before writing anything.
pub fn write_head(
    out: &mut dyn Write,
    protocol: &[u8],
    status: &str,
    headers: &[(&str, &[u8])],
) -> io::Result<usize> {
    let bad = |b: &u8| matches!(b, b'\r' | b'\n' | 0);
    for (name, value) in headers {
        let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if !name_ok || value.iter().any(bad) || status.bytes().any(|b| bad(&b)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                BadHeader {
                    name: (*name).to_owned(),
                },
            ));
        }
    }
    let protocol = if protocol.is_empty() || protocol.iter().any(bad) {
        &b"HTTP/1.0"[..]
    } else {
        protocol
    };
    let mut head = Vec::with_capacity(64 + headers.len() * 32);
    head.extend_from_slice(protocol);
    head.push(b' ');
    head.extend_from_slice(status.as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    out.write_all(&head)?;
    Ok(head.len())
}

/// The example app's `snmp_set(op, slot, value)` RPC function.
fn snmp_set(snmp: &crate::state::snmp::Snmp, args: &[&[u8]]) -> Result<Vec<u8>, RpcError> {
    use crate::state::snmp::SnmpKind;
    let text = |i: usize| {
        args.get(i)
            .and_then(|a| std::str::from_utf8(a).ok())
            .unwrap_or("")
    };
    let usage = || RpcError::Failed("usage: snmp_set(op, slot, value)".to_owned());
    let slot: i64 = text(1).parse().map_err(|_| usage())?;
    let value: u64 = text(2).parse().map_err(|_| usage())?;
    let kind = |name: &str| match name {
        "counter32" => Some(SnmpKind::Counter32),
        "counter64" => Some(SnmpKind::Counter64),
        "gauge" => Some(SnmpKind::Gauge),
        _ => None,
    };
    let delta = || u32::try_from(value).map_err(|_| usage());
    let op = text(0);
    let done = if let Some(name) = op.strip_prefix("incr_") {
        snmp.incr(slot, kind(name).ok_or_else(usage)?, delta()?)
            .map(drop)
    } else if let Some(name) = op.strip_prefix("decr_") {
        snmp.decr(slot, kind(name).ok_or_else(usage)?, delta()?)
            .map(drop)
    } else {
        match kind(op).ok_or_else(usage)? {
            SnmpKind::Counter64 => snmp.set_counter64(slot, value),
            SnmpKind::Counter32 => snmp.set_counter32(slot, delta()?),
            SnmpKind::Gauge => snmp.set_gauge(slot, delta()?),
        }
    };
    Ok(if done.is_ok() {
        b"True".to_vec()
    } else {
        b"None".to_vec()
    })
}

/// Longest `/sleep/<ms>` request of the example app.
const MAX_SLEEP_MS: u64 = 60_000;
/// Longest `sleep_ms` spool job of the example app.
const MAX_SPOOL_SLEEP_MS: u64 = 10_000;

/// The built-in example application: answers every request with a short plain-text page
/// naming the method and path, and echoes the request body's length; `/sleep/<ms>` waits
/// that long first (at most a minute). `uwsgi-server`
/// serves it when no application is configured, so a fresh install answers something.
#[derive(Debug, Default, Clone, Copy)]
pub struct HelloApp;

impl App for HelloApp {
    /// Registers two RPC functions: `hello` (greets its arguments) and `upper`
    /// (uppercases its first argument), and three uWSGI signals whose handler logs
    /// `hello: signal N in process PID`: 125 for the spooler(s), 126 for any one worker,
    /// 127 for every worker. With the SNMP agent enabled, a third RPC function,
    /// `snmp_set(op, slot, value)`, drives the custom slots as the `uwsgi.snmp_*` Python
    /// functions do (`op`: `counter32`, `counter64`, `gauge`, or `incr_`/`decr_`
    /// followed by one of those; it returns `True`, or `None` for a slot outside
    /// 1..=100, as they do).
    fn init(&self, state: &Arc<ServerState>) -> Result<(), String> {
        if let Some(snmp) = state.snmp() {
            let snmp = snmp.clone();
            let handler = Arc::new(move |args: &[&[u8]]| snmp_set(&snmp, args));
            state
                .rpc()
                .register(b"snmp_set", 3, handler)
                .map_err(|e| e.to_string())?;
        }
        for (signum, target) in [(125, "spooler"), (126, "worker"), (127, "workers")] {
            let handler = Arc::new(|signum: u8| -> Result<(), HandlerFailure> {
                let line = format!("hello: signal {signum} in process {}\n", std::process::id());
                let _ = io::stderr().write_all(line.as_bytes());
                Ok(())
            });
            state
                .signals()
                .register(signum, target, handler, crate::state::signals::MASTER)
                .map_err(|e| e.to_string())?;
        }
        let hello = Arc::new(|args: &[&[u8]]| -> Result<Vec<u8>, RpcError> {
            let names: Vec<String> = args
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let who = if names.is_empty() {
                "world".to_owned()
            } else {
                names.join(", ")
            };
            Ok(format!("Hello, {who}!").into_bytes())
        });
        let upper = Arc::new(|args: &[&[u8]]| -> Result<Vec<u8>, RpcError> {
            Ok(args
                .first()
                .map(|a| a.to_ascii_uppercase())
                .unwrap_or_default())
        });
        state
            .rpc()
            .register(b"hello", 0, hello)
            .map_err(|e| e.to_string())?;
        state
            .rpc()
            .register(b"upper", 1, upper)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The example spooler logs each job's vars and marks it done. A `sleep_ms` var
    /// (at most 10000) makes the job take that long first, for tests of a spooler that
    /// dies mid-job.
    fn spool(&self, task: &SpoolTask) -> SpoolOutcome {
        if let Some(ms) = task
            .vars()
            .get("sleep_ms")
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
        {
            std::thread::sleep(std::time::Duration::from_millis(ms.min(MAX_SPOOL_SLEEP_MS)));
        }
        let vars: Vec<String> = task
            .vars()
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                )
            })
            .collect();
        // One write per line: several spooler processes share stderr, and `eprintln!`
        // may write a line in pieces that would interleave with theirs.
        let line = format!("spooler: job {} done ({})\n", task.name(), vars.join(" "));
        let _ = io::stderr().write_all(line.as_bytes());
        SpoolOutcome::Done
    }

    /// The example answers a marshalled message with the object it received.
    fn marshal_message(&self, value: Value, _modifier2: u8) -> Option<Value> {
        Some(value)
    }

    fn call(
        &self,
        request: &Request<'_>,
        body: &mut (dyn Read + Send),
        out: &mut dyn Output,
    ) -> io::Result<Status> {
        let [method, path, protocol] = request.vars.get_many([
            b"REQUEST_METHOD".as_slice(),
            b"PATH_INFO",
            b"SERVER_PROTOCOL",
        ]);
        let received = io::copy(body, &mut io::sink())?;
        // `/sleep/<ms>`: a slow request (at most a minute), for harakiri and reload tests.
        if let Some(ms) = path
            .and_then(|p| p.strip_prefix(b"/sleep/"))
            .and_then(|ms| std::str::from_utf8(ms).ok()?.parse::<u64>().ok())
        {
            std::thread::sleep(std::time::Duration::from_millis(ms.min(MAX_SLEEP_MS)));
        }
        let text = format!(
            "Hello from uwsgi-rs!\n{} {} ({received} body bytes)\n",
            String::from_utf8_lossy(method.unwrap_or(b"GET")),
            String::from_utf8_lossy(path.unwrap_or(b"/")),
        );
        let length = text.len().to_string();
        let headers: [(&str, &[u8]); 2] = [
            ("Content-Type", b"text/plain; charset=utf-8"),
            ("Content-Length", length.as_bytes()),
        ];
        let head_bytes = write_head(out, protocol.unwrap_or_default(), "200 OK", &headers)?;
        out.write_all(text.as_bytes())?;
        Ok(Status {
            code: 200,
            headers: headers.len(),
            head_bytes,
            body_bytes: text.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_uses_the_request_protocol_and_refuses_splitting() {
        let mut out = Vec::new();
        let n = write_head(&mut out, b"HTTP/1.1", "200 OK", &[("X-A", b"1")]).unwrap();
        assert_eq!(out, b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n");
        assert_eq!(n, out.len());

        let mut out = Vec::new();
        write_head(&mut out, b"", "404 Not Found", &[]).unwrap();
        assert_eq!(out, b"HTTP/1.0 404 Not Found\r\n\r\n");

        for (name, value) in [
            ("X-A", &b"1\r\nSet-Cookie: x"[..]),
            ("X-A", b"a\nb"),
            ("X-A", b"a\0b"),
            ("X A", b"1"),
            ("X:A", b"1"),
            ("", b"1"),
        ] {
            let mut out = Vec::new();
            let err = write_head(&mut out, b"HTTP/1.1", "200 OK", &[(name, value)]).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(out.is_empty(), "nothing is written before the check");
        }
    }
}
