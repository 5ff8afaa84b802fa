//! How an API is declared: typed parameters with defaults and constraints, validated before the
//! handler runs, and documented from the same declaration (what `api_docs` returns).

use serde_json::{Map, Value, json};

use crate::db::Id;
use crate::world::World;

/// An API failure, surfaced to agent code as an exception carrying the status code, as in
/// AppWorld (401 unauthorised, 404 not found, 409 conflict, 422 invalid input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP-like status code.
    pub status: u16,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// 401: missing, invalid or expired token, or wrong credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: 401,
            message: message.into(),
        }
    }
    /// 404: the addressed record does not exist (or belongs to someone else).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: 404,
            message: message.into(),
        }
    }
    /// 409: the request conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self {
            status: 409,
            message: message.into(),
        }
    }
    /// 422: the arguments are invalid.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: 422,
            message: message.into(),
        }
    }
}

/// Result of an API handler.
pub type ApiResult = Result<Value, ApiError>;

/// Type of a parameter, as `show_api_doc` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// Text.
    Str,
    /// Whole number.
    Int,
    /// Number (an int is accepted).
    Float,
    /// True or false.
    Bool,
    /// A list of texts.
    StrList,
    /// A list of whole numbers.
    IntList,
    /// Text, a number or a boolean (answers).
    Scalar,
}

impl ParamType {
    fn name(self) -> &'static str {
        match self {
            ParamType::Str => "string",
            ParamType::Int => "integer",
            ParamType::Float => "number",
            ParamType::Bool => "boolean",
            ParamType::StrList => "list[string]",
            ParamType::IntList => "list[integer]",
            ParamType::Scalar => "string | number | boolean",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        match self {
            ParamType::Str => value.is_string(),
            ParamType::Int => value.is_i64() || value.is_u64(),
            ParamType::Float => value.is_number(),
            ParamType::Bool => value.is_boolean(),
            ParamType::StrList => value
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string)),
            ParamType::IntList => value
                .as_array()
                .is_some_and(|a| a.iter().all(|v| v.is_i64())),
            ParamType::Scalar => value.is_string() || value.is_number() || value.is_boolean(),
        }
    }
}

/// A constraint on a parameter's value, checked before the handler runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Constraint {
    /// Number ≥ bound.
    Min(f64),
    /// Number ≤ bound.
    Max(f64),
    /// Text or list length ≥ bound.
    MinLen(usize),
    /// Text or list length ≤ bound.
    MaxLen(usize),
    /// Text is one of these.
    OneOf(&'static [&'static str]),
}

impl Constraint {
    fn describe(&self) -> String {
        match self {
            Constraint::Min(b) => format!("value >= {b}"),
            Constraint::Max(b) => format!("value <= {b}"),
            Constraint::MinLen(b) => format!("length >= {b}"),
            Constraint::MaxLen(b) => format!("length <= {b}"),
            Constraint::OneOf(options) => format!("value in {options:?}"),
        }
    }

    fn check(&self, value: &Value) -> bool {
        let len = match value {
            Value::String(s) => Some(s.chars().count()),
            Value::Array(a) => Some(a.len()),
            _ => None,
        };
        match self {
            Constraint::Min(b) => value.as_f64().is_none_or(|v| v >= *b),
            Constraint::Max(b) => value.as_f64().is_none_or(|v| v <= *b),
            Constraint::MinLen(b) => len.is_none_or(|l| l >= *b),
            Constraint::MaxLen(b) => len.is_none_or(|l| l <= *b),
            Constraint::OneOf(options) => value.as_str().is_none_or(|s| options.contains(&s)),
        }
    }
}

/// One parameter of an API.
#[derive(Debug, Clone)]
pub struct Param {
    /// Keyword name.
    pub name: &'static str,
    /// Accepted type.
    pub ty: ParamType,
    /// Whether the caller must pass it.
    pub required: bool,
    /// Value used when omitted (`null` for optional parameters without default).
    pub default: Value,
    /// What it means.
    pub description: &'static str,
    /// Checked before the handler runs.
    pub constraints: Vec<Constraint>,
}

/// A required parameter.
pub fn req(name: &'static str, ty: ParamType, description: &'static str) -> Param {
    Param {
        name,
        ty,
        required: true,
        default: Value::Null,
        description,
        constraints: vec![],
    }
}

/// An optional parameter with a default (`Value::Null` for "not given").
pub fn opt(name: &'static str, ty: ParamType, default: Value, description: &'static str) -> Param {
    Param {
        name,
        ty,
        required: false,
        default,
        description,
        constraints: vec![],
    }
}

impl Param {
    /// Adds a constraint.
    pub fn with(mut self, constraint: Constraint) -> Self {
        self.constraints.push(constraint);
        self
    }
}

