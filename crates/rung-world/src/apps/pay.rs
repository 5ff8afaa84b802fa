//! `pay`: a peer-to-peer payments app. Each person has a wallet; money moves only by sending it
//! or by approving a payment request, and every move is one transaction visible to both people.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{
    ApiError, ApiResult, ApiSpec, Call, Constraint, ParamType, account_apis, cents, check_owner,
    matches, opt, page_params, paginate, req,
};
use crate::db::{Db, Id, PaymentRequest, Transaction, Wallet};
use crate::time;

const APP: &str = "pay";

/// Everyday reasons to pay someone, with a range of plausible amounts in dollars.
const REASONS: &[(&str, u32, u32)] = &[
    ("dinner", 15, 80),
    ("rent share", 300, 900),
    ("concert tickets", 40, 150),
    ("groceries", 20, 120),
    ("birthday gift", 20, 100),
    ("taxi", 8, 40),
    ("coffee", 3, 12),
    ("movie night", 10, 30),
    ("utilities", 30, 120),
    ("lunch", 8, 30),
    ("gas money", 15, 60),
    ("book club", 10, 25),
];

pub(super) fn apis() -> Vec<ApiSpec> {
    let [login, logout] = account_apis(APP);
    let amount =
        || req("amount", ParamType::Float, "Amount in dollars.").with(Constraint::Min(0.01));
    let request_id = || {
        req(
            "payment_request_id",
            ParamType::Int,
            "Id of the payment request.",
        )
    };
    vec![
        login,
        logout,
        ApiSpec::new(APP, "show_balance", "GET", "/balance")
            .doc("Show your wallet balance in dollars.")
            .returns(r#"{"balance":120.5}"#)
            .handler(|call| Ok(json!({"balance": wallet(&call.world.db, call.user()).balance}))),
        ApiSpec::new(APP, "search_users", "GET", "/users")
            .doc("Find other users by name or email.")
            .params([opt("query", ParamType::Str, Value::Null, "Words in the name or email.")])
            .params(page_params())
            .returns(r#"[{"name":"string","email":"string"}]"#)
            .handler(|call| {
                let me = call.user();
                let query = call.args.opt_str("query");
                let people =
                    call.world.db.people.iter().filter(|p| p.id != me && matches(query, &[&p.full_name(), &p.email]));
                let rows: Vec<Value> = paginate(people, call.args.page())
                    .into_iter()
                    .map(|p| json!({"name": p.full_name(), "email": p.email}))
                    .collect();
                Ok(rows.into())
            }),
        ApiSpec::new(APP, "show_transactions", "GET", "/transactions")
            .doc("List your transactions, newest first. Dates are YYYY-MM-DD and inclusive.")
            .params([
                opt("direction", ParamType::Str, json!("all"), "'sent', 'received' or 'all'.")
                    .with(Constraint::OneOf(&["all", "sent", "received"])),
                opt("user_email", ParamType::Str, Value::Null, "Only transactions with this person."),
                opt("query", ParamType::Str, Value::Null, "Words in the description."),
                opt("min_amount", ParamType::Float, Value::Null, "Smallest amount.").with(Constraint::Min(0.0)),
                opt("max_amount", ParamType::Float, Value::Null, "Largest amount.").with(Constraint::Min(0.0)),
                opt("start_date", ParamType::Str, Value::Null, "Earliest date, YYYY-MM-DD."),
                opt("end_date", ParamType::Str, Value::Null, "Latest date, YYYY-MM-DD."),
            ])
            .params(page_params())
            .returns(r#"[{"transaction_id":1,"sender":"string","receiver":"string","amount":12.5,"description":"string","created_at":"string"}]"#)
            .handler(show_transactions),
        ApiSpec::new(APP, "show_transaction", "GET", "/transactions/{transaction_id}")
            .doc("Show one of your transactions with both people's names.")
            .params([req("transaction_id", ParamType::Int, "Id of the transaction.")])
            .returns(r#"{"transaction_id":1,"sender":"string","sender_name":"string","receiver":"string","receiver_name":"string","amount":12.5,"description":"string","created_at":"string"}"#)
            .handler(|call| {
                let id = call.args.id("transaction_id");
                let db = &call.world.db;
                let t = db.transactions.get(id).ok_or_else(|| ApiError::not_found(format!("No transaction with id {id}.")))?;
                let me = call.user();
                if t.receiver_id != me {
                    check_owner(t.sender_id, me, "transaction", id)?;
                }
                let (s, r) = (db.person(t.sender_id), db.person(t.receiver_id));
                Ok(json!({
                    "transaction_id": t.id, "sender": s.email, "sender_name": s.full_name(),
                    "receiver": r.email, "receiver_name": r.full_name(), "amount": t.amount,
                    "description": t.description, "created_at": t.created_at,
                }))
            }),
        ApiSpec::new(APP, "send_money", "POST", "/transactions")
            .doc("Send money from your wallet to another user.")
            .params([
                req("receiver_email", ParamType::Str, "Email of the person to pay."),
                amount(),
                opt("description", ParamType::Str, json!(""), "What it is for."),
            ])
            .returns(r#"{"message":"string","transaction_id":1}"#)
            .handler(|call| {
                let me = call.user();
                let to = other_user(call, "receiver_email", "send money to")?;
                let amount = cents(call.args.num("amount"));
                let description = call.args.str("description").trim().to_owned();
                let now = call.world.now.clone();
                let id = transfer(&mut call.world.db, me, to, amount, &description, &now)?;
                Ok(json!({"message": format!("Sent ${amount:.2}."), "transaction_id": id}))
            }),
        ApiSpec::new(APP, "request_money", "POST", "/payment_requests")
            .doc("Ask another user to pay you; they can approve or decline.")
            .params([
                req("payer_email", ParamType::Str, "Email of the person who should pay."),
                amount(),
                opt("description", ParamType::Str, json!(""), "What it is for."),
            ])
            .returns(r#"{"message":"string","payment_request_id":1}"#)
            .handler(|call| {
                let me = call.user();
                let payer = other_user(call, "payer_email", "request money from")?;
                let request = PaymentRequest {
                    id: 0,
                    requester_id: me,
                    payer_id: payer,
                    amount: cents(call.args.num("amount")),
                    description: call.args.str("description").trim().to_owned(),
                    status: "pending".into(),
                    created_at: call.world.now.clone(),
                };
                let id = call.world.db.payment_requests.insert(request);
                Ok(json!({"message": "Payment request sent.", "payment_request_id": id}))
            }),
        ApiSpec::new(APP, "show_payment_requests", "GET", "/payment_requests")
            .doc("List payment requests you received (you are the payer) or sent, newest first.")
            .params([
                opt("direction", ParamType::Str, json!("received"), "'received' or 'sent'.")
                    .with(Constraint::OneOf(&["received", "sent"])),
                opt("status", ParamType::Str, Value::Null, "Only requests with this status.")
                    .with(Constraint::OneOf(&["pending", "approved", "declined"])),
            ])
            .params(page_params())
            .returns(r#"[{"payment_request_id":1,"requester":"string","payer":"string","amount":12.5,"description":"string","status":"pending","created_at":"string"}]"#)
            .handler(|call| {
                let me = call.user();
                let db = &call.world.db;
                let received = call.args.str("direction") == "received";
                let status = call.args.opt_str("status");
                let mut requests: Vec<&PaymentRequest> = db
                    .payment_requests
                    .iter()
                    .filter(|r| (if received { r.payer_id } else { r.requester_id }) == me)
                    .filter(|r| status.is_none_or(|s| r.status == s))
                    .collect();
                requests.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
                let rows: Vec<Value> = paginate(requests, call.args.page())
                    .into_iter()
                    .map(|r| {
                        json!({
                            "payment_request_id": r.id, "requester": db.person(r.requester_id).email,
                            "payer": db.person(r.payer_id).email, "amount": r.amount, "description": r.description,
                            "status": r.status, "created_at": r.created_at,
                        })
                    })
                    .collect();
                Ok(rows.into())
            }),
        ApiSpec::new(APP, "approve_payment_request", "POST", "/payment_requests/{payment_request_id}/approve")
            .doc("Approve a pending request you received: the money goes from your wallet to the requester.")
            .params([request_id()])
            .returns(r#"{"message":"string","transaction_id":1}"#)
            .handler(|call| {
                let r = pending_received(call, "approve")?;
                let now = call.world.now.clone();
                let id = transfer(&mut call.world.db, r.payer_id, r.requester_id, r.amount, &r.description, &now)?;
                set_status(call, r.id, "approved");
                Ok(json!({"message": "Payment request approved.", "transaction_id": id}))
            }),
        ApiSpec::new(APP, "decline_payment_request", "POST", "/payment_requests/{payment_request_id}/decline")
            .doc("Decline a pending request you received.")
            .params([request_id()])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let r = pending_received(call, "decline")?;
                set_status(call, r.id, "declined");
                Ok(json!({"message": "Payment request declined."}))
            }),
        ApiSpec::new(APP, "cancel_payment_request", "DELETE", "/payment_requests/{payment_request_id}")
            .doc("Cancel (delete) a pending request you sent.")
            .params([request_id()])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let r = request(call)?;
                let me = call.user();
                if r.payer_id == me {
                    return Err(ApiError::unauthorized(format!(
                        "Only the requester can cancel payment request {}; you can approve or decline it.",
                        r.id
                    )));
                }
                check_owner(r.requester_id, me, "payment request", r.id)?;
                if r.status != "pending" {
                    return Err(ApiError::conflict(format!("Payment request {} is already {}.", r.id, r.status)));
                }
                call.world.db.payment_requests.remove(r.id);
                Ok(json!({"message": "Payment request cancelled."}))
            }),
    ]
}

fn show_transactions(call: &mut Call<'_>) -> ApiResult {
    let args = &call.args;
    let db = &call.world.db;
    let me = call.user();
    for param in ["start_date", "end_date"] {
        if let Some(date) = args.opt_str(param)
            && !time::is_date(date.trim())
        {
            return Err(ApiError::invalid(format!(
                "{param} must be a date like 2024-05-20, got '{date}'."
            )));
        }
    }
    let start = args.opt_str("start_date").map(str::trim);
    let end = args.opt_str("end_date").map(str::trim);
    let direction = args.str("direction");
    let other = args
        .opt_str("user_email")
        .map(|email| db.person_by_email(email).map_or(0, |p| p.id));
    let (min, max) = (args.opt_num("min_amount"), args.opt_num("max_amount"));
    let query = args.opt_str("query");
    let mut rows: Vec<&Transaction> = db
        .transactions
        .iter()
        .filter(|t| match direction {
            "sent" => t.sender_id == me,
            "received" => t.receiver_id == me,
            _ => t.sender_id == me || t.receiver_id == me,
        })
        .filter(|t| {
            other.is_none_or(|o| {
                (if t.sender_id == me {
                    t.receiver_id
                } else {
                    t.sender_id
                }) == o
            })
        })
        .filter(|t| {
            min.is_none_or(|m| t.amount >= m - 1e-9) && max.is_none_or(|m| t.amount <= m + 1e-9)
        })
        .filter(|t| {
            start.is_none_or(|d| &t.created_at[..10] >= d)
                && end.is_none_or(|d| &t.created_at[..10] <= d)
        })
        .filter(|t| matches(query, &[&t.description]))
        .collect();
    rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let rows: Vec<Value> = paginate(rows, args.page())
        .into_iter()
        .map(|t| {
            json!({
                "transaction_id": t.id, "sender": db.person(t.sender_id).email,
                "receiver": db.person(t.receiver_id).email, "amount": t.amount,
                "description": t.description, "created_at": t.created_at,
            })
        })
        .collect();
    Ok(rows.into())
}

fn wallet(db: &Db, person: Id) -> &Wallet {
    db.wallets
        .iter()
        .find(|w| w.person_id == person)
        .expect("every person has a wallet")
}

fn wallet_mut(db: &mut Db, person: Id) -> &mut Wallet {
    db.wallets
        .iter_mut()
        .find(|w| w.person_id == person)
        .expect("every person has a wallet")
}

/// The person whose email is in `param`: 404 if unknown, 422 if it is the caller.
fn other_user(call: &Call<'_>, param: &str, action: &str) -> Result<Id, ApiError> {
    let email = call.args.str(param);
    let person = call.world.db.person_by_email(email).ok_or_else(|| {
        ApiError::not_found(format!("No user with the email '{}'.", email.trim()))
    })?;
    if person.id == call.user() {
        return Err(ApiError::invalid(format!("You cannot {action} yourself.")));
    }
    Ok(person.id)
}

/// Moves `amount` from `from`'s wallet to `to`'s and records the transaction (409 if `from`'s
/// balance is too low).
fn transfer(
    db: &mut Db,
    from: Id,
    to: Id,
    amount: f64,
    description: &str,
    at: &str,
) -> Result<Id, ApiError> {
    let balance = wallet(db, from).balance;
    if balance + 1e-9 < amount {
        return Err(ApiError::conflict(format!(
            "Insufficient balance: you have ${balance:.2} but the payment is ${amount:.2}."
        )));
    }
    wallet_mut(db, from).balance = cents(balance - amount);
    let receiver = wallet_mut(db, to);
    receiver.balance = cents(receiver.balance + amount);
    Ok(db.transactions.insert(Transaction {
        id: 0,
        sender_id: from,
        receiver_id: to,
        amount,
        description: description.to_owned(),
        created_at: at.to_owned(),
    }))
}

fn request(call: &Call<'_>) -> Result<PaymentRequest, ApiError> {
    let id = call.args.id("payment_request_id");
    call.world
        .db
        .payment_requests
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("No payment request with id {id}.")))
}

/// The pending request named by `payment_request_id` that the caller must pay.
fn pending_received(call: &Call<'_>, action: &str) -> Result<PaymentRequest, ApiError> {
    let r = request(call)?;
    let me = call.user();
    if r.requester_id == me {
        return Err(ApiError::unauthorized(format!(
            "Only the payer can {action} payment request {}; you sent it (you can cancel it).",
            r.id
        )));
    }
    check_owner(r.payer_id, me, "payment request", r.id)?;
    if r.status != "pending" {
        return Err(ApiError::conflict(format!(
            "Payment request {} is already {}.",
            r.id, r.status
        )));
    }
    Ok(r)
}

fn set_status(call: &mut Call<'_>, id: Id, status: &str) {
    call.world
        .db
        .payment_requests
        .get_mut(id)
        .expect("checked by the caller")
        .status = status.to_owned();
}

fn money(rng: &mut ChaCha8Rng, reason: usize) -> f64 {
    let (_, lo, hi) = REASONS[reason];
    f64::from(rng.random_range(lo * 100..=hi * 100)) / 100.0
}

/// Seeds wallets, two months of transactions between related people and a few payment requests.
pub(super) fn populate(db: &mut Db, rng: &mut ChaCha8Rng, now: &str) {
    let people: Vec<Id> = db.people.iter().map(|p| p.id).collect();
    for &person in &people {
        let balance = f64::from(rng.random_range(20_000..=300_000)) / 100.0;
        db.wallets.insert(Wallet {
            id: 0,
            person_id: person,
            balance,
        });
    }
    let related = |db: &Db, person: Id| -> Vec<Id> {
        let mut others: Vec<Id> = db
            .relationships
            .iter()
            .filter(|r| r.person_id == person)
            .map(|r| r.other_id)
            .collect();
        others.sort_unstable();
        others
    };
    let transaction =
        |sender_id: Id, receiver_id: Id, reason: usize, amount: f64, at: String| Transaction {
            id: 0,
            sender_id,
            receiver_id,
            amount,
            description: REASONS[reason].0.to_owned(),
            created_at: at,
        };
    let mut payments: Vec<Transaction> = Vec::new();
    for &person in &people {
        let others = related(db, person);
        for _ in 0..10 {
            let to = others[rng.random_range(0..others.len())];
            let reason = rng.random_range(0..REASONS.len());
            let amount = money(rng, reason);
            let (day, hour, minute) = (
                rng.random_range(-60..=-1),
                rng.random_range(7..23),
                rng.random_range(0..60),
            );
            payments.push(transaction(
                person,
                to,
                reason,
                amount,
                time::timestamp(now, day, hour, minute),
            ));
        }
    }
    let mut requests: Vec<PaymentRequest> = Vec::new();
    for &person in &people {
        let others = related(db, person);
        for _ in 0..2 {
            let payer = others[rng.random_range(0..others.len())];
            let reason = rng.random_range(0..REASONS.len());
            let amount = money(rng, reason);
            let day = rng.random_range(-30..=-1);
            let status = match rng.random_range(0..20) {
                0..8 => "pending",
                8..15 => "approved",
                _ => "declined",
            };
            let (hour, minute) = (rng.random_range(7..21), rng.random_range(0..60));
            if status == "approved" {
                // Paid two hours after the request.
                payments.push(transaction(
                    payer,
                    person,
                    reason,
                    amount,
                    time::timestamp(now, day, hour + 2, minute),
                ));
            }
            requests.push(PaymentRequest {
                id: 0,
                requester_id: person,
                payer_id: payer,
                amount,
                description: REASONS[reason].0.to_owned(),
                status: status.to_owned(),
                created_at: time::timestamp(now, day, hour, minute),
            });
        }
    }
    // Stable sorts: ties keep generation order.
    payments.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    for t in payments {
        db.transactions.insert(t);
    }
    requests.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    for r in requests {
        db.payment_requests.insert(r);
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

    fn status(r: ApiResult) -> u16 {
        r.unwrap_err().status
    }

    /// The keys of an object, or of a list's first row.
    fn keys(v: &Value) -> Vec<String> {
        let object = if v.is_array() { &v[0] } else { v };
        object
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every doc parses, and each read API's output has the keys its `returns` example shows.
    fn check_docs(w: &mut World, token: &str, count: usize, reads: &[(&str, Value)]) {
        let specs = apis();
        assert_eq!(specs.len(), count);
        for s in &specs {
            assert!(!s.description.is_empty(), "{}", s.name);
            serde_json::from_str::<Value>(s.returns).unwrap_or_else(|e| panic!("{}: {e}", s.name));
        }
        for (api, args) in reads {
            let mut args = args.clone();
            args["access_token"] = json!(token);
            let out = call(w, api, args).unwrap();
            let spec = specs.iter().find(|s| s.name == *api).unwrap();
            let example: Value = serde_json::from_str(spec.returns).unwrap();
            assert!(!keys(&out).is_empty(), "{api} returned no row");
            assert_eq!(keys(&out), keys(&example), "{api}");
        }
    }

    #[test]
    fn docs_match_outputs() {
        let mut w = world();
        let t = login(&mut w, 1);
        let tx =
            w.db.transactions
                .iter()
                .find(|t| t.sender_id == 1)
                .unwrap()
                .id;
        let reads = [
            ("show_balance", json!({})),
            ("search_users", json!({})),
            ("show_transactions", json!({})),
            ("show_transaction", json!({"transaction_id": tx})),
            ("show_payment_requests", json!({"direction": "sent"})),
        ];
        check_docs(&mut w, &t, 12, &reads);
    }

    fn balance(w: &World, person: Id) -> f64 {
        wallet(&w.db, person).balance
    }

    fn email(w: &World, person: Id) -> String {
        w.db.person(person).email.clone()
    }

    #[test]
    fn population_is_plausible() {
        let (db, _) = generate(5);
        assert_eq!(db.wallets.len(), db.people.len());
        assert!(
            db.wallets
                .iter()
                .all(|w| (200.0..=3000.0).contains(&w.balance))
        );
        assert!(db.transactions.len() >= db.people.len() * 10);
        for t in db.transactions.iter() {
            assert!(t.amount > 0.0 && cents(t.amount) == t.amount);
            assert!(
                db.relationships
                    .iter()
                    .any(|r| r.person_id == t.sender_id && r.other_id == t.receiver_id)
                    || db
                        .relationships
                        .iter()
                        .any(|r| r.person_id == t.receiver_id && r.other_id == t.sender_id)
            );
        }
        for r in db
            .payment_requests
            .iter()
            .filter(|r| r.status == "approved")
        {
            let paid = db.transactions.iter().any(|t| {
                t.sender_id == r.payer_id
                    && t.receiver_id == r.requester_id
                    && t.amount == r.amount
                    && t.created_at > r.created_at
            });
            assert!(paid, "approved request {} has its transaction", r.id);
        }
        let statuses: std::collections::BTreeSet<&str> = db
            .payment_requests
            .iter()
            .map(|r| r.status.as_str())
            .collect();
        assert_eq!(statuses.len(), 3);
    }

    #[test]
    fn login_and_tokens() {
        let mut w = world();
        let mail_email = email(&w, 2);
        assert_eq!(
            status(call(
                &mut w,
                "login",
                json!({"username": mail_email, "password": "nope"})
            )),
            401
        );
        let mail_pw =
            w.db.accounts
                .iter()
                .find(|a| a.person_id == 2 && a.app == "mail")
                .unwrap()
                .password
                .clone();
        let mail = w.call(
            "mail",
            "login",
            vec![],
            vec![
                ("username".into(), json!(mail_email)),
                ("password".into(), json!(mail_pw)),
            ],
        );
        let mail_token = mail.unwrap()["access_token"].as_str().unwrap().to_owned();
        assert_eq!(
            status(call(
                &mut w,
                "show_balance",
                json!({"access_token": mail_token})
            )),
            401
        );
        let t = login(&mut w, 2);
        assert_eq!(
            call(&mut w, "show_balance", json!({"access_token": t})).unwrap()["balance"],
            balance(&w, 2)
        );
    }

    #[test]
    fn send_money_moves_exactly_the_amount() {
        let mut w = world();
        let t = login(&mut w, 1);
        let (e1, e2) = (email(&w, 1), email(&w, 2));
        let (a, b) = (balance(&w, 1), balance(&w, 2));
        let before = w.db.clone();
        let out = call(&mut w, "send_money", json!({"access_token": t, "receiver_email": e2, "amount": 12.344, "description": "pizza"})).unwrap();
        assert_eq!(
            (balance(&w, 1), balance(&w, 2)),
            (cents(a - 12.34), cents(b + 12.34))
        );
        let changes = w.db.diff(&before);
        assert_eq!(changes.iter().filter(|c| c.table == "wallets").count(), 2);
        assert_eq!(
            changes.iter().filter(|c| c.table == "transactions").count(),
            1
        );
        assert_eq!(changes.len(), 3);
        let id = out["transaction_id"].as_u64().unwrap() as Id;
        let tx = w.db.transactions.get(id).unwrap();
        assert_eq!(
            (
                tx.sender_id,
                tx.receiver_id,
                tx.amount,
                tx.description.as_str(),
                tx.created_at.clone()
            ),
            (1, 2, 12.34, "pizza", w.now.clone())
        );
        let latest = call(
            &mut w,
            "show_transactions",
            json!({"access_token": t, "page_limit": 1}),
        )
        .unwrap();
        assert_eq!(latest[0]["transaction_id"], id);
        assert_eq!(latest[0]["receiver"], e2);

        let too_much = cents(balance(&w, 1) + 1.0);
        let snapshot = w.db.clone();
        assert_eq!(
            status(call(
                &mut w,
                "send_money",
                json!({"access_token": t, "receiver_email": e2, "amount": too_much})
            )),
            409
        );
        assert_eq!(
            status(call(
                &mut w,
                "send_money",
                json!({"access_token": t, "receiver_email": e2, "amount": 0})
            )),
            422
        );
        assert_eq!(
            status(call(
                &mut w,
                "send_money",
                json!({"access_token": t, "receiver_email": e2, "amount": "5"})
            )),
            422
        );
        assert_eq!(
            status(call(
                &mut w,
                "send_money",
                json!({"access_token": t, "receiver_email": "nobody@mail.com", "amount": 5})
            )),
            404
        );
        assert_eq!(
            status(call(
                &mut w,
                "send_money",
                json!({"access_token": t, "receiver_email": e1, "amount": 5})
            )),
            422
        );
        assert!(w.db.diff(&snapshot).is_empty());
    }

    #[test]
    fn transaction_filters_and_reads() {
        let mut w = world();
        let t = login(&mut w, 1);
        let e2 = email(&w, 2);
        let before = w.db.clone();
        let mine = |w: &World, f: &dyn Fn(&Transaction) -> bool| -> Vec<Id> {
            let mut v: Vec<&Transaction> =
                w.db.transactions
                    .iter()
                    .filter(|t| (t.sender_id == 1 || t.receiver_id == 1) && f(t))
                    .collect();
            v.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
            v.into_iter().map(|t| t.id).collect()
        };
        let ids = |v: Value| -> Vec<Id> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|r| r["transaction_id"].as_u64().unwrap() as Id)
                .collect()
        };
        let all = mine(&w, &|_: &Transaction| true);
        assert!(all.len() > 5);
        assert_eq!(
            ids(call(&mut w, "show_transactions", json!({"access_token": t})).unwrap()),
            all[..5]
        );
        assert_eq!(
            ids(call(
                &mut w,
                "show_transactions",
                json!({"access_token": t, "page_index": 1, "page_limit": 3})
            )
            .unwrap()),
            all[3..6]
        );
        let sent = mine(&w, &|t: &Transaction| t.sender_id == 1);
        assert_eq!(
            ids(call(
                &mut w,
                "show_transactions",
                json!({"access_token": t, "direction": "sent", "page_limit": 20})
            )
            .unwrap()),
            sent[..sent.len().min(20)]
        );
        let start = time::shift_date(&w.now, -20);
        let end = time::shift_date(&w.now, -10);
        let window = mine(&w, &|t: &Transaction| {
            t.created_at[..10] >= *start && t.created_at[..10] <= *end && t.amount >= 20.0
        });
        let got = call(&mut w, "show_transactions", json!({"access_token": t, "start_date": start, "end_date": end, "min_amount": 20, "page_limit": 20})).unwrap();
        assert_eq!(ids(got), window[..window.len().min(20)]);
        let friend =
            w.db.transactions
                .iter()
                .find(|t| t.sender_id == 1)
                .unwrap()
                .receiver_id;
        let ef = email(&w, friend);
        let with = mine(&w, &|t: &Transaction| {
            t.sender_id == friend || t.receiver_id == friend
        });
        let got = call(
            &mut w,
            "show_transactions",
            json!({"access_token": t, "user_email": ef, "page_limit": 20}),
        )
        .unwrap();
        assert_eq!(ids(got), with[..with.len().min(20)]);
        assert_eq!(
            status(call(
                &mut w,
                "show_transactions",
                json!({"access_token": t, "start_date": "2024-02-30"})
            )),
            422
        );
        assert_eq!(
            status(call(
                &mut w,
                "show_transactions",
                json!({"access_token": t, "direction": "both"})
            )),
            422
        );
        let shown = call(
            &mut w,
            "show_transaction",
            json!({"access_token": t, "transaction_id": all[0]}),
        )
        .unwrap();
        assert_eq!(shown["transaction_id"], all[0]);
        let foreign =
            w.db.transactions
                .iter()
                .find(|t| t.sender_id != 1 && t.receiver_id != 1)
                .unwrap()
                .id;
        assert_eq!(
            status(call(
                &mut w,
                "show_transaction",
                json!({"access_token": t, "transaction_id": foreign})
            )),
            401
        );
        assert_eq!(
            status(call(
                &mut w,
                "show_transaction",
                json!({"access_token": t, "transaction_id": 99999})
            )),
            404
        );
        let users = call(
            &mut w,
            "search_users",
            json!({"access_token": t, "query": e2}),
        )
        .unwrap();
        assert_eq!(
            users,
            json!([{"name": w.db.person(2).full_name(), "email": e2}])
        );
        assert!(w.db.diff(&before).is_empty());
    }

    #[test]
    fn payment_request_lifecycle() {
        let mut w = world();
        let t1 = login(&mut w, 1);
        let t2 = login(&mut w, 2);
        let (e1, e2) = (email(&w, 1), email(&w, 2));
        let out = call(
            &mut w,
            "request_money",
            json!({"access_token": t1, "payer_email": e2, "amount": 30, "description": "tickets"}),
        )
        .unwrap();
        let rid = out["payment_request_id"].as_u64().unwrap() as Id;
        let r = w.db.payment_requests.get(rid).unwrap();
        assert_eq!(
            (r.requester_id, r.payer_id, r.amount, r.status.as_str()),
            (1, 2, 30.0, "pending")
        );
        let pending = call(
            &mut w,
            "show_payment_requests",
            json!({"access_token": t2, "status": "pending", "page_limit": 1}),
        )
        .unwrap();
        assert_eq!(pending[0]["payment_request_id"], rid);
        assert_eq!(pending[0]["requester"], e1);
        // Only the payer approves; the requester gets a 401.
        assert_eq!(
            status(call(
                &mut w,
                "approve_payment_request",
                json!({"access_token": t1, "payment_request_id": rid})
            )),
            401
        );
        let (a, b) = (balance(&w, 1), balance(&w, 2));
        let before = w.db.clone();
        let out = call(
            &mut w,
            "approve_payment_request",
            json!({"access_token": t2, "payment_request_id": rid}),
        )
        .unwrap();
        let tx =
            w.db.transactions
                .get(out["transaction_id"].as_u64().unwrap() as Id)
                .unwrap();
        assert_eq!(
            (
                tx.sender_id,
                tx.receiver_id,
                tx.amount,
                tx.description.as_str()
            ),
            (2, 1, 30.0, "tickets")
        );
        assert_eq!(
            (balance(&w, 1), balance(&w, 2)),
            (cents(a + 30.0), cents(b - 30.0))
        );
        assert_eq!(w.db.payment_requests.get(rid).unwrap().status, "approved");
        assert_eq!(w.db.diff(&before).len(), 4);
        assert_eq!(
            status(call(
                &mut w,
                "approve_payment_request",
                json!({"access_token": t2, "payment_request_id": rid})
            )),
            409
        );
        assert_eq!(
            status(call(
                &mut w,
                "decline_payment_request",
                json!({"access_token": t2, "payment_request_id": rid})
            )),
            409
        );
        assert_eq!(
            status(call(
                &mut w,
                "cancel_payment_request",
                json!({"access_token": t1, "payment_request_id": rid})
            )),
            409
        );

        // Decline, cancel, insufficient balance.
        let rid2 = call(
            &mut w,
            "request_money",
            json!({"access_token": t1, "payer_email": e2, "amount": 5}),
        )
        .unwrap()["payment_request_id"]
            .as_u64()
            .unwrap() as Id;
        call(
            &mut w,
            "decline_payment_request",
            json!({"access_token": t2, "payment_request_id": rid2}),
        )
        .unwrap();
        assert_eq!(w.db.payment_requests.get(rid2).unwrap().status, "declined");
        let big = cents(balance(&w, 2) + 100.0);
        let rid3 = call(
            &mut w,
            "request_money",
            json!({"access_token": t1, "payer_email": e2, "amount": big}),
        )
        .unwrap()["payment_request_id"]
            .as_u64()
            .unwrap() as Id;
        let snapshot = w.db.clone();
        assert_eq!(
            status(call(
                &mut w,
                "approve_payment_request",
                json!({"access_token": t2, "payment_request_id": rid3})
            )),
            409
        );
        assert_eq!(
            status(call(
                &mut w,
                "cancel_payment_request",
                json!({"access_token": t2, "payment_request_id": rid3})
            )),
            401
        );
        assert!(w.db.diff(&snapshot).is_empty());
        call(
            &mut w,
            "cancel_payment_request",
            json!({"access_token": t1, "payment_request_id": rid3}),
        )
        .unwrap();
        assert!(w.db.payment_requests.get(rid3).is_none());
        assert_eq!(
            status(call(
                &mut w,
                "cancel_payment_request",
                json!({"access_token": t1, "payment_request_id": rid3})
            )),
            404
        );

        // Someone else's request: 401.
        let foreign =
            w.db.payment_requests
                .iter()
                .find(|r| r.payer_id != 1 && r.requester_id != 1 && r.status == "pending")
                .unwrap()
                .id;
        let err = call(
            &mut w,
            "approve_payment_request",
            json!({"access_token": t1, "payment_request_id": foreign}),
        )
        .unwrap_err();
        assert_eq!(err.status, 401);
        assert!(err.message.contains("another user"));
        assert_eq!(
            status(call(
                &mut w,
                "request_money",
                json!({"access_token": t1, "payer_email": e2, "amount": -3})
            )),
            422
        );
        let sent = call(&mut w, "show_payment_requests", json!({"access_token": t1, "direction": "sent", "status": "declined", "page_limit": 20})).unwrap();
        let expected: Vec<Id> = {
            let mut v: Vec<&PaymentRequest> =
                w.db.payment_requests
                    .iter()
                    .filter(|r| r.requester_id == 1 && r.status == "declined")
                    .collect();
            v.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
            v.into_iter().map(|r| r.id).collect()
        };
        let got: Vec<Id> = sent
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["payment_request_id"].as_u64().unwrap() as Id)
            .collect();
        assert_eq!(got, expected);
        assert_eq!(got[0], rid2);
    }
}
