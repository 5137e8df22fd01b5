//! uWSGI mules and farms: extra processes forked by the master that do not serve
//! requests but receive messages from the workers (`uwsgi.mule_msg`) and uWSGI signals.
//!
//! The transport is the one uWSGI uses: unix datagram socket pairs created by the master
//! before anything is forked, so every worker and mule inherits them.
//!
//! * each mule has its own queue (`mule_msg(msg, N)`);
//! * one queue is shared by every mule (`mule_msg(msg)`): the first mule free to read
//!   takes the message;
//! * each farm has one queue shared by its mules (`mule_msg(msg, "farm")`,
//!   `farm_msg("farm", msg)`).
//!
//! A message is one datagram of at most [`MAX_MESSAGE`] bytes; a longer one is refused
//! with an error instead of being cut. The sockets are non-blocking on the sending side:
//! a full queue answers `False` rather than blocking a worker.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};

/// The largest message `mule_msg` sends: 64 KiB, the default `buffer_size` of
/// `mule_get_msg`.
pub const MAX_MESSAGE: usize = 65_536;

/// The mule id of this process: 0 outside a mule (process-wide, set once after fork).
static MY_MULE: AtomicUsize = AtomicUsize::new(0);

/// One socket pair: the workers write to `tx`, mules read from `rx`.
#[derive(Debug)]
struct Queue {
    tx: UnixDatagram,
    rx: UnixDatagram,
}

impl Queue {
    fn new() -> io::Result<Queue> {
        let (tx, rx) = UnixDatagram::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        Ok(Queue { tx, rx })
    }
}

/// A named group of mules sharing one queue (`--farm NAME:1,2`).
#[derive(Debug)]
struct Farm {
    name: String,
    /// 1-based mule ids.
    members: Vec<usize>,
    queue: Queue,
}

/// Where `mule_msg` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// The queue every mule reads.
    AnyMule,
    /// Mule N (1-based).
    Mule(usize),
    /// A farm, by name.
    Farm(&'a str),
}

/// Every mule's and farm's queue, shared by all the processes of one server.
#[derive(Debug)]
pub struct Mules {
    scripts: Vec<Option<PathBuf>>,
    /// Per mule, as the master sees it (the stats are served by the master): pid,
    /// respawns, signals routed.
    status: Vec<[AtomicU64; 3]>,
    own: Vec<Queue>,
    shared: Option<Queue>,
    farms: Vec<Farm>,
}

