//! Every option name `uwsgi-server` knows, with uWSGI's spelling and short aliases, and
//! what we do with it: apply it, or refuse it with the reason. One table serves the
//! command line, ini files and `UWSGI_*` variables, so they can never disagree.

/// How an option takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// A switch: `--master`, `--master=false`, `master = true`.
    Flag,
    /// One value; given twice, the last one wins (as in uWSGI).
    Value,
    /// A value that may be left out (uWSGI's `optional_argument`): `--snmp` alone,
    /// `--snmp=ADDR`, or `--snmp ADDR` when the next argument does not start with `-`;
    /// the value is then empty. Given twice, the last one wins.
    Optional,
    /// Repeatable; every occurrence is kept in order (`--socket a --socket b`).
    List,
}

/// Whether an option is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Applied as documented in docs/server.md.
    Supported,
    /// Recognised but refused at startup, with this reason: never silently ignored.
    Refused(&'static str),
}

/// One row of the option table.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// The uWSGI name (`buffer-size`).
    pub name: &'static str,
    /// Other accepted names: uWSGI aliases and one-letter short options.
    pub aliases: &'static [&'static str],
    /// How the value is taken.
    pub arity: Arity,
    /// Served or refused.
    pub support: Support,
    /// One line for `--help` and docs/migrating-from-uwsgi.md.
    pub help: &'static str,
}

/// The Python host's options: served when the `python` feature is on (the default).
const PYTHON: Support = if cfg!(feature = "python") {
    Support::Supported
} else {
    Support::Refused("this uwsgi-server was built without Python (the `python` cargo feature)")
};

macro_rules! opt {
    ($name:literal, [$($alias:literal),*], $arity:ident, $support:expr, $help:literal) => {
        OptionSpec {
            name: $name,
            aliases: &[$($alias),*],
            arity: Arity::$arity,
            support: $support,
            help: $help,
        }
    };
}

use Support::Supported as OK;

