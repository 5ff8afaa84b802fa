//! `phone`: a person's contacts (with their relationship to the person) and text messages. The
//! username is the phone number. A text message is one record seen by its sender and receiver;
//! deleting it removes it for both.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{
    ApiError, ApiResult, ApiSpec, Call, Constraint, ParamType, account_apis, check_owner, matches,
    opt, page_params, paginate, req,
};
use crate::db::{Contact, Db, Id, Person, TextMessage};
use crate::time;

const APP: &str = "phone";

pub(super) fn apis() -> Vec<ApiSpec> {
    let [login, logout] = account_apis(APP);
    let field = |name: &'static str, description: &'static str| {
        opt(name, ParamType::Str, Value::Null, description)
    };
    vec![
        login,
        logout,
        ApiSpec::new(APP, "search_contacts", "GET", "/contacts")
            .doc("List your contacts by name. Filter by words (name, email or phone) or relationship.")
            .params([
                opt("query", ParamType::Str, Value::Null, "Words in the name, email or phone number."),
                opt("relationship", ParamType::Str, Value::Null, "Only this relationship (friend, sister, coworker...)."),
            ])
            .params(page_params())
            .returns(r#"[{"contact_id":1,"first_name":"string","last_name":"string","phone_number":"5551234567","email":"string","relationship":"friend"}]"#)
            .handler(search_contacts),
        ApiSpec::new(APP, "show_contact", "GET", "/contacts/{contact_id}")
            .doc("Show one contact.")
            .params([req("contact_id", ParamType::Int, "Id of the contact.")])
            .returns(r#"{"contact_id":1,"first_name":"string","last_name":"string","phone_number":"5551234567","email":"string","relationship":"friend","birthday":"1990-05-20"}"#)
            .handler(|call| {
                let c = owned_contact(call)?;
                Ok(json!({
                    "contact_id": c.id, "first_name": c.first_name, "last_name": c.last_name,
                    "phone_number": c.phone_number, "email": c.email, "relationship": c.relationship,
                    "birthday": c.birthday,
                }))
            }),
        ApiSpec::new(APP, "add_contact", "POST", "/contacts")
            .doc("Add a contact. Phone numbers have 10 digits; one contact per number.")
            .params([
                req("first_name", ParamType::Str, "First name.").with(Constraint::MinLen(1)),
                req("last_name", ParamType::Str, "Last name."),
                req("phone_number", ParamType::Str, "10-digit phone number, like 5551234567."),
                opt("email", ParamType::Str, json!(""), "Email address."),
                opt("relationship", ParamType::Str, json!(""), "Relationship to you (friend, sister, coworker...)."),
                opt("birthday", ParamType::Str, json!(""), "Birthday, YYYY-MM-DD."),
            ])
            .returns(r#"{"message":"string","contact_id":1}"#)
            .handler(|call| {
                let me = call.user();
                let contact = Contact {
                    id: 0,
                    owner_id: me,
                    first_name: name(call.args.str("first_name"))?,
                    last_name: call.args.str("last_name").trim().to_owned(),
                    phone_number: phone(call.args.str("phone_number"))?,
                    email: email(call.args.str("email"))?,
                    relationship: call.args.str("relationship").trim().to_lowercase(),
                    birthday: birthday(call.args.str("birthday"))?,
                };
                unique_number(&call.world.db, me, &contact.phone_number, None)?;
                let id = call.world.db.contacts.insert(contact);
                Ok(json!({"message": "Contact added.", "contact_id": id}))
            }),
        ApiSpec::new(APP, "update_contact", "PATCH", "/contacts/{contact_id}")
            .doc("Change a contact; only the fields you pass change.")
            .params([
                req("contact_id", ParamType::Int, "Id of the contact."),
                field("first_name", "New first name.").with(Constraint::MinLen(1)),
                field("last_name", "New last name."),
                field("phone_number", "New 10-digit phone number."),
                field("email", "New email address."),
                field("relationship", "New relationship."),
                field("birthday", "New birthday, YYYY-MM-DD."),
            ])
            .returns(r#"{"message":"string"}"#)
            .handler(update_contact),
        ApiSpec::new(APP, "delete_contact", "DELETE", "/contacts/{contact_id}")
            .doc("Delete a contact.")
            .params([req("contact_id", ParamType::Int, "Id of the contact.")])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let id = owned_contact(call)?.id;
                call.world.db.contacts.remove(id);
                Ok(json!({"message": "Contact deleted."}))
            }),
        ApiSpec::new(APP, "show_text_messages", "GET", "/messages")
            .doc("List text messages you sent or received, newest first. Filter by the other person's number or words.")
            .params([
                opt("phone_number", ParamType::Str, Value::Null, "Only messages with this phone number."),
                opt("query", ParamType::Str, Value::Null, "Words in the message."),
            ])
            .params(page_params())
            .returns(r#"[{"message_id":1,"sender":"5551234567","receiver":"5557654321","body":"string","sent_at":"string"}]"#)
            .handler(list_messages),
        ApiSpec::new(APP, "show_text_message", "GET", "/messages/{message_id}")
            .doc("Show one text message.")
            .params([req("message_id", ParamType::Int, "Id of the message.")])
            .returns(r#"{"message_id":1,"sender":"5551234567","receiver":"5557654321","body":"string","sent_at":"string"}"#)
            .handler(|call| Ok(message_json(owned_message(call)?))),
        ApiSpec::new(APP, "send_text_message", "POST", "/messages")
            .doc("Send a text message to a phone number.")
            .params([
                req("phone_number", ParamType::Str, "The receiver's 10-digit phone number."),
                req("message", ParamType::Str, "Text to send.").with(Constraint::MinLen(1)),
            ])
            .returns(r#"{"message":"string","message_id":1}"#)
            .handler(|call| {
                let me = call.user();
                let to = phone(call.args.str("phone_number"))?;
                let receiver = call
                    .world
                    .db
                    .person_by_phone(&to)
                    .ok_or_else(|| ApiError::not_found(format!("No phone account with the number {to}.")))?;
                if receiver.id == me {
                    return Err(ApiError::invalid("You cannot text your own number."));
                }
                let message = TextMessage {
                    id: 0,
                    sender: call.world.db.person(me).phone_number.clone(),
                    receiver: to,
                    body: call.args.str("message").to_owned(),
                    sent_at: call.world.now.clone(),
                };
                let id = call.world.db.text_messages.insert(message);
                Ok(json!({"message": "Text message sent.", "message_id": id}))
            }),
        ApiSpec::new(APP, "delete_text_message", "DELETE", "/messages/{message_id}")
            .doc("Delete a text message you sent or received.")
            .params([req("message_id", ParamType::Int, "Id of the message.")])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let id = owned_message(call)?.id;
                call.world.db.text_messages.remove(id);
                Ok(json!({"message": "Text message deleted."}))
            }),
    ]
}

fn search_contacts(call: &mut Call<'_>) -> ApiResult {
    let me = call.user();
    let query = call.args.opt_str("query");
    let relationship = call
        .args
        .opt_str("relationship")
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let mut contacts: Vec<&Contact> = call
        .world
        .db
        .contacts
        .iter()
        .filter(|c| {
            let full = format!("{} {}", c.first_name, c.last_name);
            c.owner_id == me
                && matches(query, &[&full, &c.email, &c.phone_number])
                && relationship.is_none_or(|r| c.relationship.eq_ignore_ascii_case(r))
        })
        .collect();
    contacts.sort_by_cached_key(|c| {
        (
            c.first_name.to_lowercase(),
            c.last_name.to_lowercase(),
            c.id,
        )
    });
    let rows: Vec<Value> = paginate(contacts, call.args.page())
        .into_iter()
        .map(|c| {
            json!({
                "contact_id": c.id, "first_name": c.first_name, "last_name": c.last_name,
                "phone_number": c.phone_number, "email": c.email, "relationship": c.relationship,
            })
        })
        .collect();
    Ok(rows.into())
}

fn update_contact(call: &mut Call<'_>) -> ApiResult {
    let me = call.user();
    let id = owned_contact(call)?.id;
    let args = &call.args;
    let first_name = args.opt_str("first_name").map(name).transpose()?;
    let last_name = args.opt_str("last_name").map(|s| s.trim().to_owned());
    let phone_number = args.opt_str("phone_number").map(phone).transpose()?;
    let email = args.opt_str("email").map(email).transpose()?;
    let relationship = args
        .opt_str("relationship")
        .map(|s| s.trim().to_lowercase());
    let birthday = args.opt_str("birthday").map(birthday).transpose()?;
    if first_name.is_none()
        && last_name.is_none()
        && phone_number.is_none()
        && email.is_none()
        && relationship.is_none()
        && birthday.is_none()
    {
        return Err(ApiError::invalid(
            "Nothing to update: pass first_name, last_name, phone_number, email, relationship or birthday.",
        ));
    }
    if let Some(number) = &phone_number {
        unique_number(&call.world.db, me, number, Some(id))?;
    }
    let contact = call.world.db.contacts.get_mut(id).expect("checked above");
    let fields = [
        (&mut contact.first_name, first_name),
        (&mut contact.last_name, last_name),
        (&mut contact.phone_number, phone_number),
        (&mut contact.email, email),
        (&mut contact.relationship, relationship),
        (&mut contact.birthday, birthday),
    ];
    for (field, value) in fields {
        if let Some(value) = value {
            *field = value;
        }
    }
    Ok(json!({"message": "Contact updated."}))
}

fn list_messages(call: &mut Call<'_>) -> ApiResult {
    let mine = call.world.db.person(call.user()).phone_number.clone();
    let other = call.args.opt_str("phone_number").map(phone).transpose()?;
    let query = call.args.opt_str("query");
    let mut messages: Vec<&TextMessage> = call
        .world
        .db
        .text_messages
        .iter()
        .filter(|m| {
            let between = match &other {
                Some(o) => {
                    (m.sender == mine && m.receiver == *o) || (m.receiver == mine && m.sender == *o)
                }
                None => m.sender == mine || m.receiver == mine,
            };
            between && matches(query, &[&m.body])
        })
        .collect();
    messages.sort_by(|a, b| (&b.sent_at, b.id).cmp(&(&a.sent_at, a.id)));
    let rows: Vec<Value> = paginate(messages, call.args.page())
        .into_iter()
        .map(message_json)
        .collect();
    Ok(rows.into())
}

fn message_json(m: &TextMessage) -> Value {
    json!({"message_id": m.id, "sender": m.sender, "receiver": m.receiver, "body": m.body, "sent_at": m.sent_at})
}

/// A 10-digit number; spaces, dashes, dots and parentheses are dropped.
fn phone(text: &str) -> Result<String, ApiError> {
    let number: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    if number.len() == 10 && number.bytes().all(|b| b.is_ascii_digit()) {
        Ok(number)
    } else {
        Err(ApiError::invalid(format!(
            "'{text}' is not a phone number: use 10 digits, like 5551234567."
        )))
    }
}

fn name(text: &str) -> Result<String, ApiError> {
    let name = text.trim();
    if name.is_empty() {
        return Err(ApiError::invalid("The first name must not be blank."));
    }
    Ok(name.to_owned())
}

fn email(text: &str) -> Result<String, ApiError> {
    let email = text.trim();
    if !email.is_empty() && !email.contains('@') {
        return Err(ApiError::invalid(format!(
            "'{email}' is not an email address."
        )));
    }
    Ok(email.to_owned())
}

fn birthday(text: &str) -> Result<String, ApiError> {
    let date = text.trim();
    if !date.is_empty() && !time::is_date(date) {
        return Err(ApiError::invalid(format!(
            "'{date}' is not a valid date; use YYYY-MM-DD, like 1990-05-20."
        )));
    }
    Ok(date.to_owned())
}

/// 409 if another of `me`'s contacts (not `except`) has this number.
fn unique_number(db: &Db, me: Id, number: &str, except: Option<Id>) -> Result<(), ApiError> {
    match db
        .contacts
        .iter()
        .find(|c| c.owner_id == me && c.phone_number == number && Some(c.id) != except)
    {
        Some(c) => Err(ApiError::conflict(format!(
            "You already have a contact with the number {number}: {} {} (contact_id {}).",
            c.first_name, c.last_name, c.id
        ))),
        None => Ok(()),
    }
}

fn owned_contact<'a>(call: &'a Call<'_>) -> Result<&'a Contact, ApiError> {
    let id = call.args.id("contact_id");
    let contact = call
        .world
        .db
        .contacts
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("No contact with id {id}.")))?;
    check_owner(contact.owner_id, call.user(), "contact", id)?;
    Ok(contact)
}

fn owned_message<'a>(call: &'a Call<'_>) -> Result<&'a TextMessage, ApiError> {
    let id = call.args.id("message_id");
    let message = call
        .world
        .db
        .text_messages
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("No text message with id {id}.")))?;
    let mine = &call.world.db.person(call.user()).phone_number;
    if &message.sender != mine && &message.receiver != mine {
        return Err(ApiError::unauthorized(format!(
            "You are not authorized to access text message {id}: you neither sent nor received it."
        )));
    }
    Ok(message)
}

