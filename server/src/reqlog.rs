//! The request log: uWSGI's default line, the `--logformat` line compiled once at
//! startup, and the filters that pick the requests logged under `--disable-logging`
//! (`--log-4xx`, `--log-5xx`, `--log-slow`, `--log-big`, `--log-zero`).
//!
//! Every value that comes from the request or the application (vars, log variables,
//! the peer's address) is written with its control bytes escaped as `\xHH`, so a client
//! cannot start a forged line with a CR or LF, and the whole line is cut at
//! [`MAX_LINE`] bytes, so a hostile 64 KiB var cannot grow it without bound.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uwsgi_protocol::packet::Request;

use crate::app::{LogExtras, Status};
use crate::connection::Peer;

/// The longest request log line, newline included; longer lines are cut.
pub const MAX_LINE: usize = 8192;

/// A value the request log computes (uWSGI's registered "logchunks").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Field {
    /// `uri`: `REQUEST_URI`.
    Uri,
    /// `method`: `REQUEST_METHOD`.
    Method,
    /// `user`: `REMOTE_USER`.
    User,
    /// `addr`: `REMOTE_ADDR` (the `X-Forwarded-For` header with `--log-x-forwarded-for`).
    Addr,
    /// `host`: `HTTP_HOST`.
    Host,
    /// `proto`: `SERVER_PROTOCOL`.
    Proto,
    /// `uagent`: `HTTP_USER_AGENT`.
    Uagent,
    /// `referer`: `HTTP_REFERER`.
    Referer,
    /// `status`: the response's status code.
    Status,
    /// `rsize`: bytes of the response body.
    Rsize,
    /// `hsize`: bytes of the response head.
    Hsize,
    /// `size`: head and body bytes.
    Size,
    /// `cl`: the request's `CONTENT_LENGTH`.
    Cl,
    /// `micros`: response time in microseconds.
    Micros,
    /// `msecs`: response time in milliseconds.
    Msecs,
    /// `secs`: response time in seconds, with six decimals.
    Secs,
    /// `tmsecs`: start of the request, milliseconds since the epoch.
    Tmsecs,
    /// `tmicros`: start of the request, microseconds since the epoch.
    Tmicros,
    /// `time`: start of the request, seconds since the epoch.
    Time,
    /// `ltime`: start of the request, Apache's `%d/%b/%Y:%H:%M:%S %z` in local time.
    Ltime,
    /// `ftime`: as `ltime` (uWSGI formats it with `--log-date`'s strftime string,
    /// which is not served here).
    Ftime,
    /// `ctime`: start of the request as C's `ctime` (`Thu Jan  1 00:00:00 1970`).
    Ctime,
    /// `epoch`: now, seconds since the epoch.
    Epoch,
    /// `pid`: the worker's pid.
    Pid,
    /// `wid`: the worker's id (from 1).
    Wid,
    /// `switches`: async switches (always 1: no coroutines here).
    Switches,
    /// `vars`: uWSGI's count of var entries (a key and a value each count one).
    Vars,
    /// `core`: the core (thread) that served the request, from 0.
    Core,
    /// `vsz`: the process's address space, bytes.
    Vsz,
    /// `rss`: the process's resident memory, bytes.
    Rss,
    /// `vszM`: `vsz` in MiB.
    VszM,
    /// `rssM`: `rss` in MiB.
    RssM,
    /// `pktsize`: bytes of the request's vars block.
    Pktsize,
    /// `modifier1`.
    Modifier1,
    /// `modifier2`.
    Modifier2,
    /// `headers`: number of response headers.
    Headers,
    /// `rerr`: read errors (0: a request whose I/O failed is logged as an error line).
    Rerr,
    /// `werr`: write errors (0, as `rerr`).
    Werr,
    /// `ioerr`: `rerr` + `werr`.
    Ioerr,
}

