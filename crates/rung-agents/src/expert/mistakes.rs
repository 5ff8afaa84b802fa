//! The mistakes models make with a task's data, written as candidate cells: a login with the
//! wrong username, a guessed id, a search whose query finds nothing. Each function only
//! proposes cells; [`verified`] runs them through the gold source's probe, so an expert writes
//! a mistake only once it is known to fail (or find nothing) without touching the world.

use rung_env::{Supervisor, TaskId};
use rung_world::sandbox::FAILED;

use super::cells::{api_calls, is_login_line};
use crate::gold::{GoldSource, ProbedCell};

/// The cell that reads the supervisor's profile, with which a failed login recovers.
pub(crate) const READ_PROFILE: &str = "profile = apis.supervisor.show_profile()\nprint(profile)";

/// What a probed candidate must show to be written as a mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// An error (401, 404, …).
    Failure,
    /// An empty list, printed as `[]`.
    Empty,
}

impl Expect {
    fn holds(self, cell: &ProbedCell) -> bool {
        !cell.changed_state
            && match self {
                Expect::Failure => cell.output.starts_with(FAILED),
                Expect::Empty => cell.output.trim() == "[]",
            }
    }
}

/// The first of `candidates` that, run after `prefix` in a fresh episode of `task`, shows
/// `expect` without changing the world; candidates run one after another in one probe, which
/// is sound because each one that qualifies changed nothing. A failure must name one of
/// `codes` (status codes, so that a cell cut wrongly and failing as a syntax error never
/// passes for an API's answer); an earlier code wins over a later one.
pub(crate) fn verified(
    source: &dyn GoldSource,
    task: &TaskId,
    prefix: &[&str],
    candidates: &[String],
    expect: Expect,
    codes: &[&str],
) -> Option<String> {
    if candidates.is_empty() {
        return None;
    }
    let cells: Vec<&str> = prefix
        .iter()
        .copied()
        .chain(candidates.iter().map(String::as_str))
        .collect();
    let probed = source.probe(task, &cells)?;
    let results = probed.get(prefix.len()..)?;
    // Once a candidate changed the state, later ones ran in a state the episode won't have.
    let sound = results
        .iter()
        .position(|c| c.changed_state)
        .unwrap_or(results.len());
    let ok: Vec<usize> = (0..sound).filter(|&i| expect.holds(&results[i])).collect();
    let chosen = if codes.is_empty() {
        ok.first().copied()
    } else {
        codes.iter().find_map(|code| {
            let code = format!("status code is {code}");
            ok.iter()
                .copied()
                .find(|&i| results[i].output.contains(&code))
        })
    };
    chosen.map(|i| candidates[i].clone())
}

/// Login cells with a wrong username instead of `profile[...]`, most plausible first: another
/// person's email (or phone number, for the phone app) seen in `seen`, then near misses of the
/// supervisor's own. The profile look-up is left out (the mistake is not reading it). `None`
/// when `login` has no login line.
pub(crate) fn wrong_usernames(
    login: &str,
    supervisor: &Supervisor,
    seen: &[String],
) -> Option<Vec<String>> {
    let lines: Vec<&str> = login
        .lines()
        .filter(|l| !l.trim_start().starts_with("profile = "))
        .collect();
    let at = lines.iter().position(|l| is_login_line(l.trim_start()))?;
    let line = lines[at];
    let call = api_calls(line).into_iter().find(|c| c.api == "login")?;
    let username = call.keywords.iter().find(|k| k.name == "username")?;
    let phone = call.app == "phone";
    let own = if phone {
        &supervisor.phone_number
    } else {
        &supervisor.email
    };
    let mut names: Vec<String> = seen
        .iter()
        .filter(|s| s.contains('@') != phone && *s != own)
        .cloned()
        .collect();
    names.extend(near_misses(own, supervisor, phone));
    names.dedup();
    let cells = names
        .iter()
        .filter(|name| *name != own)
        .map(|name| {
            let mut wrong = line.to_owned();
            wrong.replace_range(username.value.clone(), &literal(name));
            let mut cell = lines.clone();
            cell[at] = &wrong;
            cell.join("\n")
        })
        .collect();
    Some(cells)
}

/// The cells after a failed login: read the profile, then log in as the gold code does (the
/// profile look-up itself now done).
pub(crate) fn login_recovery(login: &str) -> Vec<String> {
    let rest: Vec<&str> = login
        .lines()
        .filter(|l| !l.trim_start().starts_with("profile = "))
        .collect();
    vec![READ_PROFILE.to_owned(), rest.join("\n")]
}