/// The table. Order is the order of `--help`.
pub static OPTIONS: &[OptionSpec] = &[
    // Sources of configuration.
    opt!(
        "ini",
        [],
        List,
        OK,
        "load options from FILE[:section] (section defaults to uwsgi)"
    ),
    opt!(
        "strict",
        [],
        Flag,
        OK,
        "accepted for compatibility: unknown options are always errors here"
    ),
    opt!(
        "set-placeholder",
        ["set-ph"],
        List,
        OK,
        "NAME=VALUE: define %(NAME) without setting an option"
    ),
    // Sockets.
    opt!(
        "socket",
        ["s", "uwsgi-socket"],
        List,
        OK,
        "listen for uwsgi on HOST:PORT, :PORT, [V6]:PORT or a unix socket path"
    ),
    opt!(
        "http-socket",
        [],
        List,
        OK,
        "listen for plain HTTP/1.1 on HOST:PORT, :PORT, [V6]:PORT or a unix socket path"
    ),
    opt!(
        "http-socket-modifier1",
        [],
        Value,
        OK,
        "modifier1 that HTTP requests are served as (default 0)"
    ),
    opt!(
        "http-keepalive",
        [],
        Value,
        OK,
        "seconds an idle HTTP connection is kept open between requests (default 5, 0 closes after every response)"
    ),
    opt!(
        "http-max-parked",
        [],
        Value,
        OK,
        "(uwsgi-rs only) HTTP connections a worker process keeps open between requests without a thread (default 1000; past it the one closest to its deadline is closed)"
    ),
    opt!(
        "udp",
        [],
        List,
        OK,
        "listen for uwsgi datagrams on HOST:PORT (a multicast group address joins the group)"
    ),
    opt!(
        "chmod-socket",
        ["C"],
        Optional,
        OK,
        "permissions of unix sockets (octal, default 666 when given without a value)"
    ),
    opt!("listen", ["l"], Value, OK, "listen backlog (default 100)"),
    opt!(
        "multicast-ttl",
        [],
        Value,
        OK,
        "TTL of multicast datagrams sent from UDP sockets (default 1)"
    ),
    opt!(
        "multicast-loop",
        [],
        Optional,
        OK,
        "loop multicast datagrams sent from UDP sockets back to this host: 1 (default) or 0; alone, on"
    ),
    opt!(
        "multicast-interface",
        [],
        Value,
        OK,
        "(uwsgi-rs only) IPv4 address of the interface --udp sockets join multicast groups on (default: the route's choice, as uWSGI)"
    ),
    opt!(
        "vacuum",
        [],
        Flag,
        OK,
        "remove unix sockets and the pidfile at exit"
    ),
    // Limits.
    opt!(
        "buffer-size",
        ["b"],
        Value,
        OK,
        "largest request block in bytes (default 4096, at most 65535)"
    ),
    opt!(
        "max-vars",
        ["v"],
        Value,
        OK,
        "half the number of vars pairs a request may carry (default 64, i.e. 128 pairs)"
    ),
    opt!(
        "limit-post",
        [],
        Value,
        OK,
        "largest request body in bytes (default 0: no limit beyond the codec's 1 GiB)"
    ),
    opt!(
        "socket-timeout",
        ["z"],
        Value,
        OK,
        "seconds to wait on each read or write (default 4)"
    ),
    opt!(
        "post-buffering",
        [],
        Value,
        OK,
        "bytes of body to read before calling the application (default 0); applied by the Python (WSGI) host only, a Rust App gets the body as it arrives"
    ),
    // Workers.
    opt!(
        "master",
        ["M"],
        Flag,
        OK,
        "run a master process that forks the workers, supervises and respawns them, and reloads on SIGHUP"
    ),
    opt!(
        "processes",
        ["p", "workers"],
        Value,
        OK,
        "number of workers (default 1): forked processes with --master, threads of one process without"
    ),
    opt!(
        "threads",
        [],
        Value,
        OK,
        "threads per worker, each serving one request at a time (default 1)"
    ),
    opt!(
        "async",
        [],
        Value,
        OK,
        "async cores per worker, partially: each is a thread here (not a green thread, so N cores cost N threads); uwsgi.async_sleep, wait_fd_read and wait_fd_write wait in it without the GIL; without the option they answer as uWSGI without async mode"
    ),
    opt!(
        "die-on-term",
        [],
        Flag,
        OK,
        "with --master, SIGTERM shuts down (gracefully) instead of brutally reloading"
    ),
    opt!(
        "max-requests",
        ["R"],
        Value,
        OK,
        "recycle a worker after N requests (implies --master)"
    ),
    opt!(
        "harakiri",
        ["t"],
        Value,
        OK,
        "kill a worker stuck on one request for more than N seconds (implies --master)"
    ),
    opt!(
        "harakiri-verbose",
        [],
        Flag,
        OK,
        "log the stuck worker's system call and wait channel before a harakiri"
    ),
    opt!(
        "reload-mercy",
        [],
        Value,
        OK,
        "seconds to wait for workers and spoolers on reload or shutdown before killing them (default 60)"
    ),
    opt!(
        "worker-reload-mercy",
        [],
        Value,
        OK,
        "seconds a recycled worker (max-requests) may take to finish before it is killed (default 60)"
    ),
    opt!(
        "lazy-apps",
        [],
        Flag,
        PYTHON,
        "load the application in each worker"
    ),
    opt!(
        "grunt",
        [],
        Flag,
        PYTHON,
        "let uwsgi.grunt() fork a worker in the middle of a request"
    ),
    opt!(
        "websockets-max-size",
        ["websocket-max-size"],
        Value,
        PYTHON,
        "largest websocket frame or message accepted, in KiB (default 1024)"
    ),
    opt!(
        "daemonize",
        ["d"],
        Value,
        Support::Refused("run the server under a supervisor (systemd, runit) instead"),
        "detach and log to FILE"
    ),
    opt!(
        "uid",
        [],
        Value,
        Support::Refused("start the server as the target user (systemd User=, su, runuser)"),
        "switch to this user after binding"
    ),
    opt!(
        "gid",
        [],
        Value,
        Support::Refused("start the server as the target group (systemd Group=)"),
        "switch to this group after binding"
    ),
    // Logging and process files.
    opt!(
        "pidfile",
        [],
        Value,
        OK,
        "write the server's (master's) pid to FILE"
    ),
    opt!(
        "pidfile2",
        [],
        Value,
        OK,
        "write the master's pid to a second FILE"
    ),
    opt!(
        "logto",
        [],
        Value,
        OK,
        "append the log to FILE instead of stderr"
    ),
    opt!(
        "disable-logging",
        ["L"],
        Flag,
        OK,
        "no request log lines (errors are still logged), except those a --log-* filter picks"
    ),
    opt!(
        "logformat",
        ["log-format"],
        Value,
        OK,
        "the request log line, with uWSGI's %(name) variables (see docs/server.md, Request log)"
    ),
    opt!(
        "logformat-strftime",
        ["log-format-strftime"],
        Flag,
        OK,
        "accepted: %(ftime) is %(ltime), as in uWSGI without --log-date"
    ),
    opt!(
        "log-4xx",
        [],
        Flag,
        OK,
        "with --disable-logging, still log requests answered with a 4xx status"
    ),
    opt!(
        "log-5xx",
        [],
        Flag,
        OK,
        "with --disable-logging, still log requests answered with a 5xx status"
    ),
    opt!(
        "log-slow",
        [],
        Value,
        OK,
        "with --disable-logging, still log requests that took at least MS milliseconds"
    ),
    opt!(
        "log-big",
        [],
        Value,
        OK,
        "with --disable-logging, still log responses whose body has at least BYTES bytes"
    ),
    opt!(
        "log-zero",
        [],
        Flag,
        OK,
        "with --disable-logging, still log responses without a body"
    ),
    opt!(
        "log-sendfile",
        [],
        Value,
        Support::Refused(
            "responses are not tracked by how they were sent; log them all, or filter on status or size (--log-big)"
        ),
        "with --disable-logging, still log responses sent with sendfile()"
    ),
    opt!(
        "log-ioerror",
        [],
        Value,
        Support::Refused(
            "a request whose I/O fails is always logged as an error line, not as a request line"
        ),
        "with --disable-logging, still log requests with read and write errors"
    ),
    opt!(
        "log-micros",
        [],
        Flag,
        OK,
        "give the response time of the default request line in microseconds"
    ),
    opt!(
        "log-x-forwarded-for",
        [],
        Flag,
        OK,
        "log the X-Forwarded-For header's value as the client address when the request has one"
    ),
    opt!(
        "logdate",
        ["log-date"],
        Optional,
        Support::Refused(
            "log lines carry no date prefix; let the supervisor (journald, svlogd -tt) stamp them, or put %(ltime) in --logformat"
        ),
        "prefix log lines with the date or a strftime format"
    ),
    // Security.
    opt!(
        "allowed-modifiers",
        [],
        Value,
        OK,
        "comma-separated modifier1 values this server answers; others are closed"
    ),
    opt!(
        "management-allow-from",
        [],
        List,
        OK,
        "peers allowed to use management modifiers (signal, cache writes, spooler, admin, subscriptions): an IP, a CIDR, or 'unix'; default: loopback and unix peers"
    ),
    opt!(
        "socket-allowed-modifiers",
        [],
        List,
        OK,
        "SOCKET=LIST: --allowed-modifiers for one socket (named as given to --socket, --http-socket or --udp)"
    ),
    opt!(
        "socket-management-allow-from",
        [],
        List,
        OK,
        "SOCKET=RULES: --management-allow-from for one socket (named as given to --socket, --http-socket or --udp)"
    ),
    // Built-in capabilities and shared state.
    opt!(
        "warning-message",
        [],
        Value,
        OK,
        "message sent with every ping reply (at most 80 bytes)"
    ),
    opt!(
        "cache2",
        [],
        List,
        OK,
        "a named cache: name=...,items=...,blocksize=...,keysize=..."
    ),
    opt!(
        "cache",
        [],
        Value,
        OK,
        "items of the default cache (uWSGI 1.x form)"
    ),
    opt!(
        "cache-blocksize",
        [],
        Value,
        OK,
        "block size of the --cache cache (default 65536)"
    ),
    opt!("queue", [], Value, OK, "slots of the shared queue"),
    opt!(
        "queue-blocksize",
        [],
        Value,
        OK,
        "bytes per queue slot (default 8192)"
    ),
    opt!("sharedarea", ["A"], List, OK, "a shared area of N pages"),
    opt!(
        "locks",
        [],
        Value,
        OK,
        "number of user locks besides the default one"
    ),
    opt!("spooler", ["Q"], List, OK, "spool directory"),
    opt!(
        "mule",
        [],
        Optional,
        OK,
        "add a mule (repeatable): alone, the message loop; with a .py file, that script"
    ),
    opt!(
        "mules",
        [],
        Value,
        OK,
        "add N mules running the message loop"
    ),
    opt!(
        "farm",
        [],
        List,
        OK,
        "a farm of mules: NAME:1,2 (repeatable)"
    ),
    opt!(
        "spooler-ordered",
        [],
        Flag,
        OK,
        "always on here: priority sub-directories first (2 before 10), then the top level, each in version order"
    ),
    opt!(
        "spooler-processes",
        [],
        Value,
        OK,
        "spooler processes per spool directory (default 1); only with --master: without it each directory has one spooler thread and this value is not used"
    ),
    opt!(
        "spooler-frequency",
        [],
        Value,
        OK,
        "seconds between scans of the spool directories (default 30)"
    ),
    opt!(
        "cache-udp-server",
        [],
        List,
        OK,
        "receive the --cache cache's replicated writes on a UDP address (peers: --management-allow-from)"
    ),
    opt!(
        "cache-sync",
        [],
        Value,
        OK,
        "copy the --cache cache from another node's dump at start (HOST:PORT or a unix path)"
    ),
    opt!(
        "cache-udp-node",
        [],
        List,
        OK,
        "replicate every write of the --cache cache to this UDP address (HOST:PORT)"
    ),
    opt!(
        "snmp",
        [],
        Optional,
        OK,
        "run the SNMP agent; with =ADDR it also listens on that UDP address (otherwise it answers on the --udp sockets)"
    ),
    opt!(
        "snmp-community",
        [],
        Value,
        OK,
        "SNMP community string requests must carry (at most 72 bytes; without one the agent answers nothing); enables the agent"
    ),
    opt!(
        "stats",
        [],
        Value,
        OK,
        "serve uWSGI's stats JSON on ADDR (TCP or unix): one document per connection"
    ),
    // Plugins: Python is built in; anything else is not available.
    opt!(
        "plugins",
        ["plugin"],
        List,
        OK,
        "accepted when it names python, python3 or python3X (built in); other plugins are refused"
    ),
    // Python hosting (the WSGI host).
    opt!(
        "wsgi-file",
        ["file"],
        Value,
        PYTHON,
        "load a WSGI application from FILE"
    ),
    opt!(
        "module",
        ["wsgi", "w"],
        Value,
        PYTHON,
        "load a WSGI application from MODULE[:CALLABLE]"
    ),
    opt!(
        "callable",
        [],
        Value,
        PYTHON,
        "name of the WSGI callable (default application)"
    ),
    opt!(
        "mount",
        [],
        List,
        PYTHON,
        "mount an application at a prefix"
    ),
    opt!(
        "pythonpath",
        ["python-path", "pp"],
        List,
        PYTHON,
        "add a directory to sys.path"
    ),
    opt!(
        "chdir",
        [],
        Value,
        PYTHON,
        "change directory before loading the application"
    ),
    opt!(
        "home",
        ["virtualenv", "venv", "pyhome", "H"],
        Value,
        PYTHON,
        "use this virtualenv"
    ),
    opt!(
        "env",
        [],
        List,
        PYTHON,
        "set an environment variable for the application"
    ),
    opt!(
        "py-autoreload",
        ["py-auto-reload", "python-autoreload", "python-auto-reload"],
        Value,
        PYTHON,
        "every N seconds, reload the server when a loaded Python module's file changed (implies --master; development only)"
    ),
    opt!(
        "py-auto-reload-ignore",
        [],
        List,
        PYTHON,
        "a module (by its name in sys.modules) that --py-autoreload does not watch"
    ),
    opt!(
        "enable-threads",
        ["T"],
        Flag,
        PYTHON,
        "allow Python threads"
    ),
    opt!(
        "need-app",
        [],
        Flag,
        PYTHON,
        "refuse to start without an application"
    ),
    opt!(
        "import",
        [],
        List,
        PYTHON,
        "import a Python module in each worker"
    ),
    opt!(
        "shared-import",
        [],
        List,
        PYTHON,
        "import a Python module before forking"
    ),
];

