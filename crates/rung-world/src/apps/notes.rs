//! `notes`: (being written).

use rand_chacha::ChaCha8Rng;

use super::ApiSpec;
use crate::db::Db;

pub(super) fn apis() -> Vec<ApiSpec> {
    vec![]
}

pub(super) fn populate(_db: &mut Db, _rng: &mut ChaCha8Rng, _now: &str) {}
