//! `GET /v1/openapi.json`: the API described in OpenAPI 3.1. The paths and the gateway's own
//! objects are written by hand in `openapi.json`; the schemas of the `broadcastify.v1`
//! messages inside events are generated from the protobuf descriptors by the JSON mapping's
//! rules, so they cannot drift from the `.proto` files.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use prost_reflect::{Cardinality, DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use crate::api::Api;

/// The hand-written part.
const PATHS: &str = include_str!("../../openapi.json");
/// The package whose messages get schemas.
const PACKAGE: &str = "broadcastify.v1";

/// Serves the document.
pub async fn document(State(api): State<Arc<Api>>) -> Json<Value> {
    Json(api.openapi.clone())
}

/// The whole document: the hand-written paths and objects plus a schema per message.
///
/// # Panics
///
/// Never in practice: both parts are checked in and tested.
pub fn build() -> Value {
    let mut document: Value = serde_json::from_str(PATHS).expect("openapi.json is valid JSON");
    let pool = DescriptorPool::decode(bcfy_proto::FILE_DESCRIPTOR_SET)
        .expect("the checked-in descriptor set decodes");
    let schemas = document["components"]["schemas"]
        .as_object_mut()
        .expect("openapi.json has components.schemas");
    for message in pool.all_messages() {
        if message.package_name() == PACKAGE && !message.is_map_entry() {
            schemas.insert(message.name().to_owned(), message_schema(&message));
        }
    }
    document
}

/// A message's JSON-mapping schema: lowerCamelCase names, default values left out.
fn message_schema(message: &MessageDescriptor) -> Value {
    let properties: Map<String, Value> = message
        .fields()
        .map(|field| (field.json_name().to_owned(), field_schema(&field)))
        .collect();
    json!({"type": "object", "additionalProperties": false, "properties": properties})
}

fn field_schema(field: &FieldDescriptor) -> Value {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            return json!({"type": "object"});
        };
        let value = entry.map_entry_value_field();
        return json!({"type": "object", "additionalProperties": scalar_schema(&value.kind())});
    }
    let one = scalar_schema(&field.kind());
    if field.cardinality() == Cardinality::Repeated {
        json!({"type": "array", "items": one})
    } else {
        one
    }
}

fn scalar_schema(kind: &Kind) -> Value {
    match kind {
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            json!({"type": "string", "pattern": "^-?[0-9]+$"})
        }
        Kind::Uint64 | Kind::Fixed64 => json!({"type": "string", "pattern": "^[0-9]+$"}),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 | Kind::Uint32 | Kind::Fixed32 => {
            json!({"type": "integer"})
        }
        Kind::Double | Kind::Float => json!({"type": "number"}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::String => json!({"type": "string"}),
        Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        Kind::Enum(_) => json!({"type": "string"}),
        Kind::Message(message) if message.full_name() == "google.protobuf.Timestamp" => {
            json!({"type": "string", "format": "date-time"})
        }
        Kind::Message(message) => {
            json!({"$ref": format!("#/components/schemas/{}", message.name())})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_gets_a_schema_by_the_json_mapping() {
        let document = build();
        let schemas = &document["components"]["schemas"];
        let call = &schemas["Call"]["properties"];
        assert_eq!(call["callTg"]["type"], "string", "int64 is a string");
        assert_eq!(call["callFreq"]["type"], "number");
        assert_eq!(
            call["extraFields"]["additionalProperties"]["type"],
            "string"
        );
        let result = &schemas["TranscriptionResult"]["properties"];
        assert_eq!(result["completedAt"]["format"], "date-time");
        assert_eq!(
            result["segments"]["items"]["$ref"],
            "#/components/schemas/TranscriptSegment"
        );
        assert!(
            schemas["Event"].is_object(),
            "the hand-written objects stay"
        );
    }
}