/// The pagination parameters every list API shares: `page_index` from 0, `page_limit` 1–20.
pub fn page_params() -> [Param; 2] {
    [
        opt(
            "page_index",
            ParamType::Int,
            json!(0),
            "Page to return, from 0.",
        )
        .with(Constraint::Min(0.0)),
        opt("page_limit", ParamType::Int, json!(5), "Results per page.")
            .with(Constraint::Min(1.0))
            .with(Constraint::Max(20.0)),
    ]
}

/// What an API needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, no token.
    Open,
    /// An `access_token` from this app's `login`.
    Token,
}

/// The handler of an API.
pub type Handler = fn(&mut Call<'_>) -> ApiResult;

/// One API of one app.
#[derive(Debug, Clone)]
pub struct ApiSpec {
    /// App name (`mail`).
    pub app: &'static str,
    /// API name (`send_mail`).
    pub name: &'static str,
    /// HTTP method shown in the doc.
    pub method: &'static str,
    /// HTTP path shown in the doc.
    pub path: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Whether it needs a token.
    pub access: Access,
    /// Parameters besides `access_token`.
    pub params: Vec<Param>,
    /// An example of a successful result, shown in the doc.
    pub returns: &'static str,
    /// The implementation.
    pub handler: Handler,
}

impl ApiSpec {
    /// Starts a declaration.
    pub fn new(
        app: &'static str,
        name: &'static str,
        method: &'static str,
        path: &'static str,
    ) -> Self {
        Self {
            app,
            name,
            method,
            path,
            description: "",
            access: Access::Token,
            params: Vec::new(),
            returns: "null",
            handler: |_| Ok(Value::Null),
        }
    }

    /// Sets the description.
    pub fn doc(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }

    /// Makes the API callable without a token.
    pub fn open(mut self) -> Self {
        self.access = Access::Open;
        self
    }

    /// Adds parameters.
    pub fn params(mut self, params: impl IntoIterator<Item = Param>) -> Self {
        self.params.extend(params);
        self
    }

    /// Sets the example result.
    pub fn returns(mut self, example: &'static str) -> Self {
        self.returns = example;
        self
    }

    /// Sets the handler.
    pub fn handler(mut self, handler: Handler) -> Self {
        self.handler = handler;
        self
    }

    /// All parameters in call order, `access_token` first when required.
    pub fn all_params(&self) -> Vec<Param> {
        let mut all = Vec::with_capacity(self.params.len() + 1);
        if self.access == Access::Token {
            all.push(req(
                "access_token",
                ParamType::Str,
                "Access token from this app's login API.",
            ));
        }
        all.extend(self.params.iter().cloned());
        all
    }

    /// The document `show_api_doc` returns.
    pub fn doc_json(&self) -> Value {
        let params: Vec<Value> = self
            .all_params()
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "type": p.ty.name(),
                    "required": p.required,
                    "description": p.description,
                    "default": p.default,
                    "constraints": p.constraints.iter().map(Constraint::describe).collect::<Vec<_>>(),
                })
            })
            .collect();
        let success: Value = serde_json::from_str(self.returns).unwrap_or(Value::Null);
        json!({
            "app_name": self.app,
            "api_name": self.name,
            "path": self.path,
            "method": self.method,
            "description": self.description,
            "parameters": params,
            "response_schemas": {"success": success, "failure": {"message": "string"}},
        })
    }

    /// Binds call arguments to parameters: positional in declaration order, then keywords;
    /// checks types and constraints and fills defaults.
    pub fn bind(
        &self,
        positional: Vec<Value>,
        named: Vec<(String, Value)>,
    ) -> Result<Args, ApiError> {
        let params = self.all_params();
        if positional.len() > params.len() {
            return Err(ApiError::invalid(format!(
                "{}.{} takes {} arguments but {} were given",
                self.app,
                self.name,
                params.len(),
                positional.len()
            )));
        }
        let mut given: Map<String, Value> = Map::new();
        for (param, value) in params.iter().zip(positional) {
            given.insert(param.name.to_owned(), value);
        }
        for (name, value) in named {
            if !params.iter().any(|p| p.name == name) {
                let known: Vec<&str> = params.iter().map(|p| p.name).collect();
                return Err(ApiError::invalid(format!(
                    "{}.{} got an unexpected argument '{name}'; its parameters are: {}",
                    self.app,
                    self.name,
                    known.join(", ")
                )));
            }
            if given.insert(name.clone(), value).is_some() {
                return Err(ApiError::invalid(format!("argument '{name}' given twice")));
            }
        }
        let mut values = Map::new();
        for param in &params {
            let value = match given.remove(param.name) {
                Some(Value::Null) if !param.required => param.default.clone(),
                Some(value) => value,
                None if param.name == "access_token" => {
                    return Err(ApiError::unauthorized(format!(
                        "Your access token is missing: pass access_token=... from apis.{}.login(username=..., password=...).",
                        self.app
                    )));
                }
                None if param.required => {
                    return Err(ApiError::invalid(format!(
                        "missing required argument '{}'",
                        param.name
                    )));
                }
                None => param.default.clone(),
            };
            if !value.is_null() || param.required {
                if !param.ty.accepts(&value) {
                    return Err(ApiError::invalid(format!(
                        "argument '{}' must be of type {}, got {}",
                        param.name,
                        param.ty.name(),
                        type_name(&value)
                    )));
                }
                if let Some(c) = param.constraints.iter().find(|c| !c.check(&value)) {
                    return Err(ApiError::invalid(format!(
                        "argument '{}' violates constraint: {}",
                        param.name,
                        c.describe()
                    )));
                }
            }
            values.insert(param.name.to_owned(), value);
        }
        Ok(Args(values))
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "None",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Validated arguments of a call. Accessors never fail for declared parameters of the declared
/// type (validation happened in [`ApiSpec::bind`]); they panic on a handler bug.
#[derive(Debug, Clone, PartialEq)]
pub struct Args(Map<String, Value>);

impl Args {
    fn get(&self, name: &str) -> &Value {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("API handler read undeclared parameter '{name}'"))
    }
    /// A text argument (required or with a default).
    pub fn str(&self, name: &str) -> &str {
        self.get(name)
            .as_str()
            .unwrap_or_else(|| panic!("parameter '{name}' is not a string"))
    }
    /// An optional text argument.
    pub fn opt_str(&self, name: &str) -> Option<&str> {
        self.get(name).as_str()
    }
    /// A whole-number argument.
    pub fn int(&self, name: &str) -> i64 {
        self.get(name)
            .as_i64()
            .unwrap_or_else(|| panic!("parameter '{name}' is not an integer"))
    }
    /// An optional whole-number argument.
    pub fn opt_int(&self, name: &str) -> Option<i64> {
        self.get(name).as_i64()
    }
    /// An id argument (ids are positive; anything else matches no record).
    pub fn id(&self, name: &str) -> Id {
        Id::try_from(self.int(name)).unwrap_or(0)
    }
    /// A number argument.
    pub fn num(&self, name: &str) -> f64 {
        self.get(name)
            .as_f64()
            .unwrap_or_else(|| panic!("parameter '{name}' is not a number"))
    }
    /// An optional number argument.
    pub fn opt_num(&self, name: &str) -> Option<f64> {
        self.get(name).as_f64()
    }
    /// A boolean argument.
    pub fn bool(&self, name: &str) -> bool {
        self.get(name)
            .as_bool()
            .unwrap_or_else(|| panic!("parameter '{name}' is not a boolean"))
    }
    /// An optional boolean argument.
    pub fn opt_bool(&self, name: &str) -> Option<bool> {
        self.get(name).as_bool()
    }
    /// A scalar argument, `None` when null.
    pub fn scalar(&self, name: &str) -> Option<Value> {
        Some(self.get(name).clone()).filter(|v| !v.is_null())
    }
    /// A list-of-texts argument.
    pub fn str_list(&self, name: &str) -> Vec<String> {
        self.opt_str_list(name).unwrap_or_default()
    }
    /// An optional list-of-texts argument.
    pub fn opt_str_list(&self, name: &str) -> Option<Vec<String>> {
        self.get(name).as_array().map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
    }
    /// `page_index` and `page_limit` as a slice range.
    pub fn page(&self) -> (usize, usize) {
        let index = self.int("page_index").max(0) as usize;
        let limit = self.int("page_limit").clamp(1, 20) as usize;
        (index * limit, limit)
    }
}