/// Every name of [`Field`], as written in `%(name)`.
pub const FIELDS: &[(&str, Field)] = &[
    ("uri", Field::Uri),
    ("method", Field::Method),
    ("user", Field::User),
    ("addr", Field::Addr),
    ("host", Field::Host),
    ("proto", Field::Proto),
    ("uagent", Field::Uagent),
    ("referer", Field::Referer),
    ("status", Field::Status),
    ("rsize", Field::Rsize),
    ("hsize", Field::Hsize),
    ("size", Field::Size),
    ("cl", Field::Cl),
    ("micros", Field::Micros),
    ("msecs", Field::Msecs),
    ("secs", Field::Secs),
    ("tmsecs", Field::Tmsecs),
    ("tmicros", Field::Tmicros),
    ("time", Field::Time),
    ("ltime", Field::Ltime),
    ("ftime", Field::Ftime),
    ("ctime", Field::Ctime),
    ("epoch", Field::Epoch),
    ("pid", Field::Pid),
    ("wid", Field::Wid),
    ("switches", Field::Switches),
    ("vars", Field::Vars),
    ("core", Field::Core),
    ("vsz", Field::Vsz),
    ("rss", Field::Rss),
    ("vszM", Field::VszM),
    ("rssM", Field::RssM),
    ("pktsize", Field::Pktsize),
    ("modifier1", Field::Modifier1),
    ("modifier2", Field::Modifier2),
    ("headers", Field::Headers),
    ("rerr", Field::Rerr),
    ("werr", Field::Werr),
    ("ioerr", Field::Ioerr),
];

/// One piece of a compiled format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text written as it is.
    Literal(Vec<u8>),
    /// A computed value.
    Field(Field),
    /// `%(var.NAME)`: the request var `NAME` (the first of that name, as uWSGI).
    Var(Vec<u8>),
    /// Any other `%(name)`: the log variable the application set with
    /// `uwsgi.set_logvar(name, value)`.
    LogVar(Vec<u8>),
}

/// A `--logformat` string compiled into pieces, so that logging a request is one loop
/// over them with no parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFormat {
    pieces: Vec<Piece>,
}

impl LogFormat {
    /// Compiles `format` as uWSGI reads it: `%(name)` is a variable, everything else
    /// (a `%` not followed by `(`, a `%(` never closed, `%()`) is text. Refuses
    /// `%(metric.NAME)`: uWSGI's metrics subsystem is not served.
    pub fn parse(format: &str) -> Result<LogFormat, String> {
        let mut pieces = Vec::new();
        let mut text: Vec<u8> = Vec::new();
        let mut rest = format;
        while let Some(start) = rest.find("%(") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')').filter(|end| *end > 0) else {
                // `%(` never closed, or `%()`: text.
                text.extend_from_slice(&rest.as_bytes()[..start + 2]);
                rest = after;
                continue;
            };
            text.extend_from_slice(&rest.as_bytes()[..start]);
            if !text.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut text)));
            }
            let name = &after[..end];
            let piece = if let Some((_, field)) = FIELDS.iter().find(|(n, _)| *n == name) {
                Piece::Field(*field)
            } else if let Some(var) = name.strip_prefix("var.") {
                Piece::Var(var.as_bytes().to_vec())
            } else if name.starts_with("metric.") {
                return Err(format!(
                    "%({name}): uWSGI metrics are not served by this server (see docs/server.md, Request log)"
                ));
            } else {
                Piece::LogVar(name.as_bytes().to_vec())
            };
            pieces.push(piece);
            rest = &after[end + 1..];
        }
        text.extend_from_slice(rest.as_bytes());
        if !text.is_empty() {
            pieces.push(Piece::Literal(text));
        }
        Ok(LogFormat { pieces })
    }

    /// The compiled pieces.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Whether a piece reads the application's log variables.
    pub fn uses_logvars(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::LogVar(_)))
    }

    fn uses_memory(&self) -> bool {
        self.pieces.iter().any(|p| {
            matches!(
                p,
                Piece::Field(Field::Rss | Field::Vsz | Field::RssM | Field::VszM)
            )
        })
    }
}

/// The request log's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestLog {
    /// `--logformat`; `None` for uWSGI's default line.
    pub format: Option<LogFormat>,
    /// `--disable-logging` and its filters (`--log-4xx`, `--log-5xx`, `--log-slow`,
    /// `--log-big`, `--log-zero`) as configured; the server reads the live ones from the
    /// admin option slots ([`crate::handlers::admin`]), which start with these values.
    pub filters: LogFilters,
    /// `--log-micros`: the default line gives the response time in microseconds.
    pub micros: bool,
    /// `--log-x-forwarded-for`: the address is the `X-Forwarded-For` header's value.
    pub x_forwarded_for: bool,
}

/// Which requests are logged: `--disable-logging` and its filters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogFilters {
    /// Only the requests a filter picks are logged.
    pub disabled: bool,
    /// Status 400..=499.
    pub log_4xx: bool,
    /// Status 500..=599.
    pub log_5xx: bool,
    /// At least this many milliseconds (0: off).
    pub slow_ms: u64,
    /// A body of at least this many bytes (0: off).
    pub big: u64,
    /// No body.
    pub zero: bool,
}

