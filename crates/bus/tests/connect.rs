//! `connect` from config against a real server: user/password, NKey and `.creds` credentials,
//! TLS with a CA and with client certificates; a server that refuses the client is reported at
//! once with its reason; and the client reconnects by itself after the server restarts, so
//! publishing resumes with nothing to redo.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::connect::{ConnectError, NatsConfig, TlsConfig, connect};
use bcfy_bus::ensure::ensure_topology;
use bcfy_bus::topology::{Topology, TopologyConfig};
use bcfy_test_support::nats::credentials::{Decentralized, NkeyUser};
use bcfy_test_support::pki::Pki;
use bcfy_test_support::{NatsServer, eventually};

fn config(server: &NatsServer) -> NatsConfig {
    NatsConfig {
        urls: vec![server.url()],
        user: Some("pipeline".into()),
        password: Some("s3cret-pass".into()),
        reconnect_max_delay: Duration::from_millis(500),
        ..NatsConfig::default()
    }
}

#[tokio::test]
async fn connects_with_user_and_password_and_survives_a_server_restart() {
    bcfy_test_support::trace_init();
    let mut server =
        NatsServer::start_with_args(&["--user", "pipeline", "--pass", "s3cret-pass"]).await;
    let client = connect(&config(&server), "connect-test").await.unwrap();
    let js = jetstream::new(client.clone());
    ensure_topology(&js, &Topology::new(TopologyConfig::default()))
        .await
        .unwrap();
    js.publish("calls.live.1.2", "before".into())
        .await
        .unwrap()
        .await
        .unwrap();

    server.restart().await;

    let ack = eventually(
        Duration::from_secs(20),
        "a publish after the restart",
        || async {
            js.publish("calls.live.1.2", "after".into())
                .await
                .ok()?
                .await
                .ok()
        },
    )
    .await;
    assert_eq!(
        ack.sequence, 2,
        "the store survived and the client reconnected"
    );
    assert_eq!(
        client.connection_state(),
        async_nats::connection::State::Connected
    );
}

#[tokio::test]
async fn wrong_credentials_are_refused_at_once_with_the_reason() {
    let server = NatsServer::start_with_args(&["--user", "pipeline", "--pass", "right"]).await;
    let mut wrong = config(&server);
    wrong.password = Some("wrong".into());
    let error = connect(&wrong, "connect-test").await.unwrap_err();
    assert!(matches!(error, ConnectError::Refused(_)), "{error:?}");
    assert!(
        error.to_string().contains("authorization violation"),
        "{error}"
    );
}

/// A config that connects to `server` with `nats` settings (credentials, TLS) and nothing else.
fn bare(server: &NatsServer) -> NatsConfig {
    NatsConfig {
        urls: vec![server.url()],
        reconnect_max_delay: Duration::from_millis(500),
        ..NatsConfig::default()
    }
}

/// Connects with `config`, creates the topology and stores a message: the client works.
async fn works(config: &NatsConfig) {
    let client = connect(config, "connect-test").await.expect("connected");
    let js = jetstream::new(client);
    ensure_topology(&js, &Topology::new(TopologyConfig::default()))
        .await
        .expect("the topology");
    js.publish("calls.live.1.2", "stored".into())
        .await
        .expect("published")
        .await
        .expect("stored");
}

fn tls(ca: &Pki) -> TlsConfig {
    TlsConfig {
        required: true,
        ca_file: Some(ca.ca_file()),
        ..TlsConfig::default()
    }
}

fn tls_server_config(pki: &Pki, verify_clients: bool) -> String {
    let clients = if verify_clients {
        format!(
            "  ca_file: \"{}\"\n  verify: true\n",
            pki.ca_file().display()
        )
    } else {
        String::new()
    };
    format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n{clients}}}\n",
        pki.server_cert_file().display(),
        pki.server_key_file().display()
    )
}

#[tokio::test]
async fn a_tls_only_server_is_trusted_through_its_ca_and_a_wrong_ca_is_refused_clearly() {
    let pki = Pki::new();
    let server = NatsServer::start_with_config(&tls_server_config(&pki, false), &[]).await;
    works(&NatsConfig {
        tls: tls(&pki),
        ..bare(&server)
    })
    .await;

    let error = connect(
        &NatsConfig {
            tls: tls(&Pki::other()),
            ..bare(&server)
        },
        "connect-test",
    )
    .await
    .unwrap_err();
    assert!(matches!(error, ConnectError::Refused(_)), "{error:?}");
    assert!(
        error.to_string().contains("invalid peer certificate"),
        "{error}"
    );
}

#[tokio::test]
async fn a_server_that_verifies_clients_admits_only_a_certificate_from_its_ca() {
    let pki = Pki::new();
    let server = NatsServer::start_with_config(&tls_server_config(&pki, true), &[]).await;
    let with_certificate = |pki_of_client: &Pki| NatsConfig {
        tls: TlsConfig {
            cert_file: Some(pki_of_client.client_cert_file()),
            key_file: Some(pki_of_client.client_key_file()),
            ..tls(&pki)
        },
        ..bare(&server)
    };
    works(&with_certificate(&pki)).await;

    for (what, config) in [
        (
            "no certificate",
            NatsConfig {
                tls: tls(&pki),
                ..bare(&server)
            },
        ),
        (
            "a certificate of another CA",
            with_certificate(&Pki::other()),
        ),
    ] {
        let refused = match connect(&config, "connect-test").await {
            Err(error) => matches!(error, ConnectError::Refused(_)),
            Ok(client) => tokio::time::timeout(Duration::from_secs(2), client.flush())
                .await
                .map_or(true, |flushed| flushed.is_err()),
        };
        assert!(refused, "a client with {what} was admitted");
    }
}

/// A server that knows one identity: `with` puts a secret file (a seed, a `.creds` file) on a
/// config; the trusted one works, the other is refused for authorization.
async fn admits_only_the_trusted(
    server: &NatsServer,
    with: fn(&NatsServer, PathBuf) -> NatsConfig,
    trusted: &str,
    other: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, secret: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, secret).unwrap();
        path
    };
    works(&with(server, file("trusted", trusted))).await;
    let error = connect(&with(server, file("other", other)), "connect-test")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("authorization violation"),
        "{error}"
    );
}

#[tokio::test]
async fn an_nkey_user_connects_with_its_seed_and_another_seed_is_refused() {
    let user = NkeyUser::new();
    let server = NatsServer::start_with_config(&user.server_config(), &[]).await;
    let with_seed = |server: &NatsServer, seed: PathBuf| NatsConfig {
        nkey_seed_file: Some(seed),
        ..bare(server)
    };
    admits_only_the_trusted(&server, with_seed, &user.seed, &NkeyUser::new().seed).await;
}

#[tokio::test]
async fn a_creds_file_of_the_trusted_operator_connects_and_another_is_refused() {
    let trusted = Decentralized::new();
    let server = NatsServer::start_with_config(&trusted.server_config(), &[]).await;
    let with_creds = |server: &NatsServer, creds: PathBuf| NatsConfig {
        credentials_file: Some(creds),
        ..bare(server)
    };
    admits_only_the_trusted(
        &server,
        with_creds,
        &trusted.creds,
        &Decentralized::new().creds,
    )
    .await;
}
