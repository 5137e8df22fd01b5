//! The admin packet (modifier1 10, spec §7.4): reads and writes uWSGI 1.x's 256 numeric
//! option slots. uWSGI 2.0 dropped the `admin` plugin (its last version is in 1.9.18's
//! `plugins/admin`); this server keeps the 1.x wire behaviour for the clients that
//! still send it:
//!
//! * an empty block reads slot `modifier2`: reply `0a 0400 m2` + the value (u32,
//!   little-endian);
//! * a 4-byte block writes slot `modifier2`: reply `ff 0000 01`, and a log line;
//! * any other block size is invalid (the codec refuses it): closed, no reply.
//!
//! Admin packets are management packets: by default only loopback and unix peers may
//! send them (`--management-allow-from`).
//!
//! # Slots
//!
//! The slots live in shared memory, so a write through one worker is read by every
//! worker. The slots uWSGI 1.x gave a meaning are seeded from the configuration at
//! start; every other slot starts at 0 and is only stored.
//!
//! | slot | uWSGI 1.x name | seeded from | a write takes effect |
//! |---|---|---|---|
//! | 0 | `LOGGING` | 1, or 0 with `--disable-logging` | yes: 0 stops the request log (the filters still apply), non-zero logs every request |
//! | 1 | `MAX_REQUESTS` | `--max-requests` | no (read at start) |
//! | 2 | `SOCKET_TIMEOUT` | `--socket-timeout` (seconds) | no (read at start) |
//! | 5 | `HARAKIRI` | `--harakiri` (seconds) | no (read at start) |
//! | 7 | `THREADS` | `--threads` | no |
//! | 9 | `LOG_ZERO` | `--log-zero` | yes |
//! | 10 | `LOG_SLOW` | `--log-slow` (milliseconds) | yes |
//! | 11 | `LOG_4xx` | `--log-4xx` | yes |
//! | 12 | `LOG_5xx` | `--log-5xx` | yes |
//! | 13 | `LOG_BIG` | `--log-big` (bytes, saturated to u32) | yes |
//!
//! Values over `u32::MAX` are seeded as `u32::MAX`: the wire value is 32 bits.

use std::io;
use std::sync::atomic::Ordering;

use uwsgi_protocol::packet::{Admin, Message, Payload, Reply};

use crate::config::ServerConfig;
use crate::reqlog::LogFilters;
use crate::state::shm::SharedCounters;

/// Number of option slots (the index is the packet's modifier2, a byte).
pub const SLOTS: usize = 256;

/// Slot 0: request logging on (non-zero) or off (0).
pub const LOGGING: u8 = 0;
/// Slot 1: `--max-requests`.
pub const MAX_REQUESTS: u8 = 1;
/// Slot 2: `--socket-timeout` in seconds.
pub const SOCKET_TIMEOUT: u8 = 2;
/// Slot 5: `--harakiri` in seconds.
pub const HARAKIRI: u8 = 5;
/// Slot 7: `--threads`.
pub const THREADS: u8 = 7;
/// Slot 9: `--log-zero`.
pub const LOG_ZERO: u8 = 9;
/// Slot 10: `--log-slow` in milliseconds.
pub const LOG_SLOW: u8 = 10;
/// Slot 11: `--log-4xx`.
pub const LOG_4XX: u8 = 11;
/// Slot 12: `--log-5xx`.
pub const LOG_5XX: u8 = 12;
/// Slot 13: `--log-big` in bytes.
pub const LOG_BIG: u8 = 13;

/// The option slots, shared by every process of the server.
pub struct AdminOptions {
    slots: SharedCounters,
}

impl std::fmt::Debug for AdminOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminOptions")
            .field("logging", &self.get(LOGGING))
            .finish_non_exhaustive()
    }
}

fn saturate(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

impl AdminOptions {
    /// Maps the slots and seeds them from `config` (see the module table).
    pub fn new(config: &ServerConfig) -> io::Result<AdminOptions> {
        let options = AdminOptions {
            slots: SharedCounters::new(SLOTS)?,
        };
        let log = &config.request_log.filters;
        let seeds = [
            (LOGGING, u64::from(!log.disabled)),
            (MAX_REQUESTS, config.max_requests),
            (SOCKET_TIMEOUT, config.socket_timeout.as_secs()),
            (HARAKIRI, config.harakiri.as_secs()),
            (THREADS, u64::try_from(config.threads).unwrap_or(u64::MAX)),
            (LOG_ZERO, u64::from(log.zero)),
            (LOG_SLOW, log.slow_ms),
            (LOG_4XX, u64::from(log.log_4xx)),
            (LOG_5XX, u64::from(log.log_5xx)),
            (LOG_BIG, log.big),
        ];
        for (slot, value) in seeds {
            options.set(slot, saturate(value));
        }
        Ok(options)
    }

    /// The value of `slot`.
    pub fn get(&self, slot: u8) -> u32 {
        self.slots
            .get(usize::from(slot))
            .map_or(0, |v| saturate(v.load(Ordering::Relaxed)))
    }

    /// Stores `value` in `slot`.
    pub fn set(&self, slot: u8, value: u32) {
        if let Some(cell) = self.slots.get(usize::from(slot)) {
            cell.store(u64::from(value), Ordering::Relaxed);
        }
    }

    /// The request log filters as the slots say now (slots 0 and 9..=13), so a write
    /// through the admin packet changes what the next request logs.
    pub fn log_filters(&self) -> LogFilters {
        LogFilters {
            disabled: self.get(LOGGING) == 0,
            zero: self.get(LOG_ZERO) != 0,
            slow_ms: u64::from(self.get(LOG_SLOW)),
            log_4xx: self.get(LOG_4XX) != 0,
            log_5xx: self.get(LOG_5XX) != 0,
            big: u64::from(self.get(LOG_BIG)),
        }
    }

    /// Applies `request` and returns the reply bytes: the value for a read, the
    /// generic `ff 0000 01` acknowledgement for a write.
    pub fn answer(&self, request: &Admin) -> Vec<u8> {
        match *request {
            Admin::Get { option } => Reply::AdminValue {
                option,
                value: self.get(option),
            }
            .to_vec(),
            Admin::Set { option, value } => {
                self.set(option, value);
                Reply::Response(Message::new(1, Payload::EMPTY)).to_vec()
            }
        }
    }
}
