//! The API's handlers, one file per resource.

pub mod calls;
pub mod console;
pub mod directory;
pub mod events;
pub mod openapi;
pub mod search;
pub mod talkgroups;
