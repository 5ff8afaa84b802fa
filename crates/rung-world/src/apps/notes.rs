//! `notes`: a note-taking app. Notes have a title, text content, lower-case tags and a pin;
//! searching lists pinned notes first, then the most recently updated.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{
    ApiError, ApiResult, ApiSpec, Call, Constraint, ParamType, account_apis, check_owner, matches,
    opt, page_params, paginate, req,
};
use crate::db::{Db, Id, Note};
use crate::time;

const APP: &str = "notes";

pub(super) fn apis() -> Vec<ApiSpec> {
    let [login, logout] = account_apis(APP);
    vec![
        login,
        logout,
        ApiSpec::new(APP, "search_notes", "GET", "/notes")
            .doc("List your notes, pinned first, then most recently updated. Filter by words, tag or pin.")
            .params([
                opt("query", ParamType::Str, Value::Null, "Words in the title, content or tags."),
                opt("tag", ParamType::Str, Value::Null, "Only notes with this tag."),
                opt("pinned", ParamType::Bool, Value::Null, "Only pinned (true) or unpinned (false) notes."),
            ])
            .params(page_params())
            .returns(r#"[{"note_id":1,"title":"string","tags":["string"],"pinned":false,"updated_at":"string"}]"#)
            .handler(search),
        ApiSpec::new(APP, "show_note", "GET", "/notes/{note_id}")
            .doc("Show one note with its content.")
            .params([req("note_id", ParamType::Int, "Id of the note.")])
            .returns(r#"{"note_id":1,"title":"string","content":"string","tags":["string"],"pinned":false,"updated_at":"string"}"#)
            .handler(|call| Ok(note_json(owned(call)?))),
        ApiSpec::new(APP, "create_note", "POST", "/notes")
            .doc("Create a note. Tags are stored lower-case.")
            .params([
                req("title", ParamType::Str, "Title of the note.").with(Constraint::MinLen(1)),
                opt("content", ParamType::Str, json!(""), "Text of the note."),
                opt("tags", ParamType::StrList, json!([]), "Tags of the note."),
            ])
            .returns(r#"{"message":"string","note_id":1}"#)
            .handler(|call| {
                let title = title(call.args.str("title"))?;
                let note = Note {
                    id: 0,
                    owner_id: call.user(),
                    title,
                    content: call.args.str("content").to_owned(),
                    tags: clean_tags(call.args.str_list("tags")),
                    pinned: false,
                    updated_at: call.world.now.clone(),
                };
                let id = call.world.db.notes.insert(note);
                Ok(json!({"message": "Note created.", "note_id": id}))
            }),
        ApiSpec::new(APP, "update_note", "PATCH", "/notes/{note_id}")
            .doc("Change a note's title, content or tags; only the fields you pass change. Tags replace the old ones.")
            .params([
                req("note_id", ParamType::Int, "Id of the note."),
                opt("title", ParamType::Str, Value::Null, "New title.").with(Constraint::MinLen(1)),
                opt("content", ParamType::Str, Value::Null, "New content (replaces the old)."),
                opt("tags", ParamType::StrList, Value::Null, "New tags (replace the old)."),
            ])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let title = call.args.opt_str("title").map(title).transpose()?;
                let content = call.args.opt_str("content").map(str::to_owned);
                let tags = call.args.opt_str_list("tags").map(clean_tags);
                if title.is_none() && content.is_none() && tags.is_none() {
                    return Err(ApiError::invalid("Nothing to update: pass title, content or tags."));
                }
                let now = call.world.now.clone();
                let note = owned_mut(call)?;
                if let Some(title) = title {
                    note.title = title;
                }
                if let Some(content) = content {
                    note.content = content;
                }
                if let Some(tags) = tags {
                    note.tags = tags;
                }
                note.updated_at = now;
                Ok(json!({"message": "Note updated."}))
            }),
        ApiSpec::new(APP, "append_to_note", "POST", "/notes/{note_id}/append")
            .doc("Add text at the end of a note, on a new line.")
            .params([
                req("note_id", ParamType::Int, "Id of the note."),
                req("text", ParamType::Str, "Text to add.").with(Constraint::MinLen(1)),
            ])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let text = call.args.str("text").to_owned();
                let now = call.world.now.clone();
                let note = owned_mut(call)?;
                if !note.content.is_empty() && !note.content.ends_with('\n') {
                    note.content.push('\n');
                }
                note.content.push_str(&text);
                note.updated_at = now;
                Ok(json!({"message": "Text appended."}))
            }),
        ApiSpec::new(APP, "pin_note", "PATCH", "/notes/{note_id}/pin")
            .doc("Pin or unpin a note.")
            .params([
                req("note_id", ParamType::Int, "Id of the note."),
                opt("pinned", ParamType::Bool, json!(true), "True to pin, false to unpin."),
            ])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let pinned = call.args.bool("pinned");
                owned_mut(call)?.pinned = pinned;
                Ok(json!({"message": if pinned { "Note pinned." } else { "Note unpinned." }}))
            }),
        ApiSpec::new(APP, "delete_note", "DELETE", "/notes/{note_id}")
            .doc("Delete a note.")
            .params([req("note_id", ParamType::Int, "Id of the note.")])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let id = owned(call)?.id;
                call.world.db.notes.remove(id);
                Ok(json!({"message": "Note deleted."}))
            }),
    ]
}

