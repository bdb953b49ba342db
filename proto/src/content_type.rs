//! The `Content-Type` header that names the protobuf type of a NATS message.
//!
//! Every event carries `application/protobuf; proto=broadcastify.v1.<Message>`, so any
//! subscriber (or the `tail` tool) can tell what a payload is without knowing the subject.

/// The media type of every event payload.
pub const PROTOBUF_MEDIA_TYPE: &str = "application/protobuf";

/// The `Content-Type` value for message type `M`, e.g.
/// `application/protobuf; proto=broadcastify.v1.LiveCallEnvelope`.
pub fn for_message<M: prost::Name>() -> String {
    format!("{PROTOBUF_MEDIA_TYPE}; proto={}", M::full_name())
}

/// The fully qualified protobuf type named by a `Content-Type` value, if it names one.
pub fn message_name(content_type: &str) -> Option<&str> {
    let mut parts = content_type.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case(PROTOBUF_MEDIA_TYPE) {
        return None;
    }
    parts.find_map(|p| p.strip_prefix("proto="))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeadLetter, LiveCallEnvelope};

    #[test]
    fn names_the_message_type_and_parses_back() {
        let value = for_message::<LiveCallEnvelope>();
        assert_eq!(
            value,
            "application/protobuf; proto=broadcastify.v1.LiveCallEnvelope"
        );
        assert_eq!(
            message_name(&value),
            Some("broadcastify.v1.LiveCallEnvelope")
        );
        assert_eq!(
            message_name(&for_message::<DeadLetter>()),
            Some("broadcastify.v1.DeadLetter")
        );
    }

    #[test]
    fn other_media_types_name_nothing() {
        assert_eq!(message_name("application/json"), None);
        assert_eq!(message_name("application/protobuf"), None);
    }
}
