//! `<service> healthcheck`: asks the service's own admin port for `/readyz` and exits 0 when
//! it answers 200, 1 otherwise. Container images without a shell or curl (distroless) use it as
//! their health check command; it reads the same config as the service, so it finds the port.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use crate::admin::AdminConfig;

/// The whole exchange must finish within this.
const PATIENCE: Duration = Duration::from_secs(3);

/// The address to probe: the admin listener, with a wildcard bind replaced by loopback.
fn probe_addr(config: &AdminConfig) -> SocketAddr {
    let mut addr = config.listen_addr;
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(Ipv4Addr::LOCALHOST.into()),
        IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(Ipv6Addr::LOCALHOST.into()),
        _ => {}
    }
    addr
}

/// True when `GET /readyz` on the admin port answers 200.
pub fn ready(config: &AdminConfig) -> bool {
    let exchange = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&probe_addr(config), PATIENCE)?;
        stream.set_read_timeout(Some(PATIENCE))?;
        stream.set_write_timeout(Some(PATIENCE))?;
        stream.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        // "HTTP/1.x 200"
        Ok(head.starts_with(b"HTTP/1.") && &head[9..12] == b"200")
    };
    exchange().unwrap_or(false)
}

/// The exit code for `healthcheck`.
pub fn exit_code(config: &AdminConfig) -> ExitCode {
    if ready(config) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_bind_is_probed_on_loopback() {
        let config = AdminConfig {
            listen_addr: "0.0.0.0:9090".parse().unwrap(),
        };
        assert_eq!(probe_addr(&config), "127.0.0.1:9090".parse().unwrap());
        let config = AdminConfig {
            listen_addr: "10.1.2.3:9091".parse().unwrap(),
        };
        assert_eq!(probe_addr(&config), "10.1.2.3:9091".parse().unwrap());
    }

    #[test]
    fn nothing_listening_is_not_ready() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let config = AdminConfig {
            listen_addr: listener.local_addr().unwrap(),
        };
        drop(listener);
        assert!(!ready(&config));
    }
}
