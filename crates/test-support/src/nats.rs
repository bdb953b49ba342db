//! A real `nats-server` with JetStream for tests, on random loopback ports and a temporary store.
//!
//! The server keeps its ports across [`NatsServer::restart`], so clients reconnect to the same
//! URL and find the same store: that is how tests show a NATS restart loses nothing. Everything
//! (store, ports file, log) lives in one temporary directory that is removed on drop, after the
//! process is killed. When a test panics, the tail of the server log is printed to help.

pub mod binary;
pub mod credentials;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How long a server may take to become healthy.
const READY_PATIENCE: Duration = Duration::from_secs(30);
/// Lines of the server log printed when a test panics.
const LOG_TAIL_LINES: usize = 40;
/// JetStream reserves every stream's and bucket's `max_bytes` against its storage limit, which
/// by default is 75 % of the disk's free space: the pipeline's default limits (about 30 GiB)
/// then fail with "insufficient storage resources" on a machine with less free disk (CI had
/// 34 GB). Tests write megabytes, so the limit is raised rather than the limits lowered.
const SERVER_CONFIG: &str = "jetstream { max_file_store: 1TB }\n";

/// One `nats-server` process (JetStream on), killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    process: Option<Child>,
    dir: tempfile::TempDir,
    /// Extra command-line arguments (cluster settings), kept for restarts.
    args: Vec<OsString>,
    /// Extra environment variables (a config's `$VARIABLE`s), kept for restarts.
    env: Vec<(OsString, OsString)>,
    /// Extra server config (TLS, authorization), after the test defaults.
    config: String,
    /// Client and monitoring ports, known after the first start and reused on restart.
    ports: Option<Ports>,
}

#[derive(Debug, Clone, Copy)]
struct Ports {
    client: u16,
    monitoring: u16,
}

/// Three `nats-server`s routed into one JetStream cluster (R3 streams work).
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
}

// === impl NatsServer ===

impl NatsServer {
    /// Starts a single server and waits until it reports healthy.
    ///
    /// # Panics
    ///
    /// When no binary is available or the server does not become healthy in 30 s.
    pub async fn start() -> Self {
        Self::start_with_args(&[]).await
    }

    /// Starts a single server with extra `nats-server` arguments (e.g. `--user`, `--pass`).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub async fn start_with_args(args: &[&str]) -> Self {
        Self::start_with_env(args, &[]).await
    }

    /// Starts a single server with extra arguments and environment variables (e.g. a `--config`
    /// file that reads a key from `$JETSTREAM_KEY`).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub async fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_configured(args, "", env).await
    }

    /// Starts a single server with `config` added to its config file (a `tls` block, an
    /// `authorization` block) and environment variables its `$VARIABLE`s read.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub async fn start_with_config(config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_configured(&[], config, env).await
    }

    async fn start_configured(args: &[&str], config: &str, env: &[(&str, &str)]) -> Self {
        let mut server = Self::unstarted();
        server.config = config.to_owned();
        server.reconfigure(args, env);
        server.spawn();
        server.wait_healthy().await;
        server
    }

    /// A server with its own directory, not started yet.
    fn unstarted() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("nats-test-")
            .tempdir()
            .unwrap();
        Self {
            process: None,
            dir,
            args: Vec::new(),
            env: Vec::new(),
            config: String::new(),
            ports: None,
        }
    }

    /// The client URL, e.g. `nats://127.0.0.1:41234`.
    ///
    /// # Panics
    ///
    /// Before the server has started.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.ports().client)
    }

    /// The process id, while the server runs (for CPU and memory readings).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    /// The JetStream store directory (it survives restarts).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Kills the server (SIGKILL, no graceful shutdown) and starts it again on the same ports
    /// and store, then waits until it is healthy.
    pub async fn restart(&mut self) {
        self.kill();
        self.start_again().await;
    }

    /// Changes the arguments and environment the next [`start_again`](Self::start_again) uses
    /// (the same ports and store): a server restarted with another config, such as a new key.
    pub fn reconfigure(&mut self, args: &[&str], env: &[(&str, &str)]) {
        self.args = args.iter().map(OsString::from).collect();
        self.env = env
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect();
    }

    /// Stops the server gracefully (SIGTERM: it finishes writing its store) and waits for it to
    /// exit.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let asked = Command::new("kill")
                .args(["-TERM", &process.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if !asked {
                process.kill().ok();
            }
            process.wait().ok();
        }
    }

    /// Kills the server (SIGKILL) and waits for it to exit. Clients see the connection drop.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            // An already-exited process is fine: either way it is gone.
            process.kill().ok();
            process.wait().ok();
        }
    }

    /// Starts a killed server again on the same ports and store without waiting for it to be
    /// healthy (a server expected to come up without some of its streams).
    pub fn start_again_unchecked(&mut self) {
        assert!(self.process.is_none(), "the server is still running");
        self.spawn();
    }

    /// Starts a killed server again on the same ports and store, and waits until it is healthy.
    pub async fn start_again(&mut self) {
        assert!(self.process.is_none(), "the server is still running");
        self.spawn();
        self.wait_healthy().await;
    }

    fn ports(&self) -> Ports {
        self.ports.expect("the server has started")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn ports_dir(&self) -> PathBuf {
        self.dir.path().join("ports")
    }

    fn spawn(&mut self) {
        let ports_dir = self.ports_dir();
        std::fs::remove_dir_all(&ports_dir).ok();
        std::fs::create_dir_all(&ports_dir).unwrap();
        let (client, monitoring) = match self.ports {
            Some(p) => (p.client.to_string(), p.monitoring.to_string()),
            None => ("-1".to_owned(), "-1".to_owned()),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path());
        let log = log.unwrap();
        let config = self.dir.path().join("server.conf");
        std::fs::write(&config, format!("{SERVER_CONFIG}{}", self.config)).unwrap();
        let process = Command::new(binary::binary())
            .arg("--config")
            .arg(&config)
            .args(["--jetstream", "--addr", "127.0.0.1", "--port", &client])
            .args(["--http_port", &monitoring])
            .arg("--store_dir")
            .arg(self.store_dir())
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", binary::binary().display()));
        self.process = Some(process);
    }

    /// Waits for the ports file, then for `/healthz` to answer 200.
    async fn wait_healthy(&mut self) {
        let deadline = tokio::time::Instant::now() + READY_PATIENCE;
        while self.ports.is_none() {
            self.ports = read_ports_file(&self.ports_dir());
            self.wait_step(deadline, "its ports file").await;
        }
        while !healthz_ok(self.ports().monitoring).await {
            self.wait_step(deadline, "/healthz to answer 200").await;
        }
    }

    async fn wait_step(&mut self, deadline: tokio::time::Instant, what: &str) {
        if let Some(status) = self
            .process
            .as_mut()
            .and_then(|p| p.try_wait().ok().flatten())
        {
            panic!(
                "nats-server exited ({status}) while waiting for {what}:\n{}",
                self.log_tail()
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nats-server not ready after {READY_PATIENCE:?} waiting for {what}:\n{}",
            self.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    /// Everything the server has logged so far (e.g. its permission violations).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            #[expect(
                clippy::print_stderr,
                reason = "a test failed; the server log helps explain it"
            )]
            {
                eprintln!(
                    "--- nats-server log tail ({}) ---\n{}",
                    self.url(),
                    self.log_tail()
                );
            }
        }
    }
}

