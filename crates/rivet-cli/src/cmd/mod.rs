//! One module per command or command group.

pub mod bench;
pub mod check;
pub mod compact;
pub mod data;
pub mod export;
pub mod import;
pub mod info;
pub mod pages;
pub mod stats;
pub mod surgery;
pub mod version;