const OPENERS: &[&str] = &[
    "Running 10 min late, sorry!",
    "Can you pick up milk on your way?",
    "Dinner at 7 tonight?",
    "Did you see the game last night?",
    "Thanks for your help today!",
    "Call me when you can.",
    "I sent you the money for the tickets.",
    "Are we still on for Saturday?",
    "The meeting moved to 3 pm.",
    "Good luck with the interview!",
    "Can I borrow your ladder this weekend?",
    "Landed safely, see you soon.",
];
const REPLIES: &[&str] = &[
    "Sure!",
    "Sounds good.",
    "Ok, thanks!",
    "On my way.",
    "Yes, see you then.",
    "No problem.",
];

/// A seeded conversation: day offset, hour, minute, sender, receiver, opener, optional reply.
type Event = (i64, u32, u32, Id, Id, usize, Option<usize>);

fn contact_of(owner: Id, p: &Person, relationship: &str) -> Contact {
    Contact {
        id: 0,
        owner_id: owner,
        first_name: p.first_name.clone(),
        last_name: p.last_name.clone(),
        phone_number: p.phone_number.clone(),
        email: p.email.clone(),
        relationship: relationship.to_owned(),
        birthday: p.birthday.clone(),
    }
}

/// Seeds each person's contacts (everyone they are related to, plus up to two acquaintances) and
/// 3–8 conversations with related people over the last 30 days, some answered the same day.
pub(super) fn populate(db: &mut Db, rng: &mut ChaCha8Rng, now: &str) {
    let people: Vec<Person> = db.people.iter().cloned().collect();
    let mut events: Vec<Event> = Vec::new();
    for person in &people {
        let related: Vec<(Id, String)> = db
            .relationships
            .iter()
            .filter(|r| r.person_id == person.id)
            .map(|r| (r.other_id, r.kind.clone()))
            .collect();
        let mut strangers: Vec<Id> = people
            .iter()
            .map(|p| p.id)
            .filter(|&id| id != person.id && !related.iter().any(|(o, _)| *o == id))
            .collect();
        strangers.shuffle(rng);
        strangers.truncate(rng.random_range(0..=2));
        strangers.sort_unstable();
        let mut contacts: Vec<Contact> = related
            .iter()
            .map(|(other, kind)| contact_of(person.id, db.person(*other), kind))
            .collect();
        contacts.extend(
            strangers
                .iter()
                .map(|&other| contact_of(person.id, db.person(other), "")),
        );
        for contact in contacts {
            db.contacts.insert(contact);
        }
        for _ in 0..rng.random_range(3..=8) {
            let (other, _) = related[rng.random_range(0..related.len())];
            let (from, to) = if rng.random_bool(0.5) {
                (person.id, other)
            } else {
                (other, person.id)
            };
            let reply = rng
                .random_bool(0.5)
                .then(|| rng.random_range(0..REPLIES.len()));
            events.push((
                rng.random_range(-30..0),
                rng.random_range(7..22),
                rng.random_range(0..50),
                from,
                to,
                rng.random_range(0..OPENERS.len()),
                reply,
            ));
        }
    }
    events.sort_unstable();
    let mut messages: Vec<TextMessage> = Vec::new();
    for (day, hour, minute, from, to, opener, reply) in events {
        let (a, b) = (
            db.person(from).phone_number.clone(),
            db.person(to).phone_number.clone(),
        );
        let at = |m: u32| time::timestamp(now, day, hour, m);
        messages.push(TextMessage {
            id: 0,
            sender: a.clone(),
            receiver: b.clone(),
            body: OPENERS[opener].to_owned(),
            sent_at: at(minute),
        });
        if let Some(reply) = reply {
            messages.push(TextMessage {
                id: 0,
                sender: b,
                receiver: a,
                body: REPLIES[reply].to_owned(),
                sent_at: at(minute + 5),
            });
        }
    }
    messages.sort_by(|x, y| x.sent_at.cmp(&y.sent_at));
    for message in messages {
        db.text_messages.insert(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::population::generate;
    use crate::world::World;

    fn world() -> World {
        let (db, now) = generate(9);
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

    fn number(w: &World, person: Id) -> String {
        w.db.person(person).phone_number.clone()
    }

    #[test]
    fn populate_contacts_and_messages() {
        let (db, now) = generate(9);
        assert_eq!(
            (&db.contacts, &db.text_messages),
            (&generate(9).0.contacts, &generate(9).0.text_messages)
        );
        for p in db.people.iter() {
            let contacts: Vec<&Contact> =
                db.contacts.iter().filter(|c| c.owner_id == p.id).collect();
            for r in db.relationships.iter().filter(|r| r.person_id == p.id) {
                let other = db.person(r.other_id);
                let c = contacts
                    .iter()
                    .find(|c| c.phone_number == other.phone_number)
                    .expect("related is a contact");
                assert_eq!(
                    **c,
                    Contact {
                        id: c.id,
                        ..contact_of(p.id, other, &r.kind)
                    }
                );
            }
            let extra = contacts
                .iter()
                .filter(|c| c.relationship.is_empty())
                .count();
            assert!(extra <= 2);
            let sent = db
                .text_messages
                .iter()
                .filter(|m| m.sender == p.phone_number || m.receiver == p.phone_number);
            assert!(sent.count() >= 3);
        }
        let times: Vec<&String> = db.text_messages.iter().map(|m| &m.sent_at).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "ids follow time");
        assert!(times.iter().all(
            |t| t.as_str() < now.as_str() && t.as_str() >= time::shift_date(&now, -30).as_str()
        ));
    }

    #[test]
    fn login_uses_the_phone_number() {
        let mut w = world();
        assert!(!login(&mut w, 2).is_empty());
        let number = number(&w, 2);
        assert_eq!(
            status(call(
                &mut w,
                "login",
                json!({"username": number, "password": "bad"})
            )),
            401
        );
    }

    #[test]
    fn contacts_search_and_pagination() {
        let mut w = world();
        let t = login(&mut w, 1);
        let mut mine: Vec<Contact> =
            w.db.contacts
                .iter()
                .filter(|c| c.owner_id == 1)
                .cloned()
                .collect();
        mine.sort_by_key(|c| {
            (
                c.first_name.to_lowercase(),
                c.last_name.to_lowercase(),
                c.id,
            )
        });
        let all: Vec<Id> = mine.iter().map(|c| c.id).collect();
        assert_eq!(
            ids(
                &read(&mut w, &t, "search_contacts", json!({"page_limit": 20})),
                "contact_id"
            ),
            all
        );
        assert_eq!(
            ids(
                &read(&mut w, &t, "search_contacts", json!({})),
                "contact_id"
            ),
            all[..5]
        );
        assert_eq!(
            ids(
                &read(
                    &mut w,
                    &t,
                    "search_contacts",
                    json!({"page_index": 1, "page_limit": 4})
                ),
                "contact_id"
            ),
            all[4..8]
        );
        let friends: Vec<Id> = mine
            .iter()
            .filter(|c| c.relationship == "friend")
            .map(|c| c.id)
            .collect();
        assert!(friends.len() >= 3);
        assert_eq!(
            ids(
                &read(
                    &mut w,
                    &t,
                    "search_contacts",
                    json!({"relationship": "Friend", "page_limit": 20})
                ),
                "contact_id"
            ),
            friends
        );
        let c = &mine[0];
        let (cid, first, last, phone_number) = (
            c.id,
            c.first_name.clone(),
            c.last_name.clone(),
            c.phone_number.clone(),
        );
        let rows = read(
            &mut w,
            &t,
            "search_contacts",
            json!({"query": format!("{first} {last}")}),
        );
        assert_eq!(ids(&rows, "contact_id"), [cid]);
        assert_eq!(rows[0].as_object().unwrap().len(), 6);
        assert_eq!(
            ids(
                &read(
                    &mut w,
                    &t,
                    "search_contacts",
                    json!({"query": phone_number})
                ),
                "contact_id"
            ),
            [cid]
        );
        let shown = read(&mut w, &t, "show_contact", json!({"contact_id": cid}));
        let c = w.db.contacts.get(cid).unwrap();
        assert_eq!(
            shown,
            json!({"contact_id": cid, "first_name": c.first_name, "last_name": c.last_name, "phone_number": c.phone_number,
                   "email": c.email, "relationship": c.relationship, "birthday": c.birthday})
        );
    }

    #[test]
    fn add_update_delete_contact() {
        let mut w = world();
        let t = login(&mut w, 1);
        let args = json!({"first_name": "Zoe", "last_name": "Park", "phone_number": "(555) 000-1111", "relationship": "Neighbor", "birthday": "1990-02-03"});
        let id = api(&mut w, &t, "add_contact", args).unwrap()["contact_id"]
            .as_u64()
            .unwrap() as Id;
        let expected = Contact {
            id,
            owner_id: 1,
            first_name: "Zoe".into(),
            last_name: "Park".into(),
            phone_number: "5550001111".into(),
            email: String::new(),
            relationship: "neighbor".into(),
            birthday: "1990-02-03".into(),
        };
        assert_eq!(w.db.contacts.get(id), Some(&expected));
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "add_contact",
                json!({"first_name": "Z", "last_name": "", "phone_number": "5550001111"})
            )),
            409
        );
        let before = w.db.clone();
        api(
            &mut w,
            &t,
            "update_contact",
            json!({"contact_id": id, "email": "zoe@mail.com", "birthday": ""}),
        )
        .unwrap();
        assert_eq!(w.db.diff(&before).len(), 1);
        assert_eq!(
            w.db.contacts.get(id),
            Some(&Contact {
                email: "zoe@mail.com".into(),
                birthday: String::new(),
                ..expected.clone()
            })
        );
        let taken =
            w.db.contacts
                .iter()
                .find(|c| c.owner_id == 1 && c.id != id)
                .unwrap()
                .phone_number
                .clone();
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "update_contact",
                json!({"contact_id": id, "phone_number": taken})
            )),
            409
        );
        api(
            &mut w,
            &t,
            "update_contact",
            json!({"contact_id": id, "phone_number": "5550001111"}),
        )
        .unwrap();
        assert_eq!(
            status(api(&mut w, &t, "update_contact", json!({"contact_id": id}))),
            422
        );
        let before = w.db.clone();
        api(&mut w, &t, "delete_contact", json!({"contact_id": id})).unwrap();
        let changes = w.db.diff(&before);
        assert_eq!(
            (changes.len(), changes[0].table, changes[0].after.is_none()),
            (1, "contacts", true)
        );
        assert_eq!(
            status(api(&mut w, &t, "show_contact", json!({"contact_id": id}))),
            404
        );
    }

    #[test]
    fn text_messages() {
        let mut w = world();
        let t = login(&mut w, 1);
        let me = number(&w, 1);
        let mut mine: Vec<TextMessage> =
            w.db.text_messages
                .iter()
                .filter(|m| m.sender == me || m.receiver == me)
                .cloned()
                .collect();
        mine.sort_by(|a, b| (&b.sent_at, b.id).cmp(&(&a.sent_at, a.id)));
        let all: Vec<Id> = mine.iter().map(|m| m.id).collect();
        assert_eq!(
            ids(
                &read(&mut w, &t, "show_text_messages", json!({"page_limit": 20})),
                "message_id"
            ),
            all[..20.min(all.len())]
        );
        assert_eq!(
            ids(
                &read(
                    &mut w,
                    &t,
                    "show_text_messages",
                    json!({"page_index": 1, "page_limit": 2})
                ),
                "message_id"
            ),
            all[2..4]
        );
        let other = if mine[0].sender == me {
            mine[0].receiver.clone()
        } else {
            mine[0].sender.clone()
        };
        let with: Vec<Id> = mine
            .iter()
            .filter(|m| m.sender == other || m.receiver == other)
            .map(|m| m.id)
            .take(20)
            .collect();
        assert_eq!(
            ids(
                &read(
                    &mut w,
                    &t,
                    "show_text_messages",
                    json!({"phone_number": other, "page_limit": 20})
                ),
                "message_id"
            ),
            with
        );

        let now = w.now.clone();
        let out = api(
            &mut w,
            &t,
            "send_text_message",
            json!({"phone_number": other, "message": "Pizza tonight?"}),
        )
        .unwrap();
        let id = out["message_id"].as_u64().unwrap() as Id;
        let expected = TextMessage {
            id,
            sender: me.clone(),
            receiver: other.clone(),
            body: "Pizza tonight?".into(),
            sent_at: now.clone(),
        };
        assert_eq!(w.db.text_messages.get(id), Some(&expected));
        let rows = read(&mut w, &t, "show_text_messages", json!({"query": "pizza"}));
        assert_eq!(
            rows,
            json!([{"message_id": id, "sender": me, "receiver": other, "body": "Pizza tonight?", "sent_at": now}])
        );
        assert_eq!(
            read(&mut w, &t, "show_text_message", json!({"message_id": id})),
            rows[0]
        );
        // The receiver sees it too.
        let receiver = w.db.person_by_phone(&other).unwrap().id;
        let t2 = login(&mut w, receiver);
        assert_eq!(
            ids(
                &read(&mut w, &t2, "show_text_messages", json!({"query": "pizza"})),
                "message_id"
            ),
            [id]
        );

        let before = w.db.clone();
        api(
            &mut w,
            &t2,
            "delete_text_message",
            json!({"message_id": id}),
        )
        .unwrap();
        let changes = w.db.diff(&before);
        assert_eq!(
            (
                changes.len(),
                changes[0].table,
                changes[0].id,
                changes[0].after.is_none()
            ),
            (1, "text_messages", id, true)
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "show_text_message",
                json!({"message_id": id})
            )),
            404
        );
    }

    #[test]
    fn errors() {
        let mut w = world();
        let t = login(&mut w, 1);
        let me = number(&w, 1);
        let before = w.db.clone();
        let theirs = w.db.contacts.iter().find(|c| c.owner_id == 2).unwrap().id;
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "show_contact",
                json!({"contact_id": theirs})
            )),
            401
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "delete_contact",
                json!({"contact_id": theirs})
            )),
            401
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "update_contact",
                json!({"contact_id": theirs, "last_name": "X"})
            )),
            401
        );
        let foreign =
            w.db.text_messages
                .iter()
                .find(|m| m.sender != me && m.receiver != me)
                .unwrap()
                .id;
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "show_text_message",
                json!({"message_id": foreign})
            )),
            401
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "delete_text_message",
                json!({"message_id": foreign})
            )),
            401
        );
        let missing = api(&mut w, &t, "show_contact", json!({"contact_id": 55_555})).unwrap_err();
        assert_eq!(
            (missing.status, missing.message.as_str()),
            (404, "No contact with id 55555.")
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "show_text_message",
                json!({"message_id": 55_555})
            )),
            404
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "send_text_message",
                json!({"phone_number": "5550000000", "message": "hi"})
            )),
            404
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "send_text_message",
                json!({"phone_number": "12345", "message": "hi"})
            )),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "send_text_message",
                json!({"phone_number": me, "message": "hi"})
            )),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "send_text_message",
                json!({"phone_number": "5551234567", "message": ""})
            )),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "show_text_messages",
                json!({"phone_number": "abc"})
            )),
            422
        );
        let add = |extra: Value| {
            let mut args =
                json!({"first_name": "A", "last_name": "B", "phone_number": "5559990000"});
            args.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            args
        };
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "add_contact",
                add(json!({"phone_number": "555999000"}))
            )),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "add_contact",
                add(json!({"phone_number": "555999000a"}))
            )),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "add_contact",
                add(json!({"first_name": ""}))
            )),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "add_contact",
                add(json!({"birthday": "1990-02-30"}))
            )),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "add_contact",
                add(json!({"email": "nope"}))
            )),
            422
        );
        assert_eq!(
            status(api(
                &mut w,
                &t,
                "add_contact",
                add(json!({"phone_number": 5559990000_i64}))
            )),
            422
        );
        assert!(w.db.diff(&before).is_empty());
    }
}
