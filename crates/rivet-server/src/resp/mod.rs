//! The RESP wire format: request parsing (RESP2 multibulk and inline) and reply encoding
//! (RESP2 and RESP3).

pub mod parse;
pub mod reply;

pub use reply::{Reply, OK};
