//! The chart, checked by tools and by assertions on what it renders: the values schema is the
//! one generated from the code, `helm lint --strict` passes and `helm template` renders for the
//! default, the many-shards and the NATS-cluster values, the manifests validate against the Kubernetes 1.33
//! schemas (kubernetes-validate), yamllint is clean, the schema refuses a bad values file, and
//! the rendered objects do what no linter checks: a poller Deployment per shard, every
//! service's config file loadable by the service itself, secrets only as env vars, probes on the
//! admin port, a grace period longer than the drain, hardened security contexts.
//!
//! helm, kubernetes-validate and yamllint come from `scripts/tools.sh` (on PATH in CI).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bcfy_bus::connect::NatsConfig;
use bcfy_bus::topology::TopologyConfig;
use bcfy_chart::{CHART_DIR, values_schema_text};
use bcfy_config::yaml::to_json;
use bcfy_config::{ConfigSource, Validate};
use bcfy_runtime::service::ServiceConfig;
use serde_json::Value;
use yaml_rust2::YamlLoader;

const KUBERNETES_VERSION: &str = "1.33.0";

fn chart() -> PathBuf {
    PathBuf::from(CHART_DIR)
}

fn many_shards() -> PathBuf {
    chart().join("ci/many-shards-values.yaml")
}

fn nats_cluster() -> PathBuf {
    chart().join("ci/nats-cluster-values.yaml")
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} runs (put it on PATH with `. scripts/tools.sh`): {e}")
        })
}

fn succeed(program: &str, args: &[&str]) -> String {
    let output = run(program, args);
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `helm template` with the values files given, as text.
fn render(values: &[&Path]) -> String {
    let chart = chart();
    let mut args = vec!["template", "rel", chart.to_str().expect("UTF-8 path")];
    for file in values {
        args.extend(["-f", file.to_str().expect("UTF-8 path")]);
    }
    succeed("helm", &args)
}

/// Every rendered object, as JSON.
fn parse_objects(rendered: &str) -> Vec<Value> {
    YamlLoader::load_from_str(rendered)
        .expect("rendered YAML parses")
        .iter()
        .map(to_json)
        .filter(|o| !o.is_null())
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn values(file: &Path) -> Value {
    let text = std::fs::read_to_string(file).expect("values file");
    to_json(&YamlLoader::load_from_str(&text).expect("values parse")[0])
}

/// Where the chart mounts the NATS credentials Secret.
const NATS_CREDENTIALS: &str = "/etc/bcfy/nats/nats.creds";
/// Where the chart mounts the NATS TLS Secret.
const NATS_TLS: &str = "/etc/bcfy/nats-tls/";

/// Loads `config_yaml` the way the service binary does (file layer, no env) into `T`. The
/// service checks that its credentials and TLS files exist, so the mounted paths are pointed at
/// stand-ins.
fn loads_as<T: serde::de::DeserializeOwned + Validate>(config_yaml: &str) -> Result<T, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let credentials = dir.path().join("nats.creds");
    for file in ["nats.creds", "ca.crt", "tls.crt", "tls.key"] {
        std::fs::write(dir.path().join(file), "stand-in").expect("written");
    }
    let tls_dir = format!("{}/", dir.path().to_str().expect("UTF-8"));
    let config_yaml = config_yaml
        .replace(NATS_CREDENTIALS, credentials.to_str().expect("UTF-8"))
        .replace(NATS_TLS, &tls_dir);
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, config_yaml).expect("written");
    ConfigSource::default()
        .with_file(&file)
        .load::<T>()
        .map_err(|e| e.to_string())
}

fn seconds(duration: &str) -> i64 {
    duration
        .trim_end_matches('s')
        .parse()
        .unwrap_or_else(|_| panic!("{duration} is whole seconds"))
}

