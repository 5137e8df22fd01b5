//! The HTTP poller: idle keep-alive connections do not hold a worker thread.
//!
//! Each worker process has one [`Poller`]: an epoll instance holding its
//! `--http-socket` listeners and the connections *parked* between requests (with the
//! bytes they sent ahead: a partial head, pipelined requests). The worker threads all
//! wait on it; each takes one ready thing at a time — a connection to accept, or a
//! parked connection that became readable — serves what that connection has sent
//! ([`super::serve_turn`]), and parks it again instead of waiting on it. So any number
//! of keep-alive clients share `--threads` threads, and a thread is only ever busy
//! with a request.
//!
//! * Parked connections are armed one-shot (`EPOLLONESHOT`): an event goes to exactly
//!   one thread, which owns the connection until it parks it again (re-armed with
//!   `EPOLL_CTL_MOD`, which reports it at once if bytes arrived meanwhile). Every
//!   parked connection has a token with a generation, so an event for a connection
//!   closed meanwhile (by the deadline sweep) is recognised and dropped.
//! * The listeners are level-triggered and `EPOLLEXCLUSIVE`, so a new connection wakes
//!   one worker process, not all; accepting is non-blocking, so a thread that lost the
//!   race to another goes back to waiting.
//! * Deadlines ([`super::Progress::deadline`]) are swept every [`SWEEP_EVERY`]: an idle
//!   connection past `--http-keepalive` is closed silently, a partial head past
//!   `--socket-timeout` gets `408` first (the slowloris defence).
//! * At most `--http-max-parked` connections are parked per process; parking one more
//!   closes the one closest to its deadline first (so does running out of descriptors
//!   while accepting).
//! * A connection whose turn ends with complete requests still buffered (more than
//!   [`super::MAX_REQUESTS_PER_TURN`] pipelined) is parked for writability instead,
//!   which is reported at once: it queues behind the other ready connections.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::event::{Timespec, epoll};
use rustix::net::{RecvFlags, SendFlags};

use super::body::{Input, Timeouts};
use super::request::Context;
use super::{Progress, Turn};
use crate::connection::Peer;
use crate::listen::Listener;
use crate::scoreboard::WorkerField;
use crate::server::{Seat, Shared};

/// How often deadlines are looked at (and the longest a thread waits on the poller
/// before it looks at its stop flag again).
pub const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// Event tokens above this are not connections.
const LISTENER_TOKEN: u64 = 1 << 63;
const STOP_TOKEN: u64 = 1 << 62;
/// Generations wrap below this, so a connection's token never reaches the others.
const GENERATIONS: u32 = 1 << 30;

/// An accepted connection.
#[derive(Debug)]
enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Socket {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.set_read_timeout(timeout),
            Socket::Unix(s) => s.set_read_timeout(timeout),
        }
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Socket::Tcp(s) => s.as_fd(),
            Socket::Unix(s) => s.as_fd(),
        }
    }
}

impl Read for &Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match *self {
            Socket::Tcp(s) => (&*s).read(buf),
            Socket::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match *self {
            Socket::Tcp(s) => (&*s).write(buf),
            Socket::Unix(s) => (&*s).write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match *self {
            Socket::Tcp(s) => (&*s).write_vectored(bufs),
            Socket::Unix(s) => (&*s).write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A connection between requests, or in a thread's hands.
#[derive(Debug)]
struct Conn {
    socket: Socket,
    /// The descriptor of the listener it came from (its per-socket access rules).
    listener_fd: i32,
    context: Box<Context>,
    peer: Peer,
    /// Bytes received and not served yet.
    leftover: Vec<u8>,
    progress: Progress,
    /// The socket's read timeout as last set.
    read_timeout: Option<Duration>,
    /// Added to the epoll set (then re-armed with `EPOLL_CTL_MOD`).
    registered: bool,
}

/// What a parked connection waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interest {
    /// Bytes from the client.
    Readable,
    /// Its turn: it has complete requests buffered ([`Turn::Yield`]).
    Turn,
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    parked: Option<(Conn, Instant)>,
}

/// The parked connections, in a slab indexed by token, with their deadlines in order.
#[derive(Debug, Default)]
struct Table {
    slots: Vec<Slot>,
    free: Vec<usize>,
    deadlines: BTreeSet<(Instant, usize)>,
    /// The scoreboard cell that shows the parked count to the stats server.
    gauge: Option<Gauge>,
}

/// A worker's `HttpParked` scoreboard cell, kept equal to its table's count.
struct Gauge {
    shared: Arc<Shared>,
    worker: usize,
}

impl std::fmt::Debug for Gauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gauge")
            .field("worker", &self.worker)
            .finish()
    }
}

