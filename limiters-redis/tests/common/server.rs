//! A private `redis-server` for one test: on a free loopback port, without
//! persistence, killed when dropped.
//!
//! Without a `redis-server` on PATH the tests that need one return early
//! (after one loud line on stderr), unless `LIMITERS_REQUIRE_REDIS=1` (set by
//! CI), where a missing server fails the test.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
}

impl RedisServer {
    /// Starts a server, or `None` if there is no `redis-server` and it is
    /// not required.
    pub fn start() -> Option<RedisServer> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        Self::start_on(port)
    }

    /// Starts a server on `port` (a restart after [`kill`](Self::kill)).
    pub fn start_on(port: u16) -> Option<RedisServer> {
        // Redis 7 refuses DEBUG unless enabled; older servers do not know the
        // option and refuse to start with it, so try without it next.
        for debug in [true, false] {
            let mut cmd = Command::new("redis-server");
            cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"]);
            if debug {
                cmd.args(["--enable-debug-command", "local"]);
            }
            let child = match cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn() {
                Ok(child) => child,
                Err(e) => {
                    if std::env::var("LIMITERS_REQUIRE_REDIS").as_deref() == Ok("1") {
                        panic!("LIMITERS_REQUIRE_REDIS=1 but redis-server cannot start: {e}");
                    }
                    eprintln!(
                        "!!!!! SKIPPED: no redis-server on PATH ({e}); the Redis tests did not run !!!!!"
                    );
                    return None;
                }
            };
            let mut server = RedisServer {
                child: Some(child),
                port,
            };
            if server.wait_until_up() {
                return Some(server);
            }
            server.kill();
        }
        panic!("redis-server did not start on port {port}");
    }

    fn wait_until_up(&mut self) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Some(child) = &mut self.child {
                if let Ok(Some(_)) = child.try_wait() {
                    return false;
                }
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL: the server dies with every key (no persistence).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
