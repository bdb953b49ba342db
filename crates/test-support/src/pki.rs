//! A throwaway certificate authority for TLS tests: a CA, a server certificate for `localhost`
//! and `127.0.0.1`, and a client certificate, as PEM files in a temporary directory; plus a
//! second, unrelated CA ([`Pki::other`]) to show that a wrong one is refused.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// PEM files of one test CA and the certificates it signed; removed on drop.
#[derive(Debug)]
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A new CA with a server certificate (`localhost`, `127.0.0.1`) and a client certificate
    /// (`client`) signed by it.
    ///
    /// # Panics
    ///
    /// When a key cannot be generated or a file written.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("pki-").tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let write = |name: &str, pem: &str| std::fs::write(dir.path().join(name), pem).unwrap();
        write("ca.pem", &ca.pem());
        for (name, alt_names) in [
            (
                "server",
                vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            ),
            ("client", vec!["client".to_owned()]),
        ] {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(alt_names)
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            write(&format!("{name}.pem"), &cert.pem());
            write(&format!("{name}.key"), &key.serialize_pem());
        }
        Self { dir }
    }

    /// Another CA and its certificates, which trust nothing of this one.
    pub fn other() -> Self {
        Self::new()
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate (`localhost`, `127.0.0.1`).
    pub fn server_cert_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server's key.
    pub fn server_key_file(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// The client certificate.
    pub fn client_cert_file(&self) -> PathBuf {
        self.dir.path().join("client.pem")
    }

    /// The client's key.
    pub fn client_key_file(&self) -> PathBuf {
        self.dir.path().join("client.key")
    }

    /// The contents of one of the files, e.g. `pki.pem(&pki.ca_file())`.
    ///
    /// # Panics
    ///
    /// When it cannot be read.
    pub fn pem(&self, file: &Path) -> String {
        std::fs::read_to_string(file).unwrap()
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}
