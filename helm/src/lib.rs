//! The Helm chart's `values.schema.json`, generated from the services' own config types.
//!
//! Each service's `config` block in the chart's values is that service's YAML config, key for
//! key, so its schema is the JSON schema of the Rust config type (schemars, which follows the
//! serde attributes: `deny_unknown_fields` becomes `additionalProperties: false`). A typo or a
//! wrong type in values then fails `helm lint`/`helm template`/`helm install` before anything
//! reaches a cluster, and the schema cannot drift from the code: `tests/chart.rs` regenerates it
//! and fails when the committed file differs.
//!
//! The chart's own keys (image, secrets, shards' replicas, autoscaling, ...) are described here
//! by hand.

use bcfy_alerter::AlerterConfig;
use bcfy_archive_cache::ArchiveCacheConfig;
use bcfy_audio_fetcher::FetcherConfig;
use bcfy_gateway::GatewayConfig;
use bcfy_poller::{PollerConfig, ShardConfig};
use bcfy_transcriber::TranscriberConfig;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

/// Where the chart lives, relative to this crate.
pub const CHART_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/bcfy-pipeline");

/// `shutdown_grace` as the chart needs it: whole seconds, since the pod's
/// `terminationGracePeriodSeconds` is computed from it.
fn whole_seconds() -> Value {
    json!({
        "type": "string",
        "pattern": "^[0-9]+s$",
        "description": "Whole seconds, e.g. \"30s\" (terminationGracePeriodSeconds is derived from it)."
    })
}

/// A service's `config` block: the service's config schema, with `shutdown_grace` in whole
/// seconds.
fn service_config(reference: Value) -> Value {
    json!({
        "allOf": [
            reference,
            {"type": "object", "properties": {"shutdown_grace": whole_seconds()}}
        ]
    })
}

fn object(properties: Value) -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": properties})
}

fn free_object() -> Value {
    json!({"type": "object"})
}

fn pdb() -> Value {
    object(json!({
        "enabled": {"type": "boolean"},
        "maxUnavailable": {"type": ["integer", "string"]}
    }))
}

fn autoscaling() -> Value {
    object(json!({
        "enabled": {"type": "boolean"},
        "minReplicas": {"type": "integer", "minimum": 1},
        "maxReplicas": {"type": "integer", "minimum": 1},
        "targetCPUUtilizationPercentage": {"type": "integer", "minimum": 1, "maximum": 100}
    }))
}

fn keda() -> Value {
    object(json!({
        "enabled": {"type": "boolean"},
        "minReplicas": {"type": "integer", "minimum": 0},
        "maxReplicas": {"type": "integer", "minimum": 1},
        "lagThreshold": {"type": "string", "pattern": "^[0-9]+$"},
        "natsServerMonitoringEndpoint": {"type": "string", "minLength": 1},
        "account": {"type": "string"}
    }))
}

/// The keys every worker block has besides its config.
fn worker(config: Value, extra: Value) -> Value {
    let mut properties = json!({
        "enabled": {"type": "boolean"},
        "replicas": {"type": "integer", "minimum": 0},
        "config": config,
        "resources": free_object(),
        "pdb": pdb(),
        "autoscaling": autoscaling(),
    });
    if let (Some(properties), Value::Object(extra)) = (properties.as_object_mut(), extra) {
        properties.extend(extra);
    }
    object(properties)
}

/// The shard entry: the poller's shard config plus the chart's `replicas` and `resources`.
fn shard_entry(mut shard: Value) -> Value {
    if let Some(properties) = shard.get_mut("properties").and_then(Value::as_object_mut) {
        properties.insert(
            "replicas".to_owned(),
            json!({"type": "integer", "minimum": 1, "description": "More than one is a hot standby (lease)."}),
        );
        properties.insert("resources".to_owned(), free_object());
        properties.insert(
            "name".to_owned(),
            json!({"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]*$", "maxLength": 40}),
        );
    }
    if let Some(object) = shard.as_object_mut() {
        object.insert("required".to_owned(), json!(["name"]));
    }
    shard
}

/// The definition a property refers to (`$ref`, or schemars' `allOf: [{$ref}]` beside a
/// description).
fn referenced(property: &Value) -> Option<&str> {
    let reference = property.get("$ref").or_else(|| {
        property
            .get("allOf")
            .and_then(Value::as_array)
            .filter(|all| all.len() == 1)
            .and_then(|all| all[0].get("$ref"))
    })?;
    reference.as_str()?.rsplit('/').next()
}

/// Drops the default of every setting that is a block of settings (it would repeat each
/// setting's own default, already shown in the block's definition); a leaf setting keeps its
/// default.
fn without_block_defaults(definitions: &mut serde_json::Map<String, Value>) {
    let blocks: Vec<String> = definitions
        .iter()
        .filter(|(_, definition)| definition.get("type") == Some(&json!("object")))
        .map(|(name, _)| name.clone())
        .collect();
    for definition in definitions.values_mut() {
        let Some(properties) = definition
            .get_mut("properties")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        for property in properties.values_mut() {
            if referenced(property).is_some_and(|name| blocks.iter().any(|b| b == name))
                && let Some(property) = property.as_object_mut()
            {
                property.remove("default");
            }
        }
    }
}