/// The option table as Markdown rows (`| option | aliases | what it does | status |`),
/// as docs/migrating-from-uwsgi.md carries it; a test keeps the two identical.
pub fn markdown_rows() -> String {
    let mut out = String::new();
    for spec in OPTIONS {
        let aliases: Vec<String> = spec
            .aliases
            .iter()
            .map(|a| {
                if a.len() == 1 {
                    format!("`-{a}`")
                } else {
                    format!("`--{a}`")
                }
            })
            .collect();
        let status = match spec.support {
            Support::Supported => "**accepted**".to_owned(),
            Support::Refused(reason) => format!("refused: {reason}"),
        };
        out.push_str(&format!(
            "| `--{}` | {} | {} | {} |\n",
            spec.name,
            aliases.join(", "),
            spec.help,
            status
        ));
    }
    out
}

/// The row for `name` (or one of its aliases).
pub fn find(name: &str) -> Option<&'static OptionSpec> {
    OPTIONS
        .iter()
        .find(|spec| spec.name == name || spec.aliases.contains(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for spec in OPTIONS {
            for name in std::iter::once(&spec.name).chain(spec.aliases) {
                assert!(seen.insert(*name), "{name} is listed twice");
            }
        }
    }

    #[test]
    fn aliases_resolve_to_their_option() {
        assert_eq!(find("s").unwrap().name, "socket");
        assert_eq!(find("workers").unwrap().name, "processes");
        assert_eq!(find("set-ph").unwrap().name, "set-placeholder");
        assert!(find("no-such-option").is_none());
    }
}
