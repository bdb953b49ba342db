//! A real headless Chromium for page tests, driven through ChromeDriver's W3C WebDriver API (JSON
//! over HTTP): open a URL, find elements by CSS selector, click them and type into them as a
//! user would (trusted events), run a script, take a screenshot. The binaries are Debian's
//! `chromium` and `chromium-driver` (`CHROMIUM_BIN`, `CHROMEDRIVER_BIN` to use others);
//! `scripts/test` installs them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::eventually;

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session; the browser and its driver end when it is dropped.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

fn binary(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium session with a fresh profile, a window of
    /// `width` × `height`, and audio allowed to play without a gesture.
    ///
    /// # Panics
    ///
    /// When the driver or the browser cannot start.
    pub async fn start(width: u32, height: u32) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(binary("CHROMEDRIVER_BIN", "/usr/bin/chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts (scripts/test installs Debian's chromium-driver)");
        let profile = tempfile::tempdir().expect("a profile directory");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        eventually(
            Duration::from_secs(30),
            "chromedriver to answer",
            || async {
                let status = http.get(format!("{base}/status")).send().await.ok()?;
                status.status().is_success().then_some(())
            },
        )
        .await;
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--autoplay-policy=no-user-gesture-required".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": binary("CHROMIUM_BIN", "/usr/bin/chromium"),
                        "args": args,
                    }
                }
            }
        });
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("a session")
            .json()
            .await
            .expect("JSON");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Self {
            driver,
            http,
            session: format!("{base}/session/{session}"),
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .expect("the driver answers")
            .json()
            .await
            .expect("JSON");
        answer["value"].clone()
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns what it returns.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// The first element matching `css`, if any.
    pub async fn find(&self, css: &str) -> Option<String> {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        found[ELEMENT].as_str().map(str::to_owned)
    }

    async fn element(&self, css: &str) -> String {
        self.find(css)
            .await
            .unwrap_or_else(|| panic!("no element matches `{css}`"))
    }

    /// Clicks the first element matching `css`, as a user would.
    ///
    /// # Panics
    ///
    /// When nothing matches.
    pub async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Types `text` into the first element matching `css` (a trailing `\u{E007}` presses
    /// Enter).
    ///
    /// # Panics
    ///
    /// When nothing matches.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// The text of the first element matching `css`; `None` when nothing matches.
    pub async fn text(&self, css: &str) -> Option<String> {
        self.execute(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            json!([css]),
        )
        .await
        .as_str()
        .map(str::to_owned)
    }

    /// Resizes the window (a phone is about 390 × 844).
    pub async fn resize(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        let encoded = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("base64"))
            .expect("a PNG")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes the browser (a killed driver would leave it running); this
        // is a drop, so the request is a blocking one by hand.
        if let Some((host, path)) = self
            .session
            .strip_prefix("http://")
            .and_then(|rest| rest.split_once('/'))
            && let Ok(mut stream) = std::net::TcpStream::connect(host)
        {
            use std::io::{Read as _, Write as _};
            stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
            let request = format!(
                "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                let mut answer = Vec::new();
                stream.read_to_end(&mut answer).ok();
            }
        }
        self.driver.kill().ok();
        self.driver.wait().ok();
    }
}