/// The whole values schema (draft-07, which Helm's validator reads).
pub fn values_schema() -> Value {
    let mut generator = SchemaSettings::draft07().into_generator();
    let poller = generator.subschema_for::<PollerConfig>();
    let fetcher = generator.subschema_for::<FetcherConfig>();
    let transcriber = generator.subschema_for::<TranscriberConfig>();
    let archive = generator.subschema_for::<ArchiveCacheConfig>();
    let gateway = generator.subschema_for::<GatewayConfig>();
    let alerter = generator.subschema_for::<AlerterConfig>();
    let nats = generator.subschema_for::<bcfy_bus::connect::NatsConfig>();
    // A password Secret per service user of the generated authorization block.
    let nats_users: serde_json::Map<String, Value> = bcfy_bus::access::Role::ALL
        .into_iter()
        .filter(|role| role.is_service())
        .map(|role| (role.name().to_owned(), json!({"type": "string"})))
        .collect();
    let nats_users = Value::Object(nats_users);
    let log = generator.subschema_for::<bcfy_runtime::telemetry::LogConfig>();
    let topology = generator.subschema_for::<bcfy_bus::topology::TopologyConfig>();
    let shard_reference = generator.subschema_for::<ShardConfig>();
    let mut definitions: serde_json::Map<String, Value> =
        generator.take_definitions(true).into_iter().collect();
    without_block_defaults(&mut definitions);
    // The shard entry extends the shard config's own definition (which refuses unknown keys).
    let shard = shard_reference
        .as_object()
        .and_then(|reference| reference.get("$ref"))
        .and_then(Value::as_str)
        .and_then(|target| target.rsplit('/').next())
        .and_then(|name| definitions.get(name))
        .cloned()
        .map_or_else(|| shard_reference.to_value(), shard_entry);

    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "bcfy-pipeline values",
        "description": "Generated by `cargo test -p bcfy-chart` from the services' config types; do not edit.",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "image": object(json!({
                "repository": {"type": "string", "minLength": 1},
                "tag": {"type": "string"},
                "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]}
            })),
            "imagePullSecrets": {"type": "array"},
            "nameOverride": {"type": "string"},
            "fullnameOverride": {"type": "string"},
            "config": object(json!({
                "nats": nats.to_value(),
                "log": log.to_value(),
                "topology": topology.to_value()
            })),
            "secrets": object(json!({
                "broadcastify": object(json!({
                    "existingSecret": {"type": "string"},
                    "username": {"type": "string"},
                    "password": {"type": "string"}
                })),
                "stt": object(json!({
                    "existingSecret": {"type": "string"},
                    "apiKey": {"type": "string"}
                })),
                "directory": object(json!({
                    "existingSecret": {"type": "string"},
                    "catalogKey": {"type": "string"},
                    "apiKey": {"type": "string"}
                })),
                "nats": object(json!({
                    "existingSecret": {"type": "string"},
                    "users": object(nats_users),
                    "tls": object(json!({
                        "existingSecret": {"type": "string"},
                        "clientCertificate": {"type": "boolean"}
                    }))
                }))
            })),
            "serviceAccount": object(json!({
                "create": {"type": "boolean"},
                "name": {"type": "string"},
                "annotations": free_object()
            })),
            "extraEnv": {"type": "array", "items": {"type": "object", "required": ["name"]}},
            "podAnnotations": free_object(),
            "podLabels": free_object(),
            "nodeSelector": free_object(),
            "tolerations": {"type": "array"},
            "affinity": free_object(),
            "podSecurityContext": free_object(),
            "securityContext": free_object(),
            "adminPort": {"type": "integer", "minimum": 1, "maximum": 65535},
            "terminationGraceMarginSeconds": {"type": "integer", "minimum": 0},
            "poller": object(json!({
                "enabled": {"type": "boolean"},
                "config": service_config(poller.to_value()),
                "shards": {"type": "array", "items": shard},
                "resources": free_object(),
                "pdb": pdb()
            })),
            "audioFetcher": worker(service_config(fetcher.to_value()), json!({"keda": keda()})),
            "transcriber": worker(service_config(transcriber.clone().to_value()), json!({
                "keda": keda(),
                // A Kubernetes volume source (persistentVolumeClaim, nfs, …): not ours to list.
                "models": free_object(),
                "pools": {"type": "array", "items": object(json!({
                    "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$", "maxLength": 30},
                    "filterSubject": {"type": "string", "pattern": "^calls\\.audio\\.raw\\."},
                    "replicas": {"type": "integer", "minimum": 0},
                    "resources": free_object(),
                    "config": transcriber.to_value()
                }))}
            })),
            "archiveCache": worker(service_config(archive.to_value()), json!({
                "grpcPort": {"type": "integer", "minimum": 1, "maximum": 65535},
                "service": object(json!({"type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]}}))
            })),
            "gateway": worker(service_config(gateway.to_value()), json!({
                "httpPort": {"type": "integer", "minimum": 1, "maximum": 65535},
                "keys": object(json!({"existingSecret": {"type": "string"}})),
                "service": object(json!({"type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]}})),
                "ingress": object(json!({
                    "enabled": {"type": "boolean"},
                    "className": {"type": "string"},
                    "host": {"type": "string"},
                    "tlsSecret": {"type": "string"},
                    "annotations": free_object()
                }))
            })),
            "alerter": worker(service_config(alerter.to_value()), json!({
                "destinations": object(json!({"existingSecret": {"type": "string"}}))
            })),
            "serviceMonitor": object(json!({
                "enabled": {"type": "boolean"},
                "interval": {"type": "string"},
                "labels": free_object()
            })),
            "prometheusRule": object(json!({
                "enabled": {"type": "boolean"},
                "labels": free_object()
            })),
            "grafanaDashboard": object(json!({
                "enabled": {"type": "boolean"},
                "labels": free_object()
            })),
            "networkPolicy": object(json!({
                "enabled": {"type": "boolean"},
                "from": {"type": "array"}
            }))
        },
        "definitions": definitions
    })
}

/// The schema as the chart carries it (pretty JSON, newline at the end).
pub fn values_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&values_schema()).unwrap_or_default();
    text.push('\n');
    text
}