#[test]
fn the_values_schema_is_generated_from_the_config_types() {
    let path = chart().join("values.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = values_schema_text();
    if committed != generated {
        std::fs::write(&path, &generated).expect("schema written");
        panic!("values.schema.json was stale and has been regenerated; commit it");
    }
}

#[test]
fn lint_and_render_both_values_files_and_validate_the_manifests() {
    let chart = chart();
    let chart = chart.to_str().expect("UTF-8");
    succeed("helm", &["lint", "--strict", chart]);
    let many = many_shards();
    let cluster = nats_cluster();
    for values in [&many, &cluster] {
        succeed(
            "helm",
            &[
                "lint",
                "--strict",
                chart,
                "-f",
                values.to_str().expect("UTF-8"),
            ],
        );
    }
    let dir = tempfile::tempdir().expect("temp dir");
    for (label, values) in [
        ("default", vec![]),
        ("many-shards", vec![many.as_path()]),
        ("nats-cluster", vec![cluster.as_path()]),
    ] {
        let rendered = dir.path().join(format!("{label}.yaml"));
        std::fs::write(&rendered, render(&values)).expect("written");
        let rendered = rendered.to_str().expect("UTF-8");
        let report = succeed(
            "kubernetes-validate",
            &["--strict", "-k", KUBERNETES_VERSION, rendered],
        );
        assert!(report.contains("passed"), "{label}: {report}");
        // yamllint's defaults, minus the rules Helm's own output breaks (document markers,
        // long lines in rendered config, comment spacing of `# Source:` lines is fine).
        succeed(
            "yamllint",
            &[
                "-d",
                "{extends: default, rules: {line-length: disable, document-start: disable, indentation: {indent-sequences: whatever}}}",
                rendered,
            ],
        );
    }
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
    let plain = [
        chart.to_owned() + "/values.yaml",
        chart.to_owned() + "/Chart.yaml",
        many.to_str().expect("UTF-8").to_owned(),
        cluster.to_str().expect("UTF-8").to_owned(),
        format!("{deploy}/compose.yaml"),
        format!("{deploy}/compose/poller.yaml"),
        format!("{deploy}/compose/audio-fetcher.yaml"),
        format!("{deploy}/compose/transcriber.yaml"),
        format!("{deploy}/compose/archive-cache.yaml"),
        format!("{deploy}/compose/alerter.yaml"),
        chart.to_owned() + "/files/prometheus-rules.yaml",
    ];
    let mut args = vec![
        "-d",
        "{extends: default, rules: {line-length: {max: 120}, document-start: disable, comments: {min-spaces-from-content: 1}}}",
    ];
    args.extend(plain.iter().map(String::as_str));
    succeed("yamllint", &args);
}

#[test]
fn the_schema_refuses_bad_values_and_names_each_problem() {
    let chart = chart();
    let bad = chart.join("ci/bad-values.yaml");
    let output = run(
        "helm",
        &[
            "lint",
            "--strict",
            chart.to_str().expect("UTF-8"),
            "-f",
            bad.to_str().expect("UTF-8"),
        ],
    );
    assert!(!output.status.success(), "bad values must fail");
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    for problem in [
        "Additional property poll_intervall is not allowed",
        "audioFetcher.replicas: Invalid type. Expected: integer, given: string",
        "poller.shards.0: name is required",
        "transcriber.config.consumer.ack_wait",
    ] {
        assert!(said.contains(problem), "{problem} not reported:\n{said}");
    }
}

#[test]
fn one_poller_deployment_per_shard_each_with_its_own_shard() {
    let values = values(&many_shards());
    let shards = values["poller"]["shards"].as_array().expect("shards");
    let objects = parse_objects(&render(&[&many_shards()]));
    let deployments = of_kind(&objects, "Deployment");
    let config_maps = of_kind(&objects, "ConfigMap");
    let pollers: Vec<&&Value> = deployments
        .iter()
        .filter(|d| d["spec"]["template"]["spec"]["containers"][0]["command"][0] == "poller")
        .collect();
    assert_eq!(pollers.len(), shards.len(), "one Deployment per shard");
    for shard in shards {
        let shard_name = shard["name"].as_str().expect("name");
        let suffix = format!("poller-{}", shard_name.to_lowercase().replace('_', "-"));
        let deployment = pollers
            .iter()
            .find(|d| name(d).ends_with(&suffix))
            .unwrap_or_else(|| panic!("no Deployment for shard {shard_name}"));
        assert_eq!(
            deployment["spec"]["replicas"],
            shard.get("replicas").cloned().unwrap_or(Value::from(1)),
            "{shard_name}: replicas (hot standby)"
        );
        let config_map = config_maps
            .iter()
            .find(|c| name(c) == name(deployment))
            .expect("its ConfigMap");
        let config: bcfy_poller::PollerConfig = loads_as(
            config_map["data"]["config.yaml"]
                .as_str()
                .expect("config.yaml"),
        )
        .unwrap_or_else(|e| panic!("{shard_name}: the poller refuses its config: {e}"));
        assert_eq!(config.shards.len(), 1, "{shard_name}: only its own shard");
        assert_eq!(config.shards[0].name, shard_name);
        assert_eq!(
            config.live_producer.poll_interval.as_secs(),
            3,
            "shared poller settings reach every shard"
        );
        assert_eq!(
            config.nats.urls.len(),
            3,
            "the shared nats block reaches it"
        );
    }
}

#[test]
fn every_config_file_loads_in_its_service_and_carries_the_values() {
    let objects = parse_objects(&render(&[&many_shards()]));
    let config_of = |workload: &str| -> String {
        of_kind(&objects, "ConfigMap")
            .into_iter()
            .find(|c| name(c) == format!("rel-bcfy-pipeline-{workload}"))
            .and_then(|c| c["data"]["config.yaml"].as_str())
            .unwrap_or_else(|| panic!("no config for {workload}"))
            .to_owned()
    };
    let fetcher: bcfy_audio_fetcher::FetcherConfig =
        loads_as(&config_of("audio-fetcher")).expect("the fetcher loads its config");
    assert_eq!(fetcher.audio.max_concurrency, 32);
    assert_eq!(fetcher.audio.chunk_bytes.bytes(), 512 * 1024);
    assert_eq!(fetcher.topology.replicas, 3);
    assert_eq!(fetcher.admin.listen_addr.port(), 9090);

    let transcriber: bcfy_transcriber::TranscriberConfig =
        loads_as(&config_of("transcriber")).expect("the transcriber loads its config");
    assert_eq!(transcriber.transcription.max_concurrency, 4);
    assert_eq!(transcriber.consumer.ack_wait.as_secs(), 120);
    assert!(
        transcriber.transcription.api_key.is_none(),
        "the STT key is never in a ConfigMap"
    );
    let pool: bcfy_transcriber::TranscriberConfig =
        loads_as(&config_of("transcriber-county")).expect("the pool loads its config");
    assert_eq!(pool.consumer.durable_name, "transcriber-county");
    assert_eq!(pool.consumer.filter_subject, "calls.audio.raw.8001.>");
    assert_eq!(pool.transcription.model, "Systran/faster-whisper-medium.en");
    assert_eq!(
        pool.transcription.max_concurrency, 4,
        "the pool inherits the rest"
    );
    let cpu_pool: bcfy_transcriber::TranscriberConfig =
        loads_as(&config_of("transcriber-low-traffic")).expect("the second pool loads");
    assert_eq!(
        cpu_pool.transcription.provider,
        bcfy_transcriber::config::Provider::Whisper,
        "each pool picks its provider"
    );
    assert_eq!(cpu_pool.transcription.model, "tiny.en");
    assert_eq!(cpu_pool.consumer.filter_subject, "calls.audio.raw.9001.>");
    // Its model comes from the models volume, mounted read-only where its model_path points.
    let deployment = of_kind(&objects, "Deployment")
        .into_iter()
        .find(|d| name(d) == "rel-bcfy-pipeline-transcriber-low-traffic")
        .expect("the pool's Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let mounts = pod["containers"][0]["volumeMounts"]
        .as_array()
        .expect("mounts");
    assert!(mounts.iter().any(|m| m["name"].as_str() == Some("models")
        && m["mountPath"].as_str() == Some("/models")
        && m["readOnly"].as_bool() == Some(true)));
    let volumes = pod["volumes"].as_array().expect("volumes");
    assert!(volumes.iter().any(|v| v["name"].as_str() == Some("models")
        && v["persistentVolumeClaim"]["claimName"].as_str() == Some("whisper-models")));
    assert!(
        cpu_pool
            .transcription
            .whisper
            .model_path
            .as_ref()
            .is_some_and(|p| p.starts_with("/models"))
    );

    let archive: bcfy_archive_cache::ArchiveCacheConfig =
        loads_as(&config_of("archive-cache")).expect("the archive cache loads its config");
    assert_eq!(archive.rate_limit_per_minute, Some(30));
    assert_eq!(archive.cache.closed_ttl.as_secs(), 48 * 3600);
    assert_eq!(archive.grpc.listen_addr.port(), 50051);
    assert!(archive.directory.enabled);
    assert_eq!(
        archive.directory.upstream.app_id.as_deref(),
        Some("scanner-feeds-app")
    );
    assert!(
        archive.directory.upstream.catalog_key.is_none(),
        "keys are never in a ConfigMap"
    );
    assert!(
        archive.broadcastify.password.is_none(),
        "no password in a ConfigMap"
    );
    assert!(archive.nats.credentials_file.is_some());
    assert!(config_of("archive-cache").contains(&format!("credentials_file: {NATS_CREDENTIALS}")));
    // The gateway reads its keys file while loading; here a stand-in takes the mount's place.
    let keys_file = "/etc/bcfy/gateway/keys.yaml";
    let stand_in = tempfile::NamedTempFile::new().expect("a keys file");
    std::fs::write(stand_in.path(), "keys: []\n").expect("written");
    let gateway_text = config_of("gateway");
    assert!(
        gateway_text.contains(&format!("keys_file: {keys_file}")),
        "{gateway_text}"
    );
    let gateway: bcfy_gateway::GatewayConfig =
        loads_as(&gateway_text.replace(keys_file, &stand_in.path().display().to_string()))
            .expect("the gateway loads its config");
    assert_eq!(gateway.http.listen_addr.port(), 8080);
    assert_eq!(gateway.http.cors_origins, ["https://newsroom.example"]);
    let gateway_pod = &of_kind(&objects, "Deployment")
        .into_iter()
        .find(|d| name(d) == "rel-bcfy-pipeline-gateway")
        .expect("a gateway Deployment")["spec"]["template"]["spec"];
    let keys_volume = gateway_pod["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == "api-keys"))
        .expect("the keys volume");
    assert_eq!(keys_volume["secret"]["secretName"], "gateway-api-keys");
    let keys_mount = gateway_pod["containers"][0]["volumeMounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == "api-keys"))
        .expect("the keys mount");
    let mount_path = keys_mount["mountPath"].as_str().expect("a path");
    assert_eq!(keys_file, format!("{mount_path}/keys.yaml"));
    // The alerter reads its destinations file while loading; a stand-in again.
    let destinations_file = "/etc/bcfy/alerter/destinations.yaml";
    let stand_in = tempfile::NamedTempFile::new().expect("a destinations file");
    std::fs::write(
        stand_in.path(),
        "destinations:\n  - {name: ops, url: \"https://ops.example/hook\"}\n",
    )
    .expect("written");
    let alerter_text = config_of("alerter");
    assert!(
        alerter_text.contains(&format!("destinations_file: {destinations_file}")),
        "{alerter_text}"
    );
    let alerter: bcfy_alerter::AlerterConfig =
        loads_as(&alerter_text.replace(destinations_file, &stand_in.path().display().to_string()))
            .expect("the alerter loads its config");
    assert_eq!(alerter.rules.len(), 2);
    assert_eq!(alerter.monitor.poll_failures, 10);
    assert_eq!(alerter.all_destinations().expect("read").len(), 1);
    let ingress = of_kind(&objects, "Ingress");
    assert_eq!(ingress.len(), 1, "one Ingress, for the gateway");
    assert_eq!(ingress[0]["spec"]["rules"][0]["host"], "calls.example.org");
    assert_eq!(
        ingress[0]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "rel-bcfy-pipeline-gateway"
    );
    let mounts = of_kind(&objects, "Deployment")
        .iter()
        .flat_map(|d| {
            d["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|m| m["mountPath"] == "/etc/bcfy/nats")
        .count();
    assert!(
        mounts >= 16,
        "every pod mounts the NATS credentials ({mounts})"
    );

    // The default values render configs the services accept too.
    let defaults = parse_objects(&render(&[]));
    for config_map in of_kind(&defaults, "ConfigMap") {
        let text = config_map["data"]["config.yaml"]
            .as_str()
            .expect("config.yaml");
        shared_settings(name(config_map), text)
            .unwrap_or_else(|e| panic!("{}: {e}", name(config_map)));
    }
}

/// Loads a workload's config file in its service and returns the settings every service shares.
fn shared_settings(workload: &str, text: &str) -> Result<(NatsConfig, TopologyConfig), String> {
    fn shared<C: ServiceConfig>(config: &C) -> (NatsConfig, TopologyConfig) {
        (config.nats().clone(), config.topology().clone())
    }
    Ok(match workload.trim_start_matches("rel-bcfy-pipeline-") {
        n if n.starts_with("poller") => shared(&loads_as::<bcfy_poller::PollerConfig>(text)?),
        "audio-fetcher" => shared(&loads_as::<bcfy_audio_fetcher::FetcherConfig>(text)?),
        "transcriber" => shared(&loads_as::<bcfy_transcriber::TranscriberConfig>(text)?),
        "archive-cache" => shared(&loads_as::<bcfy_archive_cache::ArchiveCacheConfig>(text)?),
        "gateway" => shared(&loads_as::<bcfy_gateway::GatewayConfig>(text)?),
        "alerter" => shared(&loads_as::<bcfy_alerter::AlerterConfig>(text)?),
        other => panic!("unexpected ConfigMap {other}"),
    })
}

#[test]
fn pods_are_probed_on_the_admin_port_outlive_their_drain_and_are_hardened() {
    let objects = parse_objects(&render(&[&many_shards()]));
    let config_maps: BTreeMap<&str, &Value> = of_kind(&objects, "ConfigMap")
        .into_iter()
        .map(|c| (name(c), c))
        .collect();
    let deployments = of_kind(&objects, "Deployment");
    assert!(deployments.len() >= 16, "{} Deployments", deployments.len());
    for deployment in deployments {
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let admin_port = container["ports"]
            .as_array()
            .and_then(|ports| ports.iter().find(|p| p["name"] == "admin"))
            .expect("an admin port");
        assert_eq!(admin_port["containerPort"], 9090);
        for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz")] {
            assert_eq!(
                container[probe]["httpGet"]["port"],
                "admin",
                "{}",
                name(deployment)
            );
            assert_eq!(
                container[probe]["httpGet"]["path"],
                path,
                "{}",
                name(deployment)
            );
        }

        let text = config_maps[name(deployment)]["data"]["config.yaml"]
            .as_str()
            .expect("config");
        let config = to_json(&YamlLoader::load_from_str(text).expect("YAML")[0]);
        let drain = seconds(config["shutdown_grace"].as_str().expect("shutdown_grace"));
        let grace = pod["terminationGracePeriodSeconds"]
            .as_i64()
            .expect("grace");
        assert!(
            grace > drain,
            "{}: {grace} s ≤ drain {drain} s",
            name(deployment)
        );

        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_eq!(pod["automountServiceAccountToken"], false);
        let security = &container["securityContext"];
        assert_eq!(security["readOnlyRootFilesystem"], true);
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    }
}

#[test]
fn secrets_reach_the_services_only_as_env_vars_from_secrets() {
    let objects = parse_objects(&render(&[&many_shards()]));
    let rendered_configs: String = of_kind(&objects, "ConfigMap")
        .iter()
        .map(|c| c["data"]["config.yaml"].as_str().unwrap_or_default())
        .collect();
    for secret in [
        "not-a-real-password",
        "sk-not-a-real-key",
        "not-a-real-catalog-key",
        "not-a-real-api-key",
    ] {
        assert!(
            !rendered_configs.contains(secret),
            "{secret} in a ConfigMap"
        );
    }
    let env_of = |program: &str| -> Vec<Value> {
        of_kind(&objects, "Deployment")
            .into_iter()
            .find(|d| d["spec"]["template"]["spec"]["containers"][0]["command"][0] == program)
            .and_then(|d| {
                d["spec"]["template"]["spec"]["containers"][0]["env"]
                    .as_array()
                    .cloned()
            })
            .unwrap_or_default()
    };
    let from_secret = |env: &[Value], var: &str| -> Option<String> {
        env.iter().find(|e| e["name"] == var).and_then(|e| {
            e["valueFrom"]["secretKeyRef"]["name"]
                .as_str()
                .map(str::to_owned)
        })
    };
    for program in ["poller", "archive-cache"] {
        let env = env_of(program);
        for var in ["BCFY_BROADCASTIFY__USERNAME", "BCFY_BROADCASTIFY__PASSWORD"] {
            assert_eq!(
                from_secret(&env, var).as_deref(),
                Some("rel-bcfy-pipeline-broadcastify"),
                "{program}: {var}"
            );
        }
    }
    assert_eq!(
        from_secret(&env_of("transcriber"), "BCFY_TRANSCRIPTION__API_KEY").as_deref(),
        Some("rel-bcfy-pipeline-stt")
    );
    let archive = env_of("archive-cache");
    for (var, secret) in [
        (
            "BCFY_DIRECTORY__UPSTREAM__CATALOG_KEY",
            "rel-bcfy-pipeline-directory",
        ),
        (
            "BCFY_DIRECTORY__UPSTREAM__API_KEY",
            "rel-bcfy-pipeline-directory",
        ),
        (
            "BCFY_DIRECTORY__UPSTREAM__USERNAME",
            "rel-bcfy-pipeline-broadcastify",
        ),
        (
            "BCFY_DIRECTORY__UPSTREAM__PASSWORD",
            "rel-bcfy-pipeline-broadcastify",
        ),
    ] {
        assert_eq!(from_secret(&archive, var).as_deref(), Some(secret), "{var}");
    }
    let secrets = of_kind(&objects, "Secret");
    assert_eq!(
        secrets.len(),
        3,
        "the chart creates the three Secrets it was given"
    );
}

#[test]
fn the_compose_configs_load_in_their_services() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/compose");
    let text = |service: &str| {
        std::fs::read_to_string(format!("{dir}/{service}.yaml")).expect("compose config")
    };
    let poller: bcfy_poller::PollerConfig = loads_as(&text("poller")).expect("poller");
    assert_eq!(poller.shards.len(), 1);
    loads_as::<bcfy_audio_fetcher::FetcherConfig>(&text("audio-fetcher")).expect("fetcher");
    let transcriber: bcfy_transcriber::TranscriberConfig =
        loads_as(&text("transcriber")).expect("transcriber");
    assert_eq!(
        transcriber.transcription.endpoint().as_str(),
        "http://stt:8000/v1/audio/transcriptions"
    );
    loads_as::<bcfy_archive_cache::ArchiveCacheConfig>(&text("archive-cache"))
        .expect("archive cache");
    let gateway: bcfy_gateway::GatewayConfig = loads_as(&text("gateway")).expect("gateway");
    assert_eq!(gateway.http.listen_addr.port(), 8080);
    assert!(
        gateway.auth.anonymous_grant().is_some(),
        "compose lets local readers in"
    );
    let alerter: bcfy_alerter::AlerterConfig = loads_as(&text("alerter")).expect("alerter");
    assert_eq!(alerter.rules.len(), 2);
}

#[test]
fn on_a_nats_cluster_each_service_is_its_own_user_over_tls_with_three_replicas() {
    let objects = parse_objects(&render(&[&nats_cluster()]));
    let deployments = of_kind(&objects, "Deployment");
    assert_eq!(deployments.len(), 6, "one workload per service");
    for deployment in deployments {
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let program = container["command"][0].as_str().expect("a program");
        let env = container["env"].as_array().expect("env");
        let var = |name: &str| env.iter().find(|e| e["name"] == name);
        assert_eq!(
            var("BCFY_NATS__USER").map(|e| &e["value"]),
            Some(&Value::from(program)),
            "{program} connects as its own user"
        );
        assert_eq!(
            var("BCFY_NATS__PASSWORD").map(|e| &e["valueFrom"]["secretKeyRef"]),
            Some(&serde_json::json!({"name": format!("bcfy-nats-{program}"), "key": "password"})),
            "{program}'s password comes from its own Secret"
        );
        let mounts = container["volumeMounts"].as_array().expect("mounts");
        assert!(
            mounts
                .iter()
                .any(|m| m["name"] == "nats-tls" && m["mountPath"] == "/etc/bcfy/nats-tls"),
            "{program}: {mounts:?}"
        );
        let volume = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == "nats-tls")
            .expect("the TLS volume");
        assert_eq!(volume["secret"]["secretName"], "bcfy-nats-client-tls");
        let config_map = of_kind(&objects, "ConfigMap")
            .into_iter()
            .find(|c| c["metadata"]["name"] == deployment["metadata"]["name"])
            .expect("its ConfigMap");
        let config_yaml = config_map["data"]["config.yaml"].as_str().expect("config");
        let (nats, topology) = shared_settings(name(config_map), config_yaml)
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert_eq!(topology.replicas, 3, "{program}: several servers, R3");
        assert!(nats.tls.required, "{program}");
        assert!(
            nats.tls.ca_file.is_some()
                && nats.tls.cert_file.is_some()
                && nats.tls.key_file.is_some(),
            "{program}: {:?}",
            nats.tls
        );
        assert!(!config_yaml.contains("credentials_file"), "{program}");
    }
}
