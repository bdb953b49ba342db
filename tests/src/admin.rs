//! What a service process's admin port says.

/// The value of the metric line that starts with `series` (name and labels as Prometheus
/// prints them, e.g. `bcfy_gateway_search_indexed_sequence` or
/// `foo_total{kind="a"}`) on the admin port `admin`; `None` while it does not answer or has
/// no such line.
pub async fn metric(admin: u16, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}
