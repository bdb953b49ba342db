//! `deploy/nats-authorization.conf` is what [`bcfy_bus::access::authorization`] generates from
//! the topology: a change to either shows here. A stale file is rewritten and the test fails,
//! so the change is seen and committed.

use bcfy_bus::access::authorization;
use bcfy_bus::topology::{Topology, TopologyConfig};

#[test]
fn the_shipped_authorization_block_is_the_generated_one() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/nats-authorization.conf");
    let generated = authorization(&Topology::new(TopologyConfig::default()));
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    if shipped != generated {
        std::fs::write(&path, &generated).expect("rewritten");
        panic!(
            "{} was stale and has been regenerated; review and commit it",
            path.display()
        );
    }
}