impl Table {
    fn parked(&self) -> usize {
        self.deadlines.len()
    }

    fn publish(&self) {
        if let Some(gauge) = &self.gauge {
            gauge
                .shared
                .scoreboard
                .worker(gauge.worker, WorkerField::HttpParked)
                .store(self.parked() as u64, Ordering::Relaxed);
        }
    }

    /// Takes the connection of `index` out of the table (if `generation` still holds).
    fn take(&mut self, index: usize, generation: Option<u32>) -> Option<Conn> {
        let slot = self.slots.get_mut(index)?;
        if generation.is_some_and(|g| g != slot.generation) {
            return None;
        }
        let (conn, deadline) = slot.parked.take()?;
        slot.generation = (slot.generation + 1) % GENERATIONS;
        self.deadlines.remove(&(deadline, index));
        self.free.push(index);
        self.publish();
        Some(conn)
    }

    /// Takes the connection closest to its deadline.
    fn take_first(&mut self) -> Option<(Conn, Instant)> {
        let &(deadline, index) = self.deadlines.first()?;
        self.take(index, None).map(|conn| (conn, deadline))
    }
}

/// One worker process's poller (see the module documentation).
#[derive(Debug)]
pub(crate) struct Poller {
    epoll: OwnedFd,
    /// Readable once the server stops, and for good: wakes every waiting thread.
    stop: OwnedFd,
    listeners: Vec<Arc<Listener>>,
    table: Mutex<Table>,
    /// Milliseconds since `epoch` of the next deadline sweep.
    next_sweep: AtomicU64,
    epoch: Instant,
    max_parked: usize,
    /// Connections accepted, for the tests and the log.
    accepted: AtomicU64,
}

