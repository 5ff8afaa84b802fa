//! The seeded population: people with families, friends and coworkers, their accounts, addresses
//! and cards; then each app seeds its own history for them. Everything is a pure function of the
//! seed (ChaCha8, whose stream is stable across platforms and versions).

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::apps;
use crate::db::{Account, Address, Db, Id, PaymentCard, Person, Relationship};
use crate::time;

/// Number of people in every world.
pub const PEOPLE: usize = 36;
/// Apps that have accounts (everything but `api_docs` and `supervisor`).
pub const ACCOUNT_APPS: &[&str] = &[
    "mail", "music", "pay", "notes", "todo", "phone", "files", "shop",
];

const WOMEN: &[&str] = &[
    "Ava", "Bella", "Chloe", "Dana", "Emma", "Fiona", "Grace", "Hana", "Iris", "Julia", "Kate",
    "Lena", "Maya", "Nora", "Olga", "Paula", "Rosa", "Sara", "Tina", "Vera",
];
const MEN: &[&str] = &[
    "Adam", "Ben", "Carl", "David", "Eric", "Felix", "Greg", "Hugo", "Ivan", "Jack", "Kevin",
    "Leo", "Mark", "Nick", "Omar", "Paul", "Ryan", "Sam", "Tom", "Victor",
];
const SURNAMES: &[&str] = &[
    "Adams", "Brooks", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jones",
    "Khan", "Lopez", "Meyer", "Novak", "Ortiz", "Patel", "Quinn", "Rossi",
];
const CITIES: &[&str] = &[
    "Springfield",
    "Riverton",
    "Lakeside",
    "Hillview",
    "Brookfield",
    "Maplewood",
];
const STREETS: &[&str] = &[
    "Oak St", "Elm St", "Main St", "Pine Ave", "Cedar Rd", "Lake Dr", "Hill Rd", "Park Ave",
];

/// The world's clock for a seed: a morning in 2024, different per seed.
pub fn now_for_seed(seed: u64) -> String {
    let day = time::days_from_civil(2024, 3, 1) + (seed % 200) as i64;
    format!("{}T{:02}:00:00", time::date_text(day), 9 + seed % 8)
}

/// Generates the whole world for `seed`.
pub fn generate(seed: u64) -> (Db, String) {
    generate_with_domain(seed, EMAIL_DOMAIN)
}

/// The domain of every email address in worlds built by [`generate`].
pub const EMAIL_DOMAIN: &str = "mail.com";