impl LogFilters {
    /// Whether the request is logged: always, unless logging is disabled, in which case
    /// only when a filter matches (as uWSGI's `log_request`).
    pub fn wanted(&self, status: &Status, took: Duration) -> bool {
        if !self.disabled {
            return true;
        }
        let body = status.body_bytes as u64;
        (self.zero && body == 0)
            || (self.slow_ms > 0 && took.as_millis() >= u128::from(self.slow_ms))
            || (self.log_4xx && (400..=499).contains(&status.code))
            || (self.log_5xx && (500..=599).contains(&status.code))
            || (self.big > 0 && body >= self.big)
    }
}

/// What is known of one served request when it is logged.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The request.
    pub request: &'a Request<'a>,
    /// Who sent it.
    pub peer: Peer,
    /// What the application answered.
    pub status: &'a Status,
    /// When it started.
    pub started: SystemTime,
    /// How long it took.
    pub took: Duration,
    /// 0-based worker index.
    pub worker: usize,
    /// 0-based core index.
    pub core: usize,
    /// The worker's application requests so far.
    pub worker_requests: u64,
    /// Every worker's application requests so far.
    pub total_requests: u64,
    /// Log variables and added vars from the application.
    pub extras: &'a LogExtras,
}

impl RequestLog {
    /// Whether the request is logged under the configured filters.
    pub fn wanted(&self, status: &Status, took: Duration) -> bool {
        self.filters.wanted(status, took)
    }

    /// The line for `record`, newline included, at most [`MAX_LINE`] bytes.
    pub fn line(&self, record: &Record<'_>) -> Vec<u8> {
        let mut line = Line::new();
        match &self.format {
            Some(format) => self.formatted(format, record, &mut line),
            None => self.default_line(record, &mut line),
        }
        line.finish()
    }