/// Usernames a model might type for the supervisor's own and get wrong.
fn near_misses(own: &str, supervisor: &Supervisor, phone: bool) -> Vec<String> {
    if phone {
        let digits: Vec<char> = own.chars().collect();
        let mut misses = Vec::new();
        if let Some(last) = digits.iter().rposition(char::is_ascii_digit) {
            let mut typo = digits.clone();
            let d = typo[last].to_digit(10).unwrap_or(0);
            typo[last] = char::from_digit((d + 1) % 10, 10).unwrap_or('0');
            misses.push(typo.into_iter().collect());
        }
        return misses;
    }
    let (first, last) = (
        supervisor.first_name.to_lowercase(),
        supervisor.last_name.to_lowercase(),
    );
    let domain = own.split_once('@').map_or("mail.com", |(_, d)| d);
    vec![
        format!("{last}.{first}@{domain}"),
        format!("{first}{last}@{domain}"),
        format!("{first}@{domain}"),
    ]
}

/// Emails and phone numbers quoted in outputs (`"email":"…"` fields, with or without a space),
/// in order of appearance.
pub(crate) fn usernames_in(outputs: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for output in outputs {
        for field in ["\"email\":", "\"phone_number\":"] {
            let mut rest = *output;
            while let Some(at) = rest.find(field) {
                rest = &rest[at + field.len()..];
                let Some(value) = rest.trim_start().strip_prefix('"') else {
                    continue;
                };
                rest = value;
                if let Some(end) = rest.find('"') {
                    let value = rest[..end].to_owned();
                    if !value.is_empty() && !found.contains(&value) {
                        found.push(value);
                    }
                }
            }
        }
    }
    found
}

/// Where a sub-task's code passes a looked-up id to an API on a line of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdSite {
    /// The code before that line (it looks the id up).
    pub before: String,
    /// That line and the rest of the code.
    pub tail: String,
    /// The id's expression, in `tail`.
    pub value: std::ops::Range<usize>,
}

impl IdSite {
    /// The first top-level line of `body` that passes a computed `…_id` argument to an API.
    pub fn find(body: &str) -> Option<Self> {
        for call in api_calls(body) {
            let line_start = body[..call.span.start].rfind('\n').map_or(0, |i| i + 1);
            let line = &body[line_start..];
            if line.starts_with(char::is_whitespace)
                || line.starts_with("for ")
                || line.starts_with("if ")
            {
                continue;
            }
            let Some(id) = call.keywords.iter().find(|k| {
                k.name.ends_with("_id")
                    && body[k.value.clone()].parse::<i64>().is_err()
                    && !body[k.value.clone()].is_empty()
            }) else {
                continue;
            };
            return Some(IdSite {
                before: body[..line_start].to_owned(),
                tail: line.to_owned(),
                value: id.value.start - line_start..id.value.end - line_start,
            });
        }
        None
    }

    /// The cell that prints the real id (the code before the line, then the expression).
    pub fn reveal(&self) -> String {
        format!("{}print({})", self.before, &self.tail[self.value.clone()])
    }

    /// The line and the rest with a guessed id in place of the look-up: off by one either way,
    /// then far off.
    pub fn guesses(&self, real: i64) -> Vec<String> {
        [real + 1, real - 1, real + 1000]
            .into_iter()
            .filter(|&g| g > 0 && g != real)
            .map(|g| {
                let mut wrong = self.tail.clone();
                wrong.replace_range(self.value.clone(), &g.to_string());
                wrong
            })
            .collect()
    }
}

/// Cells that print a search of `body` with its query literal changed into near misses that
/// may find nothing: the words reversed, two letters swapped, a letter doubled.
pub(crate) fn empty_searches(body: &str) -> Vec<String> {
    let Some((call, query)) = api_calls(body).into_iter().find_map(|call| {
        let keyword = call.keywords.iter().find(|k| k.name == "query")?.clone();
        let text: String = serde_json::from_str(&body[keyword.value.clone()]).ok()?;
        Some((call, (keyword, text)))
    }) else {
        return Vec::new();
    };
    let (keyword, text) = query;
    let mut variants = Vec::new();
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() > 1 {
        variants.push(words.iter().rev().copied().collect::<Vec<_>>().join(" "));
    }
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    if n >= 3 && chars[n - 1] != chars[n - 2] {
        let mut swapped = chars.clone();
        swapped.swap(n - 1, n - 2);
        variants.push(swapped.into_iter().collect());
    }
    if let Some(last) = chars.last() {
        variants.push(format!("{text}{last}"));
    }
    let call_text = &body[call.span.clone()];
    let at = keyword.value.start - call.span.start..keyword.value.end - call.span.start;
    variants
        .iter()
        .filter(|v| **v != text)
        .map(|v| {
            let mut wrong = call_text.to_owned();
            wrong.replace_range(at.clone(), &literal(v));
            format!("print({wrong})")
        })
        .collect()
}

