//! The RPC registry (spec §3.4): named functions callable over the network (modifier1
//! 173) and locally (`uwsgi.rpc(None, …)`, `uwsgi.call`), listed by `uwsgi.rpc_list()`.
//!
//! # Semantics (uWSGI 2.0, `core/rpc.c`)
//!
//! * At most `--rpc-max` functions (default 64). Registering a name that exists
//!   **replaces** its function and takes no new slot.
//! * Names are at most 255 bytes (since 2.0.19 longer names are refused; earlier versions
//!   overflowed the 255-byte slot, §10.2 #2).
//! * A call carries at most 254 arguments: the network array holds at most 255 items,
//!   the function name and 254 arguments.
//! * An unknown function is an error here; the network handler turns it into what uWSGI
//!   sends (1.4: an empty framed reply `ad 0000 00`; 2.0: nothing, close).
//! * [`RpcRegistry::list`] gives the names in registration order.
//!
//! The handler runs **without** the registry lock held, so a function may itself call or
//! register RPC functions.
//!
//! # Limits
//!
//! | what | limit |
//! |---|---|
//! | functions | `--rpc-max`, default 64 |
//! | name | 1..=255 bytes, no NUL byte (uWSGI compares names as C strings) |
//! | arguments | 0..=254 per call |
//! | declared argument count | 0..=255 (`register_rpc(name, f, argc)`, kept as information: uWSGI does not check it) |
//!
//! # Differences from uWSGI
//!
//! Empty names and names containing NUL are refused (uWSGI stores them but can never
//! call them). 2.0 keeps one table per worker (registrations in the master are copied to
//! every worker); a registry here is one table — the caller keeps one per worker if it
//! wants that.

use std::sync::{Arc, PoisonError, RwLock};

/// Default `--rpc-max`.
pub const DEFAULT_MAX_FUNCTIONS: usize = 64;
/// Longest function name.
pub const MAX_NAME_LEN: usize = 255;
/// Most arguments of one call (255 array items minus the function name).
pub const MAX_ARGS: usize = 254;

/// A registered function: takes the arguments, returns the result bytes.
pub type RpcHandler = Arc<dyn Fn(&[&[u8]]) -> Result<Vec<u8>, RpcError> + Send + Sync>;

/// Why a registration or a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// An empty name.
    #[error("empty RPC function name")]
    EmptyName,
    /// A name longer than 255 bytes.
    #[error("RPC function name of {len} bytes is longer than {MAX_NAME_LEN}")]
    NameTooLong {
        /// Name length.
        len: usize,
    },
    /// A name containing a NUL byte.
    #[error("RPC function name contains a NUL byte")]
    InvalidName,
    /// `--rpc-max` functions are registered already.
    #[error("RPC table full ({max} functions)")]
    TableFull {
        /// The limit.
        max: usize,
    },
    /// More than 254 arguments.
    #[error("{count} RPC arguments, at most {MAX_ARGS} are allowed")]
    TooManyArgs {
        /// Arguments given.
        count: usize,
    },
    /// No function by that name.
    #[error("RPC function not found")]
    NotFound,
    /// The function itself failed (a Python exception, …).
    #[error("RPC function failed: {0}")]
    Failed(String),
}

#[derive(Clone)]
struct Entry {
    name: Vec<u8>,
    declared_args: u8,
    handler: RpcHandler,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("name", &String::from_utf8_lossy(&self.name))
            .field("declared_args", &self.declared_args)
            .finish_non_exhaustive()
    }
}

/// Named functions.
#[derive(Debug)]
pub struct RpcRegistry {
    max_functions: usize,
    entries: RwLock<Vec<Entry>>,
}

impl Default for RpcRegistry {
    /// An empty registry with uWSGI's default limit of 64 functions.
    fn default() -> Self {
        RpcRegistry::new(DEFAULT_MAX_FUNCTIONS)
    }
}

