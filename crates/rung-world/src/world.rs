//! A running world: the database plus the per-episode session (tokens, the supervisor, the task's
//! completion), and the entry point for API calls.

use std::collections::HashMap;

use serde_json::Value;

use crate::apps::{self, ApiError, ApiResult};
use crate::db::{Db, Id};

/// What the agent reported through `apis.supervisor.complete_task`.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The answer, if the task asked a question (`None` otherwise).
    pub answer: Option<Value>,
    /// `success` or `fail`.
    pub status: String,
}

/// A world in which one episode runs (the default one is empty: a placeholder).
#[derive(Debug, Clone, Default)]
pub struct World {
    /// All persistent state.
    pub db: Db,
    /// The current date and time (the world's clock does not advance within an episode).
    pub now: String,
    /// The person the agent works for.
    pub supervisor_id: Id,
    /// The task being worked on, shown by `supervisor.show_active_task`.
    pub task: Option<(String, String)>,
    /// Set by `supervisor.complete_task`.
    pub completion: Option<Completion>,
    tokens: HashMap<String, (&'static str, Id)>,
    tokens_issued: u64,
}

impl World {
    /// A world over `db` at time `now`, working for `supervisor_id`.
    pub fn new(db: Db, now: impl Into<String>, supervisor_id: Id) -> Self {
        Self {
            db,
            now: now.into(),
            supervisor_id,
            task: None,
            completion: None,
            tokens: HashMap::new(),
            tokens_issued: 0,
        }
    }

    /// Calls `app.api` with positional and keyword arguments, as agent code does.
    pub fn call(
        &mut self,
        app: &str,
        api: &str,
        positional: Vec<Value>,
        named: Vec<(String, Value)>,
    ) -> ApiResult {
        let spec = apps::registry().api(app, api)?;
        let args = spec.bind(positional, named)?;
        let user = match spec.access {
            apps::Access::Open => None,
            apps::Access::Token => Some(self.authenticate(spec.app, args.str("access_token"))?),
        };
        (spec.handler)(&mut apps::Call {
            world: self,
            args,
            user,
            app: spec.app,
        })
    }

    /// Issues a token for `person` in `app`.
    pub(crate) fn issue_token(&mut self, app: &'static str, person: Id) -> String {
        self.tokens_issued += 1;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in app
            .bytes()
            .chain(person.to_le_bytes())
            .chain(self.tokens_issued.to_le_bytes())
        {
            h = (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        let token = format!("{:012x}", h >> 16);
        self.tokens.insert(token.clone(), (app, person));
        token
    }

    /// Invalidates a token (logout).
    pub(crate) fn revoke_token(&mut self, token: &str) {
        self.tokens.remove(token);
    }

    fn authenticate(&self, app: &str, token: &str) -> Result<Id, ApiError> {
        match self.tokens.get(token) {
            Some((token_app, person)) if *token_app == app => Ok(*person),
            _ => Err(ApiError::unauthorized(format!(
                "You are either not authorized to access this {app} API endpoint or your access token is \
                 missing, invalid or expired. Get a token with apis.{app}.login(username=..., password=...)."
            ))),
        }
    }
}
