//! A `nats-server` for the tests of the bus between relay nodes: Debian's,
//! which `cargo xtask test` installs and names in `SHIELDCALL_TEST_NATS_SERVER`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `nats-server` on a loopback port, killed on drop.
pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
}

pub fn nats_binary() -> String {
    std::env::var("SHIELDCALL_TEST_NATS_SERVER").expect(
        "the bus tests need nats-server: run them with `cargo xtask test`, which installs it, \
         or set SHIELDCALL_TEST_NATS_SERVER=/usr/sbin/nats-server",
    )
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("its address").port()
}

impl Nats {
    pub fn start(args: &[&str]) -> Self {
        let mut n = Self {
            child: None,
            port: free_port(),
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        n.run();
        n
    }

    pub fn run(&mut self) {
        let child = Command::new(nats_binary())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}
