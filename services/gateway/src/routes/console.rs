//! The web console at `/`: one page, its script and its style sheet, embedded in the binary (no
//! build step). They are served without a key; the page asks for one and calls the API with it.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/console.js");
const STYLE: &str = include_str!("../../console/console.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // A new gateway version may change them; revalidate rather than cache for long.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`.
pub async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

/// `GET /console.js`.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /console.css`.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}
