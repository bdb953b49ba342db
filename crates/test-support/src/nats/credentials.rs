//! NATS identities for authentication tests: an NKey user, and the decentralized (JWT) chain —
//! operator, account and user — that a `.creds` file belongs to, with the server settings that
//! trust it. The JWTs are issued here as `nsc` issues them: an Ed25519-NKey-signed JWT whose
//! claims name the issuer and subject by their public NKeys.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::KeyPair;
use serde_json::json;

/// An NKey user: the server lists its public key, the client holds its seed.
#[derive(Debug)]
pub struct NkeyUser {
    /// The public key (`U…`), for the server's `authorization.users`.
    pub public_key: String,
    /// The seed (`SU…`), for the client's `nkey_seed_file`.
    pub seed: String,
}

impl NkeyUser {
    /// A new user key.
    ///
    /// # Panics
    ///
    /// When the key cannot be encoded.
    pub fn new() -> Self {
        let user = KeyPair::new_user();
        Self {
            public_key: user.public_key(),
            seed: user.seed().unwrap(),
        }
    }

    /// The server config that admits only this user.
    pub fn server_config(&self) -> String {
        format!(
            "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n",
            self.public_key
        )
    }
}

impl Default for NkeyUser {
    fn default() -> Self {
        Self::new()
    }
}

/// An operator with a system account and one account (JetStream allowed) with one user in it.
#[derive(Debug)]
pub struct Decentralized {
    operator_jwt: String,
    system_public_key: String,
    system_jwt: String,
    account_public_key: String,
    account_jwt: String,
    /// The user's `.creds` file: its JWT and seed.
    pub creds: String,
}

impl Decentralized {
    /// Issues the operator, account and user.
    ///
    /// # Panics
    ///
    /// When a key cannot be encoded or a JWT signed.
    pub fn new() -> Self {
        let operator = KeyPair::new_operator();
        let system = KeyPair::new_account();
        let account = KeyPair::new_account();
        let user = KeyPair::new_user();
        let operator_jwt = issue(
            &operator,
            &operator.public_key(),
            "test-operator",
            json!({ "system_account": system.public_key(), "type": "operator", "version": 2 }),
        );
        // JetStream needs the server's own account.
        let system_jwt = issue(
            &operator,
            &system.public_key(),
            "SYS",
            json!({ "type": "account", "version": 2 }),
        );
        let account_jwt = issue(
            &operator,
            &account.public_key(),
            "test-account",
            json!({
                "limits": {
                    "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                    "wildcards": true, "conn": -1, "leaf": -1,
                    "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1
                },
                "type": "account",
                "version": 2
            }),
        );
        let user_jwt = issue(
            &account,
            &user.public_key(),
            "test-user",
            json!({
                "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
                "type": "user", "version": 2
            }),
        );
        let creds = format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            user.seed().unwrap()
        );
        Self {
            operator_jwt,
            system_public_key: system.public_key(),
            system_jwt,
            account_public_key: account.public_key(),
            account_jwt,
            creds,
        }
    }

    /// The server config that trusts the operator and knows the accounts (memory resolver).
    pub fn server_config(&self) -> String {
        format!(
            "operator: \"{}\"\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n  {}: \"{}\"\n  {}: \"{}\"\n}}\n",
            self.operator_jwt,
            self.system_public_key,
            self.system_public_key,
            self.system_jwt,
            self.account_public_key,
            self.account_jwt
        )
    }
}

impl Default for Decentralized {
    fn default() -> Self {
        Self::new()
    }
}

/// A JWT with `claims` under `nats`, about `subject`, signed by `issuer`.
fn issue(issuer: &KeyPair, subject: &str, name: &str, claims: serde_json::Value) -> String {
    let header = json!({ "typ": "JWT", "alg": "ed25519-nkey" });
    let issued_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = json!({
        "jti": format!("{subject}-{issued_at}"),
        "iat": issued_at,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": claims,
    });
    let encode = |value: &serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let signing_input = format!("{}.{}", encode(&header), encode(&body));
    let signature = issuer.sign(signing_input.as_bytes()).unwrap();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}
