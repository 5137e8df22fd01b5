//! Cache requests (modifier1 111, spec §6.1 and §6.2), on the server's shared caches.
//!
//! uWSGI answers no cache failure over the network: a miss, a refused set or an unknown
//! cache closes the connection without bytes, and so do we. Where uWSGI 2.0 is broken
//! (the 4 stray bytes before a get reply, the dictionary lookups that never match) we
//! answer what 1.4 answered, which is what the protocol evidently means.

use std::fmt::Arguments;
use std::io::{self, Read, Write};
use std::time::Duration;

use uwsgi_protocol::cache_dump::{
    self, DumpEntry, DumpGeometry, DumpLayout, FLAG_UNGETTABLE, Placement,
};

use uwsgi_protocol::packet::{
    CacheMagic, CacheMagicReply, CacheRequest, MagicCommand, Message, Payload, Reply,
};

use super::send;
use crate::dispatch::Outcome;
use crate::state::cache::{Cache, CacheConfig, CacheError, Caches, Expiry, StoreMode};

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
                    send::reply(out, &Reply::CacheValue(Message::new(0, payload)))?;
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
            send::reply(out, &reply)?;
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
        CacheRequest::Dump { cache } => {
            // uWSGI: an empty block means the first cache; an unknown name, nothing.
            let Some(cache) = caches.by_name(cache.as_bytes()) else {
                return Ok(Outcome::Closed("unknown cache name"));
            };
            match dump_reply(cache) {
                Some(reply) => {
                    out.write_all(&reply)?;
                    Ok(Outcome::Replied)
                }
                None => Ok(Outcome::Closed("cache cannot be dumped")),
            }
        }
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
        send::reply(out, &Reply::CacheMagic { reply, value })?;
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

/// The layout of `config`'s cache in uWSGI's dump image (`blocks` counts even without a
/// bitmap, as uWSGI's mapping does).
pub fn dump_geometry(config: &CacheConfig) -> Option<DumpGeometry> {
    DumpGeometry::new(
        config.items,
        config.blocksize,
        config.blocks,
        config.keysize,
    )
}

/// The whole reply to a dump request (modifier2 6) for `cache`: uWSGI's header, vars
/// and image, as a uWSGI 2.0 node with the same `--cache2` settings reads it at start
/// (`sync=`). `None` only if the cache's items cannot be laid out (not expected: they
/// were stored under the same limits).
pub fn dump_reply(cache: &Cache) -> Option<Vec<u8>> {
    let config = cache.config();
    let geometry = dump_geometry(config)?;
    let items = cache.snapshot();
    let entries: Vec<DumpEntry<'_>> = items
        .iter()
        .map(|item| DumpEntry {
            key: &item.key,
            value: &item.value,
            expires: item.expires,
            hits: item.hits,
        })
        .collect();
    let layout = DumpLayout {
        placement: if config.bitmap {
            Placement::Bitmap
        } else {
            Placement::SlotBlock
        },
        hashsize: config.hashsize,
        lru: config.purge_lru,
    };
    let hash = config.hash;
    let image =
        cache_dump::encode_image(&geometry, &layout, &|key| hash.hash(key), &entries).ok()?;
    Some(cache_dump::encode_reply(&geometry, &image))
}

/// What a start-up copy from a node loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// Items stored.
    pub loaded: usize,
    /// Items the cache refused (too large for it) or that were hidden ("ungettable").
    pub skipped: usize,
}

/// Connects to a sync node: a path (with a `/`) is a unix socket, anything else
/// `HOST:PORT` over TCP.
fn connect(node: &str, timeout: Duration) -> io::Result<Box<dyn ReadWrite>> {
    if node.contains('/') {
        let stream = std::os::unix::net::UnixStream::connect(node)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        return Ok(Box::new(stream));
    }
    let mut last = io::Error::new(io::ErrorKind::NotFound, "address resolves to nothing");
    for addr in std::net::ToSocketAddrs::to_socket_addrs(node)? {
        match std::net::TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))?;
                return Ok(Box::new(stream));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Fetches `cache`'s dump from `node` and stores its items (as updates, with their
