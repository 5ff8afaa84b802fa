//! `todo`: to-do projects and tasks. Every person has an "Inbox" project, where tasks created
//! without a project go; it cannot be deleted. Priorities run from 1 (highest) to 4 (lowest).

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{
    ApiError, ApiResult, ApiSpec, Call, Constraint, ParamType, account_apis, check_owner, matches,
    opt, page_params, paginate, req,
};
use crate::db::{Db, Id, Project, TodoItem};
use crate::time;

const APP: &str = "todo";
const INBOX: &str = "Inbox";

pub(super) fn apis() -> Vec<ApiSpec> {
    let [login, logout] = account_apis(APP);
    let priority = |default: Value, description: &'static str| {
        opt("priority", ParamType::Int, default, description)
            .with(Constraint::Min(1.0))
            .with(Constraint::Max(4.0))
    };
    vec![
        login,
        logout,
        ApiSpec::new(APP, "show_projects", "GET", "/projects")
            .doc("List your projects with their number of open tasks.")
            .params(page_params())
            .returns(r#"[{"project_id":1,"name":"Inbox","open_tasks":2}]"#)
            .handler(|call| {
                let me = call.user();
                let db = &call.world.db;
                let projects = db.projects.iter().filter(|p| p.owner_id == me);
                let rows: Vec<Value> = paginate(projects, call.args.page())
                    .into_iter()
                    .map(|p| {
                        let open = db.todo_items.iter().filter(|t| t.project_id == p.id && !t.completed).count();
                        json!({"project_id": p.id, "name": p.name, "open_tasks": open})
                    })
                    .collect();
                Ok(rows.into())
            }),
        ApiSpec::new(APP, "create_project", "POST", "/projects")
            .doc("Create a project. Names are unique per user (case-insensitive).")
            .params([req("name", ParamType::Str, "Name of the project.").with(Constraint::MinLen(1))])
            .returns(r#"{"message":"string","project_id":1}"#)
            .handler(|call| {
                let me = call.user();
                let name = call.args.str("name").trim().to_owned();
                if name.is_empty() {
                    return Err(ApiError::invalid("The project name must not be blank."));
                }
                let db = &mut call.world.db;
                if let Some(p) = db.projects.iter().find(|p| p.owner_id == me && p.name.eq_ignore_ascii_case(&name)) {
                    return Err(ApiError::conflict(format!(
                        "You already have a project named '{}' (project_id {}).",
                        p.name, p.id
                    )));
                }
                let id = db.projects.insert(Project { id: 0, owner_id: me, name });
                Ok(json!({"message": "Project created.", "project_id": id}))
            }),
        ApiSpec::new(APP, "delete_project", "DELETE", "/projects/{project_id}")
            .doc("Delete an empty project. Delete or move its tasks first. The Inbox cannot be deleted.")
            .params([req("project_id", ParamType::Int, "Id of the project.")])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let project = owned_project(call, "project_id")?;
                let id = project.id;
                if project.name == INBOX {
                    return Err(ApiError::conflict("The Inbox project cannot be deleted."));
                }
                let tasks = call.world.db.todo_items.iter().filter(|t| t.project_id == id).count();
                if tasks > 0 {
                    return Err(ApiError::conflict(format!(
                        "Project {id} still has {tasks} tasks (open or completed); delete or move them first."
                    )));
                }
                call.world.db.projects.remove(id);
                Ok(json!({"message": "Project deleted."}))
            }),
        ApiSpec::new(APP, "show_tasks", "GET", "/tasks")
            .doc("List your tasks by due date (tasks without one last), then id. All filters are optional.")
            .params([
                opt("project_id", ParamType::Int, Value::Null, "Only tasks of this project."),
                opt("completed", ParamType::Bool, Value::Null, "Only completed (true) or open (false) tasks."),
                opt("due_before", ParamType::Str, Value::Null, "Only tasks due on or before this date, YYYY-MM-DD."),
                priority(Value::Null, "Only tasks of this priority (1 highest to 4)."),
                opt("query", ParamType::Str, Value::Null, "Words in the title."),
            ])
            .params(page_params())
            .returns(r#"[{"task_id":1,"title":"string","project_id":1,"due_date":"2024-05-20","priority":4,"completed":false}]"#)
            .handler(list_tasks),
        ApiSpec::new(APP, "show_task", "GET", "/tasks/{task_id}")
            .doc("Show one task.")
            .params([req("task_id", ParamType::Int, "Id of the task.")])
            .returns(r#"{"task_id":1,"title":"string","project_id":1,"project":"Inbox","due_date":"2024-05-20","priority":4,"completed":false}"#)
            .handler(|call| {
                let t = owned_task(call)?;
                let project = call.world.db.projects.get(t.project_id).map_or("", |p| p.name.as_str());
                Ok(json!({
                    "task_id": t.id, "title": t.title, "project_id": t.project_id, "project": project,
                    "due_date": t.due_date, "priority": t.priority, "completed": t.completed,
                }))
            }),
        ApiSpec::new(APP, "create_task", "POST", "/tasks")
            .doc("Create an open task. Without project_id it goes to your Inbox.")
            .params([
                req("title", ParamType::Str, "What to do.").with(Constraint::MinLen(1)),
                opt("project_id", ParamType::Int, Value::Null, "Project of the task (default: your Inbox)."),
                opt("due_date", ParamType::Str, Value::Null, "Due date, YYYY-MM-DD."),
                priority(json!(4), "1 (highest) to 4 (lowest)."),
            ])
            .returns(r#"{"message":"string","task_id":1}"#)
            .handler(|call| {
                let me = call.user();
                let title = title(call.args.str("title"))?;
                let due_date = call.args.opt_str("due_date").map(|d| date(d, false)).transpose()?.flatten();
                let project_id = match call.args.opt_int("project_id") {
                    Some(_) => owned_project(call, "project_id")?.id,
                    None => inbox(&mut call.world.db, me),
                };
                let task = TodoItem {
                    id: 0,
                    owner_id: me,
                    project_id,
                    title,
                    due_date,
                    priority: call.args.int("priority") as u8,
                    completed: false,
                };
                let id = call.world.db.todo_items.insert(task);
                Ok(json!({"message": "Task created.", "task_id": id}))
            }),
        ApiSpec::new(APP, "update_task", "PATCH", "/tasks/{task_id}")
            .doc("Change a task's title, due date, priority or project; only the fields you pass change.")
            .params([
                req("task_id", ParamType::Int, "Id of the task."),
                opt("title", ParamType::Str, Value::Null, "New title.").with(Constraint::MinLen(1)),
                opt("due_date", ParamType::Str, Value::Null, "New due date, YYYY-MM-DD; \"\" removes it."),
                priority(Value::Null, "New priority, 1 (highest) to 4 (lowest)."),
                opt("project_id", ParamType::Int, Value::Null, "Move the task to this project."),
            ])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let title = call.args.opt_str("title").map(title).transpose()?;
                let due_date = call.args.opt_str("due_date").map(|d| date(d, true)).transpose()?;
                let priority = call.args.opt_int("priority").map(|p| p as u8);
                let project_id = match call.args.opt_int("project_id") {
                    Some(_) => Some(owned_project(call, "project_id")?.id),
                    None => None,
                };
                if title.is_none() && due_date.is_none() && priority.is_none() && project_id.is_none() {
                    return Err(ApiError::invalid("Nothing to update: pass title, due_date, priority or project_id."));
                }
                let task = owned_task_mut(call)?;
                if let Some(title) = title {
                    task.title = title;
                }
                if let Some(due_date) = due_date {
                    task.due_date = due_date;
                }
                if let Some(priority) = priority {
                    task.priority = priority;
                }
                if let Some(project_id) = project_id {
                    task.project_id = project_id;
                }
                Ok(json!({"message": "Task updated."}))
            }),
        ApiSpec::new(APP, "complete_task", "POST", "/tasks/{task_id}/complete")
            .doc("Mark a task completed.")
            .params([req("task_id", ParamType::Int, "Id of the task.")])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| set_completed(call, true)),
        ApiSpec::new(APP, "reopen_task", "POST", "/tasks/{task_id}/reopen")
            .doc("Mark a completed task open again.")
            .params([req("task_id", ParamType::Int, "Id of the task.")])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| set_completed(call, false)),
        ApiSpec::new(APP, "delete_task", "DELETE", "/tasks/{task_id}")
            .doc("Delete a task.")
            .params([req("task_id", ParamType::Int, "Id of the task.")])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let id = owned_task(call)?.id;
                call.world.db.todo_items.remove(id);
                Ok(json!({"message": "Task deleted."}))
            }),
    ]
}

