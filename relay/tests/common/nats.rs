//! A `nats-server` for the tests of the bus between relay nodes: Debian's,
//! which `cargo xtask test` installs and names in `SHIELDCALL_TEST_NATS_SERVER`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

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
    /// A server on a port of its own choosing (`-p -1`), read back from the
    /// ports file it writes once it listens: no other test can take the port
    /// between a probe and the server's bind.
    pub fn start(args: &[&str]) -> Self {
        let mut n = Self {
            child: None,
            port: 0,
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        n.run();
        n
    }

    /// Starts the server (again: on the port it had).
    pub fn run(&mut self) {
        let dir = std::env::temp_dir().join(format!(
            "shieldcall-nats-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a directory for the ports file");
        let port = if self.port == 0 {
            "-1".to_string()
        } else {
            self.port.to_string()
        };
        let child = Command::new(nats_binary())
            .args(["-a", "127.0.0.1", "-p", &port, "--ports_file_dir"])
            .arg(&dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        let file = dir.join(format!("nats-server_{}.ports", child.id()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let ports = loop {
            if let Ok(text) = std::fs::read_to_string(&file)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            {
                break v;
            }
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(10));
        };
        let _ = std::fs::remove_dir_all(&dir);
        let url = ports["nats"][0].as_str().expect("a client URL");
        self.port = url
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .expect("a port");
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops (`SIGSTOP`) or continues (`SIGCONT`) the server: while stopped
    /// it reads nothing, so what clients write fills their sockets.
    #[allow(dead_code)]
    pub fn pause(&self, paused: bool) {
        let pid = self.child.as_ref().expect("the server runs").id();
        let signal = if paused { "-STOP" } else { "-CONT" };
        let ok = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {signal} {pid}");
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