fn search(call: &mut Call<'_>) -> ApiResult {
    let me = call.user();
    let query = call.args.opt_str("query");
    let tag = call
        .args
        .opt_str("tag")
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty());
    let pinned = call.args.opt_bool("pinned");
    let mut notes: Vec<&Note> = call
        .world
        .db
        .notes
        .iter()
        .filter(|n| {
            n.owner_id == me
                && matches(query, &[&n.title, &n.content, &n.tags.join(" ")])
                && tag.as_ref().is_none_or(|t| n.tags.contains(t))
                && pinned.is_none_or(|p| n.pinned == p)
        })
        .collect();
    notes.sort_by(|a, b| {
        b.pinned
            .cmp(&a.pinned)
            .then_with(|| b.updated_at.cmp(&a.updated_at))
            .then_with(|| b.id.cmp(&a.id))
    });
    let rows: Vec<Value> = paginate(notes, call.args.page())
        .into_iter()
        .map(|n| {
            json!({"note_id": n.id, "title": n.title, "tags": n.tags, "pinned": n.pinned, "updated_at": n.updated_at})
        })
        .collect();
    Ok(rows.into())
}

fn note_json(n: &Note) -> Value {
    json!({
        "note_id": n.id, "title": n.title, "content": n.content, "tags": n.tags,
        "pinned": n.pinned, "updated_at": n.updated_at,
    })
}

/// A trimmed, non-blank title.
fn title(text: &str) -> Result<String, ApiError> {
    let title = text.trim();
    if title.is_empty() {
        return Err(ApiError::invalid("The title must not be blank."));
    }
    Ok(title.to_owned())
}

/// Tags trimmed, lower-cased, without blanks or repeats, in the given order.
fn clean_tags(tags: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.trim().to_lowercase();
        if !tag.is_empty() && !out.contains(&tag) {
            out.push(tag);
        }
    }
    out
}

fn owned<'a>(call: &'a Call<'_>) -> Result<&'a Note, ApiError> {
    let id = call.args.id("note_id");
    let note = call
        .world
        .db
        .notes
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("No note with id {id}.")))?;
    check_owner(note.owner_id, call.user(), "note", id)?;
    Ok(note)
}

fn owned_mut<'a>(call: &'a mut Call<'_>) -> Result<&'a mut Note, ApiError> {
    owned(call)?;
    let id = call.args.id("note_id");
    Ok(call.world.db.notes.get_mut(id).expect("checked above"))
}

/// Everyday note templates: title, tags, candidate lines and how many lines to pick.
const TEMPLATES: &[(&str, &[&str], &[&str], usize)] = &[
    (
        "Grocery list",
        &["shopping"],
        &[
            "milk", "eggs", "bread", "apples", "rice", "coffee", "cheese", "tomatoes", "pasta",
            "yogurt", "bananas",
        ],
        5,
    ),
    (
        "Books to read",
        &["books"],
        &[
            "The Silent Coast",
            "Dune",
            "The Hobbit",
            "Educated",
            "Sapiens",
            "Project Hail Mary",
            "Circe",
        ],
        4,
    ),
    (
        "Packing list",
        &["travel"],
        &[
            "passport",
            "charger",
            "sunscreen",
            "toothbrush",
            "rain jacket",
            "headphones",
            "swimsuit",
            "camera",
        ],
        5,
    ),
    (
        "Pancake recipe",
        &["recipe", "cooking"],
        &[
            "2 eggs",
            "1 cup flour",
            "1 cup milk",
            "1 tbsp sugar",
            "pinch of salt",
            "Fry 2 min per side.",
        ],
        6,
    ),
    (
        "Tomato soup recipe",
        &["recipe", "cooking"],
        &[
            "6 tomatoes",
            "1 onion",
            "2 garlic cloves",
            "500 ml stock",
            "Simmer 20 min, then blend.",
        ],
        5,
    ),
    ("Gift ideas", &["gifts"], &[], 3),
    (
        "Workout plan",
        &["health"],
        &[
            "Mon: run 5 km",
            "Tue: yoga 30 min",
            "Wed: gym, upper body",
            "Thu: cycling 20 km",
            "Fri: swim 1 km",
            "Sat: hike",
        ],
        4,
    ),
    ("Meeting notes", &["work"], &[], 3),
    (
        "Movies to watch",
        &["movies"],
        &[
            "Inception",
            "Up",
            "Amelie",
            "Arrival",
            "Coco",
            "Heat",
            "Alien",
            "Her",
        ],
        4,
    ),
    (
        "Home repairs",
        &["home"],
        &[
            "fix kitchen tap",
            "paint the fence",
            "replace hall light bulb",
            "clean gutters",
            "oil door hinges",
        ],
        3,
    ),
];