fn list_tasks(call: &mut Call<'_>) -> ApiResult {
    let me = call.user();
    let project = match call.args.opt_int("project_id") {
        Some(_) => Some(owned_project(call, "project_id")?.id),
        None => None,
    };
    let completed = call.args.opt_bool("completed");
    let due_before = match call.args.opt_str("due_before") {
        Some(d) => Some(
            date(d, false)?
                .ok_or_else(|| ApiError::invalid("due_before must be a date YYYY-MM-DD."))?,
        ),
        None => None,
    };
    let priority = call.args.opt_int("priority");
    let query = call.args.opt_str("query");
    let mut tasks: Vec<&TodoItem> = call
        .world
        .db
        .todo_items
        .iter()
        .filter(|t| {
            t.owner_id == me
                && project.is_none_or(|p| t.project_id == p)
                && completed.is_none_or(|c| t.completed == c)
                && due_before
                    .as_ref()
                    .is_none_or(|d| t.due_date.as_ref().is_some_and(|due| due <= d))
                && priority.is_none_or(|p| i64::from(t.priority) == p)
                && matches(query, &[&t.title])
        })
        .collect();
    tasks.sort_by(|a, b| {
        (a.due_date.is_none(), &a.due_date, a.id).cmp(&(b.due_date.is_none(), &b.due_date, b.id))
    });
    let rows: Vec<Value> = paginate(tasks, call.args.page())
        .into_iter()
        .map(|t| {
            json!({
                "task_id": t.id, "title": t.title, "project_id": t.project_id, "due_date": t.due_date,
                "priority": t.priority, "completed": t.completed,
            })
        })
        .collect();
    Ok(rows.into())
}

