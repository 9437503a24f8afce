//! Loopback-only networking for the browser: a static file server for task pages (some need
//! `http://`, not `file://`), and a trap that stands in for every other host — the browser's
//! proxy — recording each attempt and refusing it, so a run can prove nothing left the machine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A listener on 127.0.0.1 whose accept loop ends when the owner is dropped.
struct Loopback {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Loopback {
    fn start(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> std::io::Result<Loopback> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, handle) = (stop.clone(), Arc::new(handle));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(s) = stream {
                    let h = handle.clone();
                    std::thread::spawn(move || {
                        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                        h(s)
                    });
                }
            }
        });
        Ok(Loopback { port, stop })
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

/// Serves files under `root` read-only at `http://127.0.0.1:PORT/`.
pub struct StaticServer {
    inner: Loopback,
}

impl StaticServer {
    pub fn start(root: PathBuf) -> std::io::Result<StaticServer> {
        Ok(StaticServer { inner: Loopback::start(move |s| serve_file(&root, s))? })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{}", self.inner.port, path.trim_start_matches('/'))
    }
}

/// Reads a request's first line and its headers (the body, if any, is left; answering before
/// reading the headers would make the peer see a reset instead of the answer).
fn read_head(stream: &TcpStream) -> (String, usize) {
    let mut reader = BufReader::new(stream).take(64 * 1024);
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    let mut h = String::new();
    let mut content_length = 0;
    while reader.read_line(&mut h).map(|n| n > 2).unwrap_or(false) {
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                content_length = v.trim().parse().unwrap_or(0);
            }
        }
        h.clear();
    }
    let _ = std::io::copy(&mut reader.take(content_length as u64), &mut std::io::sink());
    (line.trim().to_string(), content_length)
}

fn serve_file(root: &Path, mut stream: TcpStream) {
    let (line, _) = read_head(&stream);
    let target = line.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let (status, kind, body) = match safe_join(root, path).and_then(|p| std::fs::read(&p).ok().map(|b| (p, b))) {
        Some((p, body)) => ("200 OK", content_type(&p), body),
        None => ("404 Not Found", "text/plain", b"not found".to_vec()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(&body));
}

/// `root` + the URL path, refusing anything that climbs out of `root`.
fn safe_join(root: &Path, url_path: &str) -> Option<PathBuf> {
    let rel = Path::new(url_path.trim_start_matches('/'));
    rel.components().all(|c| matches!(c, Component::Normal(_))).then(|| root.join(rel))
}

fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "application/javascript",
        "css" => "text/css",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// The browser's proxy: every request for a non-loopback host lands here, is recorded
/// (`GET http://host/…`, `CONNECT host:443`) and refused.
pub struct NetworkTrap {
    inner: Loopback,
    seen: Arc<Mutex<Vec<String>>>,
}

impl NetworkTrap {
    pub fn start() -> std::io::Result<NetworkTrap> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let inner = Loopback::start(move |mut s| {
            let (line, _) = read_head(&s);
            if !line.is_empty() {
                log.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
            let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        })?;
        Ok(NetworkTrap { inner, seen })
    }

    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// Every outside request the browser attempted so far (request lines).
    pub fn attempts(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
#[path = "net_tests.rs"]
mod tests;
