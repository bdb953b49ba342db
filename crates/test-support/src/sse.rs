//! A Server-Sent Events client over real HTTP, for tests and benchmarks of the gateway: reads
//! the `text/event-stream` body as it arrives and yields one frame per event; comments
//! (heartbeats) are counted, not yielded.

/// One event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseFrame {
    /// `id:`, when sent.
    pub id: Option<String>,
    /// `event:` (`message` when absent).
    pub event: String,
    /// `data:` lines, joined by newlines.
    pub data: String,
}

/// An open event stream.
#[derive(Debug)]
pub struct SseStream {
    response: reqwest::Response,
    buffer: String,
    /// Comment lines seen so far (heartbeats).
    pub comments: usize,
}

impl SseStream {
    /// Opens `url` with `headers`; the response when it is not a 200 event stream.
    ///
    /// # Errors
    ///
    /// The response itself (status and body) when the server refused.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached.
    pub async fn connect(
        client: &reqwest::Client,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Self, reqwest::Response> {
        let mut request = client.get(url).header("accept", "text/event-stream");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the server answers");
        if response.status() != reqwest::StatusCode::OK {
            return Err(response);
        }
        Ok(Self {
            response,
            buffer: String::new(),
            comments: 0,
        })
    }

    /// The next event; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<SseFrame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(frame) = self.parse(&block) {
                    return Some(frame);
                }
                continue;
            }
            let chunk = self.response.chunk().await.ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    fn parse(&mut self, block: &str) -> Option<SseFrame> {
        let mut frame = SseFrame {
            event: "message".to_owned(),
            ..SseFrame::default()
        };
        let mut data = Vec::new();
        for line in block.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "" => self.comments += 1,
                "id" => frame.id = Some(value.to_owned()),
                "event" => value.clone_into(&mut frame.event),
                "data" => data.push(value),
                _ => {}
            }
        }
        if data.is_empty() {
            return None;
        }
        frame.data = data.join("\n");
        Some(frame)
    }
}
