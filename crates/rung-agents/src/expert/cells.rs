//! Cutting gold code into the cells an expert writes, and deriving its reports.
//!
//! Gold code is Python-like text, so these functions scan it with a small lexer that knows
//! string literals and brackets, enough to find `apis.<app>.<api>(…)` calls and their keyword
//! arguments reliably.

use std::ops::Range;

use rung_world::sandbox::{FAILED, SUCCESSFUL};

/// Characters of an output quoted in a report.
pub(crate) const REPORT_CHARS: usize = 300;

/// Apps every agent uses as tools; a sub-task's "main" API is never one of theirs.
const TOOL_APPS: [&str; 2] = ["api_docs", "supervisor"];

/// One `apis.<app>.<api>(…)` call found in code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiCall {
    pub app: String,
    pub api: String,
    /// Keyword arguments at the call's top level.
    pub keywords: Vec<Keyword>,
    /// Byte range of the whole call, from `apis.` to its closing parenthesis.
    pub span: Range<usize>,
}

/// A keyword argument of an [`ApiCall`], with byte ranges into the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keyword {
    pub name: String,
    /// Where the name is.
    pub span: Range<usize>,
    /// Where the value expression is (trimmed).
    pub value: Range<usize>,
}

/// Splits gold code into its leading login lines (the profile and passwords look-ups and
/// `<app>_token = apis.<app>.login(…)` lines) and the rest.
pub(crate) fn split_login(code: &str) -> (Option<String>, String) {
    let lines: Vec<&str> = code.lines().collect();
    let login = lines
        .iter()
        .take_while(|line| {
            let line = line.trim_start();
            line.starts_with("profile = apis.supervisor.show_profile()")
                || line.starts_with("passwords = ")
                || is_login_line(line)
        })
        .count();
    let head = lines[..login].join("\n");
    let body = lines[login..].join("\n");
    ((!head.trim().is_empty()).then_some(head), body)
}

pub(crate) fn is_login_line(line: &str) -> bool {
    line.split_once(" = ").is_some_and(|(var, call)| {
        var.ends_with("_token") && call.starts_with("apis.") && call.contains(".login(")
    })
}

/// The code cell that shows an API's documentation.
pub(crate) fn docs_cell(app: &str, api: &str) -> String {
    format!("print(apis.api_docs.show_api_doc(app_name=\"{app}\", api_name=\"{api}\"))")
}

/// Every API call in `code`, in textual order.
pub(crate) fn api_calls(code: &str) -> Vec<ApiCall> {
    let bytes = code.as_bytes();
    let mut calls = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if let Some(end) = skip_string(bytes, i) {
            i = end;
            continue;
        }
        let boundary = i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != b'.';
        if boundary
            && code[i..].starts_with("apis.")
            && let Some((mut call, end)) = parse_call(code, i + "apis.".len())
        {
            call.span = i..end;
            calls.push(call);
        }
        i += 1;
    }
    calls
}

/// The API a sub-task is about: its first call outside the tool apps.
pub(crate) fn main_api(code: &str) -> Option<(String, String)> {
    api_calls(code)
        .into_iter()
        .find(|c| !TOOL_APPS.contains(&c.app.as_str()) && c.api != "login")
        .map(|c| (c.app, c.api))
}

/// The last API called in `code`, textually.
fn last_api(code: &str) -> Option<(String, String)> {
    api_calls(code).pop().map(|c| (c.app, c.api))
}

/// `code` with one keyword argument of its first API call renamed to a plausible wrong name,
/// and the call's app and API. The first call runs before any other, so the renamed argument
/// fails the cell before anything changed. `parameters` gives an API's real parameter names;
/// without them no mistake is made, since a "wrong" name that exists could change the world.
pub(crate) fn wrong_parameter(
    code: &str,
    parameters: impl Fn(&str, &str) -> Option<Vec<String>>,
) -> Option<(String, String, String)> {
    let call = api_calls(code).into_iter().next()?;
    let known = parameters(&call.app, &call.api)?;
    let keyword = call
        .keywords
        .iter()
        .find(|k| k.name != "access_token")
        .or_else(|| call.keywords.first())?;
    let name = &keyword.name;
    let wrong = wrong_names(name)
        .into_iter()
        .find(|w| !w.is_empty() && w != name && !known.contains(w))?;
    let mut mutated = code.to_owned();
    mutated.replace_range(keyword.span.clone(), &wrong);
    Some((mutated, call.app, call.api))
}

/// Wrong names a person might guess for a parameter, most plausible first.
fn wrong_names(name: &str) -> Vec<String> {
    let common = match name {
        "relationship" => Some("relation"),
        "query" => Some("search"),
        "access_token" => Some("token"),
        "message" => Some("text"),
        "content" => Some("text"),
        "subject" => Some("title"),
        "body" => Some("content"),
        "amount" => Some("value"),
        "title" => Some("name"),
        _ => None,
    };
    let mut names: Vec<String> = common.into_iter().map(str::to_owned).collect();
    if let Some(singular) = name.strip_suffix('s') {
        names.push(singular.to_owned());
    }
    if let Some((first, last)) = name.rsplit_once('_') {
        names.push(last.to_owned());
        names.push(first.to_owned());
    }
    names.push(format!("{name}s"));
    names.push(format!("{name}_name"));
    names
}

