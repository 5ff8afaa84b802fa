//! The world's state: typed tables of records, snapshot by cloning and diffed for evaluation.
//!
//! All mutable state of a world lives in [`Db`], so an episode's start state is one `clone()` and
//! its effect is [`Db::diff`] of the end state against it. Records serialize to the JSON that APIs
//! return and that evaluation compares.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Row id, unique within its table.
pub type Id = u32;

/// A table: rows by id, in id order.
///
/// Rows sit behind an `Arc` and are copied on first write, so snapshotting a world (one clone per
/// episode, one per gold sub-task) costs a pointer copy per table, and diffing skips every table
/// that still shares its rows with the snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table<T> {
    rows: Arc<BTreeMap<Id, T>>,
    next_id: Id,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            rows: Arc::new(BTreeMap::new()),
            next_id: 1,
        }
    }
}

/// A record that knows its id.
pub trait Row: Clone + PartialEq + Serialize {
    /// The row's id.
    fn id(&self) -> Id;
    /// Sets the id when the row is inserted.
    fn set_id(&mut self, id: Id);
}

impl<T: Row> Table<T> {
    /// Inserts a row under the next free id and returns that id.
    pub fn insert(&mut self, mut row: T) -> Id {
        let id = self.next_id;
        self.next_id += 1;
        row.set_id(id);
        Arc::make_mut(&mut self.rows).insert(id, row);
        id
    }

    /// The row with this id.
    pub fn get(&self, id: Id) -> Option<&T> {
        self.rows.get(&id)
    }

    /// The row with this id, mutably.
    pub fn get_mut(&mut self, id: Id) -> Option<&mut T> {
        if !self.rows.contains_key(&id) {
            return None;
        }
        Arc::make_mut(&mut self.rows).get_mut(&id)
    }

    /// Removes a row.
    pub fn remove(&mut self, id: Id) -> Option<T> {
        if !self.rows.contains_key(&id) {
            return None;
        }
        Arc::make_mut(&mut self.rows).remove(&id)
    }

    /// Rows in id order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.rows.values()
    }

    /// Rows in id order, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        Arc::make_mut(&mut self.rows).values_mut()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Changes from `before` to `self`, in id order.
    fn diff_from(&self, before: &Self, table: &'static str, out: &mut Vec<Change>) {
        if Arc::ptr_eq(&self.rows, &before.rows) {
            return;
        }
        let json = |row: &T| serde_json::to_value(row).expect("rows serialize to JSON");
        for (id, old) in before.rows.iter() {
            match self.rows.get(id) {
                None => out.push(Change {
                    table,
                    id: *id,
                    before: Some(json(old)),
                    after: None,
                }),
                Some(new) if new != old => out.push(Change {
                    table,
                    id: *id,
                    before: Some(json(old)),
                    after: Some(json(new)),
                }),
                Some(_) => {}
            }
        }
        for (id, new) in self.rows.range(before.next_id..) {
            out.push(Change {
                table,
                id: *id,
                before: None,
                after: Some(json(new)),
            });
        }
    }
}

/// One changed row: inserted (`before` is `None`), deleted (`after` is `None`) or updated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Table name.
    pub table: &'static str,
    /// Row id.
    pub id: Id,
    /// The row before the change.
    pub before: Option<Value>,
    /// The row after the change.
    pub after: Option<Value>,
}

macro_rules! rows {
    ($($row:ident),* $(,)?) => {$(
        impl Row for $row {
            fn id(&self) -> Id { self.id }
            fn set_id(&mut self, id: Id) { self.id = id; }
        }
    )*};
}

