//! `files`: each person's own file storage. Files are addressed by absolute path (`/work/a.txt`);
//! directories exist while they hold files and are written with a trailing `/`.

use std::collections::BTreeSet;

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{
    ApiError, ApiResult, ApiSpec, Call, Constraint, ParamType, account_apis, matches, opt,
    page_params, paginate, req,
};
use crate::db::{Db, File, Id};
use crate::time;

const APP: &str = "files";

pub(super) fn apis() -> Vec<ApiSpec> {
    let [login, logout] = account_apis(APP);
    let path =
        |name: &'static str, description: &'static str| req(name, ParamType::Str, description);
    vec![
        login,
        logout,
        ApiSpec::new(APP, "list_directory", "GET", "/directories")
            .doc("List the files and sub-directories (ending with \"/\") directly in a directory, as full paths, sorted.")
            .params([opt("directory_path", ParamType::Str, json!("/"), "Directory to list, like /documents/.")])
            .params(page_params())
            .returns(r#"["/documents/budget.csv","/documents/old/"]"#)
            .handler(list_directory),
        ApiSpec::new(APP, "show_file", "GET", "/files")
            .doc("Show a file's content.")
            .params([path("file_path", "Full path of the file, like /documents/budget.csv.")])
            .returns(r#"{"file_path":"string","content":"string","updated_at":"string"}"#)
            .handler(|call| {
                let f = owned(call, "file_path")?;
                Ok(json!({"file_path": f.path, "content": f.content, "updated_at": f.updated_at}))
            }),
        ApiSpec::new(APP, "search_files", "GET", "/files/search")
            .doc("Find your files by words in their path or content, sorted by path.")
            .params([
                opt("query", ParamType::Str, Value::Null, "Words in the path or content."),
                opt("directory_path", ParamType::Str, Value::Null, "Only files anywhere under this directory."),
            ])
            .params(page_params())
            .returns(r#"[{"file_path":"string","updated_at":"string"}]"#)
            .handler(search_files),
        ApiSpec::new(APP, "create_file", "POST", "/files")
            .doc("Create a file; its directories are created as needed.")
            .params([
                path("file_path", "Full path of the new file, like /notes/ideas.txt."),
                opt("content", ParamType::Str, json!(""), "Text of the file."),
            ])
            .returns(r#"{"message":"string","file_path":"string"}"#)
            .handler(|call| {
                let me = call.user();
                let path = file_path(call.args.str("file_path"))?;
                free(&call.world.db, me, &path)?;
                let file = File {
                    id: 0,
                    owner_id: me,
                    path: path.clone(),
                    content: call.args.str("content").to_owned(),
                    updated_at: call.world.now.clone(),
                };
                call.world.db.files.insert(file);
                Ok(json!({"message": "File created.", "file_path": path}))
            }),
        ApiSpec::new(APP, "update_file", "PUT", "/files")
            .doc("Replace a file's content.")
            .params([
                path("file_path", "Full path of the file."),
                req("content", ParamType::Str, "New text of the file."),
            ])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let content = call.args.str("content").to_owned();
                let now = call.world.now.clone();
                let file = owned_mut(call, "file_path")?;
                file.content = content;
                file.updated_at = now;
                Ok(json!({"message": "File updated."}))
            }),
        ApiSpec::new(APP, "append_to_file", "POST", "/files/append")
            .doc("Add text at the end of a file, on a new line.")
            .params([
                path("file_path", "Full path of the file."),
                req("text", ParamType::Str, "Text to add.").with(Constraint::MinLen(1)),
            ])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let text = call.args.str("text").to_owned();
                let now = call.world.now.clone();
                let file = owned_mut(call, "file_path")?;
                if !file.content.is_empty() && !file.content.ends_with('\n') {
                    file.content.push('\n');
                }
                file.content.push_str(&text);
                file.updated_at = now;
                Ok(json!({"message": "Text appended."}))
            }),
        ApiSpec::new(APP, "delete_file", "DELETE", "/files")
            .doc("Delete a file.")
            .params([path("file_path", "Full path of the file.")])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let id = owned(call, "file_path")?.id;
                call.world.db.files.remove(id);
                Ok(json!({"message": "File deleted."}))
            }),
        ApiSpec::new(APP, "move_file", "POST", "/files/move")
            .doc("Move or rename a file. A destination ending with \"/\" keeps the file's name in that directory.")
            .params([
                path("source_path", "Full path of the file to move."),
                path("destination_path", "New full path, or a directory ending with \"/\"."),
            ])
            .returns(r#"{"message":"string","file_path":"string"}"#)
            .handler(|call| {
                let (id, destination) = transfer(call)?;
                call.world.db.files.get_mut(id).expect("checked in transfer").path = destination.clone();
                Ok(json!({"message": "File moved.", "file_path": destination}))
            }),
        ApiSpec::new(APP, "copy_file", "POST", "/files/copy")
            .doc("Copy a file. A destination ending with \"/\" keeps the file's name in that directory.")
            .params([
                path("source_path", "Full path of the file to copy."),
                path("destination_path", "Full path of the copy, or a directory ending with \"/\"."),
            ])
            .returns(r#"{"message":"string","file_path":"string"}"#)
            .handler(|call| {
                let (id, destination) = transfer(call)?;
                let source = call.world.db.files.get(id).expect("checked in transfer");
                let copy = File {
                    id: 0,
                    owner_id: source.owner_id,
                    path: destination.clone(),
                    content: source.content.clone(),
                    updated_at: call.world.now.clone(),
                };
                call.world.db.files.insert(copy);
                Ok(json!({"message": "File copied.", "file_path": destination}))
            }),
    ]
}