fn set_completed(call: &mut Call<'_>, completed: bool) -> ApiResult {
    let task = owned_task_mut(call)?;
    if task.completed == completed {
        let state = if completed {
            "already completed"
        } else {
            "not completed"
        };
        return Err(ApiError::conflict(format!("Task {} is {state}.", task.id)));
    }
    task.completed = completed;
    Ok(json!({"message": if completed { "Task completed." } else { "Task reopened." }}))
}

/// A trimmed, non-blank title.
fn title(text: &str) -> Result<String, ApiError> {
    let title = text.trim();
    if title.is_empty() {
        return Err(ApiError::invalid("The title must not be blank."));
    }
    Ok(title.to_owned())
}

/// A valid `YYYY-MM-DD` date; `""` is `None` when `blank_ok`.
fn date(text: &str, blank_ok: bool) -> Result<Option<String>, ApiError> {
    let text = text.trim();
    if blank_ok && text.is_empty() {
        Ok(None)
    } else if time::is_date(text) {
        Ok(Some(text.to_owned()))
    } else {
        Err(ApiError::invalid(format!(
            "'{text}' is not a valid date; use YYYY-MM-DD, like 2024-05-20."
        )))
    }
}

/// The user's Inbox project, created if missing.
fn inbox(db: &mut Db, me: Id) -> Id {
    let existing = db
        .projects
        .iter()
        .find(|p| p.owner_id == me && p.name == INBOX)
        .map(|p| p.id);
    existing.unwrap_or_else(|| {
        db.projects.insert(Project {
            id: 0,
            owner_id: me,
            name: INBOX.to_owned(),
        })
    })
}

fn owned_project<'a>(call: &'a Call<'_>, param: &str) -> Result<&'a Project, ApiError> {
    let id = call.args.id(param);
    let project = call
        .world
        .db
        .projects
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("No project with id {id}.")))?;
    check_owner(project.owner_id, call.user(), "project", id)?;
    Ok(project)
}

fn owned_task<'a>(call: &'a Call<'_>) -> Result<&'a TodoItem, ApiError> {
    let id = call.args.id("task_id");
    let task = call
        .world
        .db
        .todo_items
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("No task with id {id}.")))?;
    check_owner(task.owner_id, call.user(), "task", id)?;
    Ok(task)
}

fn owned_task_mut<'a>(call: &'a mut Call<'_>) -> Result<&'a mut TodoItem, ApiError> {
    owned_task(call)?;
    let id = call.args.id("task_id");
    Ok(call.world.db.todo_items.get_mut(id).expect("checked above"))
}