macro_rules! database {
    ($($(#[$doc:meta])* $field:ident: $row:ty,)*) => {
        /// Every table of the world.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct Db {
            $($(#[$doc])* pub $field: Table<$row>,)*
        }

        impl Db {
            /// Names of all tables, in declaration order.
            pub const TABLES: &'static [&'static str] = &[$(stringify!($field)),*];

            /// Every row that differs between `before` and `self`, table by table.
            pub fn diff(&self, before: &Db) -> Vec<Change> {
                let mut out = Vec::new();
                $(self.$field.diff_from(&before.$field, stringify!($field), &mut out);)*
                out
            }
        }
    };
}

// ---- people and accounts -------------------------------------------------------------------

/// A person of the world; any of them can be a task's supervisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub id: Id,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone_number: String,
    pub birthday: String,
    pub city: String,
}

impl Person {
    /// "First Last".
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

/// A directed relationship: `other_id` is `person_id`'s `kind` (sister, friend, coworker, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relationship {
    pub id: Id,
    pub person_id: Id,
    pub other_id: Id,
    pub kind: String,
}

/// A person's password for one app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: Id,
    pub person_id: Id,
    pub app: String,
    pub password: String,
}

/// A postal address of a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub id: Id,
    pub owner_id: Id,
    pub name: String,
    pub street: String,
    pub city: String,
    pub zip_code: String,
}

/// A payment card of a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentCard {
    pub id: Id,
    pub owner_id: Id,
    pub card_name: String,
    pub last_four: String,
    pub expiry: String,
}

// ---- mail ----------------------------------------------------------------------------------

/// One copy of a mail in one person's mailbox (`folder` is `inbox` or `sent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mail {
    pub id: Id,
    pub owner_id: Id,
    pub folder: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub body: String,
    pub sent_at: String,
    pub read: bool,
    pub starred: bool,
}

// ---- music ---------------------------------------------------------------------------------

/// A music artist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artist {
    pub id: Id,
    pub name: String,
    pub genre: String,
}

/// A song of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Song {
    pub id: Id,
    pub title: String,
    pub artist_id: Id,
    pub album: String,
    pub genre: String,
    pub duration: u32,
    pub release_year: u32,
    pub plays: u32,
}

/// A person's playlist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Playlist {
    pub id: Id,
    pub owner_id: Id,
    pub title: String,
    pub public: bool,
    pub song_ids: Vec<Id>,
    pub created_at: String,
}

/// A person likes a song.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SongLike {
    pub id: Id,
    pub person_id: Id,
    pub song_id: Id,
}

/// A person follows an artist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtistFollow {
    pub id: Id,
    pub person_id: Id,
    pub artist_id: Id,
}

// ---- payments ------------------------------------------------------------------------------

/// A person's wallet balance in the payments app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wallet {
    pub id: Id,
    pub person_id: Id,
    pub balance: f64,
}

/// Money sent from one person to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    pub id: Id,
    pub sender_id: Id,
    pub receiver_id: Id,
    pub amount: f64,
    pub description: String,
    pub created_at: String,
}

/// A request for money (`status`: pending, approved, declined).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentRequest {
    pub id: Id,
    pub requester_id: Id,
    pub payer_id: Id,
    pub amount: f64,
    pub description: String,
    pub status: String,
    pub created_at: String,
}

// ---- notes ---------------------------------------------------------------------------------

/// A note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub id: Id,
    pub owner_id: Id,
    pub title: String,
    pub content: String,
    pub tags: Vec<String>,
    pub pinned: bool,
    pub updated_at: String,
}

// ---- todo ----------------------------------------------------------------------------------

/// A to-do project (a list of tasks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub id: Id,
    pub owner_id: Id,
    pub name: String,
}

/// A to-do item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TodoItem {
    pub id: Id,
    pub owner_id: Id,
    pub project_id: Id,
    pub title: String,
    pub due_date: Option<String>,
    pub priority: u8,
    pub completed: bool,
}

// ---- phone ---------------------------------------------------------------------------------

/// An entry of a person's phone contacts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub id: Id,
    pub owner_id: Id,
    pub first_name: String,
    pub last_name: String,
    pub phone_number: String,
    pub email: String,
    pub relationship: String,
    pub birthday: String,
}

/// A text message, visible to its sender and receiver (phone numbers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextMessage {
    pub id: Id,
    pub sender: String,
    pub receiver: String,
    pub body: String,
    pub sent_at: String,
}

// ---- files ---------------------------------------------------------------------------------

