//! The operators' alert rules and dashboard as the chart ships them: `promtool check rules` and
//! `promtool test rules` (a unit test for every alert) pass, and the rendered PrometheusRule
//! and dashboard ConfigMap carry exactly the checked files. (Every dashboard query is evaluated
//! by a real Prometheus scraping the real services in `tests/tests/monitoring.rs`.)
//!
//! promtool comes from Debian's `prometheus` package (`scripts/test` installs it).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/bcfy-pipeline");
const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/bcfy-pipeline/files/prometheus-rules.yaml"
);
const RULE_TESTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/prometheus-rules.test.yaml"
);
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/bcfy-pipeline/files/grafana-dashboard.json"
);

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs (apt-get install prometheus): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{text}"
    );
    text
}

fn yaml_to_json(text: &str) -> Value {
    let docs = yaml_rust2::YamlLoader::load_from_str(text).expect("YAML");
    fn convert(yaml: &yaml_rust2::Yaml) -> Value {
        use yaml_rust2::Yaml;
        match yaml {
            Yaml::Hash(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), convert(v)))
                    .collect(),
            ),
            Yaml::Array(items) => Value::Array(items.iter().map(convert).collect()),
            Yaml::String(s) | Yaml::Real(s) => Value::String(s.clone()),
            Yaml::Integer(i) => Value::from(*i),
            Yaml::Boolean(b) => Value::Bool(*b),
            _ => Value::Null,
        }
    }
    docs.first().map(convert).unwrap_or(Value::Null)
}

fn rendered() -> Vec<Value> {
    let values = Path::new(CHART).join("ci/many-shards-values.yaml");
    let text = run(
        "helm",
        &[
            "template",
            "rel",
            CHART,
            "-f",
            values.to_str().expect("UTF-8"),
        ],
    );
    text.split("\n---")
        .map(yaml_to_json)
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let checked = run("promtool", &["check", "rules", RULES]);
    assert!(checked.contains("SUCCESS: 9 rules found"), "{checked}");
    let tested = run("promtool", &["test", "rules", RULE_TESTS]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every alert has a unit test.
    let rules = yaml_to_json(&std::fs::read_to_string(RULES).expect("rules"));
    let tests = std::fs::read_to_string(RULE_TESTS).expect("tests");
    for rule in rules["groups"][0]["rules"].as_array().expect("rules") {
        let name = rule["alert"].as_str().expect("an alert");
        assert!(
            tests.contains(&format!("alertname: {name}")),
            "{name} has no promtool test"
        );
    }
}

#[test]
fn the_chart_ships_the_checked_rules_and_dashboard() {
    let objects = rendered();
    let rule = objects
        .iter()
        .find(|o| o["kind"] == "PrometheusRule")
        .expect("a PrometheusRule");
    let file = yaml_to_json(&std::fs::read_to_string(RULES).expect("rules"));
    assert_eq!(rule["spec"]["groups"], file["groups"]);
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    let monitor = objects
        .iter()
        .find(|o| o["kind"] == "ServiceMonitor")
        .expect("a ServiceMonitor");
    assert_eq!(monitor["spec"]["jobLabel"], "app.kubernetes.io/part-of");

    let dashboard = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("the dashboard ConfigMap");
    let shipped: Value = serde_json::from_str(
        dashboard["data"]["bcfy-pipeline.json"]
            .as_str()
            .expect("the JSON"),
    )
    .expect("valid JSON");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(DASHBOARD).expect("dashboard"))
        .expect("JSON");
    assert_eq!(shipped, file);
    let panels = file["panels"].as_array().expect("panels");
    for panel in panels {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", panel["title"]);
        assert!(
            targets
                .iter()
                .all(|t| t["expr"].as_str().is_some_and(|e| !e.is_empty()))
        );
    }
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for wanted in [
        "Calls per second, by stage",
        "Latency from the call to its audio",
        "Latency from the call to its transcript",
        "Backlog per consumer",
        "Failures per second, by kind",
    ] {
        assert!(titles.contains(&wanted), "no panel {wanted}: {titles:?}");
    }
}