const GIFTS: &[&str] = &[
    "scarf",
    "board game",
    "candle",
    "headphones",
    "cookbook",
    "plant",
    "watch",
    "mug",
];
const MEETING: &[&str] = &[
    "Budget approved for Q3.",
    "Launch moved to next month.",
    "Hire one more designer.",
    "Review the survey results.",
    "Send the client update by Friday.",
];

/// `k` of `pool`, kept in pool order.
fn pick<'a>(rng: &mut ChaCha8Rng, pool: &[&'a str], k: usize) -> Vec<&'a str> {
    let mut picked = rand::seq::index::sample(rng, pool.len(), k.min(pool.len())).into_vec();
    picked.sort_unstable();
    picked.into_iter().map(|i| pool[i]).collect()
}

/// Seeds 4–7 everyday notes per person, updated over the last two months.
pub(super) fn populate(db: &mut Db, rng: &mut ChaCha8Rng, now: &str) {
    let people: Vec<Id> = db.people.iter().map(|p| p.id).collect();
    for person in people {
        let related: Vec<(String, String)> = db
            .relationships
            .iter()
            .filter(|r| r.person_id == person)
            .map(|r| (db.person(r.other_id).first_name.clone(), r.kind.clone()))
            .collect();
        let mut kinds: Vec<usize> = (0..TEMPLATES.len()).collect();
        kinds.shuffle(rng);
        kinds.truncate(rng.random_range(4..=7));
        kinds.sort_unstable();
        for kind in kinds {
            let (title, tags, pool, k) = TEMPLATES[kind];
            let lines: Vec<String> = match title {
                "Gift ideas" => {
                    let names: Vec<&str> = related.iter().map(|(name, _)| name.as_str()).collect();
                    pick(rng, &names, k)
                        .into_iter()
                        .map(|name| format!("{name}: {}", GIFTS[rng.random_range(0..GIFTS.len())]))
                        .collect()
                }
                "Meeting notes" => {
                    let coworkers: Vec<&str> = related
                        .iter()
                        .filter(|(_, kind)| kind == "coworker")
                        .map(|(n, _)| n.as_str())
                        .collect();
                    let mut lines = vec![format!("Attendees: {}", coworkers.join(", "))];
                    lines.extend(pick(rng, MEETING, k - 1).into_iter().map(str::to_owned));
                    lines
                }
                _ => pick(rng, pool, k).into_iter().map(str::to_owned).collect(),
            };
            let day = rng.random_range(-60..0);
            let at = time::timestamp(now, day, rng.random_range(7..23), rng.random_range(0..60));
            db.notes.insert(Note {
                id: 0,
                owner_id: person,
                title: title.to_owned(),
                content: lines.join("\n"),
                tags: tags.iter().map(|t| (*t).to_owned()).collect(),
                pinned: rng.random_bool(0.2),
                updated_at: at,
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
        let (db, now) = generate(11);
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

    /// Calls a read-only API and checks it changed nothing.
    fn read(w: &mut World, token: &str, name: &str, args: Value) -> Value {
        let before = w.db.clone();
        let out = api(w, token, name, args).unwrap();
        assert!(w.db.diff(&before).is_empty(), "{name} changed the db");
        out
    }

    fn status(r: ApiResult) -> u16 {
        r.expect_err("expected an error").status
    }

    fn ids(rows: &Value) -> Vec<u64> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r["note_id"].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn populate_is_varied_and_deterministic() {
        let (db, _) = generate(11);
        assert_eq!(db.notes, generate(11).0.notes);
        for p in db.people.iter() {
            let titles: Vec<&str> = db
                .notes
                .iter()
                .filter(|n| n.owner_id == p.id)
                .map(|n| n.title.as_str())
                .collect();
            assert!((4..=7).contains(&titles.len()), "{titles:?}");
            let unique: std::collections::BTreeSet<_> = titles.iter().collect();
            assert_eq!(unique.len(), titles.len());
        }
        assert!(
            db.notes
                .iter()
                .all(|n| !n.content.is_empty() && !n.tags.is_empty())
        );
    }

    #[test]
    fn login_checks_password() {
        let mut w = world();
        assert_eq!(login(&mut w, 1).len(), 12);
        let email = w.db.person(1).email.clone();
        assert_eq!(
            status(call(
                &mut w,
                "login",
                json!({"username": email, "password": "wrong"})
            )),
            401
        );
        assert_eq!(
            status(call(
                &mut w,
                "search_notes",
                json!({"access_token": "nope"})
            )),
            401
        );
    }

    #[test]
    fn create_show_update_append_pin_delete() {
        let mut w = world();
        let t = login(&mut w, 1);
        let now = w.now.clone();
        let out = api(
            &mut w,
            &t,
            "create_note",
            json!({"title": " Trip ", "content": "tent", "tags": ["Travel", "travel", " "]}),
        )
        .unwrap();
        let id = out["note_id"].as_u64().unwrap() as Id;
        let expected = Note {
            id,
            owner_id: 1,
            title: "Trip".into(),
            content: "tent".into(),
            tags: vec!["travel".into()],
            pinned: false,
            updated_at: now.clone(),
        };
        assert_eq!(w.db.notes.get(id), Some(&expected));
        let shown = read(&mut w, &t, "show_note", json!({"note_id": id}));
        assert_eq!(
            shown,
            json!({"note_id": id, "title": "Trip", "content": "tent", "tags": ["travel"], "pinned": false, "updated_at": now})
        );

        let before = w.db.clone();
        api(
            &mut w,
            &t,
            "update_note",
            json!({"note_id": id, "content": "tent\nstove"}),
        )
        .unwrap();
        let changes = w.db.diff(&before);
        assert_eq!(changes.len(), 1);
        assert_eq!(w.db.notes.get(id).unwrap().content, "tent\nstove");
        assert_eq!(w.db.notes.get(id).unwrap().title, "Trip", "title untouched");
        assert_eq!(
            w.db.notes.get(id).unwrap().tags,
            vec!["travel"],
            "tags untouched"
        );
        api(
            &mut w,
            &t,
            "update_note",
            json!({"note_id": id, "title": "Camping", "tags": ["Outdoor"]}),
        )
        .unwrap();
        assert_eq!(w.db.notes.get(id).unwrap().title, "Camping");
        assert_eq!(w.db.notes.get(id).unwrap().tags, vec!["outdoor"]);
        assert_eq!(w.db.notes.get(id).unwrap().content, "tent\nstove");

        api(
            &mut w,
            &t,
            "append_to_note",
            json!({"note_id": id, "text": "lamp"}),
        )
        .unwrap();
        assert_eq!(w.db.notes.get(id).unwrap().content, "tent\nstove\nlamp");
        let empty = api(&mut w, &t, "create_note", json!({"title": "Empty"})).unwrap()["note_id"]
            .as_u64()
            .unwrap();
        api(
            &mut w,
            &t,
            "append_to_note",
            json!({"note_id": empty, "text": "first"}),
        )
        .unwrap();
        assert_eq!(w.db.notes.get(empty as Id).unwrap().content, "first");

        api(&mut w, &t, "pin_note", json!({"note_id": id})).unwrap();
        assert!(w.db.notes.get(id).unwrap().pinned);
        api(
            &mut w,
            &t,
            "pin_note",
            json!({"note_id": id, "pinned": false}),
        )
        .unwrap();
        assert!(!w.db.notes.get(id).unwrap().pinned);

        let before = w.db.clone();
        api(&mut w, &t, "delete_note", json!({"note_id": id})).unwrap();
        let changes = w.db.diff(&before);
        assert_eq!(changes.len(), 1);
        assert_eq!(
            (changes[0].table, changes[0].id, changes[0].after.is_none()),
            ("notes", id, true)
        );
        assert_eq!(
            status(api(&mut w, &t, "show_note", json!({"note_id": id}))),
            404
        );
    }

    #[test]
    fn search_filters_orders_and_paginates() {
        let mut w = world();
        let t = login(&mut w, 2);
        let mine: Vec<&Note> = w.db.notes.iter().filter(|n| n.owner_id == 2).collect();
        let mut expected: Vec<&Note> = mine.clone();
        expected
            .sort_by(|a, b| (b.pinned, &b.updated_at, b.id).cmp(&(a.pinned, &a.updated_at, a.id)));
        let expected: Vec<u64> = expected.iter().map(|n| u64::from(n.id)).collect();
        let page0 = read(&mut w, &t, "search_notes", json!({"page_limit": 3}));
        assert_eq!(ids(&page0), expected[..3.min(expected.len())]);
        let page1 = read(
            &mut w,
            &t,
            "search_notes",
            json!({"page_limit": 3, "page_index": 1}),
        );
        assert_eq!(ids(&page1), expected[3..6.min(expected.len())]);
        let all = read(&mut w, &t, "search_notes", json!({"page_limit": 20}));
        assert_eq!(ids(&all), expected);
        let row = &all[0];
        assert_eq!(
            row.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["note_id", "title", "tags", "pinned", "updated_at"]
        );

        let a = api(
            &mut w,
            &t,
            "create_note",
            json!({"title": "Zebra facts", "content": "stripes", "tags": ["zoo"]}),
        )
        .unwrap()["note_id"]
            .as_u64()
            .unwrap();
        let b = api(
            &mut w,
            &t,
            "create_note",
            json!({"title": "Other", "content": "more ZEBRA", "tags": ["misc"]}),
        )
        .unwrap()["note_id"]
            .as_u64()
            .unwrap();
        api(&mut w, &t, "pin_note", json!({"note_id": a})).unwrap();
        assert_eq!(
            ids(&read(&mut w, &t, "search_notes", json!({"query": "zebra"}))),
            [a, b],
            "pinned first"
        );
        assert_eq!(
            ids(&read(
                &mut w,
                &t,
                "search_notes",
                json!({"query": "zebra", "pinned": false})
            )),
            [b]
        );
        assert_eq!(
            ids(&read(&mut w, &t, "search_notes", json!({"tag": "ZOO"}))),
            [a]
        );
        assert_eq!(
            ids(&read(&mut w, &t, "search_notes", json!({"query": "misc"}))),
            [b],
            "tags are searched"
        );
        let pinned = read(
            &mut w,
            &t,
            "search_notes",
            json!({"pinned": true, "page_limit": 20}),
        );
        let expected_pinned: usize =
            w.db.notes
                .iter()
                .filter(|n| n.owner_id == 2 && n.pinned)
                .count();
        assert_eq!(ids(&pinned).len(), expected_pinned);
        // Another user's note never shows up.
        let t1 = login(&mut w, 1);
        assert!(
            ids(&read(
                &mut w,
                &t1,
                "search_notes",
                json!({"query": "zebra"})
            ))
            .is_empty()
        );
    }

    #[test]
    fn errors() {
        let mut w = world();
        let t = login(&mut w, 1);
        let other = w.db.notes.iter().find(|n| n.owner_id == 2).unwrap().id;
        let before = w.db.clone();
        assert_eq!(
            status(api(&mut w, &t, "show_note", json!({"note_id": other}))),
            401
        );
        assert_eq!(
            status(api(&mut w, &t, "delete_note", json!({"note_id": other}))),
            401
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "update_note",
                json!({"note_id": other, "title": "x"})
            )),
            401
        );
        let missing = api(&mut w, &t, "show_note", json!({"note_id": 99_999})).unwrap_err();
        assert_eq!(
            (missing.status, missing.message.as_str()),
            (404, "No note with id 99999.")
        );
        assert_eq!(
            status(api(&mut w, &t, "create_note", json!({"title": ""}))),
            422
        );
        assert_eq!(
            status(api(&mut w, &t, "create_note", json!({"title": "   "}))),
            422
        );
        assert_eq!(
            status(api(&mut w, &t, "create_note", json!({"title": 5}))),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "create_note",
                json!({"title": "a", "tags": "x"})
            )),
            422
        );
        let mine = w.db.notes.iter().find(|n| n.owner_id == 1).unwrap().id;
        assert_eq!(
            status(api(&mut w, &t, "update_note", json!({"note_id": mine}))),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "update_note",
                json!({"note_id": mine, "title": ""})
            )),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "append_to_note",
                json!({"note_id": mine, "text": ""})
            )),
            422
        );
        assert_eq!(
            status(api(&mut w, &t, "search_notes", json!({"page_limit": 21}))),
            422
        );
        assert!(w.db.diff(&before).is_empty());
    }
}