/// A file in a person's file storage; directories are implied by paths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct File {
    pub id: Id,
    pub owner_id: Id,
    pub path: String,
    pub content: String,
    pub updated_at: String,
}

// ---- shop ----------------------------------------------------------------------------------

/// A product for sale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: Id,
    pub name: String,
    pub category: String,
    pub price: f64,
    pub rating: f64,
}

/// A product in a person's cart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartItem {
    pub id: Id,
    pub owner_id: Id,
    pub product_id: Id,
    pub quantity: u32,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: Id,
    pub quantity: u32,
    pub price: f64,
}

/// An order (`status`: placed, delivered, cancelled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: Id,
    pub owner_id: Id,
    pub lines: Vec<OrderLine>,
    pub total: f64,
    pub status: String,
    pub address_id: Id,
    pub card_id: Id,
    pub created_at: String,
}

/// A product review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub id: Id,
    pub owner_id: Id,
    pub product_id: Id,
    pub rating: u8,
    pub text: String,
}

rows!(
    Person,
    Relationship,
    Account,
    Address,
    PaymentCard,
    Mail,
    Artist,
    Song,
    Playlist,
    SongLike,
    ArtistFollow,
    Wallet,
    Transaction,
    PaymentRequest,
    Note,
    Project,
    TodoItem,
    Contact,
    TextMessage,
    File,
    Product,
    CartItem,
    Order,
    Review,
);

database! {
    people: Person,
    relationships: Relationship,
    accounts: Account,
    addresses: Address,
    payment_cards: PaymentCard,
    mails: Mail,
    artists: Artist,
    songs: Song,
    playlists: Playlist,
    song_likes: SongLike,
    artist_follows: ArtistFollow,
    wallets: Wallet,
    transactions: Transaction,
    payment_requests: PaymentRequest,
    notes: Note,
    projects: Project,
    todo_items: TodoItem,
    contacts: Contact,
    text_messages: TextMessage,
    files: File,
    products: Product,
    cart_items: CartItem,
    orders: Order,
    reviews: Review,
}

impl Db {
    /// The person with this email or phone number (app usernames).
    pub fn person_by_username(&self, username: &str) -> Option<&Person> {
        let username = username.trim();
        self.people
            .iter()
            .find(|p| p.email.eq_ignore_ascii_case(username) || p.phone_number == username)
    }

    /// The person with this email.
    pub fn person_by_email(&self, email: &str) -> Option<&Person> {
        let email = email.trim();
        self.people
            .iter()
            .find(|p| p.email.eq_ignore_ascii_case(email))
    }

    /// The person with this phone number.
    pub fn person_by_phone(&self, phone: &str) -> Option<&Person> {
        let phone = phone.trim();
        self.people.iter().find(|p| p.phone_number == phone)
    }

    /// The person with this id (ids always come from the world itself).
    pub fn person(&self, id: Id) -> &Person {
        self.people.get(id).expect("person ids are never dangling")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(title: &str) -> Note {
        Note {
            id: 0,
            owner_id: 1,
            title: title.into(),
            content: String::new(),
            tags: vec![],
            pinned: false,
            updated_at: "2024-01-01T00:00:00".into(),
        }
    }

    #[test]
    fn diff_reports_inserts_updates_and_deletes() {
        let mut db = Db::default();
        let a = db.notes.insert(note("a"));
        let b = db.notes.insert(note("b"));
        let start = db.clone();
        db.notes.get_mut(a).unwrap().pinned = true;
        db.notes.remove(b);
        let c = db.notes.insert(note("c"));
        let changes = db.diff(&start);
        assert_eq!(changes.len(), 3);
        assert_eq!(
            (
                changes[0].id,
                changes[0].after.as_ref().unwrap()["pinned"].clone()
            ),
            (a, Value::Bool(true))
        );
        assert_eq!((changes[1].id, changes[1].after.is_none()), (b, true));
        assert_eq!((changes[2].id, changes[2].before.is_none()), (c, true));
        assert_eq!(c, 3, "ids are never reused after a delete");
        assert!(db.clone().diff(&db).is_empty());
    }
}