impl Poller {
    /// A poller for the `--http-socket` `listeners` of this process (made non-blocking:
    /// only pollers accept on them).
    pub(crate) fn new(listeners: Vec<Arc<Listener>>, max_parked: usize) -> io::Result<Poller> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let stop = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )?;
        epoll::add(
            &epoll,
            &stop,
            epoll::EventData::new_u64(STOP_TOKEN),
            epoll::EventFlags::IN,
        )?;
        for (index, listener) in listeners.iter().enumerate() {
            match listener.as_ref() {
                Listener::Tcp(l) => l.set_nonblocking(true)?,
                Listener::Unix(l, _) => l.set_nonblocking(true)?,
            }
            epoll::add(
                &epoll,
                listener.as_fd(),
                epoll::EventData::new_u64(LISTENER_TOKEN | index as u64),
                epoll::EventFlags::IN | epoll::EventFlags::EXCLUSIVE,
            )?;
        }
        Ok(Poller {
            epoll,
            stop,
            listeners,
            table: Mutex::new(Table::default()),
            next_sweep: AtomicU64::new(0),
            epoch: Instant::now(),
            max_parked: max_parked.max(1),
            accepted: AtomicU64::new(0),
        })
    }

    /// Wakes every thread waiting on the poller, now and later: called once the stop
    /// flag is set.
    pub(crate) fn wake_all(&self) {
        let _ = rustix::io::write(&self.stop, &1u64.to_ne_bytes());
    }

    /// Closes every parked connection (the server has stopped).
    pub(crate) fn close_all(&self) {
        let closed: Vec<Conn> = {
            let mut table = self.lock();
            std::iter::from_fn(|| table.take_first().map(|(conn, _)| conn)).collect()
        };
        drop(closed);
    }

    /// Reports the parked count in `worker`'s scoreboard slot from now on (the stats
    /// server, in the master, cannot see this process's table).
    pub(crate) fn publish_to(&self, shared: Arc<Shared>, worker: usize) {
        let mut table = self.lock();
        table.gauge = Some(Gauge { shared, worker });
        table.publish();
    }

    /// Connections parked now.
    pub(crate) fn parked(&self) -> usize {
        self.lock().parked()
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Parks `conn` until `deadline`, waiting for `interest`. The connection is armed
    /// under the table's lock, so the sweep cannot close it in between (and its
    /// descriptor number cannot be reused by another connection meanwhile).
    fn park(&self, mut conn: Conn, deadline: Instant, interest: Interest, shared: &Shared) {
        let mut evicted = None;
        let mut failed = None;
        {
            let mut table = self.lock();
            if table.parked() >= self.max_parked {
                evicted = table.take_first();
            }
            let index = table.free.pop().unwrap_or_else(|| {
                table.slots.push(Slot {
                    generation: 0,
                    parked: None,
                });
                table.slots.len() - 1
            });
            let generation = table.slots[index].generation;
            let token = epoll::EventData::new_u64(u64::from(generation) << 32 | index as u64);
            let flags = epoll::EventFlags::ONESHOT
                | match interest {
                    Interest::Readable => epoll::EventFlags::IN,
                    Interest::Turn => epoll::EventFlags::OUT,
                };
            let armed = if conn.registered {
                epoll::modify(&self.epoll, &conn.socket, token, flags)
            } else {
                epoll::add(&self.epoll, &conn.socket, token, flags)
            };
            match armed {
                Ok(()) => {
                    conn.registered = true;
                    table.slots[index].parked = Some((conn, deadline));
                    table.deadlines.insert((deadline, index));
                    table.publish();
                }
                Err(err) => {
                    table.free.push(index);
                    failed = Some((conn, err));
                }
            }
        }
        if let Some((conn, err)) = failed {
            shared.log(format_args!("http {}: cannot park: {err}", conn.peer));
        }
        if let Some((conn, _)) = evicted {
            expire(conn);
        }
    }

    /// Closes the connections whose deadline has passed, when a sweep is due.
    fn sweep(&self) {
        let now = self.epoch.elapsed();
        let now_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        let due = self.next_sweep.load(Ordering::Relaxed);
        let next = now_ms.saturating_add(u64::try_from(SWEEP_EVERY.as_millis()).unwrap_or(100));
        if now_ms < due
            || self
                .next_sweep
                .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let now = Instant::now();
        let expired: Vec<Conn> = {
            let mut table = self.lock();
            std::iter::from_fn(|| {
                let &(deadline, index) = table.deadlines.first()?;
                (deadline <= now).then(|| table.take(index, None)).flatten()
            })
            .collect()
        };
        for conn in expired {
            expire(conn);
        }
    }

    /// Accepts a connection on listener `index`, if one is still waiting.
    fn accept(&self, index: usize, shared: &Shared) -> Option<Conn> {
        let listener = self.listeners.get(index)?;
        let accepted = match listener.as_ref() {
            Listener::Tcp(l) => l.accept().and_then(|(stream, addr)| {
                let local = stream.local_addr()?;
                Ok(Conn::new(
                    Socket::Tcp(stream),
                    Context::tcp(local, addr),
                    Peer::Inet(addr),
                    Some(shared.socket_timeout).filter(|t| !t.is_zero()),
                ))
            }),
            Listener::Unix(l, path) => l.accept().and_then(|(stream, _)| {
                // Unix sockets do not inherit the listener's timeouts (Linux creates
                // the accepted socket anew rather than cloning the listener).
                let timeout = Some(shared.socket_timeout).filter(|t| !t.is_zero());
                stream.set_read_timeout(timeout)?;
                stream.set_write_timeout(timeout)?;
                Ok(Conn::new(
                    Socket::Unix(stream),
                    Context::unix(path),
                    Peer::Unix,
                    timeout,
                ))
            }),
        };
        match accepted {
            Ok(mut conn) => {
                self.accepted.fetch_add(1, Ordering::Relaxed);
                conn.listener_fd = std::os::fd::AsRawFd::as_raw_fd(&listener.as_fd());
                Some(conn)
            }
            // Another thread or process took it; or interrupted.
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                None
            }
            Err(err) => {
                // Out of descriptors: the parked connection closest to its deadline
                // makes room; anything else (a connection reset in the queue) is
                // logged and the next one taken.
                let out_of_fds = matches!(
                    err.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                );
                shared.log(format_args!("accept failed: {err}"));
                if out_of_fds {
                    let oldest = self.lock().take_first();
                    match oldest {
                        Some((conn, _)) => expire(conn),
                        None => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
                None
            }
        }
    }

    /// Waits up to [`SWEEP_EVERY`] for something to do.
    fn wait(&self) -> io::Result<Option<u64>> {
        let mut events = [epoll::Event {
            flags: epoll::EventFlags::empty(),
            data: epoll::EventData::new_u64(0),
        }];
        let timeout = Timespec::try_from(SWEEP_EVERY).unwrap_or(Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        });
        match epoll::wait(&self.epoll, &mut events, Some(&timeout)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => Ok(None),
            Ok(_) => Ok(Some(events[0].data.u64())),
            Err(err) => Err(err.into()),
        }
    }
}

