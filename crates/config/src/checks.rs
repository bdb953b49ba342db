//! Checks that several settings types make, each reported the same way.

use std::time::Duration;

use crate::ConfigIssue;

/// Each `(name, scheme)` whose URL is not http or https.
pub fn http_urls(prefix: &str, urls: &[(&str, &str)], issues: &mut Vec<ConfigIssue>) {
    for (name, scheme) in urls {
        if !matches!(*scheme, "http" | "https") {
            issues.push(ConfigIssue::new(prefix, name, "must be an http(s) URL"));
        }
    }
}

/// `name` when `value` is zero.
pub fn above_zero(prefix: &str, name: &str, value: Duration, issues: &mut Vec<ConfigIssue>) {
    if value.is_zero() {
        issues.push(ConfigIssue::new(prefix, name, "must be above zero"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bad_ones_are_named() {
        let mut issues = Vec::new();
        http_urls("a", &[("good", "https"), ("bad", "ftp")], &mut issues);
        above_zero("a", "timeout", Duration::ZERO, &mut issues);
        above_zero("a", "fine", Duration::from_secs(1), &mut issues);
        let names: Vec<&str> = issues.iter().map(|i| i.setting.as_str()).collect();
        assert_eq!(names, ["a.bad", "a.timeout"]);
    }
}
