//! What a code cell does, as far as segmentation cares: which apps and APIs it calls, which apps
//! it logs into, and which documentation it looks up.
//!
//! Cells are Python-like text (AppWorld's Python, the embedded world's Starlark subset). A small
//! scanner skips string literals and comments and finds `apis.<app>.<api>(…)` calls at identifier
//! boundaries; for `apis.api_docs.*` calls it reads the `app_name`/`api_name` arguments (keyword or
//! positional string literals), so a documentation look-up counts as evidence for the app it is
//! about.

use std::collections::BTreeSet;

/// Apps every agent uses as tools: calling them says nothing about which sub-task a cell serves.
pub const TOOL_APPS: [&str; 2] = ["supervisor", "api_docs"];

/// One `apis.<app>.<api>(…)` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    /// The app (`phone`).
    pub app: String,
    /// The API (`search_contacts`).
    pub api: String,
    /// Top-level arguments: `(Some(name), value)` for keyword arguments, `(None, value)` for
    /// positional ones; `value` is the literal's text for a string literal, `None` otherwise.
    pub args: Vec<(Option<String>, Option<String>)>,
}

impl ApiCall {
    /// Whether this is a tool app's call (`supervisor`, `api_docs`).
    pub fn is_tool(&self) -> bool {
        TOOL_APPS.contains(&self.app.as_str())
    }

    /// Whether this is a login (`apis.<app>.login(…)`).
    pub fn is_login(&self) -> bool {
        self.api == "login" && !self.is_tool()
    }

    /// A string argument by keyword, or by position when given positionally.
    fn string_arg(&self, name: &str, position: usize) -> Option<&str> {
        let keyword = self
            .args
            .iter()
            .find(|(n, _)| n.as_deref() == Some(name))
            .and_then(|(_, v)| v.as_deref());
        keyword.or_else(|| {
            self.args
                .iter()
                .filter(|(n, _)| n.is_none())
                .nth(position)
                .and_then(|(_, v)| v.as_deref())
        })
    }

    /// For a documentation look-up (`apis.api_docs.*` with an `app_name`), the app and, where
    /// given, the API it is about.
    pub fn docs_target(&self) -> Option<(String, Option<String>)> {
        if self.app != "api_docs" {
            return None;
        }
        let app = self.string_arg("app_name", 0)?;
        let api = self.string_arg("api_name", 1).map(str::to_owned);
        Some((app.to_owned(), api))
    }
}

/// A summary of one cell.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CellInfo {
    /// Every API call, in textual order.
    pub calls: Vec<ApiCall>,
}

impl CellInfo {
    /// Scans `code`.
    pub fn of(code: &str) -> Self {
        Self {
            calls: api_calls(code),
        }
    }

    /// Apps logged into, in order.
    pub fn logins(&self) -> impl Iterator<Item = &str> {
        self.calls
            .iter()
            .filter(|c| c.is_login())
            .map(|c| c.app.as_str())
    }

    /// The evidence a cell gives about what it works on: `app.api` for every non-tool call
    /// (logins included) and for every documentation look-up of an API, `app.*` for a look-up
    /// of a whole app.
    pub fn refs(&self) -> BTreeSet<String> {
        let mut refs = BTreeSet::new();
        for call in &self.calls {
            if let Some((app, api)) = call.docs_target() {
                refs.insert(format!("{app}.{}", api.as_deref().unwrap_or("*")));
            } else if !call.is_tool() {
                refs.insert(format!("{}.{}", call.app, call.api));
            }
        }
        refs
    }

    /// Non-tool apps the cell is about (called, logged into or looked up), in order of first
    /// appearance.
    pub fn apps(&self) -> Vec<String> {
        let mut apps: Vec<String> = Vec::new();
        for call in &self.calls {
            let app = match call.docs_target() {
                Some((app, _)) => app,
                None if call.is_tool() => continue,
                None => call.app.clone(),
            };
            if !apps.contains(&app) {
                apps.push(app);
            }
        }
        apps
    }

    /// The app a cell works on for the app-switch heuristic: the first app it logs into, else
    /// the first non-tool app it calls or looks up.
    pub fn primary_app(&self) -> Option<String> {
        self.logins()
            .next()
            .map(str::to_owned)
            .or_else(|| self.apps().into_iter().next())
    }
}

/// Every API call in `code`, in textual order (strings and comments skipped).
pub fn api_calls(code: &str) -> Vec<ApiCall> {
    let bytes = code.as_bytes();
    let mut calls = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if let Some(end) = skip_string(bytes, i) {
            i = end;
            continue;
        }
        if bytes[i] == b'#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let boundary = i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != b'.';
        if boundary
            && code[i..].starts_with("apis.")
            && let Some((call, end)) = parse_call(code, i + "apis.".len())
        {
            calls.push(call);
            // Calls nested in the arguments are found by scanning on from the `(`.
            i = end;
            continue;
        }
        i += 1;
    }
    calls
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// If a string literal (with an optional `f`/`r`/`b`/`u` prefix) starts at `i`, the index after
/// its end.
fn skip_string(bytes: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    if i > 0 && is_ident(bytes[i - 1]) {
        return None;
    }
    while j < bytes.len()
        && j - i < 2
        && matches!(bytes[j].to_ascii_lowercase(), b'f' | b'r' | b'b' | b'u')
    {
        j += 1;
    }
    let quote = *bytes.get(j)?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let raw = bytes[i..j].iter().any(|b| b.eq_ignore_ascii_case(&b'r'));
    let triple = bytes.len() >= j + 3 && bytes[j + 1] == quote && bytes[j + 2] == quote;
    let mut k = if triple { j + 3 } else { j + 1 };
    while k < bytes.len() {
        let b = bytes[k];
        if b == b'\\' && !raw {
            k += 2;
            continue;
        }
        if triple {
            if b == quote && bytes.len() >= k + 3 && bytes[k + 1] == quote && bytes[k + 2] == quote
            {
                return Some(k + 3);
            }
        } else if b == quote {
            return Some(k + 1);
        } else if b == b'\n' {
            return Some(k);
        }
        k += 1;
    }
    Some(bytes.len())
}