/// Projects besides the Inbox and the tasks they hold; `{}` is a related person's first name.
const PROJECTS: &[(&str, &[&str])] = &[
    (
        INBOX,
        &[
            "Call {}",
            "Buy a birthday gift for {}",
            "Pay electricity bill",
            "Book a haircut",
            "Renew library card",
            "Return package",
        ],
    ),
    (
        "Home",
        &[
            "Fix kitchen tap",
            "Clean the garage",
            "Replace hall light bulb",
            "Change bed sheets",
            "Defrost freezer",
        ],
    ),
    (
        "Work",
        &[
            "Prepare slides for Monday",
            "Send weekly report",
            "Review budget draft",
            "Update project plan",
            "Reply to {}",
        ],
    ),
    (
        "Garden",
        &[
            "Water the tomatoes",
            "Mow the lawn",
            "Plant tulip bulbs",
            "Trim the hedge",
        ],
    ),
    (
        "Trip",
        &[
            "Book hotel",
            "Renew passport",
            "Buy travel insurance",
            "Pack suitcase",
            "Print tickets",
        ],
    ),
    (
        "Fitness",
        &[
            "Sign up for yoga class",
            "Buy running shoes",
            "Run 5 km",
            "Book a swim lesson",
        ],
    ),
];

/// Seeds an Inbox plus one or two projects per person, holding 4–8 tasks due within 20 days of
/// `now`; most overdue tasks are done.
pub(super) fn populate(db: &mut Db, rng: &mut ChaCha8Rng, now: &str) {
    let people: Vec<Id> = db.people.iter().map(|p| p.id).collect();
    for person in people {
        let related: Vec<Id> = db
            .relationships
            .iter()
            .filter(|r| r.person_id == person)
            .map(|r| r.other_id)
            .collect();
        let mut extra: Vec<usize> = (1..PROJECTS.len()).collect();
        extra.shuffle(rng);
        extra.truncate(rng.random_range(1..=2));
        extra.sort_unstable();
        let mut kinds = vec![0];
        kinds.extend(extra);
        let project_ids: Vec<Id> = kinds
            .iter()
            .map(|&k| {
                db.projects.insert(Project {
                    id: 0,
                    owner_id: person,
                    name: PROJECTS[k].0.to_owned(),
                })
            })
            .collect();
        let mut candidates: Vec<(usize, usize)> = kinds
            .iter()
            .enumerate()
            .flat_map(|(i, &k)| (0..PROJECTS[k].1.len()).map(move |j| (i, j)))
            .collect();
        candidates.shuffle(rng);
        candidates.truncate(rng.random_range(4..=8));
        candidates.sort_unstable();
        for (i, j) in candidates {
            let template = PROJECTS[kinds[i]].1[j];
            let title = if template.contains("{}") {
                let other = related[rng.random_range(0..related.len())];
                template.replace("{}", &db.person(other).first_name)
            } else {
                template.to_owned()
            };
            let delta = rng.random_range(-20..=20);
            let due_date = rng.random_bool(0.8).then(|| time::shift_date(now, delta));
            let completed = rng.random_bool(if delta < 0 { 0.6 } else { 0.15 });
            db.todo_items.insert(TodoItem {
                id: 0,
                owner_id: person,
                project_id: project_ids[i],
                title,
                due_date,
                priority: rng.random_range(1..=4),
                completed,
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
        let (db, now) = generate(5);
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

    fn ids(rows: &Value, key: &str) -> Vec<Id> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r[key].as_u64().unwrap() as Id)
            .collect()
    }

    fn project_of(w: &World, person: Id, name: &str) -> Option<Id> {
        w.db.projects
            .iter()
            .find(|p| p.owner_id == person && p.name == name)
            .map(|p| p.id)
    }

    #[test]
    fn populate_gives_everyone_an_inbox_and_tasks() {
        let (db, now) = generate(5);
        assert_eq!(db.todo_items, generate(5).0.todo_items);
        for p in db.people.iter() {
            let projects: Vec<&Project> =
                db.projects.iter().filter(|x| x.owner_id == p.id).collect();
            assert_eq!(projects[0].name, INBOX);
            assert!((2..=3).contains(&projects.len()));
            let tasks: Vec<&TodoItem> = db
                .todo_items
                .iter()
                .filter(|t| t.owner_id == p.id)
                .collect();
            assert!((4..=8).contains(&tasks.len()));
            assert!(
                tasks
                    .iter()
                    .all(|t| projects.iter().any(|x| x.id == t.project_id))
            );
        }
        let today = time::day_number(&now).unwrap();
        assert!(
            db.todo_items
                .iter()
                .filter_map(|t| t.due_date.as_deref())
                .all(|d| { (time::day_number(d).unwrap() - today).abs() <= 20 })
        );
        assert!(
            db.todo_items.iter().any(|t| t.completed) && db.todo_items.iter().any(|t| !t.completed)
        );
    }

    #[test]
    fn login_checks_password() {
        let mut w = world();
        assert!(!login(&mut w, 3).is_empty());
        let email = w.db.person(3).email.clone();
        assert_eq!(
            status(call(
                &mut w,
                "login",
                json!({"username": email, "password": "x"})
            )),
            401
        );
    }

    #[test]
    fn projects_create_conflict_delete() {
        let mut w = world();
        let t = login(&mut w, 1);
        let shown = read(&mut w, &t, "show_projects", json!({}));
        let mine: Vec<&Project> = w.db.projects.iter().filter(|p| p.owner_id == 1).collect();
        assert_eq!(
            ids(&shown, "project_id"),
            mine.iter().map(|p| p.id).collect::<Vec<_>>()
        );
        let inbox = mine[0].id;
        let open =
            w.db.todo_items
                .iter()
                .filter(|x| x.project_id == inbox && !x.completed)
                .count();
        assert_eq!(
            shown[0],
            json!({"project_id": inbox, "name": "Inbox", "open_tasks": open})
        );

        let id =
            api(&mut w, &t, "create_project", json!({"name": " Moving "})).unwrap()["project_id"]
                .as_u64()
                .unwrap();
        assert_eq!(
            w.db.projects.get(id as Id),
            Some(&Project {
                id: id as Id,
                owner_id: 1,
                name: "Moving".into()
            })
        );
        assert_eq!(
            status(api(&mut w, &t, "create_project", json!({"name": "moving"}))),
            409
        );
        assert_eq!(
            status(api(&mut w, &t, "create_project", json!({"name": "inbox"}))),
            409
        );
        assert_eq!(
            status(api(&mut w, &t, "create_project", json!({"name": ""}))),
            422
        );
        // Someone else may use the same name.
        let t2 = login(&mut w, 2);
        assert!(api(&mut w, &t2, "create_project", json!({"name": "Moving"})).is_ok());

        let task = api(
            &mut w,
            &t,
            "create_task",
            json!({"title": "Rent van", "project_id": id}),
        )
        .unwrap()["task_id"]
            .as_u64()
            .unwrap();
        assert_eq!(
            status(api(&mut w, &t, "delete_project", json!({"project_id": id}))),
            409
        );
        api(&mut w, &t, "delete_task", json!({"task_id": task})).unwrap();
        let before = w.db.clone();
        api(&mut w, &t, "delete_project", json!({"project_id": id})).unwrap();
        let changes = w.db.diff(&before);
        assert_eq!(
            (changes.len(), changes[0].table, changes[0].after.is_none()),
            (1, "projects", true)
        );
        assert_eq!(
            status(api(&mut w, &t, "delete_project", json!({"project_id": id}))),
            404
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "delete_project",
                json!({"project_id": inbox})
            )),
            409
        );
        let other = project_of(&w, 2, INBOX).unwrap();
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "delete_project",
                json!({"project_id": other})
            )),
            401
        );
    }

    #[test]
    fn task_lifecycle() {
        let mut w = world();
        let t = login(&mut w, 1);
        let inbox = project_of(&w, 1, INBOX).unwrap();
        let id = api(&mut w, &t, "create_task", json!({"title": "Buy milk"})).unwrap()["task_id"]
            .as_u64()
            .unwrap() as Id;
        let expected = TodoItem {
            id,
            owner_id: 1,
            project_id: inbox,
            title: "Buy milk".into(),
            due_date: None,
            priority: 4,
            completed: false,
        };
        assert_eq!(w.db.todo_items.get(id), Some(&expected));
        assert_eq!(
            read(&mut w, &t, "show_task", json!({"task_id": id})),
            json!({"task_id": id, "title": "Buy milk", "project_id": inbox, "project": "Inbox", "due_date": null, "priority": 4, "completed": false})
        );

        let other_project =
            w.db.projects
                .iter()
                .find(|p| p.owner_id == 1 && p.name != INBOX)
                .unwrap()
                .id;
        let before = w.db.clone();
        api(
            &mut w,
            &t,
            "update_task",
            json!({"task_id": id, "due_date": "2024-06-01", "project_id": other_project}),
        )
        .unwrap();
        assert_eq!(w.db.diff(&before).len(), 1);
        let task = w.db.todo_items.get(id).unwrap().clone();
        assert_eq!(
            task,
            TodoItem {
                due_date: Some("2024-06-01".into()),
                project_id: other_project,
                ..expected.clone()
            }
        );
        api(
            &mut w,
            &t,
            "update_task",
            json!({"task_id": id, "priority": 1, "title": "Buy oat milk"}),
        )
        .unwrap();
        let task = w.db.todo_items.get(id).unwrap().clone();
        assert_eq!(
            (task.priority, task.title.as_str(), task.due_date.as_deref()),
            (1, "Buy oat milk", Some("2024-06-01"))
        );
        api(
            &mut w,
            &t,
            "update_task",
            json!({"task_id": id, "due_date": ""}),
        )
        .unwrap();
        assert_eq!(w.db.todo_items.get(id).unwrap().due_date, None);

        api(&mut w, &t, "complete_task", json!({"task_id": id})).unwrap();
        assert!(w.db.todo_items.get(id).unwrap().completed);
        assert_eq!(
            status(api(&mut w, &t, "complete_task", json!({"task_id": id}))),
            409
        );
        api(&mut w, &t, "reopen_task", json!({"task_id": id})).unwrap();
        assert!(!w.db.todo_items.get(id).unwrap().completed);
        assert_eq!(
            status(api(&mut w, &t, "reopen_task", json!({"task_id": id}))),
            409
        );

        let before = w.db.clone();
        api(&mut w, &t, "delete_task", json!({"task_id": id})).unwrap();
        let changes = w.db.diff(&before);
        assert_eq!(
            (
                changes.len(),
                changes[0].table,
                changes[0].id,
                changes[0].after.is_none()
            ),
            (1, "todo_items", id, true)
        );
        assert_eq!(
            status(api(&mut w, &t, "show_task", json!({"task_id": id}))),
            404
        );

        let full = json!({"title": "Dentist", "due_date": "2024-02-29", "priority": 2, "project_id": other_project});
        let id2 = api(&mut w, &t, "create_task", full).unwrap()["task_id"]
            .as_u64()
            .unwrap() as Id;
        let task = w.db.todo_items.get(id2).unwrap();
        assert_eq!(
            (task.project_id, task.due_date.as_deref(), task.priority),
            (other_project, Some("2024-02-29"), 2)
        );
    }

    #[test]
    fn show_tasks_filters_orders_and_paginates() {
        let mut w = world();
        let t = login(&mut w, 4);
        let mut mine: Vec<TodoItem> =
            w.db.todo_items
                .iter()
                .filter(|x| x.owner_id == 4)
                .cloned()
                .collect();
        mine.sort_by(|a, b| {
            (a.due_date.is_none(), a.due_date.clone(), a.id).cmp(&(
                b.due_date.is_none(),
                b.due_date.clone(),
                b.id,
            ))
        });
        let all: Vec<Id> = mine.iter().map(|x| x.id).collect();
        assert_eq!(
            ids(
                &read(&mut w, &t, "show_tasks", json!({"page_limit": 20})),
                "task_id"
            ),
            all
        );
        assert_eq!(
            ids(&read(&mut w, &t, "show_tasks", json!({})), "task_id"),
            all[..5.min(all.len())]
        );
        assert_eq!(
            ids(
                &read(
                    &mut w,
                    &t,
                    "show_tasks",
                    json!({"page_index": 1, "page_limit": 3})
                ),
                "task_id"
            ),
            all[3..6.min(all.len())]
        );

        let open: Vec<Id> = mine.iter().filter(|x| !x.completed).map(|x| x.id).collect();
        assert_eq!(
            ids(
                &read(
                    &mut w,
                    &t,
                    "show_tasks",
                    json!({"completed": false, "page_limit": 20})
                ),
                "task_id"
            ),
            open
        );
        let cut = w.now[..10].to_owned();
        let due: Vec<Id> = mine
            .iter()
            .filter(|x| x.due_date.as_ref().is_some_and(|d| *d <= cut))
            .map(|x| x.id)
            .collect();
        assert_eq!(
            ids(
                &read(
                    &mut w,
                    &t,
                    "show_tasks",
                    json!({"due_before": cut, "page_limit": 20})
                ),
                "task_id"
            ),
            due
        );
        let p = mine[0].project_id;
        let in_p: Vec<Id> = mine
            .iter()
            .filter(|x| x.project_id == p)
            .map(|x| x.id)
            .collect();
        assert_eq!(
            ids(
                &read(
                    &mut w,
                    &t,
                    "show_tasks",
                    json!({"project_id": p, "page_limit": 20})
                ),
                "task_id"
            ),
            in_p
        );
        let prio = mine[0].priority;
        let with_prio: Vec<Id> = mine
            .iter()
            .filter(|x| x.priority == prio)
            .map(|x| x.id)
            .collect();
        assert_eq!(
            ids(
                &read(
                    &mut w,
                    &t,
                    "show_tasks",
                    json!({"priority": prio, "page_limit": 20})
                ),
                "task_id"
            ),
            with_prio
        );

        let a = api(
            &mut w,
            &t,
            "create_task",
            json!({"title": "Walk the llama", "due_date": "2024-12-31"}),
        )
        .unwrap()["task_id"]
            .as_u64()
            .unwrap() as Id;
        let b = api(&mut w, &t, "create_task", json!({"title": "Feed LLAMA"})).unwrap()["task_id"]
            .as_u64()
            .unwrap() as Id;
        let c = api(
            &mut w,
            &t,
            "create_task",
            json!({"title": "llama vet", "due_date": "2024-01-02"}),
        )
        .unwrap()["task_id"]
            .as_u64()
            .unwrap() as Id;
        assert_eq!(
            ids(
                &read(&mut w, &t, "show_tasks", json!({"query": "llama"})),
                "task_id"
            ),
            [c, a, b]
        );
        let row = &read(&mut w, &t, "show_tasks", json!({"query": "feed llama"}))[0];
        let inbox = project_of(&w, 4, INBOX).unwrap();
        assert_eq!(
            row,
            &json!({"task_id": b, "title": "Feed LLAMA", "project_id": inbox, "due_date": null, "priority": 4, "completed": false})
        );
    }

    #[test]
    fn errors() {
        let mut w = world();
        let t = login(&mut w, 1);
        let before = w.db.clone();
        let theirs = w.db.todo_items.iter().find(|x| x.owner_id == 2).unwrap().id;
        for api_name in ["show_task", "complete_task", "reopen_task", "delete_task"] {
            assert_eq!(
                status(api(&mut w, &t, api_name, json!({"task_id": theirs}))),
                401,
                "{api_name}"
            );
        }
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "update_task",
                json!({"task_id": theirs, "priority": 1})
            )),
            401
        );
        let their_project = project_of(&w, 2, INBOX).unwrap();
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "show_tasks",
                json!({"project_id": their_project})
            )),
            401
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "create_task",
                json!({"title": "x", "project_id": their_project})
            )),
            401
        );
        let missing = api(&mut w, &t, "show_task", json!({"task_id": 77_777})).unwrap_err();
        assert_eq!(
            (missing.status, missing.message.as_str()),
            (404, "No task with id 77777.")
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "create_task",
                json!({"title": "x", "project_id": 77_777})
            )),
            404
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "create_task",
                json!({"title": "x", "due_date": "tomorrow"})
            )),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "create_task",
                json!({"title": "x", "due_date": "2023-02-29"})
            )),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "create_task",
                json!({"title": "x", "priority": 0})
            )),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "create_task",
                json!({"title": "x", "priority": 5})
            )),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "create_task",
                json!({"title": "x", "priority": "high"})
            )),
            422
        );
        assert_eq!(
            status(api(&mut w, &t, "create_task", json!({"title": " "}))),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "show_tasks",
                json!({"due_before": "05/20/2024"})
            )),
            422
        );
        let mine = w.db.todo_items.iter().find(|x| x.owner_id == 1).unwrap().id;
        assert_eq!(
            status(api(&mut w, &t, "update_task", json!({"task_id": mine}))),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "update_task",
                json!({"task_id": mine, "due_date": "2024-13-01"})
            )),
            422
        );
        assert!(w.db.diff(&before).is_empty());
    }
}
