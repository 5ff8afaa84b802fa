//! `supervisor`: the person the agent works for (AppWorld's six supervisor APIs, plus
//! `show_date`, the world clock: agent code works out "the last 60 days" by asking it rather
//! than by calendar arithmetic on a date it must first copy).

use serde_json::{Value, json};

use super::{ApiError, ApiSpec, ParamType, opt};
use crate::world::Completion;

const APP: &str = "supervisor";

pub(super) fn apis() -> Vec<ApiSpec> {
    vec![
        ApiSpec::new(APP, "show_active_task", "GET", "/task")
            .doc("Show the task you are working on.")
            .open()
            .returns(r#"{"task_id":"string","instruction":"string"}"#)
            .handler(|call| {
                let (task_id, instruction) = call.world.task.clone().unwrap_or_default();
                Ok(json!({"task_id": task_id, "instruction": instruction}))
            }),
        ApiSpec::new(APP, "complete_task", "POST", "/task/complete")
            .doc("Mark the active task as done. Pass the answer if the task asks a question; status 'fail' if you cannot do it.")
            .open()
            .params([
                opt("answer", ParamType::Scalar, Value::Null, "Answer to the task's question, if any (text or number)."),
                opt("status", ParamType::Str, json!("success"), "'success' or 'fail'.")
                    .with(super::Constraint::OneOf(&["success", "fail"])),
            ])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                if call.world.completion.is_some() {
                    return Err(ApiError::conflict("The task is already completed."));
                }
                let answer = call.args.scalar("answer");
                let status = call.args.str("status").to_owned();
                call.world.completion = Some(Completion { answer, status });
                Ok(json!({"message": "Marked the active task complete."}))
            }),
        ApiSpec::new(APP, "show_profile", "GET", "/profile")
            .doc("Show your supervisor's profile.")
            .open()
            .returns(r#"{"first_name":"string","last_name":"string","email":"string","phone_number":"string","birthday":"string","city":"string"}"#)
            .handler(|call| {
                let p = call.world.db.person(call.world.supervisor_id);
                Ok(json!({
                    "first_name": p.first_name, "last_name": p.last_name, "email": p.email,
                    "phone_number": p.phone_number, "birthday": p.birthday, "city": p.city,
                }))
            }),
        ApiSpec::new(APP, "show_date", "GET", "/date")
            .doc("Show today's date in the world, or the date a number of days away from it.")
            .open()
            .params([opt(
                "days_from_today",
                ParamType::Int,
                json!(0),
                "Days to add to today: negative for the past (-30 is 30 days ago).",
            )
            .with(super::Constraint::Min(-36_500.0))
            .with(super::Constraint::Max(36_500.0))])
            .returns(r#"{"date":"YYYY-MM-DD"}"#)
            .handler(|call| {
                let delta = call.args.int("days_from_today");
                Ok(json!({"date": crate::time::shift_date(&call.world.now, delta)}))
            }),
        ApiSpec::new(APP, "show_addresses", "GET", "/addresses")
            .doc("Show your supervisor's postal addresses.")
            .open()
            .returns(r#"[{"address_id":1,"name":"home","street":"string","city":"string","zip_code":"string"}]"#)
            .handler(|call| {
                let me = call.world.supervisor_id;
                let rows: Vec<Value> = call.world.db.addresses.iter().filter(|a| a.owner_id == me).map(|a| {
                    json!({"address_id": a.id, "name": a.name, "street": a.street, "city": a.city, "zip_code": a.zip_code})
                }).collect();
                Ok(rows.into())
            }),
        ApiSpec::new(APP, "show_payment_cards", "GET", "/payment_cards")
            .doc("Show your supervisor's payment cards.")
            .open()
            .returns(r#"[{"card_id":1,"card_name":"string","last_four":"string","expiry":"string"}]"#)
            .handler(|call| {
                let me = call.world.supervisor_id;
                let rows: Vec<Value> = call.world.db.payment_cards.iter().filter(|c| c.owner_id == me).map(|c| {
                    json!({"card_id": c.id, "card_name": c.card_name, "last_four": c.last_four, "expiry": c.expiry})
                }).collect();
                Ok(rows.into())
            }),
        ApiSpec::new(APP, "show_account_passwords", "GET", "/account_passwords")
            .doc("Show your supervisor's password for each app.")
            .open()
            .returns(r#"[{"account_name":"string","password":"string"}]"#)
            .handler(|call| {
                let me = call.world.supervisor_id;
                let rows: Vec<Value> = call.world.db.accounts.iter().filter(|a| a.person_id == me).map(|a| {
                    json!({"account_name": a.app, "password": a.password})
                }).collect();
                Ok(rows.into())
            }),
    ]
}