/// The client and monitoring ports from the `--ports_file_dir` file, once it is written.
fn read_ports_file(dir: &Path) -> Option<Ports> {
    let entry = std::fs::read_dir(dir).ok()?.flatten().next()?;
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()?;
    let port_of = |key: &str| -> Option<u16> {
        let url = json.get(key)?.get(0)?.as_str()?;
        url.rsplit(':').next()?.parse().ok()
    };
    Some(Ports {
        client: port_of("nats")?,
        monitoring: port_of("monitoring")?,
    })
}

/// True when `GET /healthz` on the monitoring port answers 200.
async fn healthz_ok(monitoring_port: u16) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", monitoring_port)).await
    else {
        return false;
    };
    let request = b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    let mut response = Vec::new();
    stream.write_all(request).await.is_ok()
        && stream.read_to_end(&mut response).await.is_ok()
        && response.starts_with(b"HTTP/1.")
        && response.get(9..12) == Some(b"200")
}

/// A loopback port that was free a moment ago (for cluster routes, which must be known up front).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

// === impl NatsCluster ===

impl NatsCluster {
    /// Starts three servers routed into one cluster and waits until each is healthy (which
    /// includes a JetStream meta leader).
    pub async fn start() -> Self {
        const SIZE: usize = 3;
        let cluster_ports: Vec<u16> = (0..SIZE).map(|_| free_port()).collect();
        let routes = cluster_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes: Vec<NatsServer> = cluster_ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let args = [
                    "--name".to_owned(),
                    format!("node-{i}"),
                    "--cluster_name".to_owned(),
                    "bcfy-test".to_owned(),
                    "--cluster".to_owned(),
                    format!("nats://127.0.0.1:{port}"),
                    "--routes".to_owned(),
                    routes.clone(),
                ];
                let mut node = NatsServer::unstarted();
                node.args = args.into_iter().map(OsString::from).collect();
                node.spawn();
                node
            })
            .collect();
        for node in &mut nodes {
            node.wait_healthy().await;
        }
        Self { nodes }
    }

    /// Every node's client URL (a NATS client takes the list and fails over between them).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }

    /// The nodes, to kill or restart one of them.
    pub fn nodes_mut(&mut self) -> &mut [NatsServer] {
        &mut self.nodes
    }

    /// The index of the node a server name (`node-1`) belongs to.
    pub fn node_named(name: &str) -> Option<usize> {
        name.strip_prefix("node-")?.parse().ok()
    }

    /// The index of the JetStream meta leader, as the first running node that knows one reports
    /// it (`/jsz`); `None` while there is none.
    pub async fn meta_leader(&self) -> Option<usize> {
        for node in self.nodes.iter().filter(|n| n.process.is_some()) {
            let url = format!("http://127.0.0.1:{}/jsz", node.ports().monitoring);
            let Ok(answer) = reqwest::get(&url).await else {
                continue;
            };
            let Ok(jsz) = answer.json::<serde_json::Value>().await else {
                continue;
            };
            if let Some(leader) = jsz["meta_cluster"]["leader"].as_str() {
                return Self::node_named(leader);
            }
        }
        None
    }
}

/// How many messages `stream` holds.
///
/// # Panics
///
/// When the stream cannot be read.
pub async fn stream_messages(js: &async_nats::jetstream::Context, stream: &str) -> u64 {
    js.get_stream(stream)
        .await
        .expect("the stream exists")
        .info()
        .await
        .expect("its info")
        .state
        .messages
}