    fn addr<'r>(&self, record: &Record<'r>) -> Option<&'r [u8]> {
        let vars = &record.request.vars;
        if self.x_forwarded_for
            && let Some(forwarded) = vars.get("HTTP_X_FORWARDED_FOR")
        {
            return Some(forwarded);
        }
        vars.get("REMOTE_ADDR")
    }

    fn formatted(&self, format: &LogFormat, record: &Record<'_>, line: &mut Line) {
        let memory = format.uses_memory().then(memory_usage);
        let mut value = Vec::with_capacity(64);
        for piece in &format.pieces {
            value.clear();
            match piece {
                Piece::Literal(text) => {
                    line.raw(text);
                    continue;
                }
                Piece::Field(field) => self.field(*field, record, memory, &mut value),
                Piece::Var(name) => {
                    let found = record.request.vars.get_first(name).or_else(|| {
                        record
                            .extras
                            .vars
                            .iter()
                            .find(|(k, _)| k == name)
                            .map(|(_, v)| v.as_slice())
                    });
                    value.extend_from_slice(found.unwrap_or_default());
                }
                Piece::LogVar(name) => {
                    let found = record.extras.logvars.iter().find(|(k, _)| k == name);
                    value.extend_from_slice(found.map_or(&[][..], |(_, v)| v.as_slice()));
                }
            }
            // uWSGI writes `-` for an empty or missing value.
            if value.is_empty() {
                line.raw(b"-");
            } else {
                line.value(&value);
            }
        }
    }

    fn field(
        &self,
        field: Field,
        record: &Record<'_>,
        memory: Option<(u64, u64)>,
        out: &mut Vec<u8>,
    ) {
        use std::io::Write;
        let vars = &record.request.vars;
        let status = record.status;
        let start = record
            .started
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let (rss, vsz) = memory.unwrap_or_default();
        let var = |out: &mut Vec<u8>, name: &str| out.write_all(vars.get(name).unwrap_or_default());
        let _ = match field {
            Field::Uri => var(out, "REQUEST_URI"),
            Field::Method => var(out, "REQUEST_METHOD"),
            Field::User => var(out, "REMOTE_USER"),
            Field::Host => var(out, "HTTP_HOST"),
            Field::Proto => var(out, "SERVER_PROTOCOL"),
            Field::Uagent => var(out, "HTTP_USER_AGENT"),
            Field::Referer => var(out, "HTTP_REFERER"),
            Field::Addr => out.write_all(self.addr(record).unwrap_or_default()),
            Field::Status => write!(out, "{}", status.code),
            Field::Rsize => write!(out, "{}", status.body_bytes),
            Field::Hsize => write!(out, "{}", status.head_bytes),
            Field::Size => write!(out, "{}", status.head_bytes + status.body_bytes),
            Field::Cl => write!(out, "{}", content_length(record.request)),
            Field::Micros => write!(out, "{}", record.took.as_micros()),
            Field::Msecs => write!(out, "{}", record.took.as_millis()),
            Field::Secs => {
                // uWSGI prints a float with `%f` into 10 characters.
                let mut text = format!("{:.6}", record.took.as_secs_f64());
                text.truncate(10);
                out.write_all(text.as_bytes())
            }
            Field::Tmsecs => write!(out, "{}", start.as_millis()),
            Field::Tmicros => write!(out, "{}", start.as_micros()),
            Field::Time => write!(out, "{}", start.as_secs()),
            Field::Ltime | Field::Ftime => out.write_all(apache_time(start.as_secs()).as_bytes()),
            Field::Ctime => out.write_all(ctime(start.as_secs()).as_bytes()),
            Field::Epoch => write!(out, "{}", unix_now()),
            Field::Pid => write!(out, "{}", std::process::id()),
            Field::Wid => write!(out, "{}", record.worker + 1),
            Field::Switches => out.write_all(b"1"),
            Field::Vars => write!(out, "{}", var_entries(record)),
            Field::Core => write!(out, "{}", record.core),
            Field::Vsz => write!(out, "{vsz}"),
            Field::Rss => write!(out, "{rss}"),
            Field::VszM => write!(out, "{}", vsz / 1024 / 1024),
            Field::RssM => write!(out, "{}", rss / 1024 / 1024),
            Field::Pktsize => write!(out, "{}", packet_size(record)),
            Field::Modifier1 => write!(out, "{}", u8::from(record.request.modifier1)),
            Field::Modifier2 => write!(out, "{}", record.request.modifier2),
            Field::Headers => write!(out, "{}", status.headers),
            Field::Rerr | Field::Werr | Field::Ioerr => out.write_all(b"0"),
        };
    }

    fn default_line(&self, record: &Record<'_>, line: &mut Line) {
        let vars = &record.request.vars;
        let [method, uri, protocol, user] = vars.get_many([
            b"REQUEST_METHOD".as_slice(),
            b"REQUEST_URI",
            b"SERVER_PROTOCOL",
            b"REMOTE_USER",
        ]);
        let or_dash = |v: Option<&[u8]>| -> Vec<u8> { v.unwrap_or(b"-").to_vec() };
        let status = record.status;
        let start = record
            .started
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let (took, unit) = if self.micros {
            (record.took.as_micros(), "micros")
        } else {
            (record.took.as_millis(), "msecs")
        };
        line.raw(
            format!(
                "[pid: {}|app: 0|req: {}/{}] ",
                std::process::id(),
                record.worker_requests,
                record.total_requests
            )
            .as_bytes(),
        );
        match self.addr(record) {
            Some(addr) => line.value(addr),
            None => line.value(record.peer.to_string().as_bytes()),
        }
        line.raw(b" (");
        line.value(user.unwrap_or_default());
        line.raw(
            format!(
                ") {{{} vars in {} bytes}} [{}] ",
                var_entries(record),
                packet_size(record),
                ctime(start.as_secs()),
            )
            .as_bytes(),
        );
        line.value(&or_dash(method));
        line.raw(b" ");
        line.value(&or_dash(uri));
        line.raw(
            format!(
                " => generated {} bytes in {took} {unit} (",
                status.body_bytes
            )
            .as_bytes(),
        );
        line.value(&or_dash(protocol));
        line.raw(
            format!(
                " {}) {} headers in {} bytes (1 switches on core {})",
                status.code, status.headers, status.head_bytes, record.core
            )
            .as_bytes(),
        );
    }
}

/// uWSGI's var count: its table holds a key and a value per var, and it counts both.
fn var_entries(record: &Record<'_>) -> usize {
    2 * (record.request.vars.len() + record.extras.vars.len())
}

/// Bytes of the vars block, with the vars the application added (uWSGI appends them
/// to the request's buffer).
fn packet_size(record: &Record<'_>) -> usize {
    let added: usize = (record.extras.vars.iter())
        .map(|(k, v)| 4 + k.len() + v.len())
        .sum();
    record.request.vars.as_bytes().len() + added
}

