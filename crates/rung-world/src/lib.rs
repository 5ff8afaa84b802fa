//! rung's embedded world: an offline, deterministic AppWorld-like world.

pub mod apps;
pub mod db;
pub mod population;
pub mod time;
pub mod sandbox;
pub mod world;
