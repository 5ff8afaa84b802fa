//! `mail`: an email client. Each person has their own copy of every mail they sent (`sent`) or
//! received (`inbox`), so deleting or starring one copy never touches another person's mailbox.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{
    ApiError, ApiSpec, Call, Constraint, ParamType, account_apis, check_owner, matches, opt,
    page_params, paginate, req,
};
use crate::db::{Db, Id, Mail};
use crate::time;

const APP: &str = "mail";

const TOPICS: &[(&str, &str)] = &[
    (
        "Lunch on Friday?",
        "Are you free for lunch on Friday at noon?",
    ),
    (
        "Photos from the trip",
        "I uploaded the photos from our trip. Let me know which ones you like.",
    ),
    (
        "Book recommendation",
        "You should read The Silent Coast. I think you would love it.",
    ),
    (
        "Meeting notes",
        "Here are the notes from today's meeting. Please review the action items.",
    ),
    (
        "Birthday party",
        "We are planning a surprise party next Saturday. Can you come?",
    ),
    (
        "Quick question",
        "Do you still have the charger I lent you last month?",
    ),
    (
        "Weekend plans",
        "Want to go hiking this weekend? The weather looks great.",
    ),
    (
        "Recipe",
        "Here is the lasagna recipe you asked for. It takes about an hour.",
    ),
    (
        "Project update",
        "The report is almost done. I will send the final draft tomorrow.",
    ),
    (
        "Concert tickets",
        "I got two tickets for the concert in June. Do you want one?",
    ),
];

