//! An HTTP/1.1 server of a test's own on a loopback port, serving fixed replies by path, for the
//! downloads `curl` makes (`tests/downloads.rs`, and the istioctl install in `src/up/istioctl.rs`).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
};

/// What the server answers for a path.
#[derive(Clone)]
pub enum Reply {
    /// 200 with these bytes.
    Body(Vec<u8>),
    /// 200 announcing `declared` bytes, sending these, then closing: an interrupted transfer.
    Cut { declared: usize, sent: Vec<u8> },
    /// 404 (also the answer for a path the server does not know).
    Missing,
}

/// Serves until dropped.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Answers every path with `reply`.
    pub fn start(reply: Reply) -> Server {
        Server::routes(vec![(String::new(), reply)])
    }

    /// Answers `/<path>` with its reply (an empty path: every path), others with 404.
    pub fn routes(routes: Vec<(String, Reply)>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, served) = (stop.clone(), served.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    answer(stream, &routes);
                    served.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        Server {
            addr,
            stop,
            served,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// Requests answered so far.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer(mut stream: TcpStream, routes: &[(String, Reply)]) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let request = String::from_utf8_lossy(&request);
    let path = request
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/');
    let reply = routes
        .iter()
        .find(|(p, _)| p.is_empty() || p == path)
        .map_or(&Reply::Missing, |(_, r)| r);
    let (head, body): (String, &[u8]) = match reply {
        Reply::Body(bytes) => (
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", bytes.len()),
            bytes,
        ),
        Reply::Cut { declared, sent } => (
            format!("HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\n"),
            sent,
        ),
        Reply::Missing => (
            "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n".to_owned(),
            b"not found",
        ),
    };
    let _ = stream.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes());
    let _ = stream.write_all(body);
}