impl RpcRegistry {
    /// An empty registry holding at most `max_functions` (`--rpc-max`).
    pub fn new(max_functions: usize) -> Self {
        RpcRegistry {
            max_functions,
            entries: RwLock::new(Vec::new()),
        }
    }

    /// The `--rpc-max` limit.
    pub fn max_functions(&self) -> usize {
        self.max_functions
    }

    /// Checks a name as registration does.
    pub fn validate_name(name: &[u8]) -> Result<(), RpcError> {
        if name.is_empty() {
            return Err(RpcError::EmptyName);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(RpcError::NameTooLong { len: name.len() });
        }
        if name.contains(&0) {
            return Err(RpcError::InvalidName);
        }
        Ok(())
    }

    /// `register_rpc(name, function, argc)`: adds `name`, or replaces its function.
    pub fn register(
        &self,
        name: &[u8],
        declared_args: u8,
        handler: RpcHandler,
    ) -> Result<(), RpcError> {
        Self::validate_name(name)?;
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = entries.iter_mut().find(|entry| entry.name == name) {
            entry.declared_args = declared_args;
            entry.handler = handler;
            return Ok(());
        }
        if entries.len() >= self.max_functions {
            return Err(RpcError::TableFull {
                max: self.max_functions,
            });
        }
        entries.push(Entry {
            name: name.to_vec(),
            declared_args,
            handler,
        });
        Ok(())
    }

