//! Unit tests of `net` (kept in their own file beside it).

use super::*;

#[test]
fn paths_cannot_leave_the_root() {
    let root = Path::new("/srv/pages");
    assert_eq!(safe_join(root, "/miniwob/a.html"), Some(PathBuf::from("/srv/pages/miniwob/a.html")));
    assert_eq!(safe_join(root, "/../etc/passwd"), None);
    assert_eq!(safe_join(root, "/miniwob/../../x"), None);
    assert_eq!(safe_join(root, "//etc/passwd").map(|p| p.starts_with(root)), Some(true));
}

#[test]
fn the_trap_records_and_refuses() {
    let trap = NetworkTrap::start().unwrap();
    let addr = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, trap.port()));
    let (status, _) = crate::browser::http::request(addr, "GET", "http://example.com/x", None, Duration::from_secs(2))
        .unwrap_or((0, serde_json::Value::Null));
    assert_eq!(status, 403);
    assert_eq!(trap.attempts(), vec!["GET http://example.com/x HTTP/1.1".to_string()]);
}
