//! Headless Chromium for web environments: a WebDriver client (`driver`), a pool of browsers
//! that restarts broken ones (`pool`), and loopback networking — a static file server for task
//! pages and a trap that catches any request for another host (`net`).
//!
//! The env that uses these (MiniWoB++) lives in `kaizen-envs`; the actions a policy calls are
//! that env's tools.

mod driver;
pub mod http;
mod net;
mod pool;

pub use driver::{Browser, BrowserConfig, BrowserError};
pub use net::{NetworkTrap, StaticServer};
pub use pool::{BrowserPool, Lease};