/// The short result an expert reports after running `code` that printed `output`: `var = value`
/// when the code ends by printing a variable, `called app.api` when it printed nothing, the
/// (shortened) output otherwise. Depends only on the last line and the called APIs, so the
/// gold code of a sub-task and the expert's last cell for it give the same report.
pub(crate) fn report_from(code: &str, output: &str) -> String {
    let output = output.trim();
    if output.starts_with(FAILED) {
        let error = output.lines().last().unwrap_or(output);
        return format!("failed: {}", shorten(error, REPORT_CHARS));
    }
    let last_line = code.trim_end().lines().last().unwrap_or("").trim();
    if let Some(var) = printed_variable(last_line) {
        return format!("{var} = {}", shorten(output, REPORT_CHARS));
    }
    if output == SUCCESSFUL {
        return match last_api(code) {
            Some((app, api)) => format!("called {app}.{api}"),
            None => "done".to_owned(),
        };
    }
    shorten(output, REPORT_CHARS)
}

/// The variable in a `print(name)` line.
fn printed_variable(line: &str) -> Option<&str> {
    let inner = line.strip_prefix("print(")?.strip_suffix(')')?;
    let ok =
        !inner.is_empty() && !inner.as_bytes()[0].is_ascii_digit() && inner.bytes().all(is_ident);
    ok.then_some(inner)
}

/// `text` on one line, cut to `max` characters with a trailing `…`. Unlike
/// [`crate::prompts::clip`] it does not say how much was cut, so shortening an already clipped
/// observation gives the same text as shortening the full one.
fn shorten(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(max) {
        None => one_line,
        Some((end, _)) => format!("{}…", &one_line[..end]),
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// If a string literal starts at `i` (with an optional f/r/b prefix), the index after it.
fn skip_string(bytes: &[u8], i: usize) -> Option<usize> {
    let mut start = i;
    while start < bytes.len() && matches!(bytes[start], b'f' | b'r' | b'b' | b'F' | b'R' | b'B') {
        start += 1;
    }
    if start > i && (i > 0 && is_ident(bytes[i - 1])) {
        return None;
    }
    let quote = *bytes.get(start)?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    if start > i && start - i > 2 {
        return None;
    }
    let triple = bytes.get(start..start + 3) == Some(&[quote; 3][..]);
    let mut j = start + if triple { 3 } else { 1 };
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            b if b == quote => {
                if !triple {
                    return Some(j + 1);
                }
                if bytes.get(j..j + 3) == Some(&[quote; 3][..]) {
                    return Some(j + 3);
                }
                j += 1;
            }
            b'\n' if !triple => return Some(j),
            _ => j += 1,
        }
    }
    Some(bytes.len())
}

fn ident_at(code: &str, i: usize) -> Option<(&str, usize)> {
    let bytes = code.as_bytes();
    let end = (i..bytes.len())
        .find(|&j| !is_ident(bytes[j]))
        .unwrap_or(bytes.len());
    (end > i && !bytes[i].is_ascii_digit()).then(|| (&code[i..end], end))
}

