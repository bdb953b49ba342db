//! The Calls API's request token: a JWT (HS256) the client mints itself, signed with the API
//! key, with the key's id in the header (`kid`) and the application id as issuer (`iss`); a
//! user's id (`sub`) and token (`utk`) are added for calls made as that user.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use serde::Serialize;
use sha2::Sha256;

/// The token's claims.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Claims {
    /// The application id.
    pub iss: String,
    /// Issued at (epoch seconds).
    pub iat: i64,
    /// Expires at (epoch seconds).
    pub exp: i64,
    /// The user's id, for calls made as a user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<i64>,
    /// The user's token, with `sub`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utk: Option<String>,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// `header.payload.signature`, each part base64url without padding.
pub fn sign(key_id: &str, key: &[u8], claims: &Claims) -> String {
    let header = Header {
        alg: "HS256",
        typ: "JWT",
        kid: key_id,
    };
    let signed = format!("{}.{}", part(&header), part(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(signed.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{signature}")
}

/// One part: the value's JSON, base64url without padding.
fn part(value: &impl Serialize) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_has_the_key_id_the_claims_and_a_signature_over_both() {
        let claims = Claims {
            iss: "app-1".into(),
            iat: 1_700_000_000,
            exp: 1_700_003_600,
            sub: Some(42),
            utk: Some("user-token".into()),
        };
        let token = sign("key-9", b"secret", &claims);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["kid"], "key-9");
        assert_eq!(header["alg"], "HS256");
        let payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(payload["sub"], 42);
        assert_eq!(payload["utk"], "user-token");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        mac.verify_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap())
            .expect("signed with the key");
        assert_ne!(sign("key-9", b"other", &claims), token);
    }
}