pub(super) fn apis() -> Vec<ApiSpec> {
    let [login, logout] = account_apis(APP);
    vec![
        login,
        logout,
        ApiSpec::new(APP, "show_inbox", "GET", "/inbox")
            .doc("List mails you received, newest first. Filter by words, sender, unread or starred.")
            .params([
                opt("query", ParamType::Str, Value::Null, "Words in the subject or body."),
                opt("sender_email", ParamType::Str, Value::Null, "Only mails from this address."),
                opt("only_unread", ParamType::Bool, json!(false), "Only unread mails."),
                opt("only_starred", ParamType::Bool, json!(false), "Only starred mails."),
            ])
            .params(page_params())
            .returns(r#"[{"mail_id":1,"sender":"string","subject":"string","sent_at":"string","read":false,"starred":false}]"#)
            .handler(|call| list(call, "inbox")),
        ApiSpec::new(APP, "show_sent", "GET", "/sent")
            .doc("List mails you sent, newest first. Filter by words or recipient.")
            .params([
                opt("query", ParamType::Str, Value::Null, "Words in the subject or body."),
                opt("recipient_email", ParamType::Str, Value::Null, "Only mails to this address."),
            ])
            .params(page_params())
            .returns(r#"[{"mail_id":1,"recipients":["string"],"subject":"string","sent_at":"string"}]"#)
            .handler(|call| list(call, "sent")),
        ApiSpec::new(APP, "show_mail", "GET", "/mails/{mail_id}")
            .doc("Show one mail with its body.")
            .params([req("mail_id", ParamType::Int, "Id of the mail.")])
            .returns(r#"{"mail_id":1,"sender":"string","recipients":["string"],"subject":"string","body":"string","sent_at":"string"}"#)
            .handler(|call| {
                let mail = owned(call, "mail_id")?;
                Ok(json!({
                    "mail_id": mail.id, "sender": mail.sender, "recipients": mail.recipients,
                    "subject": mail.subject, "body": mail.body, "sent_at": mail.sent_at,
                }))
            }),
        ApiSpec::new(APP, "send_mail", "POST", "/mails")
            .doc("Send a mail to one or more recipients.")
            .params([
                req("recipient_emails", ParamType::StrList, "Addresses to send to.").with(Constraint::MinLen(1)),
                req("subject", ParamType::Str, "Subject line.").with(Constraint::MinLen(1)),
                opt("body", ParamType::Str, json!(""), "Text of the mail."),
            ])
            .returns(r#"{"message":"string","mail_id":1}"#)
            .handler(|call| {
                let to = call.args.str_list("recipient_emails");
                let subject = call.args.str("subject").to_owned();
                let body = call.args.str("body").to_owned();
                let id = deliver(call, to, subject, body)?;
                Ok(json!({"message": "Mail sent.", "mail_id": id}))
            }),
        ApiSpec::new(APP, "reply_to_mail", "POST", "/mails/{mail_id}/reply")
            .doc("Reply to the sender of a mail in your inbox.")
            .params([
                req("mail_id", ParamType::Int, "Id of the mail to reply to."),
                req("body", ParamType::Str, "Text of the reply.").with(Constraint::MinLen(1)),
            ])
            .returns(r#"{"message":"string","mail_id":1}"#)
            .handler(|call| {
                let mail = owned(call, "mail_id")?;
                if mail.folder != "inbox" {
                    return Err(ApiError::conflict("You can only reply to mails in your inbox."));
                }
                let subject = if mail.subject.starts_with("Re: ") { mail.subject.clone() } else { format!("Re: {}", mail.subject) };
                let body = call.args.str("body").to_owned();
                let id = deliver(call, vec![mail.sender.clone()], subject, body)?;
                Ok(json!({"message": "Reply sent.", "mail_id": id}))
            }),
        ApiSpec::new(APP, "forward_mail", "POST", "/mails/{mail_id}/forward")
            .doc("Forward a mail to other recipients.")
            .params([
                req("mail_id", ParamType::Int, "Id of the mail to forward."),
                req("recipient_emails", ParamType::StrList, "Addresses to forward to.").with(Constraint::MinLen(1)),
            ])
            .returns(r#"{"message":"string","mail_id":1}"#)
            .handler(|call| {
                let mail = owned(call, "mail_id")?;
                let to = call.args.str_list("recipient_emails");
                let id = deliver(call, to, format!("Fwd: {}", mail.subject), mail.body.clone())?;
                Ok(json!({"message": "Mail forwarded.", "mail_id": id}))
            }),
        ApiSpec::new(APP, "mark_mail_read", "PATCH", "/mails/{mail_id}/read")
            .doc("Mark a mail read or unread.")
            .params([
                req("mail_id", ParamType::Int, "Id of the mail."),
                opt("read", ParamType::Bool, json!(true), "True for read, false for unread."),
            ])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let read = call.args.bool("read");
                owned_mut(call, "mail_id")?.read = read;
                Ok(json!({"message": "Mail updated."}))
            }),
        ApiSpec::new(APP, "star_mail", "PATCH", "/mails/{mail_id}/star")
            .doc("Star or unstar a mail.")
            .params([
                req("mail_id", ParamType::Int, "Id of the mail."),
                opt("starred", ParamType::Bool, json!(true), "True to star, false to unstar."),
            ])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let starred = call.args.bool("starred");
                owned_mut(call, "mail_id")?.starred = starred;
                Ok(json!({"message": "Mail updated."}))
            }),
        ApiSpec::new(APP, "delete_mail", "DELETE", "/mails/{mail_id}")
            .doc("Delete a mail from your mailbox.")
            .params([req("mail_id", ParamType::Int, "Id of the mail.")])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let id = owned(call, "mail_id")?.id;
                call.world.db.mails.remove(id);
                Ok(json!({"message": "Mail deleted."}))
            }),
    ]
}

fn list(call: &mut Call<'_>, folder: &str) -> super::ApiResult {
    let me = call.user();
    let query = call.args.opt_str("query");
    let other = call.args.opt_str(if folder == "inbox" {
        "sender_email"
    } else {
        "recipient_email"
    });
    let (unread, starred) = if folder == "inbox" {
        (
            call.args.bool("only_unread"),
            call.args.bool("only_starred"),
        )
    } else {
        (false, false)
    };
    let mails = call.world.db.mails.iter().rev().filter(|m| {
        m.owner_id == me
            && m.folder == folder
            && matches(query, &[&m.subject, &m.body])
            && other.is_none_or(|o| {
                m.sender.eq_ignore_ascii_case(o.trim())
                    || m.recipients
                        .iter()
                        .any(|r| r.eq_ignore_ascii_case(o.trim()))
            })
            && (!unread || !m.read)
            && (!starred || m.starred)
    });
    let rows: Vec<Value> = paginate(mails, call.args.page())
        .into_iter()
        .map(|m| {
            if folder == "inbox" {
                json!({"mail_id": m.id, "sender": m.sender, "subject": m.subject, "sent_at": m.sent_at, "read": m.read, "starred": m.starred})
            } else {
                json!({"mail_id": m.id, "recipients": m.recipients, "subject": m.subject, "sent_at": m.sent_at})
            }
        })
        .collect();
    Ok(rows.into())
}