/// The world of [`generate`] with its people's emails at `domain` (`first.last@domain`); the
/// same world in every other respect. Worlds that must share no identity with the evaluated
/// ones (the pretraining corpus's) use another domain, since first and last names recur
/// across worlds.
pub fn generate_with_domain(seed: u64, domain: &str) -> (Db, String) {
    let now = now_for_seed(seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut db = Db::default();
    let genders = people(&mut db, &mut rng, &now, domain);
    relationships(&mut db, &mut rng, &genders);
    accounts(&mut db, &mut rng);
    apps::populate(&mut db, &mut rng, &now);
    (db, now)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Gender {
    Woman,
    Man,
}

fn people(db: &mut Db, rng: &mut ChaCha8Rng, now: &str, domain: &str) -> Vec<Gender> {
    let mut women: Vec<&str> = WOMEN.to_vec();
    let mut men: Vec<&str> = MEN.to_vec();
    let mut surnames: Vec<&str> = SURNAMES.to_vec();
    women.shuffle(rng);
    men.shuffle(rng);
    surnames.shuffle(rng);
    let mut genders = Vec::with_capacity(PEOPLE);
    // Families of three share a surname: a parent and two children.
    for i in 0..PEOPLE {
        let gender = if rng.random_bool(0.5) {
            Gender::Woman
        } else {
            Gender::Man
        };
        let first = match gender {
            Gender::Woman => women.pop().or_else(|| men.pop()),
            Gender::Man => men.pop().or_else(|| women.pop()),
        }
        .expect("enough first names for the population");
        let gender = if WOMEN.contains(&first) {
            Gender::Woman
        } else {
            Gender::Man
        };
        let last = surnames[i / 3];
        let age_years = if i % 3 == 0 {
            rng.random_range(50..70)
        } else {
            rng.random_range(20..40)
        };
        let birthday = time::shift_date(now, -(age_years * 365 + rng.random_range(0..365)));
        let phone_number = loop {
            let candidate = format!("555{:07}", rng.random_range(1_000_000..10_000_000));
            if db.person_by_phone(&candidate).is_none() {
                break candidate;
            }
        };
        db.people.insert(Person {
            id: 0,
            first_name: first.to_owned(),
            last_name: last.to_owned(),
            email: format!("{}.{}@{domain}", first.to_lowercase(), last.to_lowercase()),
            phone_number,
            birthday,
            city: CITIES[rng.random_range(0..CITIES.len())].to_owned(),
        });
        genders.push(gender);
    }
    genders
}

fn relate(db: &mut Db, a: Id, b: Id, kind: &str) {
    let exists = db
        .relationships
        .iter()
        .any(|r| r.person_id == a && r.other_id == b);
    if a != b && !exists {
        db.relationships.insert(Relationship {
            id: 0,
            person_id: a,
            other_id: b,
            kind: kind.to_owned(),
        });
    }
}

fn relationships(db: &mut Db, rng: &mut ChaCha8Rng, genders: &[Gender]) {
    let gender = |id: Id| genders[id as usize - 1];
    for family in 0..(PEOPLE / 3) as Id {
        let parent = family * 3 + 1;
        let children = [parent + 1, parent + 2];
        for child in children {
            let child_kind = if gender(child) == Gender::Woman {
                "daughter"
            } else {
                "son"
            };
            let parent_kind = if gender(parent) == Gender::Woman {
                "mother"
            } else {
                "father"
            };
            relate(db, parent, child, child_kind);
            relate(db, child, parent, parent_kind);
        }
        let [a, b] = children;
        relate(
            db,
            a,
            b,
            if gender(b) == Gender::Woman {
                "sister"
            } else {
                "brother"
            },
        );
        relate(
            db,
            b,
            a,
            if gender(a) == Gender::Woman {
                "sister"
            } else {
                "brother"
            },
        );
    }
    // Coworkers: teams of four across families.
    let mut ids: Vec<Id> = (1..=PEOPLE as Id).collect();
    ids.shuffle(rng);
    for team in ids.chunks(4) {
        for &a in team {
            for &b in team {
                relate(db, a, b, "coworker");
            }
        }
    }
    // Friends: everyone gets at least three, symmetric.
    for a in 1..=PEOPLE as Id {
        while db
            .relationships
            .iter()
            .filter(|r| r.person_id == a && r.kind == "friend")
            .count()
            < 3
        {
            let b = rng.random_range(1..=PEOPLE as Id);
            if !db
                .relationships
                .iter()
                .any(|r| r.person_id == a && r.other_id == b)
                && a != b
            {
                relate(db, a, b, "friend");
                relate(db, b, a, "friend");
            }
        }
    }
}

fn accounts(db: &mut Db, rng: &mut ChaCha8Rng) {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    for person in 1..=PEOPLE as Id {
        for app in ACCOUNT_APPS {
            let password: String = (0..10)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect();
            db.accounts.insert(Account {
                id: 0,
                person_id: person,
                app: (*app).to_owned(),
                password,
            });
        }
        let city = db.person(person).city.clone();
        db.addresses.insert(Address {
            id: 0,
            owner_id: person,
            name: "home".into(),
            street: format!(
                "{} {}",
                rng.random_range(1..400),
                STREETS[rng.random_range(0..STREETS.len())]
            ),
            city: city.clone(),
            zip_code: format!("{:05}", rng.random_range(10_000..99_999)),
        });
        if rng.random_bool(0.5) {
            db.addresses.insert(Address {
                id: 0,
                owner_id: person,
                name: "work".into(),
                street: format!(
                    "{} {}",
                    rng.random_range(1..400),
                    STREETS[rng.random_range(0..STREETS.len())]
                ),
                city,
                zip_code: format!("{:05}", rng.random_range(10_000..99_999)),
            });
        }
        for card_name in ["Visa", "Mastercard"].iter().take(rng.random_range(1..=2)) {
            db.payment_cards.insert(PaymentCard {
                id: 0,
                owner_id: person,
                card_name: (*card_name).to_owned(),
                last_four: format!("{:04}", rng.random_range(0..10_000)),
                expiry: format!(
                    "{:02}/{}",
                    rng.random_range(1..=12),
                    rng.random_range(2026..2030)
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_is_deterministic_and_related() {
        let (a, now_a) = generate(7);
        let (b, now_b) = generate(7);
        assert_eq!(a, b);
        assert_eq!(now_a, now_b);
        assert_ne!(generate(8).0.people, a.people);
        assert_eq!(a.people.len(), PEOPLE);
        let emails: std::collections::BTreeSet<_> = a.people.iter().map(|p| &p.email).collect();
        assert_eq!(emails.len(), PEOPLE, "emails are unique");
        for p in a.people.iter() {
            let kinds: Vec<&str> = a
                .relationships
                .iter()
                .filter(|r| r.person_id == p.id)
                .map(|r| r.kind.as_str())
                .collect();
            assert!(kinds.iter().filter(|k| **k == "friend").count() >= 3);
            assert!(kinds.contains(&"coworker"));
            assert!(
                kinds
                    .iter()
                    .any(|k| ["mother", "father", "son", "daughter"].contains(k))
            );
            assert_eq!(
                a.accounts
                    .iter()
                    .filter(|acc| acc.person_id == p.id)
                    .count(),
                ACCOUNT_APPS.len()
            );
        }
    }
}
