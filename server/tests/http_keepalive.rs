//! `--http-socket` keep-alive with more connections than worker threads: idle
//! connections are parked in the worker process's poller and hold no thread. Served
//! in-process (threads) and by forked workers (the binary).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use uwsgi_protocol::packet::Request;
use uwsgi_server::app::{Output, Status, write_head};
use uwsgi_server::{App, Running, Server, ServerConfig};

use common::binary::{Instance, children_of};

/// Answers `PATH_INFO` back; `/sleep` takes 400 ms first.
#[derive(Debug)]
struct Echo;

impl App for Echo {
    fn call(
        &self,
        request: &Request<'_>,
        body: &mut (dyn Read + Send),
        out: &mut dyn Output,
    ) -> io::Result<Status> {
        let path =
            String::from_utf8_lossy(request.vars.get("PATH_INFO").unwrap_or_default()).into_owned();
        io::copy(body, &mut io::sink())?;
        if path == "/sleep" {
            std::thread::sleep(Duration::from_millis(400));
        }
        let text = format!("path={path}\n");
        let protocol = request.vars.get("SERVER_PROTOCOL").unwrap_or_default();
        let length = text.len().to_string();
        let head_bytes = write_head(
            out,
            protocol,
            "200 OK",
            &[("Content-Length", length.as_bytes())],
        )?;
        out.write_all(text.as_bytes())?;
        Ok(Status {
            code: 200,
            headers: 1,
            head_bytes,
            body_bytes: text.len(),
        })
    }
}

fn echo(args: &[&str]) -> Running {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let config = ServerConfig::from_sources(&args, &[]).unwrap();
    Server::bind(config, Arc::new(Echo)).unwrap().start()
}

/// One response: status, head, body.
#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// A 200 whose connection stays open.
    fn kept(&self) -> bool {
        self.status == 200 && self.header("Connection").is_none()
    }
}

/// A client on one connection.
struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        self.response().unwrap()
    }

    fn response(&mut self) -> io::Result<Response> {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let status = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, head.clone()))?;
        let mut response = Response {
            status,
            head,
            body: String::new(),
        };
        let length: usize = response
            .header("Content-Length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        response.body = String::from_utf8_lossy(&body).into_owned();
        Ok(response)
    }

    /// Waits up to `within` for the server to close: `Ok(rest)` at a clean close (FIN)
    /// with what came before it, `Err` on a reset or when still open.
    fn closed_within(&mut self, within: Duration) -> io::Result<Vec<u8>> {
        self.reader.get_ref().set_read_timeout(Some(within))?;
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest)?;
        Ok(rest)
    }
}

