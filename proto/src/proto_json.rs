//! The protobuf JSON mapping of any `broadcastify.v1` message (field names in lowerCamelCase,
//! 64-bit integers as strings, timestamps in RFC 3339, enums by name), so HTTP clients and
//! webhook receivers read the same schema as NATS subscribers.

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET)
        .expect("the checked-in descriptor set decodes")
});

/// Why a message has no JSON form.
#[derive(Debug, thiserror::Error)]
#[error("cannot serialize as JSON: {0}")]
pub struct JsonError(String);

/// The JSON of `message` without the fields named in `omit` (protobuf field names).
///
/// # Errors
///
/// When `M` is not in the descriptor set (not a `broadcastify.v1` message).
pub fn to_json<M: prost::Name + prost::Message>(
    message: &M,
    omit: &[&str],
) -> Result<serde_json::Value, JsonError> {
    let descriptor = POOL
        .get_message_by_name(&M::full_name())
        .ok_or_else(|| JsonError(format!("no schema for {}", M::full_name())))?;
    let mut dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .map_err(|e| JsonError(e.to_string()))?;
    for field in omit {
        dynamic.clear_field_by_name(field);
    }
    let mut out = serde_json::Serializer::new(Vec::new());
    dynamic
        .serialize_with_options(&mut out, &SerializeOptions::new())
        .map_err(|e| JsonError(e.to_string()))?;
    serde_json::from_slice(&out.into_inner()).map_err(|e| JsonError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ShardKey, TranscriptionResult};

    #[test]
    fn names_are_camel_case_and_omitted_fields_are_gone() {
        let result = TranscriptionResult {
            call_id: "c1".into(),
            text: "engine 12".into(),
            call: Some(crate::Call::default()),
            ..Default::default()
        };
        let json = to_json(&result, &["call"]).unwrap();
        assert_eq!(json["callId"], "c1");
        assert_eq!(json["text"], "engine 12");
        assert!(json.get("call").is_none());
        let key = to_json(
            &ShardKey {
                system_id: 7,
                talkgroup_id: 9,
            },
            &[],
        )
        .unwrap();
        assert_eq!(key["systemId"], "7", "64-bit integers are strings");
    }
}