/// One API call being served.
pub struct Call<'a> {
    /// The world, mutable.
    pub world: &'a mut World,
    /// The validated arguments.
    pub args: Args,
    /// The authenticated person (`None` for open APIs).
    pub user: Option<Id>,
    /// The app whose API is called.
    pub app: &'static str,
}

impl Call<'_> {
    /// The authenticated person; token-protected handlers only.
    pub fn user(&self) -> Id {
        self.user
            .expect("token-protected API called without an authenticated user")
    }
}

/// Applies `(start, limit)` pagination to an iterator.
pub fn paginate<T>(items: impl IntoIterator<Item = T>, (start, limit): (usize, usize)) -> Vec<T> {
    items.into_iter().skip(start).take(limit).collect()
}

/// Case-insensitive substring match; an empty or absent query matches everything.
pub fn matches(query: Option<&str>, haystacks: &[&str]) -> bool {
    match query.map(str::trim) {
        None | Some("") => true,
        Some(q) => {
            let q = q.to_lowercase();
            haystacks.iter().any(|h| h.to_lowercase().contains(&q))
        }
    }
}

/// Rounds money to cents.
pub fn cents(x: f64) -> f64 {
    // `+ 0.0` turns -0.0 (an empty float sum) into 0.0 so it never prints as "-0.0".
    (x * 100.0).round() / 100.0 + 0.0
}