/// `clients` connections, each making `requests` requests on its own connection, all
/// in step: every connection is open and idle while the others are served. Returns
/// every response that was not a kept-alive 200 (with the path echoed when `echoed`).
fn in_step(addr: &str, clients: usize, requests: usize, echoed: bool) -> Vec<String> {
    let barrier = Arc::new(Barrier::new(clients));
    let bad = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (addr, barrier, bad) = (addr.to_owned(), Arc::clone(&barrier), Arc::clone(&bad));
            std::thread::spawn(move || {
                let mut client = Client::connect(&addr);
                barrier.wait();
                for i in 0..requests {
                    let path = format!("/c{c}/r{i}");
                    match client
                        .stream
                        .write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
                        .and_then(|()| client.response())
                    {
                        Ok(r) if r.kept() && (!echoed || r.body == format!("path={path}\n")) => {}
                        Ok(r) => bad.lock().unwrap().push(format!("{path}: {}", r.head)),
                        Err(err) => {
                            bad.lock().unwrap().push(format!("{path}: {err}"));
                            return;
                        }
                    }
                    barrier.wait();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    Arc::try_unwrap(bad).unwrap().into_inner().unwrap()
}

#[test]
fn more_keep_alive_clients_than_threads_are_served_without_reconnecting() {
    let server = echo(&[
        "--http-socket",
        "127.0.0.1:0",
        "--processes",
        "1",
        "--threads",
        "2",
        "--http-keepalive",
        "10",
        "--disable-logging",
    ]);
    let addr = server.http_addrs()[0].clone();
    let bad = in_step(&addr, 8, 50, true);
    assert!(bad.is_empty(), "{} bad responses: {bad:#?}", bad.len());
    let connections = server.http_connections();
    // 8 connections for 400 requests: nobody was asked to reconnect.
    assert_eq!(connections.accepted, 8, "{connections:?}");
}

#[test]
fn idle_timeout_closes_a_parked_connection() {
    let server = echo(&[
        "--http-socket",
        "127.0.0.1:0",
        "--http-keepalive",
        "1",
        "--socket-timeout",
        "2",
        "--disable-logging",
    ]);
    let addr = server.http_addrs()[0].clone();
    let mut client = Client::connect(&addr);
    assert!(client.get("/one").kept());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.http_connections().parked, 1);
    // Still open before the keep-alive time...
    assert!(client.closed_within(Duration::from_millis(400)).is_err());
    assert!(client.get("/two").kept());
    // ...counted again from the last response, and closed cleanly (FIN) after it.
    let started = Instant::now();
    let rest = client.closed_within(Duration::from_secs(3)).unwrap();
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    let took = started.elapsed();
    assert!(
        took > Duration::from_millis(800) && took < Duration::from_millis(1900),
        "{took:?}"
    );
    assert_eq!(server.http_connections().parked, 0);

    // A new connection that sends nothing has --socket-timeout, and no response.
    let mut silent = Client::connect(&addr);
    let started = Instant::now();
    let rest = silent.closed_within(Duration::from_secs(5)).unwrap();
    assert!(rest.is_empty());
    let took = started.elapsed();
    assert!(
        took > Duration::from_millis(1800) && took < Duration::from_millis(3500),
        "{took:?}"
    );
}

#[test]
fn a_partial_head_on_a_parked_connection_gets_408_and_holds_no_thread() {
    let server = echo(&[
        "--http-socket",
        "127.0.0.1:0",
        "--http-keepalive",
        "30",
        "--socket-timeout",
        "1",
        "--disable-logging",
    ]);
    let addr = server.http_addrs()[0].clone();
    let mut slow = Client::connect(&addr);
    assert!(slow.get("/first").kept());
    let started = Instant::now();
    slow.send(b"GET /second HTTP/1.1\r\nHost: t\r\n");
    // One worker thread, and the slow head does not hold it.
    for i in 0..5 {
        let mut other = Client::connect(&addr);
        assert!(other.get(&format!("/other{i}")).kept());
        std::thread::sleep(Duration::from_millis(100));
    }
    slow.send(b"X-Slow: 1\r\n");
    let rest = slow.closed_within(Duration::from_secs(3)).unwrap();
    let took = started.elapsed();
    assert!(
        rest.starts_with(b"HTTP/1.1 408 "),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    assert!(
        took > Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );
}

#[test]
fn a_hundred_slow_heads_do_not_delay_a_healthy_client_on_one_thread() {
    let server = echo(&[
        "--http-socket",
        "127.0.0.1:0",
        "--socket-timeout",
        "2",
        "--disable-logging",
    ]);
    let addr = server.http_addrs()[0].clone();
    let mut slow: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream.write_all(b"GET /slow HTTP/1.1\r\n").unwrap();
            stream
        })
        .collect();
    let started = Instant::now();
    let mut healthy = Client::connect(&addr);
    let mut i = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        // The slow ones trickle on, each byte waking the poller.
        for stream in &mut slow {
            stream.write_all(b"X").unwrap();
        }
        let asked = Instant::now();
        assert!(healthy.get(&format!("/healthy{i}")).kept());
        let took = asked.elapsed();
        assert!(
            took < Duration::from_millis(500),
            "request {i} took {took:?}"
        );
        i += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(i >= 10, "{i} requests");
    // Every slow head gets its 408 at the whole-head deadline.
    for stream in &mut slow {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        assert!(
            rest.starts_with(b"HTTP/1.1 408 "),
            "{}",
            String::from_utf8_lossy(&rest)
        );
    }
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn pipelined_requests_on_a_parked_connection_are_served_in_order() {
    let server = echo(&["--http-socket", "127.0.0.1:0", "--disable-logging"]);
    let addr = server.http_addrs()[0].clone();
    let mut client = Client::connect(&addr);
    assert!(client.get("/warm").kept());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.http_connections().parked, 1);
    // 40 requests in one write (more than a turn serves), one with a body, and the
    // start of a 41st.
    let mut burst = Vec::new();
    for i in 0..40 {
        if i == 20 {
            burst.extend_from_slice(
                b"POST /p20 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
            );
        } else {
            burst.extend_from_slice(format!("GET /p{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        }
    }
    burst.extend_from_slice(b"GET /p40 HTTP/1.1\r\nHo");
    client.send(&burst);
    // Another client is not kept waiting behind the burst.
    let mut other = Client::connect(&addr);
    assert!(other.get("/other").kept());
    for i in 0..40 {
        let r = client.response().unwrap();
        assert!(r.kept(), "{}", r.head);
        assert_eq!(r.body, format!("path=/p{i}\n"));
    }
    client.send(b"st: t\r\n\r\n");
    let r = client.response().unwrap();
    assert_eq!(r.body, "path=/p40\n");
    assert_eq!(server.http_connections().accepted, 2);
}

#[test]
fn graceful_stop_finishes_requests_in_flight_and_closes_parked_connections() {
    let server = echo(&[
        "--http-socket",
        "127.0.0.1:0",
        "--processes",
        "2",
        "--http-keepalive",
        "60",
        "--disable-logging",
    ]);
    let addr = server.http_addrs()[0].clone();
    let mut parked: Vec<Client> = (0..10).map(|_| Client::connect(&addr)).collect();
    for (i, client) in parked.iter_mut().enumerate() {
        assert!(client.get(&format!("/idle{i}")).kept());
    }
    let mut busy = Client::connect(&addr);
    busy.send(b"GET /sleep HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    server.shutdown();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
    // The request in flight was answered, with Connection: close.
    let r = busy.response().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "path=/sleep\n");
    assert_eq!(r.header("Connection").as_deref(), Some("close"));
    // Every parked connection was closed cleanly (FIN, no reset).
    for client in &mut parked {
        let rest = client.closed_within(Duration::from_secs(2)).unwrap();
        assert!(rest.is_empty());
    }
    assert!(TcpStream::connect(&addr).is_err());
}

#[test]
fn past_the_parked_limit_the_connection_closest_to_its_deadline_is_closed() {
    let server = echo(&[
        "--http-socket",
        "127.0.0.1:0",
        "--http-max-parked",
        "4",
        "--http-keepalive",
        "30",
        "--disable-logging",
    ]);
    let addr = server.http_addrs()[0].clone();
    let mut clients = Vec::new();
    for i in 0..10 {
        let mut client = Client::connect(&addr);
        assert!(client.get(&format!("/c{i}")).kept());
        clients.push(client);
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(server.http_connections().parked <= 4);
    // The six oldest were closed (cleanly), the four newest still serve.
    for (i, client) in clients.iter_mut().enumerate() {
        if i < 6 {
            let rest = client.closed_within(Duration::from_secs(2)).unwrap();
            assert!(rest.is_empty(), "client {i}");
        } else {
            assert!(client.get("/again").kept(), "client {i}");
        }
    }
}

/// The binary with `args`, once its two workers are up.
fn start_forked(args: &[&str]) -> Instance {
    let forked = Instance::start(args);
    forked.wait_for_count("spawned uWSGI worker", 2, Duration::from_secs(20));
    forked
}

/// Open descriptors of `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(Iterator::count)
        .unwrap_or(0)
}

#[test]
fn forked_workers_park_connections_leak_no_descriptor_and_close_them_on_reload() {
    let forked = start_forked(&[
        "--master",
        "--processes",
        "2",
        "--http-socket",
        "127.0.0.1:0",
        "--http-keepalive",
        "30",
        "--socket-timeout",
        "1",
    ]);
    let addr = forked.addr.clone();
    let workers = children_of(forked.pid());
    assert_eq!(workers.len(), 2, "{workers:?}");
    // Warm both workers up (threads, buffers), then count their descriptors.
    for _ in 0..4 {
        assert!(Client::connect(&addr).get("/warm").kept());
    }
    std::thread::sleep(Duration::from_millis(200));
    let before: Vec<usize> = workers.iter().map(|p| fds(*p)).collect();

    // 8 connections on 2 single-threaded workers, in step: all served, none closed.
    let bad = in_step(&addr, 8, 50, false);
    assert!(bad.is_empty(), "{} bad responses: {bad:#?}", bad.len());

    // Many connections ending every way a connection ends.
    for i in 0..300 {
        let mut client = Client::connect(&addr);
        match i % 6 {
            // Served, then closed by the client while parked.
            0 => assert!(client.get("/a").kept()),
            // Closes in the middle of a head.
            1 => client.send(b"GET /b HTTP/1.1\r\nHo"),
            // Never sends a byte.
            2 => {}
            // Refused.
            3 => {
                client.send(b"GET /c HTTP/1.1\r\n\r\n");
                assert_eq!(client.response().unwrap().status, 400);
            }
            // Pipelined, read, closed.
            4 => {
                client
                    .send(b"GET /d HTTP/1.1\r\nHost: t\r\n\r\nGET /e HTTP/1.1\r\nHost: t\r\n\r\n");
                assert!(client.response().unwrap().kept());
                assert!(client.response().unwrap().kept());
            }
            // Asks to close.
            _ => {
                client.send(b"GET /f HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
                assert_eq!(client.response().unwrap().status, 200);
            }
        }
    }
    // Back to the same descriptors once the server has seen every close (the silent
    // ones after --socket-timeout).
    let started = Instant::now();
    loop {
        let now: Vec<usize> = workers.iter().map(|p| fds(*p)).collect();
        if now == before {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "descriptors before {before:?}, now {now:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A graceful reload closes parked connections cleanly; the new workers serve.
    let mut parked: Vec<Client> = (0..6).map(|_| Client::connect(&addr)).collect();
    for client in &mut parked {
        assert!(client.get("/before-reload").kept());
    }
    forked.signal("HUP");
    for client in &mut parked {
        let rest = client.closed_within(Duration::from_secs(10)).unwrap();
        assert!(rest.is_empty());
    }
    forked.wait_for_count("reloaded (1 reloads)", 1, Duration::from_secs(20));
    // The listening socket stayed open across the re-exec: this waits in its queue
    // for the new workers.
    let mut client = Client::connect(&addr);
    assert!(client.get("/after").kept());
}

#[test]
fn the_stats_server_counts_each_workers_parked_connections() {
    let forked = start_forked(&[
        "--master",
        "--processes",
        "2",
        "--http-socket",
        "127.0.0.1:0",
        "--http-keepalive",
        "30",
        "--stats",
        "127.0.0.1:0",
    ]);
    let parked = |forked: &Instance| -> Vec<u64> {
        let stats = forked.stats();
        (stats["workers"].as_array().unwrap().iter())
            .map(|w| w["http_parked"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(parked(&forked), [0, 0]);
    let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(&forked.addr)).collect();
    for client in &mut clients {
        assert!(client.get("/park").kept());
    }
    let started = Instant::now();
    while parked(&forked).iter().sum::<u64>() != 3 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            parked(&forked)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(clients);
    while parked(&forked).iter().sum::<u64>() != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            parked(&forked)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
