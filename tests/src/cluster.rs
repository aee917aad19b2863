//! What the cluster test runs beside its relay nodes: a `nats-server` (Debian's,
//! named by `cargo xtask` in `SHIELDCALL_TEST_NATS_SERVER`) and load balancers,
//! each a TCP proxy that sends every new connection to the first of its nodes
//! that accepts it (as a load balancer with health checks does once a node is
//! down). Both stop on drop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A `nats-server` on a loopback port of its own choosing.
#[derive(Debug)]
pub struct Nats {
    child: Child,
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
}

impl Nats {
    /// Starts one and waits until it listens (it writes its ports file then).
    pub fn start() -> Result<Self> {
        let bin = std::env::var_os("SHIELDCALL_TEST_NATS_SERVER").context(
            "SHIELDCALL_TEST_NATS_SERVER is not set: run the tests with `cargo xtask test` or `cargo xtask e2e`",
        )?;
        let dir = super::TempDir::new("nats")?;
        let child = Command::new(PathBuf::from(bin))
            .args(["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
            .arg(&dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nats-server")?;
        let file = dir.0.join(format!("nats-server_{}.ports", child.id()));
        let mut nats = Self {
            child,
            url: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        nats.url = loop {
            if let Ok(text) = std::fs::read_to_string(&file)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                && let Some(url) = v["nats"][0].as_str()
            {
                break url.to_string();
            }
            if Instant::now() > deadline {
                bail!("nats-server did not listen within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(nats)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A load balancer on a loopback port.
#[derive(Debug)]
pub struct Balancer {
    /// `http://127.0.0.1:PORT`: the origin the browsers load the client from.
    pub url: String,
    task: JoinHandle<()>,
}

impl Balancer {
    /// Binds a port now (so that its origin can be given to the nodes before
    /// they start); [`Balancer::serve`] then sends each connection to the
    /// first of `nodes` that accepts it.
    pub async fn bind() -> Result<(TcpListener, String)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        Ok((listener, url))
    }

    /// Starts proxying `listener` to `nodes` (`http://ADDR` each), in order.
    pub fn serve(listener: TcpListener, url: String, nodes: &[&str]) -> Result<Self> {
        let nodes: Vec<SocketAddr> = nodes
            .iter()
            .map(|n| n.trim_start_matches("http://").parse())
            .collect::<Result<_, _>>()
            .context("a node's address")?;
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let nodes = nodes.clone();
                tokio::spawn(async move {
                    for node in nodes {
                        if let Ok(Ok(mut upstream)) =
                            tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(node))
                                .await
                        {
                            let _ = upstream.set_nodelay(true);
                            let _ = client.set_nodelay(true);
                            let mut client = client;
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                            return;
                        }
                    }
                });
            }
        });
        Ok(Self { url, task })
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
