//! Config snippets shared by every service in a whole-system run.

use bcfy_simulator::Simulator;

/// A free loopback port (for an admin or gRPC listener).
///
/// # Panics
///
/// When the OS has none to give.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `nats`, `admin` (on a free port) and `log` settings (`log_filter`, e.g. `info`); `nats_url`
/// is one server or several, comma-separated.
pub fn common(nats_url: &str, log_filter: &str) -> String {
    common_on(nats_url, log_filter, free_port())
}

/// [`common`] with the admin port `admin`, for a test that reads `/readyz` or `/metrics`.
pub fn common_on(nats_url: &str, log_filter: &str, admin: u16) -> String {
    common_with(nats_url, log_filter, admin, "")
}

/// [`common_on`] with more `nats` settings (`nats_extra`: lines indented by two spaces, such as
/// credentials and TLS).
pub fn common_with(nats_url: &str, log_filter: &str, admin: u16, nats_extra: &str) -> String {
    format!(
        "nats:\n  urls: \"{nats_url}\"\n{nats_extra}admin:\n  listen_addr: 127.0.0.1:{admin}\nlog:\n  filter: {log_filter}\n"
    )
}

/// `broadcastify` pointing every URL at the simulator, with its account when `with_account`.
pub fn site(sim: &Simulator, with_account: bool) -> String {
    let url = sim.url();
    let account = if with_account {
        format!(
            "  username: {}\n  password: {}\n",
            sim.config().username,
            sim.config().password
        )
    } else {
        String::new()
    };
    format!(
        "broadcastify:\n  base_url: {url}\n  cdn_url: {url}\n  alternate_cdn_url: {url}\n{account}"
    )
}

/// The archive cache's `directory` block, enabled against the simulator's catalog and Calls API.
pub fn directory(sim: &Simulator) -> String {
    let url = sim.url();
    let c = sim.config();
    format!(
        "directory:\n  enabled: true\n  upstream:\n    catalog_url: {url}/audio/\n    catalog_key: {}\n    calls_api_url: {url}/\n    app_id: {}\n    api_key_id: {}\n    api_key: {}\n    username: {}\n    password: {}\n",
        c.catalog_key, c.app_id, c.api_key_id, c.api_key, c.username, c.password
    )
}

/// A poller following talkgroup `sid`/`tg` on the simulator with one shard, `fire`, polling
/// every second.
pub fn poller(nats_url: &str, sim: &Simulator, sid: i64, tg: i64) -> String {
    format!(
        "{}{}live_producer:\n  poll_interval: 1s\nshards:\n  - name: fire\n    groups: [\"{sid}-{tg}\"]\n",
        common(nats_url, "info"),
        site(sim, true)
    )
}

/// The transcriber with the built-in engine and the tiny.en model that `scripts/tools.sh`
/// installs, one call at a time on two threads.
pub fn whisper_transcriber(nats_url: &str) -> String {
    format!(
        "{}transcription:\n  provider: whisper\n  model: tiny.en\n  max_concurrency: 1\n  whisper:\n    model_path: {}\n    model_cache_dir: {}\n    threads: 2\n",
        common(nats_url, "info"),
        bcfy_test_support::speech::tiny_en_model_dir().display(),
        bcfy_test_support::speech::model_cache_dir().display()
    )
}