/// Parses `<app>.<api>(args)` starting at `start` (just after `apis.`); returns the call and the
/// index just after its `(`.
fn parse_call(code: &str, start: usize) -> Option<(ApiCall, usize)> {
    let bytes = code.as_bytes();
    let ident = |from: usize| {
        let end = (from..bytes.len())
            .find(|&k| !is_ident(bytes[k]))
            .unwrap_or(bytes.len());
        (end > from).then_some(end)
    };
    let app_end = ident(start)?;
    if bytes.get(app_end) != Some(&b'.') {
        return None;
    }
    let api_end = ident(app_end + 1)?;
    let mut open = api_end;
    while open < bytes.len() && (bytes[open] == b' ' || bytes[open] == b'\t') {
        open += 1;
    }
    if bytes.get(open) != Some(&b'(') {
        return None;
    }
    let args = parse_args(code, open + 1);
    Some((
        ApiCall {
            app: code[start..app_end].to_owned(),
            api: code[app_end + 1..api_end].to_owned(),
            args,
        },
        open + 1,
    ))
}

/// The top-level arguments of a call whose `(` is just before `from`.
fn parse_args(code: &str, from: usize) -> Vec<(Option<String>, Option<String>)> {
    let bytes = code.as_bytes();
    let mut pieces: Vec<(usize, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut piece_start = from;
    let mut i = from;
    while i < bytes.len() {
        if let Some(end) = skip_string(bytes, i) {
            i = end;
            continue;
        }
        match bytes[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth == 0 => {
                pieces.push((piece_start, i));
                break;
            }
            b')' | b']' | b'}' => depth -= 1,
            b',' if depth == 0 => {
                pieces.push((piece_start, i));
                piece_start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    pieces
        .into_iter()
        .map(|(s, e)| code[s..e].trim())
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = match keyword_split(piece) {
                Some((name, value)) => (Some(name.to_owned()), value),
                None => (None, piece),
            };
            (name, string_literal(value))
        })
        .collect()
}

/// `name=value` (not `==`) at the top of an argument.
fn keyword_split(piece: &str) -> Option<(&str, &str)> {
    let eq = piece.find('=')?;
    let name = piece[..eq].trim();
    let rest = &piece[eq + 1..];
    let valid = !name.is_empty()
        && name.bytes().all(is_ident)
        && !name.as_bytes()[0].is_ascii_digit()
        && !rest.starts_with('=');
    valid.then(|| (name, rest.trim()))
}

/// The text of a plain string literal (`"x"` or `'x'`, no escapes processed beyond `\"`).
fn string_literal(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let quote = *bytes.first()?;
    if (quote != b'"' && quote != b'\'') || bytes.len() < 2 || bytes[bytes.len() - 1] != quote {
        return None;
    }
    Some(
        value[1..value.len() - 1]
            .replace("\\\"", "\"")
            .replace("\\'", "'"),
    )
}

/// The non-empty lines of `code`, trimmed.
pub fn normalised_lines(code: &str) -> Vec<&str> {
    code.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Whether the (normalised) lines of `cell` appear as a contiguous run in those of `gold`.
pub fn lines_within(cell: &str, gold: &str) -> bool {
    let cell = normalised_lines(cell);
    let gold = normalised_lines(gold);
    !cell.is_empty() && gold.windows(cell.len()).any(|w| w == cell.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_calls_outside_strings_and_comments() {
        let code = "x = apis.phone.login(username=\"a\", password=p[\"phone\"])\n\
                    # apis.pay.login(username=1)\n\
                    s = \"apis.mail.send_email()\"\n\
                    y = apis.phone.search_contacts(access_token=x[\"access_token\"], relationship='son')";
        let info = CellInfo::of(code);
        let names: Vec<String> = info
            .calls
            .iter()
            .map(|c| format!("{}.{}", c.app, c.api))
            .collect();
        assert_eq!(names, ["phone.login", "phone.search_contacts"]);
        assert_eq!(info.logins().collect::<Vec<_>>(), ["phone"]);
        assert_eq!(info.primary_app().as_deref(), Some("phone"));
        assert_eq!(
            info.calls[1].args,
            vec![
                (Some("access_token".into()), None),
                (Some("relationship".into()), Some("son".into()))
            ]
        );
    }

    #[test]
    fn docs_look_ups_count_for_their_app() {
        let info = CellInfo::of(
            "print(apis.api_docs.show_api_doc(app_name=\"pay\", api_name=\"show_transactions\"))\n\
             print(apis.api_docs.show_api_descriptions('mail'))",
        );
        assert_eq!(info.apps(), ["pay", "mail"]);
        assert_eq!(
            info.refs().into_iter().collect::<Vec<_>>(),
            ["mail.*", "pay.show_transactions"]
        );
        let tools = CellInfo::of("p = apis.supervisor.show_account_passwords()");
        assert!(tools.refs().is_empty());
        assert_eq!(tools.primary_app(), None);
    }

    #[test]
    fn contiguous_lines() {
        assert!(lines_within("  b\n\nc ", "a\nb\nc\nd"));
        assert!(!lines_within("b\nd", "a\nb\nc\nd"));
        assert!(!lines_within("", "a"));
    }
}