impl Mules {
    /// Creates the queues for `scripts.len()` mules (`None`: the default message loop)
    /// and `farms` (name, 1-based mule ids). Ids out of range are refused.
    pub fn new(scripts: Vec<Option<PathBuf>>, farms: &[(String, Vec<usize>)]) -> io::Result<Mules> {
        let own = (0..scripts.len())
            .map(|_| Queue::new())
            .collect::<io::Result<Vec<_>>>()?;
        let shared = if scripts.is_empty() {
            None
        } else {
            Some(Queue::new()?)
        };
        let mut built = Vec::with_capacity(farms.len());
        for (name, members) in farms {
            if let Some(bad) = members.iter().find(|&&id| id == 0 || id > scripts.len()) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("farm {name}: there is no mule {bad}"),
                ));
            }
            built.push(Farm {
                name: name.clone(),
                members: members.clone(),
                queue: Queue::new()?,
            });
        }
        Ok(Mules {
            status: scripts.iter().map(|_| Default::default()).collect(),
            scripts,
            own,
            shared,
            farms: built,
        })
    }

    /// How many mules the server runs.
    pub fn count(&self) -> usize {
        self.scripts.len()
    }

    /// The script of mule `id` (1-based); `None` for the default message loop.
    pub fn script(&self, id: usize) -> Option<&std::path::Path> {
        self.scripts
            .get(id.wrapping_sub(1))
            .and_then(|s| s.as_deref())
    }

    /// The master's record: mule `index` (0-based) now runs as `pid` (0: not running);
    /// `respawned` counts a respawn.
    pub fn set_pid(&self, index: usize, pid: u64, respawned: bool) {
        if let Some(status) = self.status.get(index) {
            status[0].store(pid, Ordering::Relaxed);
            if respawned {
                status[1].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The master's record: a uWSGI signal was routed to mule `index` (0-based).
    pub fn count_signal(&self, index: usize) {
        if let Some(status) = self.status.get(index) {
            status[2].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The `mules` array of the stats document (uWSGI's keys).
    pub fn stats(&self) -> Vec<serde_json::Value> {
        self.status
            .iter()
            .enumerate()
            .map(|(index, status)| {
                let id = index + 1;
                serde_json::json!({
                    "id": id,
                    "pid": status[0].load(Ordering::Relaxed),
                    "respawns": status[1].load(Ordering::Relaxed),
                    "signals": status[2].load(Ordering::Relaxed),
                    "signal_queue": 0,
                    "file": self.script(id).map(|p| p.display().to_string()),
                    "farms": self.farms_of(id),
                })
            })
            .collect()
    }

    /// Marks this process as mule `id` (called once in the forked mule).
    pub fn become_mule(id: usize) {
        MY_MULE.store(id, Ordering::Relaxed);
    }

    /// This process's mule id, 0 outside a mule.
    pub fn my_id() -> usize {
        MY_MULE.load(Ordering::Relaxed)
    }

    /// The 1-based mule ids of the farm called `name` (signal target `farm_<name>`).
    pub fn farm_members(&self, name: &str) -> Option<&[usize]> {
        self.farms
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.members.as_slice())
    }

    /// The 1-based mule ids of farm `number`, counted from 1 in `--farm` order (signal
    /// target `farmN`).
    pub fn farm_members_by_number(&self, number: usize) -> Option<&[usize]> {
        self.farms
            .get(number.checked_sub(1)?)
            .map(|f| f.members.as_slice())
    }

    /// The farm names mule `id` belongs to, in `--farm` order.
    pub fn farms_of(&self, id: usize) -> Vec<&str> {
        self.farms
            .iter()
            .filter(|f| f.members.contains(&id))
            .map(|f| f.name.as_str())
            .collect()
    }

    /// Sends one message. `Ok(false)`: the queue is full (the message is dropped, as
    /// uWSGI's non-blocking send does).
    pub fn send(&self, message: &[u8], target: Target<'_>) -> Result<bool, String> {
        if self.scripts.is_empty() {
            return Err("no mule configured".to_owned());
        }
        if message.len() > MAX_MESSAGE {
            return Err(format!(
                "mule message too large: {} bytes, the limit is {MAX_MESSAGE}",
                message.len()
            ));
        }
        let queue = match target {
            Target::AnyMule => self.shared.as_ref(),
            Target::Mule(id) => {
                if id == 0 || id > self.own.len() {
                    return Err(format!("invalid mule number: {id}"));
                }
                self.own.get(id - 1)
            }
            Target::Farm(name) => match self.farms.iter().find(|f| f.name == name) {
                Some(farm) => Some(&farm.queue),
                None => return Err(format!("unknown farm: {name}")),
            },
        };
        let Some(queue) = queue else {
            return Err("no mule configured".to_owned());
        };
        match queue.tx.send(message) {
            Ok(_) => Ok(true),
            Err(err)
                if err.kind() == io::ErrorKind::WouldBlock
                    || err.raw_os_error() == Some(libc_enobufs()) =>
            {
                Ok(false)
            }
            Err(err) => Err(format!("mule_msg: {err}")),
        }
    }

    /// Waits for the next message for this mule: its own queue, the queue every mule
    /// reads and, with `farms`, its farms' queues. `timeout` `None` waits for ever;
    /// `Ok(None)` when it passed. Errors outside a mule.
    pub fn receive(
        &self,
        farms: bool,
        buffer_size: usize,
        timeout: Option<Duration>,
    ) -> Result<Option<Vec<u8>>, String> {
        let me = Mules::my_id();
        if me == 0 {
            return Err("you can receive mule messages only in a mule !!!".to_owned());
        }
        let mut queues: Vec<&UnixDatagram> = Vec::new();
        if let Some(own) = self.own.get(me - 1) {
            queues.push(&own.rx);
        }
        if let Some(shared) = &self.shared {
            queues.push(&shared.rx);
        }
        if farms {
            queues.extend(
                self.farms
                    .iter()
                    .filter(|f| f.members.contains(&me))
                    .map(|f| &f.queue.rx),
            );
        }
        self.read_any(&queues, buffer_size, timeout)
    }

    /// A message waiting in one of this mule's farms, without blocking (`farm_get_msg`).
    pub fn farm_message(&self) -> Option<Vec<u8>> {
        let me = Mules::my_id();
        let queues: Vec<&UnixDatagram> = self
            .farms
            .iter()
            .filter(|f| f.members.contains(&me))
            .map(|f| &f.queue.rx)
            .collect();
        if me == 0 || queues.is_empty() {
            return None;
        }
        self.read_any(&queues, MAX_MESSAGE, Some(Duration::ZERO))
            .ok()
            .flatten()
    }

    fn read_any(
        &self,
        queues: &[&UnixDatagram],
        buffer_size: usize,
        timeout: Option<Duration>,
    ) -> Result<Option<Vec<u8>>, String> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut buf = vec![0u8; buffer_size.clamp(1, 16 * MAX_MESSAGE)];
        loop {
            // Another mule may take a message between the poll and the read: then wait
            // again.
            for queue in queues {
                match queue.recv(&mut buf) {
                    Ok(n) => return Ok(Some(buf[..n].to_vec())),
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(format!("mule_get_msg: {err}")),
                }
            }
            let wait = match deadline {
                None => Duration::from_millis(500),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(None);
                    }
                    (deadline - now).min(Duration::from_millis(500))
                }
            };
            let mut fds: Vec<PollFd<'_>> = queues
                .iter()
                .map(|q| PollFd::from_borrowed_fd(q.as_fd(), PollFlags::IN))
                .collect();
            let spec = rustix::time::Timespec {
                tv_sec: i64::try_from(wait.as_secs()).unwrap_or(0),
                tv_nsec: i64::from(wait.subsec_nanos()),
            };
            match rustix::event::poll(&mut fds, Some(&spec)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(err) => return Err(format!("mule_get_msg: {err}")),
            }
        }
    }
}

/// `ENOBUFS`: a unix datagram queue that is full may answer it instead of `EAGAIN`.
fn libc_enobufs() -> i32 {
    rustix::io::Errno::NOBUFS.raw_os_error()
}