fn owned<'a>(call: &'a Call<'_>, param: &str) -> Result<&'a Mail, ApiError> {
    let id = call.args.id(param);
    let mail = call
        .world
        .db
        .mails
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("No mail with id {id}.")))?;
    check_owner(mail.owner_id, call.user(), "mail", id)?;
    Ok(mail)
}

fn owned_mut<'a>(call: &'a mut Call<'_>, param: &str) -> Result<&'a mut Mail, ApiError> {
    owned(call, param)?;
    let id = call.args.id(param);
    Ok(call.world.db.mails.get_mut(id).expect("checked above"))
}

/// Stores the sender's `sent` copy and one `inbox` copy per recipient; every recipient must be a
/// known address. Returns the id of the sent copy.
fn deliver(
    call: &mut Call<'_>,
    to: Vec<String>,
    subject: String,
    body: String,
) -> Result<Id, ApiError> {
    let me = call.user();
    let now = call.world.now.clone();
    let mut recipients = Vec::new();
    for address in &to {
        let person = call.world.db.person_by_email(address).ok_or_else(|| {
            ApiError::not_found(format!(
                "No mail account with the address '{}'.",
                address.trim()
            ))
        })?;
        recipients.push((person.id, person.email.clone()));
    }
    let sender = call.world.db.person(me).email.clone();
    let emails: Vec<String> = recipients.iter().map(|(_, e)| e.clone()).collect();
    Ok(store(
        &mut call.world.db,
        me,
        &sender,
        &recipients,
        &emails,
        &subject,
        &body,
        &now,
        false,
    ))
}

#[allow(clippy::too_many_arguments)]
fn store(
    db: &mut Db,
    sender_id: Id,
    sender: &str,
    recipients: &[(Id, String)],
    emails: &[String],
    subject: &str,
    body: &str,
    at: &str,
    read: bool,
) -> Id {
    let mail = |owner_id: Id, folder: &str, read: bool| Mail {
        id: 0,
        owner_id,
        folder: folder.to_owned(),
        sender: sender.to_owned(),
        recipients: emails.to_vec(),
        subject: subject.to_owned(),
        body: body.to_owned(),
        sent_at: at.to_owned(),
        read,
        starred: false,
    };
    let sent = db.mails.insert(mail(sender_id, "sent", true));
    for (id, _) in recipients {
        db.mails.insert(mail(*id, "inbox", read));
    }
    sent
}

/// Seeds mails between related people over the last two months.
pub(super) fn populate(db: &mut Db, rng: &mut ChaCha8Rng, now: &str) {
    let mut pairs: Vec<(Id, Id)> = db
        .relationships
        .iter()
        .map(|r| (r.person_id, r.other_id))
        .collect();
    pairs.sort_unstable();
    let mut events: Vec<(i64, u32, Id, Id, usize)> = Vec::new();
    for (a, b) in pairs {
        if rng.random_bool(0.45) {
            events.push((
                rng.random_range(-60..0),
                rng.random_range(7..22),
                a,
                b,
                rng.random_range(0..TOPICS.len()),
            ));
        }
    }
    events.sort_unstable();
    for (day, hour, from, to, topic) in events {
        let (subject, body) = TOPICS[topic];
        let sender = db.person(from).email.clone();
        let recipient = db.person(to).email.clone();
        let at = time::timestamp(now, day, hour, from * 7 % 60);
        let read = day < -7 || rng.random_bool(0.3);
        store(
            db,
            from,
            &sender,
            &[(to, recipient.clone())],
            &[recipient],
            subject,
            body,
            &at,
            read,
        );
    }
}