    /// The function registered as `name`.
    pub fn lookup(&self, name: &[u8]) -> Option<RpcHandler> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .iter()
            .find(|entry| entry.name == name)
            .map(|entry| Arc::clone(&entry.handler))
    }

    /// The argument count given at registration.
    pub fn declared_args(&self, name: &[u8]) -> Option<u8> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .iter()
            .find(|entry| entry.name == name)
            .map(|entry| entry.declared_args)
    }

    /// Calls `name` with `args` (`uwsgi.call`, `uwsgi.rpc(None, …)`, and the network
    /// handler). The registry is not locked while the function runs.
    pub fn call(&self, name: &[u8], args: &[&[u8]]) -> Result<Vec<u8>, RpcError> {
        if args.len() > MAX_ARGS {
            return Err(RpcError::TooManyArgs { count: args.len() });
        }
        let handler = self.lookup(name).ok_or(RpcError::NotFound)?;
        handler(args)
    }

    /// `rpc_list()`: the names, in registration order.
    pub fn list(&self) -> Vec<Vec<u8>> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries.iter().map(|entry| entry.name.clone()).collect()
    }

    /// Number of functions registered.
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// `true` when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> RpcHandler {
        // The function of the spec's live checks (§3.4, Appendix A).
        Arc::new(|args: &[&[u8]]| {
            let mut out = b"HELLO:".to_vec();
            out.extend_from_slice(&args.join(&b'|'));
            Ok(out)
        })
    }

    #[test]
    fn register_call_list() {
        // §3.4: rpc('…','hello','a','b') → "HELLO:a|b".
        let rpc = RpcRegistry::default();
        rpc.register(b"hello", 0, hello()).unwrap();
        assert_eq!(rpc.call(b"hello", &[b"a", b"b"]).unwrap(), b"HELLO:a|b");
        assert_eq!(rpc.call(b"hello", &[]).unwrap(), b"HELLO:");
        assert_eq!(rpc.list(), vec![b"hello".to_vec()]);
        assert_eq!(rpc.declared_args(b"hello"), Some(0));
    }

    #[test]
    fn unknown_function_is_not_found() {
        let rpc = RpcRegistry::default();
        assert_eq!(rpc.call(b"nosuch", &[]), Err(RpcError::NotFound));
    }

    #[test]
    fn re_registration_replaces_without_a_new_slot() {
        // 2.0 core/rpc.c: an existing name is overwritten in place.
        let rpc = RpcRegistry::new(1);
        rpc.register(b"f", 0, Arc::new(|_: &[&[u8]]| Ok(b"one".to_vec())))
            .unwrap();
        rpc.register(b"f", 2, Arc::new(|_: &[&[u8]]| Ok(b"two".to_vec())))
            .unwrap();
        assert_eq!(rpc.call(b"f", &[]).unwrap(), b"two");
        assert_eq!(rpc.len(), 1);
        assert_eq!(rpc.declared_args(b"f"), Some(2));
    }

    #[test]
    fn table_limit_is_rpc_max() {
        // §3.4: "--rpc-max per worker (default 64)".
        let rpc = RpcRegistry::default();
        for i in 0..64 {
            rpc.register(format!("f{i}").as_bytes(), 0, hello())
                .unwrap();
        }
        assert_eq!(
            rpc.register(b"one-too-many", 0, hello()),
            Err(RpcError::TableFull { max: 64 })
        );
        assert_eq!(rpc.list().len(), 64);
        assert_eq!(rpc.list()[0], b"f0");
    }

    #[test]
    fn name_limits() {
        // §3.4: names of 256+ bytes are rejected (2.0.19+).
        let rpc = RpcRegistry::default();
        rpc.register(&[b'n'; 255], 0, hello()).unwrap();
        assert_eq!(
            rpc.register(&[b'n'; 256], 0, hello()),
            Err(RpcError::NameTooLong { len: 256 })
        );
        assert_eq!(rpc.register(b"", 0, hello()), Err(RpcError::EmptyName));
        assert_eq!(
            rpc.register(b"a\0b", 0, hello()),
            Err(RpcError::InvalidName)
        );
    }

    #[test]
    fn argument_limit_is_254() {
        // §3.4: "Max items per request: 255 = function name + 254 args".
        let rpc = RpcRegistry::default();
        rpc.register(
            b"count",
            0,
            Arc::new(|args: &[&[u8]]| Ok(args.len().to_string().into_bytes())),
        )
        .unwrap();
        let args: Vec<&[u8]> = vec![b"x"; 254];
        assert_eq!(rpc.call(b"count", &args).unwrap(), b"254");
        let args: Vec<&[u8]> = vec![b"x"; 255];
        assert_eq!(
            rpc.call(b"count", &args),
            Err(RpcError::TooManyArgs { count: 255 })
        );
    }

    #[test]
    fn handler_errors_pass_through() {
        let rpc = RpcRegistry::default();
        rpc.register(
            b"boom",
            0,
            Arc::new(|_: &[&[u8]]| Err(RpcError::Failed("exception".into()))),
        )
        .unwrap();
        assert_eq!(
            rpc.call(b"boom", &[]),
            Err(RpcError::Failed("exception".into()))
        );
    }

    #[test]
    fn handlers_may_use_the_registry() {
        // The registry is not locked during a call: a function can call another one.
        let rpc = Arc::new(RpcRegistry::default());
        rpc.register(b"hello", 0, hello()).unwrap();
        let inner = Arc::clone(&rpc);
        rpc.register(
            b"twice",
            0,
            Arc::new(move |args: &[&[u8]]| {
                let once = inner.call(b"hello", args)?;
                inner.register(b"late", 0, hello())?;
                Ok([once.clone(), once].concat())
            }),
        )
        .unwrap();
        assert_eq!(rpc.call(b"twice", &[b"x"]).unwrap(), b"HELLO:xHELLO:x");
        assert!(rpc.lookup(b"late").is_some());
    }

    #[test]
    fn concurrent_calls_and_registrations() {
        let rpc = Arc::new(RpcRegistry::default());
        rpc.register(b"hello", 0, hello()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let rpc = Arc::clone(&rpc);
                std::thread::spawn(move || {
                    for i in 0..200 {
                        assert_eq!(rpc.call(b"hello", &[b"a"]).unwrap(), b"HELLO:a");
                        let name = format!("t{t}-{}", i % 10);
                        rpc.register(name.as_bytes(), 0, hello()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(rpc.len(), 41);
    }
}