fn list_directory(call: &mut Call<'_>) -> ApiResult {
    let me = call.user();
    let dir = directory_path(call.args.str("directory_path"))?;
    let db = &call.world.db;
    let mut children: BTreeSet<String> = BTreeSet::new();
    for file in db.files.iter().filter(|f| f.owner_id == me) {
        if let Some(rest) = file.path.strip_prefix(&dir) {
            match rest.split_once('/') {
                Some((sub, _)) => children.insert(format!("{dir}{sub}/")),
                None => children.insert(file.path.clone()),
            };
        }
    }
    if children.is_empty() && dir != "/" {
        let as_file = &dir[..dir.len() - 1];
        if find(db, me, as_file).is_some() {
            return Err(ApiError::invalid(format!(
                "'{as_file}' is a file, not a directory; use show_file."
            )));
        }
        return Err(ApiError::not_found(format!("No directory '{dir}'.")));
    }
    let rows: Vec<Value> = paginate(children, call.args.page())
        .into_iter()
        .map(Value::String)
        .collect();
    Ok(rows.into())
}

fn search_files(call: &mut Call<'_>) -> ApiResult {
    let me = call.user();
    let query = call.args.opt_str("query");
    let dir = call
        .args
        .opt_str("directory_path")
        .map(directory_path)
        .transpose()?;
    let mut files: Vec<&File> = call
        .world
        .db
        .files
        .iter()
        .filter(|f| {
            f.owner_id == me
                && dir.as_ref().is_none_or(|d| f.path.starts_with(d.as_str()))
                && matches(query, &[&f.path, &f.content])
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let rows: Vec<Value> = paginate(files, call.args.page())
        .into_iter()
        .map(|f| json!({"file_path": f.path, "updated_at": f.updated_at}))
        .collect();
    Ok(rows.into())
}

/// Resolves `source_path` (an existing file) and `destination_path` (a free path) of a move or
/// copy: the source file's id and the destination's full path.
fn transfer(call: &Call<'_>) -> Result<(Id, String), ApiError> {
    let me = call.user();
    let source = owned(call, "source_path")?;
    let raw = call.args.str("destination_path").trim();
    let destination = if raw.ends_with('/') {
        let name = source.path.rsplit('/').next().expect("paths have a name");
        file_path(&format!("{}{name}", directory_path(raw)?))?
    } else {
        file_path(raw)?
    };
    free(&call.world.db, me, &destination)?;
    Ok((source.id, destination))
}

/// Checks a path's segments: no blank, `.` or `..` segment.
fn check_segments(path: &str, trimmed: &str) -> Result<(), ApiError> {
    if !path.starts_with('/') {
        return Err(ApiError::invalid(format!(
            "'{path}' is not an absolute path: it must start with \"/\"."
        )));
    }
    if !trimmed.is_empty()
        && trimmed
            .split('/')
            .any(|s| s.trim().is_empty() || s == "." || s == "..")
    {
        return Err(ApiError::invalid(format!(
            "'{path}' is not a valid path: it has an empty, '.' or '..' part."
        )));
    }
    Ok(())
}

/// A valid file path: absolute, not ending with "/".
fn file_path(text: &str) -> Result<String, ApiError> {
    let path = text.trim();
    if path.ends_with('/') {
        return Err(ApiError::invalid(format!(
            "'{path}' is a directory path; a file path must not end with \"/\"."
        )));
    }
    check_segments(path, path.get(1..).unwrap_or(""))?;
    Ok(path.to_owned())
}

/// A valid directory path, ending with "/" ("/" for the root).
fn directory_path(text: &str) -> Result<String, ApiError> {
    let path = text.trim();
    let inner = path.get(1..).unwrap_or("").trim_end_matches('/');
    check_segments(path, inner)?;
    Ok(if inner.is_empty() {
        "/".to_owned()
    } else {
        format!("/{inner}/")
    })
}

fn find(db: &Db, me: Id, path: &str) -> Option<Id> {
    db.files
        .iter()
        .find(|f| f.owner_id == me && f.path == path)
        .map(|f| f.id)
}

/// 409 unless a new file can take `path`: no file there, no directory there, and no file where
/// one of its directories would be.
fn free(db: &Db, me: Id, path: &str) -> Result<(), ApiError> {
    let as_dir = format!("{path}/");
    for f in db.files.iter().filter(|f| f.owner_id == me) {
        if f.path == path {
            return Err(ApiError::conflict(format!(
                "The file '{path}' already exists."
            )));
        }
        if f.path.starts_with(&as_dir) {
            return Err(ApiError::conflict(format!("'{path}' is a directory.")));
        }
        if path.starts_with(&format!("{}/", f.path)) {
            return Err(ApiError::conflict(format!(
                "'{}' is a file, so it cannot hold other files.",
                f.path
            )));
        }
    }
    Ok(())
}

fn owned<'a>(call: &'a Call<'_>, param: &str) -> Result<&'a File, ApiError> {
    let me = call.user();
    let db = &call.world.db;
    let path = call.args.str(param).trim();
    match find(db, me, path) {
        Some(id) => Ok(db.files.get(id).expect("found above")),
        None => {
            let as_dir = format!("{}/", path.trim_end_matches('/'));
            if db
                .files
                .iter()
                .any(|f| f.owner_id == me && f.path.starts_with(&as_dir))
            {
                Err(ApiError::invalid(format!(
                    "'{path}' is a directory, not a file; use list_directory."
                )))
            } else {
                Err(ApiError::not_found(format!("No file '{path}'.")))
            }
        }
    }
}

fn owned_mut<'a>(call: &'a mut Call<'_>, param: &str) -> Result<&'a mut File, ApiError> {
    let id = owned(call, param)?.id;
    Ok(call.world.db.files.get_mut(id).expect("checked above"))
}

/// How many file kinds [`file`] knows.
const KINDS: usize = 10;

/// The path and content of a seeded file of one kind for `person`.
fn file(kind: usize, db: &Db, person: Id, rng: &mut ChaCha8Rng, now: &str) -> (String, String) {
    let year = &now[..4];
    let p = db.person(person);
    let coworkers: Vec<String> = db
        .relationships
        .iter()
        .filter(|r| r.person_id == person && r.kind == "coworker")
        .map(|r| db.person(r.other_id).first_name.clone())
        .collect();
    match kind {
        0 => {
            let mut lines = vec!["month,income,expenses".to_owned()];
            let income = rng.random_range(25..60) * 100;
            for month in 1..=3 {
                let spent = income - rng.random_range(-300..900);
                lines.push(format!(
                    "{},{income},{spent}",
                    &time::month_name(month)[..3]
                ));
            }
            (format!("/documents/budget_{year}.csv"), lines.join("\n"))
        }
        1 => {
            let rent = rng.random_range(9..25) * 100;
            let day = rng.random_range(1..=5);
            (
                "/documents/lease.txt".into(),
                format!(
                    "Rent: ${rent} per month\nDue on day {day} of each month\nLease ends {}",
                    time::shift_date(now, rng.random_range(100..400))
                ),
            )
        }
        2 => (
            "/documents/resume.txt".into(),
            format!(
                "{}\n{}\n{}\nSkills: planning, writing, Excel",
                p.full_name(),
                p.email,
                p.city
            ),
        ),
        3 => {
            let place = ["beach", "mountains", "lake", "city"][rng.random_range(0..4)];
            (
                format!("/photos/{place}_{year}.jpg"),
                format!(
                    "[photo: {place} trip, {}]",
                    time::shift_date(now, -rng.random_range(20..200))
                ),
            )
        }
        4 => (
            "/photos/family.jpg".into(),
            format!("[photo: the {} family at dinner]", p.last_name),
        ),
        5 => {
            let ideas = [
                "learn Spanish",
                "start a podcast",
                "build a bookshelf",
                "run a half marathon",
                "visit Lisbon",
                "bake sourdough",
            ];
            let mut picked: Vec<&str> = ideas.to_vec();
            picked.shuffle(rng);
            (
                "/notes/ideas.txt".into(),
                picked[..3]
                    .iter()
                    .map(|i| format!("- {i}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        }
        6 => {
            let mut lines = vec!["Wi-Fi: HomeNet".to_owned()];
            lines.push(format!(
                "Wi-Fi password: {}",
                ["sunflower42", "blue-door-7", "maple2024", "quiet_fox9"][rng.random_range(0..4)]
            ));
            lines.push(format!("Garage code: {:04}", rng.random_range(0..10_000)));
            ("/notes/home_codes.txt".into(), lines.join("\n"))
        }
        7 => {
            let growth = rng.random_range(2..15);
            (
                "/work/report_draft.txt".into(),
                format!(
                    "Quarterly report (draft)\nSales grew {growth}% this quarter.\nTODO: add charts, ask {} for numbers",
                    coworkers.first().map_or("the team", String::as_str)
                ),
            )
        }
        8 => {
            let mut lines = vec!["date,hours".to_owned()];
            for delta in -4..=-1 {
                lines.push(format!(
                    "{},{}",
                    time::shift_date(now, delta),
                    rng.random_range(6..=9)
                ));
            }
            ("/work/timesheet.csv".into(), lines.join("\n"))
        }
        _ => {
            let topics = [
                "Budget",
                "Hiring",
                "Launch date",
                "Customer feedback",
                "Office move",
            ];
            let mut picked: Vec<&str> = topics.to_vec();
            picked.shuffle(rng);
            let lines: Vec<String> = picked[..3]
                .iter()
                .enumerate()
                .map(|(i, t)| format!("{}. {t}", i + 1))
                .collect();
            (
                "/work/meeting_agenda.txt".into(),
                format!("Attendees: {}\n{}", coworkers.join(", "), lines.join("\n")),
            )
        }
    }
}

/// Seeds 4–6 short files per person under /documents, /photos, /notes and /work.
pub(super) fn populate(db: &mut Db, rng: &mut ChaCha8Rng, now: &str) {
    let people: Vec<Id> = db.people.iter().map(|p| p.id).collect();
    for person in people {
        let mut kinds: Vec<usize> = (0..KINDS).collect();
        kinds.shuffle(rng);
        kinds.truncate(rng.random_range(4..=6));
        kinds.sort_unstable();
        for kind in kinds {
            let (path, content) = file(kind, db, person, rng, now);
            let updated_at = time::timestamp(
                now,
                rng.random_range(-90..0),
                rng.random_range(8..22),
                rng.random_range(0..60),
            );
            db.files.insert(File {
                id: 0,
                owner_id: person,
                path,
                content,
                updated_at,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::population::generate;
    use crate::world::World;

    fn world() -> World {
        let (db, now) = generate(13);
        World::new(db, now, 1)
    }

    fn call(w: &mut World, api: &str, args: Value) -> ApiResult {
        super::super::test_support::call(w, APP, api, args)
    }

    fn login(w: &mut World, person: Id) -> String {
        super::super::test_support::login(w, APP, person)
    }

    fn api(w: &mut World, token: &str, name: &str, mut args: Value) -> ApiResult {
        args["access_token"] = json!(token);
        call(w, name, args)
    }

    fn read(w: &mut World, token: &str, name: &str, args: Value) -> Value {
        let before = w.db.clone();
        let out = api(w, token, name, args).unwrap();
        assert!(w.db.diff(&before).is_empty(), "{name} changed the db");
        out
    }

    fn status(r: ApiResult) -> u16 {
        r.expect_err("expected an error").status
    }

    fn file_of<'a>(w: &'a World, person: Id, path: &str) -> Option<&'a File> {
        w.db.files
            .iter()
            .find(|f| f.owner_id == person && f.path == path)
    }

    /// A world whose person 1 holds exactly these files.
    fn world_with(files: &[(&str, &str)]) -> (World, String) {
        let mut w = world();
        let old: Vec<Id> =
            w.db.files
                .iter()
                .filter(|f| f.owner_id == 1)
                .map(|f| f.id)
                .collect();
        for id in old {
            w.db.files.remove(id);
        }
        for (path, content) in files {
            let file = File {
                id: 0,
                owner_id: 1,
                path: (*path).into(),
                content: (*content).into(),
                updated_at: "2024-01-01T08:00:00".into(),
            };
            w.db.files.insert(file);
        }
        let t = login(&mut w, 1);
        (w, t)
    }

    #[test]
    fn populate_is_short_and_deterministic() {
        let (db, _) = generate(13);
        assert_eq!(db.files, generate(13).0.files);
        for p in db.people.iter() {
            let paths: Vec<&str> = db
                .files
                .iter()
                .filter(|f| f.owner_id == p.id)
                .map(|f| f.path.as_str())
                .collect();
            assert!((4..=6).contains(&paths.len()));
            assert_eq!(paths.iter().collect::<BTreeSet<_>>().len(), paths.len());
            assert!(
                paths
                    .iter()
                    .all(|path| file_path(path).is_ok_and(|p| p == *path))
            );
        }
        assert!(
            db.files
                .iter()
                .all(|f| !f.content.is_empty() && f.content.len() < 200)
        );
    }

    #[test]
    fn login_checks_password() {
        let mut w = world();
        assert!(!login(&mut w, 1).is_empty());
        let email = w.db.person(1).email.clone();
        assert_eq!(
            status(call(
                &mut w,
                "login",
                json!({"username": email, "password": "?"})
            )),
            401
        );
    }

    #[test]
    fn list_directory_shows_immediate_children() {
        let (mut w, t) = world_with(&[
            ("/a.txt", "root"),
            ("/docs/x.txt", "x"),
            ("/docs/old/y.txt", "y"),
            ("/docs/old/deeper/z.txt", "z"),
            ("/docs/w.txt", "w"),
            ("/pics/p.jpg", "p"),
        ]);
        assert_eq!(
            read(&mut w, &t, "list_directory", json!({})),
            json!(["/a.txt", "/docs/", "/pics/"])
        );
        assert_eq!(
            read(
                &mut w,
                &t,
                "list_directory",
                json!({"directory_path": "/docs"})
            ),
            json!(["/docs/old/", "/docs/w.txt", "/docs/x.txt"])
        );
        assert_eq!(
            read(
                &mut w,
                &t,
                "list_directory",
                json!({"directory_path": " /docs/old/ "})
            ),
            json!(["/docs/old/deeper/", "/docs/old/y.txt"])
        );
        assert_eq!(
            read(
                &mut w,
                &t,
                "list_directory",
                json!({"directory_path": "/docs", "page_limit": 2, "page_index": 1})
            ),
            json!(["/docs/x.txt"])
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "list_directory",
                json!({"directory_path": "/nope"})
            )),
            404
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "list_directory",
                json!({"directory_path": "/a.txt"})
            )),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "list_directory",
                json!({"directory_path": "docs"})
            )),
            422
        );
        // Another person's files are not visible.
        let t2 = login(&mut w, 2);
        let theirs = read(&mut w, &t2, "list_directory", json!({"page_limit": 20}));
        assert!(!theirs.as_array().unwrap().contains(&json!("/a.txt")));
    }

    #[test]
    fn search_and_show() {
        let (mut w, t) = world_with(&[
            ("/a/one.txt", "apple pie"),
            ("/b/two.txt", "banana"),
            ("/b/apple.csv", "x"),
            ("/c.txt", "c"),
        ]);
        let rows = read(&mut w, &t, "search_files", json!({"query": "APPLE"}));
        assert_eq!(
            rows,
            json!([{"file_path": "/a/one.txt", "updated_at": "2024-01-01T08:00:00"}, {"file_path": "/b/apple.csv", "updated_at": "2024-01-01T08:00:00"}])
        );
        let paths = |rows: &Value| {
            rows.as_array()
                .unwrap()
                .iter()
                .map(|r| r["file_path"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            paths(&read(
                &mut w,
                &t,
                "search_files",
                json!({"directory_path": "/b"})
            )),
            ["/b/apple.csv", "/b/two.txt"]
        );
        assert_eq!(
            paths(&read(&mut w, &t, "search_files", json!({"page_limit": 3}))),
            ["/a/one.txt", "/b/apple.csv", "/b/two.txt"]
        );
        assert_eq!(
            paths(&read(
                &mut w,
                &t,
                "search_files",
                json!({"page_limit": 3, "page_index": 1})
            )),
            ["/c.txt"]
        );
        assert_eq!(
            read(&mut w, &t, "show_file", json!({"file_path": "/b/two.txt"})),
            json!({"file_path": "/b/two.txt", "content": "banana", "updated_at": "2024-01-01T08:00:00"})
        );
        let missing = api(
            &mut w,
            &t,
            "show_file",
            json!({"file_path": "/b/three.txt"}),
        )
        .unwrap_err();
        assert_eq!(
            (missing.status, missing.message.as_str()),
            (404, "No file '/b/three.txt'.")
        );
        assert_eq!(
            status(api(&mut w, &t, "show_file", json!({"file_path": "/b"}))),
            422
        );
        // Paths are per user: person 2 has no /b/two.txt.
        let t2 = login(&mut w, 2);
        assert_eq!(
            status(api(
                &mut w,
                &t2,
                "show_file",
                json!({"file_path": "/b/two.txt"})
            )),
            404
        );
        assert_eq!(
            status(api(
                &mut w,
                &t2,
                "delete_file",
                json!({"file_path": "/b/two.txt"})
            )),
            404
        );
    }

    #[test]
    fn mutations() {
        let (mut w, t) = world_with(&[("/a/one.txt", "first"), ("/b/two.txt", "")]);
        let now = w.now.clone();
        let out = api(
            &mut w,
            &t,
            "create_file",
            json!({"file_path": "/new/dir/f.txt", "content": "hello"}),
        )
        .unwrap();
        assert_eq!(out["file_path"], "/new/dir/f.txt");
        let f = file_of(&w, 1, "/new/dir/f.txt").unwrap().clone();
        assert_eq!(
            f,
            File {
                id: f.id,
                owner_id: 1,
                path: "/new/dir/f.txt".into(),
                content: "hello".into(),
                updated_at: now.clone()
            }
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "create_file",
                json!({"file_path": "/new/dir/f.txt"})
            )),
            409
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "create_file",
                json!({"file_path": "/new/dir"})
            )),
            409
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "create_file",
                json!({"file_path": "/a/one.txt/x"})
            )),
            409
        );
        // Person 2 may use the same path.
        let t2 = login(&mut w, 2);
        api(
            &mut w,
            &t2,
            "create_file",
            json!({"file_path": "/new/dir/f.txt"}),
        )
        .unwrap();
        assert_eq!(file_of(&w, 2, "/new/dir/f.txt").unwrap().content, "");

        let before = w.db.clone();
        api(
            &mut w,
            &t,
            "update_file",
            json!({"file_path": "/a/one.txt", "content": "replaced"}),
        )
        .unwrap();
        let changes = w.db.diff(&before);
        assert_eq!(changes.len(), 1);
        let one = file_of(&w, 1, "/a/one.txt").unwrap();
        assert_eq!(
            (one.content.as_str(), one.updated_at.as_str()),
            ("replaced", now.as_str())
        );
        api(
            &mut w,
            &t,
            "append_to_file",
            json!({"file_path": "/a/one.txt", "text": "more"}),
        )
        .unwrap();
        assert_eq!(
            file_of(&w, 1, "/a/one.txt").unwrap().content,
            "replaced\nmore"
        );
        api(
            &mut w,
            &t,
            "append_to_file",
            json!({"file_path": "/b/two.txt", "text": "only"}),
        )
        .unwrap();
        assert_eq!(file_of(&w, 1, "/b/two.txt").unwrap().content, "only");

        let id = file_of(&w, 1, "/a/one.txt").unwrap().id;
        let before = w.db.clone();
        let out = api(
            &mut w,
            &t,
            "move_file",
            json!({"source_path": "/a/one.txt", "destination_path": "/archive/"}),
        )
        .unwrap();
        assert_eq!(out["file_path"], "/archive/one.txt");
        let changes = w.db.diff(&before);
        assert_eq!((changes.len(), changes[0].id), (1, id));
        assert_eq!(w.db.files.get(id).unwrap().path, "/archive/one.txt");
        assert_eq!(w.db.files.get(id).unwrap().content, "replaced\nmore");
        api(
            &mut w,
            &t,
            "move_file",
            json!({"source_path": "/archive/one.txt", "destination_path": "/archive/uno.txt"}),
        )
        .unwrap();
        assert_eq!(w.db.files.get(id).unwrap().path, "/archive/uno.txt");
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "move_file",
                json!({"source_path": "/archive/uno.txt", "destination_path": "/b/two.txt"})
            )),
            409
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "move_file",
                json!({"source_path": "/missing.txt", "destination_path": "/x.txt"})
            )),
            404
        );

        let before = w.db.clone();
        api(
            &mut w,
            &t,
            "copy_file",
            json!({"source_path": "/b/two.txt", "destination_path": "/c/two_copy.txt"}),
        )
        .unwrap();
        let changes = w.db.diff(&before);
        assert_eq!((changes.len(), changes[0].before.is_none()), (1, true));
        let copy = file_of(&w, 1, "/c/two_copy.txt").unwrap();
        assert_eq!(
            (
                copy.content.as_str(),
                copy.updated_at.as_str(),
                copy.owner_id
            ),
            ("only", now.as_str(), 1)
        );
        assert_eq!(
            file_of(&w, 1, "/b/two.txt").unwrap().content,
            "only",
            "source kept"
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "copy_file",
                json!({"source_path": "/b/two.txt", "destination_path": "/c/two_copy.txt"})
            )),
            409
        );

        let before = w.db.clone();
        api(
            &mut w,
            &t,
            "delete_file",
            json!({"file_path": "/b/two.txt"}),
        )
        .unwrap();
        let changes = w.db.diff(&before);
        assert_eq!((changes.len(), changes[0].after.is_none()), (1, true));
        assert!(file_of(&w, 1, "/b/two.txt").is_none());
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "list_directory",
                json!({"directory_path": "/b/"})
            )),
            404,
            "empty directories vanish"
        );
    }

    #[test]
    fn invalid_paths() {
        let (mut w, t) = world_with(&[("/a/one.txt", "x")]);
        let before = w.db.clone();
        for bad in [
            "a.txt",
            "/a/",
            "/",
            "",
            "/a//b.txt",
            "/a/../b.txt",
            "/./b.txt",
        ] {
            assert_eq!(
                status(api(&mut w, &t, "create_file", json!({"file_path": bad}))),
                422,
                "{bad}"
            );
        }
        assert_eq!(
            status(api(&mut w, &t, "create_file", json!({"file_path": 3}))),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "move_file",
                json!({"source_path": "/a/one.txt", "destination_path": "b.txt"})
            )),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "copy_file",
                json!({"source_path": "/a/one.txt", "destination_path": "/a/../"})
            )),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "append_to_file",
                json!({"file_path": "/a/one.txt", "text": ""})
            )),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "update_file",
                json!({"file_path": "/a/one.txt"})
            )),
            422
        );
        assert!(w.db.diff(&before).is_empty());
    }
}