fn content_length(request: &Request<'_>) -> u64 {
    request
        .vars
        .get("CONTENT_LENGTH")
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
        .unwrap_or(0)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A line being built, bounded by [`MAX_LINE`] (the newline always fits).
struct Line {
    bytes: Vec<u8>,
}

impl Line {
    const ROOM: usize = MAX_LINE - 1;

    fn new() -> Line {
        Line {
            bytes: Vec::with_capacity(256),
        }
    }

    /// Appends text of the format or of the server's own making, as it is.
    fn raw(&mut self, text: &[u8]) {
        let room = Self::ROOM.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&text[..text.len().min(room)]);
    }

    /// Appends a value from the request or the application, its control bytes (CR, LF,
    /// NUL, ESC…, DEL) escaped as `\xHH` so that it cannot end the line or forge
    /// another; a byte that does not fit whole is left out.
    fn value(&mut self, value: &[u8]) {
        for &byte in value {
            let escaped = byte < 0x20 && byte != b'\t' || byte == 0x7f;
            let need = if escaped { 4 } else { 1 };
            if self.bytes.len() + need > Self::ROOM {
                return;
            }
            if escaped {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                self.bytes.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 15)],
                ]);
            } else {
                self.bytes.push(byte);
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.bytes.push(b'\n');
        self.bytes
    }
}

/// The process's resident and virtual memory in bytes, from `/proc/self/status`.
fn memory_usage() -> (u64, u64) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (0, 0);
    };
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |n| n * 1024)
    };
    (kib("VmRSS:"), kib("VmSize:"))
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The broken-down local time of `unix_secs`.
#[allow(unsafe_code)]
fn local_time(unix_secs: u64) -> Option<libc::tm> {
    let time = libc::time_t::try_from(unix_secs).ok()?;
    // SAFETY: `tm` is plain old data, valid when zeroed; localtime_r reads `time` and
    // writes only `tm`, both owned here (the reentrant variant keeps no static).
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        (!libc::localtime_r(&time, &mut tm).is_null()).then_some(tm)
    }
}