/// Parses `<app>.<api>(…)` at `i`; returns the call and the index after its `)`.
fn parse_call(code: &str, i: usize) -> Option<(ApiCall, usize)> {
    let bytes = code.as_bytes();
    let (app, i) = ident_at(code, i)?;
    if bytes.get(i) != Some(&b'.') {
        return None;
    }
    let (api, i) = ident_at(code, i + 1)?;
    if bytes.get(i) != Some(&b'(') {
        return None;
    }
    let mut keywords: Vec<Keyword> = Vec::new();
    // The keyword whose value is being read, closed by a top-level comma or the `)`.
    let mut open: Option<usize> = None;
    let close = |keywords: &mut Vec<Keyword>, open: &mut Option<usize>, at: usize| {
        if let Some(k) = open.take() {
            let start = keywords[k].value.start;
            let end = start + code[start..at].trim_end().len();
            keywords[k].value = start..end;
        }
    };
    let mut depth = 1;
    let mut expect_argument = true;
    let mut j = i + 1;
    while j < bytes.len() && depth > 0 {
        if let Some(end) = skip_string(bytes, j) {
            j = end;
            expect_argument = false;
            continue;
        }
        let b = bytes[j];
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    close(&mut keywords, &mut open, j);
                }
            }
            b',' if depth == 1 => {
                close(&mut keywords, &mut open, j);
                expect_argument = true;
                j += 1;
                continue;
            }
            _ if b.is_ascii_whitespace() => {
                j += 1;
                continue;
            }
            _ => {}
        }
        if depth == 1
            && expect_argument
            && let Some((name, end)) = ident_at(code, j)
        {
            let after = code[end..].trim_start();
            if after.starts_with('=') && !after.starts_with("==") {
                let value = code.len() - after[1..].trim_start().len();
                keywords.push(Keyword {
                    name: name.to_owned(),
                    span: j..end,
                    value: value..value,
                });
                open = Some(keywords.len() - 1);
                j = value;
            } else {
                j = end;
            }
            expect_argument = false;
            continue;
        }
        expect_argument = false;
        j += 1;
    }
    (depth == 0).then(|| {
        (
            ApiCall {
                app: app.to_owned(),
                api: api.to_owned(),
                keywords,
                span: 0..j,
            },
            j,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLD: &str = "profile = apis.supervisor.show_profile()\npasswords = {a[\"account_name\"]: a[\"password\"] for a in apis.supervisor.show_account_passwords()}\nphone_token = apis.phone.login(username=profile[\"phone_number\"], password=passwords[\"phone\"])[\"access_token\"]\nson = apis.phone.search_contacts(access_token=phone_token, relationship=\"son\")[0]\nprint(son)";

    #[test]
    fn login_lines_are_split_off() {
        let (login, body) = split_login(GOLD);
        let login = login.unwrap();
        assert!(login.starts_with("profile = ") && login.ends_with("[\"access_token\"]"));
        assert_eq!(login.lines().count(), 3);
        assert_eq!(
            body,
            "son = apis.phone.search_contacts(access_token=phone_token, relationship=\"son\")[0]\nprint(son)"
        );
        let (none, same) = split_login("print(1)");
        assert_eq!((none, same.as_str()), (None, "print(1)"));
    }

    #[test]
    fn api_calls_are_found_outside_strings() {
        let code = "x = \"apis.fake.call(a=1)\"\nfor m in apis.mail.show_inbox(access_token=mail_token, sender_email=son[\"email\"], page_index=page):\n    apis.mail.star_mail(access_token=mail_token, mail_id=m[\"mail_id\"])";
        let calls = api_calls(code);
        assert_eq!(calls.len(), 2);
        assert_eq!(
            (calls[0].app.as_str(), calls[0].api.as_str()),
            ("mail", "show_inbox")
        );
        let names: Vec<&str> = calls[0].keywords.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["access_token", "sender_email", "page_index"]);
        assert_eq!(&code[calls[0].keywords[1].span.clone()], "sender_email");
        assert_eq!(&code[calls[0].keywords[1].value.clone()], "son[\"email\"]");
        assert_eq!(&code[calls[0].keywords[2].value.clone()], "page");
        assert_eq!(
            &code[calls[1].span.clone()],
            "apis.mail.star_mail(access_token=mail_token, mail_id=m[\"mail_id\"])"
        );
        assert_eq!(
            main_api(GOLD),
            Some(("phone".into(), "search_contacts".into()))
        );
        let nested = api_calls("apis.pay.send(amount=round(x, 2), note=f\"a, b={y}\", to=z)");
        let names: Vec<&str> = nested[0].keywords.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["amount", "note", "to"]);
        let code = "apis.pay.send(amount=round(x, 2), note=f\"a, b={y}\", to=z)";
        let values: Vec<&str> = nested[0]
            .keywords
            .iter()
            .map(|k| &code[k.value.clone()])
            .collect();
        assert_eq!(values, ["round(x, 2)", "f\"a, b={y}\"", "z"]);
    }

    #[test]
    fn wrong_parameters_avoid_real_names() {
        let (_, body) = split_login(GOLD);
        let params = |_: &str, _: &str| {
            Some(vec![
                "access_token".into(),
                "relationship".into(),
                "query".into(),
            ])
        };
        let (wrong, app, api) = wrong_parameter(&body, params).unwrap();
        assert_eq!((app.as_str(), api.as_str()), ("phone", "search_contacts"));
        assert!(wrong.contains("relation=\"son\"") && !wrong.contains("relationship"));
        let taken = |_: &str, _: &str| Some(vec!["relation".to_owned()]);
        let (wrong, ..) = wrong_parameter(&body, taken).unwrap();
        assert!(wrong.contains("relationships=\"son\""), "{wrong}");
        assert_eq!(wrong_parameter(&body, |_, _| None), None);
        assert_eq!(wrong_parameter("print(1)", params), None);
    }

    #[test]
    fn reports_follow_the_last_line_and_output() {
        assert_eq!(report_from(GOLD, "{\"a\": 1}\n"), "son = {\"a\": 1}");
        assert_eq!(
            report_from(
                "apis.phone.send_text_message(access_token=t, message=\"hi\")",
                SUCCESSFUL
            ),
            "called phone.send_text_message"
        );
        assert_eq!(report_from("x = 1", SUCCESSFUL), "done");
        assert_eq!(report_from("print(a[0])", "7"), "7");
        assert!(
            report_from("print(x)", &format!("{FAILED}\nNameError: x"))
                .starts_with("failed: NameError")
        );
        let long = "y".repeat(5000);
        let clipped = crate::prompts::clip(&long, crate::prompts::OBSERVATION_CHARS);
        assert_eq!(
            report_from("print(v)", &long),
            report_from("print(v)", &clipped)
        );
        assert_eq!(
            report_from("print(v)", &long).chars().count(),
            4 + REPORT_CHARS + 1
        );
    }
}
