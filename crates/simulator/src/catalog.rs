//! The simulated directory: a few states, their counties, and feeds; the county
//! [`EXAMPLE_COUNTY`] holds every simulated system and talkgroup, so a client that resolves it
//! through the directory polls exactly the talkgroups the generator makes calls on.

/// A state: (stid, name, postal code).
pub const STATES: &[(i64, &str, &str)] = &[
    (6, "California", "CA"),
    (32, "Nevada", "NV"),
    (48, "Texas", "TX"),
];

/// The county with every simulated system.
pub const EXAMPLE_COUNTY: i64 = 207;

/// A county: (ctid, stid, name). Texas has none, so an empty list is exercised too.
pub const COUNTIES: &[(i64, i64, &str)] = &[
    (EXAMPLE_COUNTY, 6, "Example County"),
    (208, 6, "Quiet County"),
    (1750, 32, "Clark"),
];

/// A live-audio feed: (feed id, ctid, name, genre, online, listeners).
pub const FEEDS: &[(i64, i64, &str, &str, bool, i64)] = &[
    (
        31001,
        EXAMPLE_COUNTY,
        "Example County Fire and EMS",
        "Public Safety",
        true,
        42,
    ),
    (
        31002,
        EXAMPLE_COUNTY,
        "Example County Sheriff",
        "Public Safety",
        false,
        0,
    ),
    (31003, 208, "Quiet County Fire", "Public Safety", true, 3),
];

/// The name the simulated trunked system `sid` goes by.
pub fn system_name(sid: i64) -> String {
    format!(
        "Example County Trunked {}",
        sid - crate::world::FIRST_SID + 1
    )
}