impl Conn {
    fn new(socket: Socket, context: Context, peer: Peer, read_timeout: Option<Duration>) -> Conn {
        Conn {
            socket,
            listener_fd: -1,
            context: Box::new(context),
            peer,
            leftover: Vec::new(),
            progress: Progress::new(Instant::now()),
            read_timeout,
            registered: false,
        }
    }
}

/// Closes a connection whose deadline passed (or that makes room): silently when it
/// was idle, with `408` when it had sent part of a head. The response is written only
/// if the socket takes it at once, and what the client sent is read off first so that
/// the close does not turn into a reset under it.
fn expire(conn: Conn) {
    if !conn.leftover.is_empty() {
        let mut scratch = [0u8; 4096];
        for _ in 0..64 {
            match rustix::net::recv(&conn.socket, &mut scratch, RecvFlags::DONTWAIT) {
                Ok((_, n)) if n > 0 => {}
                _ => break,
            }
        }
        let response = super::error_response(408);
        let _ = rustix::net::send(
            &conn.socket,
            &response,
            SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
        );
        let _ = rustix::net::shutdown(&conn.socket, rustix::net::Shutdown::Write);
    }
    drop(conn);
}

/// A worker thread of the HTTP sockets: takes ready work from `poller` until `stopping`
/// is set. A connection taken is served to the end of its turn even when the stop came
/// meanwhile (its response then says `Connection: close`).
pub(crate) fn run(poller: &Poller, seat: &Seat, shared: &Shared, stopping: &AtomicBool) {
    crate::server::take_seat(seat, shared);
    let mut buffer = Vec::with_capacity(shared.http.buffer_capacity());
    let waiting = |now: bool| {
        if let Some(flag) = &seat.in_accept {
            flag.store(now, Ordering::SeqCst);
        }
    };
    while !stopping.load(Ordering::SeqCst) {
        waiting(true);
        // Looked at again: a stop that came before the flag was set sent no wake-up.
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        let ready = poller.wait();
        waiting(false);
        poller.sweep();
        let conn = match ready {
            Ok(None) => continue,
            Ok(Some(STOP_TOKEN)) => break,
            Ok(Some(token)) if token & LISTENER_TOKEN != 0 => {
                let index = usize::try_from(token & !LISTENER_TOKEN).unwrap_or(usize::MAX);
                match poller.accept(index, shared) {
                    Some(conn) => conn,
                    None => continue,
                }
            }
            Ok(Some(token)) => {
                let index = usize::try_from(token & u64::from(u32::MAX)).unwrap_or(usize::MAX);
                let generation = u32::try_from(token >> 32).unwrap_or(u32::MAX);
                match poller.lock().take(index, Some(generation)) {
                    Some(conn) => conn,
                    None => continue,
                }
            }
            Err(err) => {
                shared.log(format_args!("http poller: {err}"));
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        turn(poller, conn, seat, shared, stopping, &mut buffer);
        if seat.max_requests > 0
            && shared
                .scoreboard
                .get(seat.worker, WorkerField::DeltaRequests)
                >= seat.max_requests
        {
            stopping.store(true, Ordering::SeqCst);
            poller.wake_all();
        }
    }
}

/// One turn of a connection: reads what it sent (without waiting), serves the complete
/// requests, and parks it again (or closes it).
fn turn(
    poller: &Poller,
    mut conn: Conn,
    seat: &Seat,
    shared: &Shared,
    stopping: &AtomicBool,
    buffer: &mut Vec<u8>,
) {
    crate::server::serving_socket_fd(conn.listener_fd);
    let Conn {
        socket,
        context,
        peer,
        leftover,
        progress,
        read_timeout,
        ..
    } = &mut conn;
    let socket = &*socket;
    let set_timeout = |t| socket.set_read_timeout(t);
    let mut input = Input::new(
        socket,
        buffer,
        shared.http.buffer_capacity(),
        Timeouts::new(&set_timeout, *read_timeout),
    );
    input.preload(leftover);
    let mut eof = false;
    if input.has_room() {
        let read =
            input.fill_now(
                |buf| match rustix::net::recv(socket, buf, RecvFlags::DONTWAIT) {
                    Ok((_, 0)) => {
                        eof = true;
                        Ok(0)
                    }
                    Ok((_, n)) => Ok(n),
                    Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => Ok(0),
                    Err(err) => Err(err.into()),
                },
            );
        if let Err(err) = read {
            // Reset by the client: nothing to answer.
            if err.kind() != io::ErrorKind::ConnectionReset {
                shared.log(format_args!("http {peer}: {err}"));
            }
            return;
        }
    }
    let result = super::serve_turn(
        &mut input,
        socket,
        context,
        *peer,
        shared,
        stopping,
        Some((seat.worker, seat.core)),
        progress,
        eof,
        Some(std::os::fd::AsRawFd::as_raw_fd(&socket.as_fd())),
    );
    let interest = match result {
        Ok(Turn::Close) => return,
        Ok(Turn::Wait) => Interest::Readable,
        Ok(Turn::Yield) => Interest::Turn,
        Err(err) => {
            shared.log(format_args!("http {peer}: {err}"));
            return;
        }
    };
    // Stopping: the response said `Connection: close` (or the connection is idle).
    if stopping.load(Ordering::Relaxed) {
        return;
    }
    leftover.clear();
    leftover.extend_from_slice(input.available());
    if leftover.is_empty() && leftover.capacity() > 0 {
        // An idle connection keeps no buffer.
        *leftover = Vec::new();
    }
    if let Some(current) = input.timeouts.current() {
        *read_timeout = current;
    }
    let far = Instant::now() + Duration::from_secs(7 * 86_400);
    let deadline = progress.deadline(&shared.http).unwrap_or(far);
    poller.park(conn, deadline, interest, shared);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Settings;

    fn conn() -> Conn {
        let (a, _b) = UnixStream::pair().unwrap();
        Conn::new(
            Socket::Unix(a),
            Context::unix(std::path::Path::new("/t.sock")),
            Peer::Unix,
            None,
        )
    }

    fn put(table: &mut Table, deadline: Instant) -> (usize, u32) {
        let index = table.free.pop().unwrap_or_else(|| {
            table.slots.push(Slot {
                generation: 0,
                parked: None,
            });
            table.slots.len() - 1
        });
        table.slots[index].parked = Some((conn(), deadline));
        table.deadlines.insert((deadline, index));
        (index, table.slots[index].generation)
    }

    #[test]
    fn a_stale_generation_takes_nothing_and_slots_are_reused() {
        let mut table = Table::default();
        let now = Instant::now();
        let (index, generation) = put(&mut table, now);
        assert!(table.take(index, Some(generation + 1)).is_none());
        assert_eq!(table.parked(), 1);
        assert!(table.take(index, Some(generation)).is_some());
        assert_eq!(table.parked(), 0);
        // Taken twice: the second finds nothing.
        assert!(table.take(index, Some(generation)).is_none());
        // The slot comes back with a new generation; the old token no longer matches.
        let (again, next) = put(&mut table, now);
        assert_eq!(again, index);
        assert_ne!(next, generation);
        assert!(table.take(index, Some(generation)).is_none());
        assert!(table.take(index, Some(next)).is_some());
        // Out of range: nothing, no panic.
        assert!(table.take(12345, Some(0)).is_none());
    }

    #[test]
    fn the_first_taken_is_the_closest_to_its_deadline() {
        let mut table = Table::default();
        let now = Instant::now();
        let (late, _) = put(&mut table, now + Duration::from_secs(9));
        let (soon, _) = put(&mut table, now + Duration::from_secs(1));
        let (middle, _) = put(&mut table, now + Duration::from_secs(5));
        let order: Vec<Instant> =
            std::iter::from_fn(|| table.take_first().map(|(_, d)| d)).collect();
        assert_eq!(
            order,
            [
                now + Duration::from_secs(1),
                now + Duration::from_secs(5),
                now + Duration::from_secs(9)
            ]
        );
        assert_eq!(table.free.len(), 3);
        assert!([late, soon, middle].iter().all(|i| table.free.contains(i)));
    }

    #[test]
    fn generations_never_reach_the_special_tokens() {
        // The largest connection token: the last generation before the wrap, the
        // largest index.
        let highest = u64::from(GENERATIONS - 1) << 32 | u64::from(u32::MAX);
        assert_eq!(highest & (LISTENER_TOKEN | STOP_TOKEN), 0);
        assert_eq!((GENERATIONS - 1 + 1) % GENERATIONS, 0);
    }

    #[test]
    fn deadlines_follow_the_head_and_the_idle_time() {
        let settings = Settings {
            head_limit: 4096,
            max_body: 1,
            socket_timeout: Duration::from_secs(4),
            keepalive: Duration::from_secs(5),
            max_requests: 1000,
            modifier1: 0,
            max_parked: 10,
        };
        let accepted = Instant::now();
        let mut progress = Progress::new(accepted);
        // A new connection: the whole first head within --socket-timeout of the accept.
        assert_eq!(
            progress.deadline(&settings),
            Some(accepted + Duration::from_secs(4))
        );
        // Idle after a response: --http-keepalive from its end.
        progress.head_started = None;
        progress.idle_since = accepted + Duration::from_secs(1);
        assert_eq!(
            progress.deadline(&settings),
            Some(accepted + Duration::from_secs(6))
        );
        // No --socket-timeout: a head has no deadline.
        progress.head_started = Some(accepted);
        let unlimited = Settings {
            socket_timeout: Duration::ZERO,
            ..settings
        };
        assert_eq!(progress.deadline(&unlimited), None);
    }
}