/// absolute expiries). Errors say what failed, for the log.
pub fn sync_from_node(
    cache: &Cache,
    node: &str,
    timeout: Duration,
    now: u64,
) -> Result<SyncReport, String> {
    let geometry =
        dump_geometry(cache.config()).ok_or("the cache's size cannot be dumped".to_owned())?;
    let request = cache_dump::encode_request(cache.name().as_bytes())
        .map_err(|e| format!("cache name: {e}"))?;
    let mut stream = connect(node, timeout)
        .map_err(|e| format!("unable to connect to the cache server: {e}"))?;
    stream
        .write_all(&request)
        .map_err(|e| format!("unable to write to the cache server: {e}"))?;
    let unable = |e: io::Error| format!("unable to read from the cache server: {e}");
    let mut reply = vec![0u8; uwsgi_protocol::Header::LEN];
    stream.read_exact(&mut reply).map_err(unable)?;
    let header = uwsgi_protocol::Header::parse(&reply).map_err(|e| e.to_string())?;
    // The vars, then exactly the image our geometry calls for (uWSGI reads no more).
    let wanted = usize::from(header.datasize) + geometry.image_len();
    reply.resize(uwsgi_protocol::Header::LEN + wanted, 0);
    let mut got = uwsgi_protocol::Header::LEN;
    // Read the vars first: a mismatch is reported as such, not as a short read.
    let vars_end = got + usize::from(header.datasize);
    stream
        .read_exact(&mut reply[got..vars_end])
        .map_err(unable)?;
    got = vars_end;
    if let Err(uwsgi_protocol::DecodeError::Invalid(e)) =
        cache_dump::decode_reply(&reply[..got], geometry, usize::from(u16::MAX))
    {
        return Err(e.to_string());
    }
    stream.read_exact(&mut reply[got..]).map_err(unable)?;
    let (image, _) = cache_dump::decode_reply(&reply, geometry, usize::from(u16::MAX))
        .map_err(|e| e.to_string())?;
    let mut report = SyncReport {
        loaded: 0,
        skipped: 0,
    };
    for item in image.items() {
        let stored = item.flags & FLAG_UNGETTABLE == 0
            && cache
                .store_local(
                    item.key,
                    item.value,
                    Expiry::At(item.expires),
                    StoreMode::Update,
                    now,
                )
                .is_ok();
        if stored {
            report.loaded += 1;
        } else {
            report.skipped += 1;
        }
    }
    Ok(report)
}

/// uWSGI's start-up copy (`sync=` of `--cache2`, `--cache-sync`): for every cache with
/// sync nodes, tries them in order until one sends a dump that fits. uWSGI exits when
/// none does, or when a dump's `items`/`blocksize` differ from the cache's; so does
/// this (the error stops the start). Each attempt is logged like uWSGI's.
pub fn sync_caches(
    caches: &Caches,
    timeout: Duration,
    now: u64,
    log: &dyn Fn(Arguments<'_>),
) -> Result<(), String> {
    for cache in caches.iter() {
        let nodes = &cache.config().sync;
        for (i, node) in nodes.iter().enumerate() {
            log(format_args!(
                "[cache-sync] getting cache dump from {node} ..."
            ));
            match sync_from_node(cache, node, timeout, now) {
                Ok(report) => {
                    log(format_args!(
                        "[cache-sync] restored {} items in cache \"{}\" from {node} ({} skipped)",
                        report.loaded,
                        cache.name(),
                        report.skipped
                    ));
                    break;
                }
                Err(e) => {
                    log(format_args!("[cache-sync] {node}: {e}"));
                    if i + 1 == nodes.len() {
                        return Err(format!(
                            "cache \"{}\": no sync node sent a usable dump (last: {node}: {e})",
                            cache.name()
                        ));
                    }
                    log(format_args!(
                        "[cache-sync] trying with the next sync node..."
                    ));
                }
            }
        }
    }
    Ok(())
}