fn name(table: &[&'static str], index: libc::c_int) -> &'static str {
    usize::try_from(index)
        .ok()
        .and_then(|i| table.get(i))
        .copied()
        .unwrap_or("???")
}

/// C's `ctime` without its newline: `Thu Jan  1 00:00:00 1970`, local time.
pub fn ctime(unix_secs: u64) -> String {
    let Some(tm) = local_time(unix_secs) else {
        return unix_secs.to_string();
    };
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        name(&DAYS, tm.tm_wday),
        name(&MONTHS, tm.tm_mon),
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        i64::from(tm.tm_year) + 1900
    )
}

/// Apache's `%d/%b/%Y:%H:%M:%S %z`, local time (uWSGI's `ltime`).
pub fn apache_time(unix_secs: u64) -> String {
    let Some(tm) = local_time(unix_secs) else {
        return unix_secs.to_string();
    };
    let offset = tm.tm_gmtoff / 60;
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} {}{:02}{:02}",
        tm.tm_mday,
        name(&MONTHS, tm.tm_mon),
        i64::from(tm.tm_year) + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        if offset < 0 { '-' } else { '+' },
        offset.abs() / 60,
        offset.abs() % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use uwsgi_protocol::VarsBuilder;

    fn request_line(log: &RequestLog, vars: &[(&str, &[u8])], extras: &LogExtras) -> String {
        let mut builder = VarsBuilder::new();
        for (k, v) in vars {
            builder.push(k.as_bytes(), v).unwrap();
        }
        let request = Request::new(uwsgi_protocol::Modifier1::Wsgi, builder.as_vars());
        let status = Status {
            code: 404,
            headers: 2,
            head_bytes: 60,
            body_bytes: 9,
        };
        let record = Record {
            request: &request,
            peer: Peer::Unix,
            status: &status,
            started: UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
            took: Duration::from_micros(1500),
            worker: 0,
            core: 2,
            worker_requests: 3,
            total_requests: 7,
            extras,
        };
        String::from_utf8(log.line(&record)).unwrap()
    }

    fn with_format(format: &str) -> RequestLog {
        RequestLog {
            format: Some(LogFormat::parse(format).unwrap()),
            ..RequestLog::default()
        }
    }

    #[test]
    fn parses_as_uwsgi_does() {
        let format = LogFormat::parse("a %(uri) %%(status)%(var.X)%(foo) %() %(x").unwrap();
        assert_eq!(
            format.pieces(),
            [
                Piece::Literal(b"a ".to_vec()),
                Piece::Field(Field::Uri),
                Piece::Literal(b" %".to_vec()),
                Piece::Field(Field::Status),
                Piece::Var(b"X".to_vec()),
                Piece::LogVar(b"foo".to_vec()),
                Piece::Literal(b" %() %(x".to_vec()),
            ]
        );
        assert!(LogFormat::parse("%(metric.foo)").is_err());
    }

    #[test]
    fn formats_fields_vars_and_logvars() {
        let extras = LogExtras {
            logvars: vec![(b"who".to_vec(), b"me".to_vec())],
            vars: vec![(b"ADDED".to_vec(), b"yes".to_vec())],
            log_this: false,
        };
        let log = with_format(
            "%(method) %(uri) %(proto) %(status) %(rsize) %(hsize) %(size) %(cl) %(micros) %(msecs) %(secs) %(tmsecs) %(tmicros) %(time) %(wid) %(core) %(switches) %(vars) %(pktsize) %(modifier1) %(modifier2) %(headers) %(var.ADDED) %(var.NONE) %(who) %(nobody) %(user) %(ioerr)",
        );
        let vars: &[(&str, &[u8])] = &[
            ("REQUEST_METHOD", b"GET"),
            ("REQUEST_URI", b"/x?y"),
            ("SERVER_PROTOCOL", b"HTTP/1.1"),
            ("CONTENT_LENGTH", b"12"),
        ];
        assert_eq!(
            request_line(&log, vars, &extras),
            "GET /x?y HTTP/1.1 404 9 60 69 12 1500 1 0.001500 1700000000123 1700000000123456 1700000000 1 2 1 10 99 0 0 2 yes - me - - 0\n"
        );
    }

    #[test]
    fn escapes_control_bytes_and_bounds_the_line() {
        let log = with_format("%(uri)|%(uagent)");
        let huge = vec![b'a'; 60_000];
        let line = request_line(
            &log,
            &[
                ("REQUEST_URI", b"/a\r\n[pid: 1] forged"),
                ("HTTP_USER_AGENT", &huge),
            ],
            &LogExtras::default(),
        );
        assert!(line.starts_with("/a\\x0d\\x0a[pid: 1] forged|aaa"));
        assert_eq!(line.len(), MAX_LINE);
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with("a\n"));
    }

    #[test]
    fn filters_apply_only_when_logging_is_disabled() {
        let status = |code, body_bytes| Status {
            code,
            headers: 0,
            head_bytes: 0,
            body_bytes,
        };
        let ms = Duration::from_millis;
        let mut log = RequestLog::default();
        assert!(log.wanted(&status(200, 1), ms(0)));
        log.filters.disabled = true;
        assert!(!log.wanted(&status(404, 1), ms(0)));
        log.filters.log_4xx = true;
        log.filters.log_5xx = true;
        log.filters.zero = true;
        log.filters.slow_ms = 100;
        log.filters.big = 1000;
        assert!(log.wanted(&status(404, 1), ms(0)));
        assert!(log.wanted(&status(503, 1), ms(0)));
        assert!(!log.wanted(&status(302, 1), ms(0)));
        assert!(log.wanted(&status(200, 0), ms(0)));
        assert!(log.wanted(&status(200, 1), ms(100)));
        assert!(!log.wanted(&status(200, 1), ms(99)));
        assert!(log.wanted(&status(200, 1000), ms(0)));
        assert!(!log.wanted(&status(200, 999), ms(0)));
    }

    #[test]
    fn default_line_is_uwsgis() {
        let log = RequestLog {
            micros: true,
            ..RequestLog::default()
        };
        let line = request_line(
            &log,
            &[("REQUEST_METHOD", b"GET"), ("REMOTE_ADDR", b"10.0.0.1")],
            &LogExtras::default(),
        );
        let date = ctime(1_700_000_000);
        assert_eq!(
            line,
            format!(
                "[pid: {}|app: 0|req: 3/7] 10.0.0.1 () {{4 vars in 44 bytes}} [{date}] GET - => generated 9 bytes in 1500 micros (- 404) 2 headers in 60 bytes (1 switches on core 2)\n",
                std::process::id()
            )
        );
    }
}