/// A string literal of the code's language.
fn literal(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supervisor() -> Supervisor {
        Supervisor {
            first_name: "Ada".into(),
            last_name: "Moss".into(),
            email: "ada.moss@mail.com".into(),
            phone_number: "5550001234".into(),
        }
    }

    const LOGIN: &str = "profile = apis.supervisor.show_profile()\npasswords = {a[\"account_name\"]: a[\"password\"] for a in apis.supervisor.show_account_passwords()}\nmail_token = apis.mail.login(username=profile[\"email\"], password=passwords[\"mail\"])[\"access_token\"]";

    #[test]
    fn wrong_usernames_drop_the_profile_and_prefer_people_seen() {
        let seen = usernames_in(&[
            "{\"first_name\": \"Bo\", \"email\": \"bo.lee@mail.com\", \"phone_number\": \"5559998888\"}",
            "[{\"email\":\"cy.tan@mail.com\",\"phone_number\":null}]",
        ]);
        assert_eq!(seen, ["bo.lee@mail.com", "5559998888", "cy.tan@mail.com"]);
        let cells = wrong_usernames(LOGIN, &supervisor(), &seen).unwrap();
        assert!(cells[0].starts_with("passwords = "), "{}", cells[0]);
        assert!(
            cells[0].ends_with(
                "mail_token = apis.mail.login(username=\"bo.lee@mail.com\", password=passwords[\"mail\"])[\"access_token\"]"
            ),
            "{}",
            cells[0]
        );
        assert!(cells[1].contains("username=\"cy.tan@mail.com\""));
        assert!(cells[2].contains("username=\"moss.ada@mail.com\""));
        assert!(cells.iter().all(|c| !c.contains("ada.moss@mail.com")));
        let phone = "phone_token = apis.phone.login(username=profile[\"phone_number\"], password=passwords[\"phone\"])[\"access_token\"]";
        let cells = wrong_usernames(phone, &supervisor(), &seen).unwrap();
        assert_eq!(
            cells,
            [
                phone.replace("profile[\"phone_number\"]", "\"5559998888\""),
                phone.replace("profile[\"phone_number\"]", "\"5550001235\"")
            ]
        );
        assert_eq!(wrong_usernames("print(1)", &supervisor(), &seen), None);
        let recovery = login_recovery(LOGIN);
        assert_eq!(recovery[0], READ_PROFILE);
        assert!(
            recovery[1].starts_with("passwords = ") && recovery[1].contains("profile[\"email\"]")
        );
    }

    #[test]
    fn id_sites_are_top_level_computed_ids() {
        let body = "note = [n for n in apis.notes.search_notes(access_token=notes_token, query=\"Trip\") if n[\"title\"] == \"Trip\"][0]\nlines = apis.notes.show_note(access_token=notes_token, note_id=note[\"note_id\"])[\"content\"]\nprint(lines)";
        let site = IdSite::find(body).unwrap();
        assert!(site.before.starts_with("note = ") && site.before.ends_with('\n'));
        assert_eq!(&site.tail[site.value.clone()], "note[\"note_id\"]");
        assert!(site.reveal().ends_with("\nprint(note[\"note_id\"])"));
        let guesses = site.guesses(7);
        assert_eq!(guesses.len(), 3);
        assert!(
            guesses[0]
                .starts_with("lines = apis.notes.show_note(access_token=notes_token, note_id=8)")
        );
        assert!(guesses[0].ends_with("\nprint(lines)"));
        assert_eq!(site.guesses(1).len(), 2, "no id 0");
        let looped = "for s in songs:\n    apis.music.like_song(access_token=music_token, song_id=s[\"song_id\"])";
        assert_eq!(IdSite::find(looped), None);
        assert_eq!(
            IdSite::find("x = apis.a.b(thing_id=3)"),
            None,
            "literal ids are not looked up"
        );
    }

    #[test]
    fn empty_searches_change_only_the_query() {
        let body = "ava = [c for c in apis.phone.search_contacts(access_token=phone_token, query=\"Ava\") if c[\"first_name\"] == \"Ava\"][0]\nprint(ava)";
        assert_eq!(
            empty_searches(body),
            [
                "print(apis.phone.search_contacts(access_token=phone_token, query=\"Aav\"))",
                "print(apis.phone.search_contacts(access_token=phone_token, query=\"Avaa\"))",
            ]
        );
        let two =
            empty_searches("x = apis.music.search_artists(access_token=t, query=\"Blue Moon\")");
        assert_eq!(
            two[0],
            "print(apis.music.search_artists(access_token=t, query=\"Moon Blue\"))"
        );
        assert!(
            empty_searches("x = apis.music.search_artists(access_token=t, query=name)").is_empty()
        );
        assert!(empty_searches("print(1)").is_empty());
    }
}
