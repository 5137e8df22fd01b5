//! Cache requests (modifier1 111, spec §6.1 and §6.2), on the server's shared caches.
//!
//! uWSGI answers no cache failure over the network: a miss, a refused set or an unknown
//! cache closes the connection without bytes, and so do we. Where uWSGI 2.0 is broken
//! (the 4 stray bytes before a get reply, the dictionary lookups that never match) we
//! answer what 1.4 answered, which is what the protocol evidently means.

use std::io::{self, Read, Write};

use uwsgi_protocol::packet::{
    CacheMagic, CacheMagicReply, CacheRequest, MagicCommand, Message, Payload, Reply,
};

use crate::dispatch::Outcome;
use crate::state::cache::{Cache, CacheError, Caches, Expiry, StoreMode};

/// Magic-interface commands that only read.
pub fn is_read_only_magic(request: &CacheRequest<'_>) -> bool {
    matches!(request, CacheRequest::Magic(magic)
        if matches!(magic.command(), MagicCommand::Get | MagicCommand::Exists))
}

/// The HTTP answer of a dictionary `get` that misses (uWSGI 1.4, spec §6.1).
const DICT_NOT_FOUND: &[u8] = b"HTTP/1.0 404 Not Found\r\n\r\n<h1>Not Found</h1>";

/// Answers one cache request; `now` is the unix time used for expiry.
pub fn answer(
    request: &CacheRequest<'_>,
    body: &mut dyn Read,
    out: &mut dyn Write,
    caches: &Caches,
    now: u64,
) -> io::Result<Outcome> {
    let Some(default) = caches.default_cache() else {
        return Ok(Outcome::Closed("no cache configured (--cache2)"));
    };
    match request {
        CacheRequest::Get { key } => match default.get(key.as_bytes(), now) {
            Some(value) => match Payload::new(&value) {
                Ok(payload) => {
                    out.write_all(&Reply::CacheValue(Message::new(0, payload)).to_vec())?;
                    Ok(Outcome::Replied)
                }
                // A framed reply cannot announce more than 65535 bytes: uWSGI narrows
                // the size and corrupts the stream; we send nothing (use get+stream).
                Err(_) => Ok(Outcome::Closed("value too large for a framed get")),
            },
            None => Ok(Outcome::Closed("cache miss")),
        },
        CacheRequest::GetStream { key } => {
            let value = default.get(key.as_bytes(), now);
            let reply = Reply::CacheStream {
                found: value.is_some(),
                value: value.as_deref().unwrap_or_default(),
            };
            out.write_all(&reply.to_vec())?;
            Ok(Outcome::Replied)
        }
        CacheRequest::Set(set) => {
            // No expiry, cannot overwrite, no reply (spec §6.1).
            let _ = default.set(set.key(), set.value(), 0, now);
            Ok(Outcome::Closed("cache set is not answered"))
        }
        CacheRequest::Delete { key } => {
            let _ = default.del(key.as_bytes(), now);
            Ok(Outcome::Closed("cache delete is not answered"))
        }
        CacheRequest::DictGet { vars, .. } => {
            if let Some(key) = vars.get("key") {
                return match default.get(key, now) {
                    Some(value) => {
                        out.write_all(&value)?;
                        Ok(Outcome::Replied)
                    }
                    None => Ok(Outcome::Closed("cache miss")),
                };
            }
            let Some(key) = vars.get("get") else {
                return Ok(Outcome::Closed("dictionary lookup without key or get"));
            };
            match default.get(key, now) {
                Some(value) => out.write_all(&value)?,
                None => out.write_all(DICT_NOT_FOUND)?,
            }
            Ok(Outcome::Replied)
        }
        CacheRequest::Magic(magic) => answer_magic(magic, body, out, caches, now),
        // The dump is uWSGI's raw shared-memory image: a format private to its build.
        CacheRequest::Dump { .. } => Ok(Outcome::Closed("cache dump is not supported")),
        // Sync packets are only accepted on UDP (spec §6.6).
        CacheRequest::SyncSet(_) | CacheRequest::SyncDelete(_) => {
            Ok(Outcome::Closed("cache sync packets are only read over UDP"))
        }
        _ => Ok(Outcome::Closed("unknown cache command")),
    }
}

fn answer_magic(
    magic: &CacheMagic<'_>,
    body: &mut dyn Read,
    out: &mut dyn Write,
    caches: &Caches,
    now: u64,
) -> io::Result<Outcome> {
    let cache: &Cache = match magic.cache().filter(|name| !name.is_empty()) {
        None => match caches.default_cache() {
            Some(cache) => cache,
            None => return Ok(Outcome::Closed("no cache configured")),
        },
        Some(name) => match caches.by_name(name) {
            Some(cache) => cache,
            None => return Ok(Outcome::Closed("unknown cache name")),
        },
    };
    let key = magic.key();
    let ok = |out: &mut dyn Write, size: Option<u64>, expires: Option<u64>, value: &[u8]| {
        let vars = CacheMagicReply::build_ok(size, expires)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let reply = CacheMagicReply::from_vars(vars.as_vars())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        out.write_all(&Reply::CacheMagic { reply, value }.to_vec())?;
        Ok(Outcome::Replied)
    };
    let done = |result: Result<(), CacheError>, out: &mut dyn Write| match result {
        Ok(()) => ok(out, None, None, &[]),
        Err(_) => Ok(Outcome::Closed("cache command failed")),
    };
    match magic.command() {
        MagicCommand::Get => match cache.get_item(key, now) {
            Some(item) => ok(
                out,
                Some(item.value.len() as u64),
                Some(item.expires).filter(|e| *e != 0),
                &item.value,
            ),
            None => Ok(Outcome::Closed("cache miss")),
        },
        MagicCommand::Exists => {
            if cache.exists(key, now) {
                ok(out, None, None, &[])
            } else {
                Ok(Outcome::Closed("cache miss"))
            }
        }
        MagicCommand::Del => done(cache.del(key, now), out),
        MagicCommand::Clear => {
            cache.clear();
            ok(out, None, None, &[])
        }
        command @ (MagicCommand::Set | MagicCommand::Update) => {
            let size = magic.size();
            // Refuse before reading a body that could never be stored.
            if size == 0 || size > cache.max_item_size() {
                return Ok(Outcome::Closed("cache value size out of range"));
            }
            let mut value = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            body.take(size).read_to_end(&mut value)?;
            if value.len() as u64 != size {
                return Ok(Outcome::Closed("short cache value"));
            }
            let mode = if command == MagicCommand::Set {
                StoreMode::Set
            } else {
                StoreMode::Update
            };
            let expiry = Expiry::relative(magic.expires().unwrap_or(0));
            done(cache.store(key, &value, expiry, mode, now), out)
        }
    }
}
