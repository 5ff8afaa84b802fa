//! Skills: the kinds of sub-task templates are made of. Each skill picks its parameters from the
//! world, appends one gold sub-task, and computes its ground truth from the database directly,
//! independently of the gold code (the suite tests check both agree).

use serde_json::json;

use super::builder::{Builder, PersonRef, ProductVar, SongsVar, Var, all_pages, lit};
use crate::apps::cents;
use crate::db::Id;
use crate::time;

const FAMILY: &[&str] = &["sister", "brother", "mother", "father", "son", "daughter"];

impl Builder<'_> {
    fn contact_person(&self, phone: &str) -> Option<Id> {
        self.db.person_by_phone(phone).map(|p| p.id)
    }

    /// `phone.find_relative`: a family member the supervisor has exactly one contact of.
    pub fn find_relative(&mut self) -> Option<PersonRef> {
        let me = self.me;
        let kinds: Vec<&str> = FAMILY
            .iter()
            .copied()
            .filter(|k| {
                self.db
                    .contacts
                    .iter()
                    .filter(|c| c.owner_id == me && c.relationship == *k)
                    .count()
                    == 1
            })
            .collect();
        let kind = *self.choose(&kinds)?;
        let contact = self
            .db
            .contacts
            .iter()
            .find(|c| c.owner_id == me && c.relationship == kind)?;
        let id = self.contact_person(&contact.phone_number)?;
        let var = self.var(kind);
        self.step(
            "phone.find_relative",
            "phone",
            format!("Find your {kind} in your phone contacts."),
            &format!(
                "{var} = apis.phone.search_contacts(access_token=phone_token, relationship={})[0]\nprint({var})",
                lit(kind)
            ),
        );
        Some(PersonRef {
            var,
            id,
            mention: format!("my {kind}"),
        })
    }

    /// `phone.find_named`: a friend or coworker named by first name (unique among contacts).
    pub fn find_named(&mut self) -> Option<PersonRef> {
        let me = self.me;
        let mine: Vec<_> = self
            .db
            .contacts
            .iter()
            .filter(|c| c.owner_id == me)
            .collect();
        let candidates: Vec<_> = mine
            .iter()
            .filter(|c| ["friend", "coworker"].contains(&c.relationship.as_str()))
            .filter(|c| mine.iter().filter(|o| o.first_name == c.first_name).count() == 1)
            .collect();
        let contact = (**self.choose(&candidates)?).clone();
        let id = self.contact_person(&contact.phone_number)?;
        let var = self.var(&contact.first_name.to_lowercase());
        let first = lit(&contact.first_name);
        self.step(
            "phone.find_named",
            "phone",
            format!("Find {} {} in your phone contacts.", contact.first_name, contact.last_name),
            &format!(
                "{var} = [c for c in apis.phone.search_contacts(access_token=phone_token, query={first}) if c[\"first_name\"] == {first}][0]\nprint({var})"
            ),
        );
        Some(PersonRef {
            var,
            id,
            mention: format!("{} {}", contact.first_name, contact.last_name),
        })
    }

    /// `phone.text`: texts a person; `message_code` is a Starlark expression.
    pub fn text(&mut self, who: &PersonRef, message_code: &str, describe: &str) {
        self.step(
            "phone.text",
            "phone",
            format!("Text {} {describe}.", who.mention.replace("my ", "your ")),
            &format!(
                "apis.phone.send_text_message(access_token=phone_token, phone_number={}[\"phone_number\"], message={message_code})",
                who.var
            ),
        );
    }

    /// `mail.send`: mails a person; `body_code` is a Starlark expression.
    pub fn mail(&mut self, who: &PersonRef, subject: &str, body_code: &str, describe: &str) {
        self.step(
            "mail.send",
            "mail",
            format!("Email {} with subject \"{subject}\" and {describe} as the body.", who.mention.replace("my ", "your ")),
            &format!(
                "apis.mail.send_mail(access_token=mail_token, recipient_emails=[{}[\"email\"]], subject={}, body={body_code})",
                who.var,
                lit(subject)
            ),
        );
    }

    fn inbox_from(&self, who: Id) -> Vec<&crate::db::Mail> {
        let email = &self.db.person(who).email;
        self.db
            .mails
            .iter()
            .filter(|m| m.owner_id == self.me && m.folder == "inbox" && &m.sender == email)
            .collect()
    }

    fn collect_inbox_from(&self, target: &str, who: &PersonRef) -> String {
        all_pages(
            target,
            &format!(
                "apis.mail.show_inbox(access_token=mail_token, sender_email={}[\"email\"]",
                who.var
            ),
        )
    }

    /// `mail.count_from`: how many mails the supervisor received from a person (at least one).
    pub fn count_mails_from(&mut self, who: &PersonRef) -> Option<Var<i64>> {
        let count = self.inbox_from(who.id).len() as i64;
        if count == 0 {
            return None;
        }
        let var = self.var("mail_count");
        let code = format!(
            "{}{var} = len(mails)\nprint({var})",
            self.collect_inbox_from("mails", who)
        );
        self.step(
            "mail.count_from",
            "mail",
            format!(
                "Count the emails in your inbox from {}.",
                who.mention.replace("my ", "your ")
            ),
            &code,
        );
        Some(Var {
            name: var,
            value: count,
        })
    }

    /// `mail.latest_from`: the subject of the newest mail from a person.
    pub fn latest_subject_from(&mut self, who: &PersonRef) -> Option<Var<String>> {
        let subject = self.inbox_from(who.id).last()?.subject.clone();
        let var = self.var("subject");
        let code = format!(
            "{var} = apis.mail.show_inbox(access_token=mail_token, sender_email={}[\"email\"])[0][\"subject\"]\nprint({var})",
            who.var
        );
        self.step(
            "mail.latest_from",
            "mail",
            format!(
                "Find the subject of the latest email from {}.",
                who.mention.replace("my ", "your ")
            ),
            &code,
        );
        Some(Var {
            name: var,
            value: subject,
        })
    }

    /// `mail.star_from`: stars every mail from a person (some must be unstarred).
    pub fn star_mails_from(&mut self, who: &PersonRef) -> Option<()> {
        if !self.inbox_from(who.id).iter().any(|m| !m.starred) {
            return None;
        }
        let code = format!(
            "{}for m in mails:\n    apis.mail.star_mail(access_token=mail_token, mail_id=m[\"mail_id\"])",
            self.collect_inbox_from("mails", who)
        );
        self.step(
            "mail.star_from",
            "mail",
            format!(
                "Star every email from {}.",
                who.mention.replace("my ", "your ")
            ),
            &code,
        );
        Some(())
    }

    /// `mail.delete_from`: deletes every mail from a person (at least one).
    pub fn delete_mails_from(&mut self, who: &PersonRef) -> Option<()> {
        if self.inbox_from(who.id).is_empty() {
            return None;
        }
        let code = format!(
            "{}for m in mails:\n    apis.mail.delete_mail(access_token=mail_token, mail_id=m[\"mail_id\"])",
            self.collect_inbox_from("mails", who)
        );
        self.step(
            "mail.delete_from",
            "mail",
            format!(
                "Delete every email from {} in your inbox.",
                who.mention.replace("my ", "your ")
            ),
            &code,
        );
        Some(())
    }

    /// The day number of the first day of "the last `days` days".
    fn since(&self, days: i64) -> i64 {
        time::day_number(self.now).expect("world clock is a date") - days
    }

    fn transfer_total(&mut self, who: &PersonRef, sent: bool) -> Option<(Var<f64>, i64)> {
        let days = *self.choose(&[7i64, 14, 30, 60])?;
        let first_day = self.since(days);
        let (me, other) = (self.me, who.id);
        let total: f64 = self
            .db
            .transactions
            .iter()
            .filter(|t| {
                if sent {
                    t.sender_id == me && t.receiver_id == other
                } else {
                    t.sender_id == other && t.receiver_id == me
                }
            })
            .filter(|t| time::day_number(&t.created_at).is_some_and(|d| d >= first_day))
            .map(|t| t.amount)
            .sum();
        if total <= 0.0 {
            return None;
        }
        let var = self.var(if sent { "sent_total" } else { "received_total" });
        let direction = if sent { "sent" } else { "received" };
        // The start date comes from the world clock (`show_date`), so the code copies the
        // instruction's number of days instead of doing calendar arithmetic.
        let start_var = self.var("start");
        let payments = self.var("payments");
        let code = format!(
            "{start_var} = apis.supervisor.show_date(days_from_today=-{days})[\"date\"]\n{}{var} = round(sum([t[\"amount\"] for t in {payments}]), 2)\nprint({var})",
            all_pages(
                &payments,
                &format!(
                    "apis.pay.show_transactions(access_token=pay_token, direction=\"{direction}\", user_email={}[\"email\"], start_date={start_var}",
                    who.var,
                )
            )
        );
        let whom = who.mention.replace("my ", "your ");
        let instruction = if sent {
            format!("Add up the money you sent {whom} in the last {days} days.")
        } else {
            format!("Add up the money {whom} sent you in the last {days} days.")
        };
        self.step(
            if sent {
                "pay.total_sent"
            } else {
                "pay.total_received"
            },
            "pay",
            instruction,
            &code,
        );
        Some((
            Var {
                name: var,
                value: cents(total),
            },
            days,
        ))
    }

    /// `pay.total_sent`: money sent to a person over the last 7–60 days (non-zero); also returns
    /// the number of days.
    pub fn total_sent_to(&mut self, who: &PersonRef) -> Option<(Var<f64>, i64)> {
        self.transfer_total(who, true)
    }

    /// `pay.total_received`: money received from a person over the last 7–60 days (non-zero).
    pub fn total_received_from(&mut self, who: &PersonRef) -> Option<(Var<f64>, i64)> {
        self.transfer_total(who, false)
    }

    /// `pay.send`: sends money; fails to instantiate if the balance is too low.
    pub fn pay(
        &mut self,
        who: &PersonRef,
        amount_code: &str,
        amount: f64,
        description: &str,
    ) -> Option<()> {
        let balance = self
            .db
            .wallets
            .iter()
            .find(|w| w.person_id == self.me)?
            .balance;
        if amount <= 0.0 || amount > balance {
            return None;
        }
        self.step(
            "pay.send",
            "pay",
            format!("Send {} ${amount:.2} with the description \"{description}\".", who.mention.replace("my ", "your ")),
            &format!(
                "apis.pay.send_money(access_token=pay_token, receiver_email={}[\"email\"], amount={amount_code}, description={})",
                who.var,
                lit(description)
            ),
        );
        Some(())
    }

    /// `pay.request`: requests money from a person.
    pub fn request(
        &mut self,
        who: &PersonRef,
        amount_code: &str,
        amount: f64,
        description: &str,
    ) -> Option<()> {
        if amount <= 0.0 {
            return None;
        }
        self.step(
            "pay.request",
            "pay",
            format!("Request ${amount:.2} from {} with the description \"{description}\".", who.mention.replace("my ", "your ")),
            &format!(
                "apis.pay.request_money(access_token=pay_token, payer_email={}[\"email\"], amount={amount_code}, description={})",
                who.var,
                lit(description)
            ),
        );
        Some(())
    }

    /// `pay.balance`: the supervisor's balance.
    pub fn balance(&mut self) -> Option<Var<f64>> {
        let balance = self
            .db
            .wallets
            .iter()
            .find(|w| w.person_id == self.me)?
            .balance;
        let var = self.var("balance");
        self.step(
            "pay.balance",
            "pay",
            "Look up your balance in the pay app.".into(),
            &format!(
                "{var} = apis.pay.show_balance(access_token=pay_token)[\"balance\"]\nprint({var})"
            ),
        );
        Some(Var {
            name: var,
            value: cents(balance),
        })
    }

    /// `notes.read_list`: the lines of one of the supervisor's notes (2–10 lines, unique title).
    pub fn note_lines(&mut self) -> Option<(String, Var<Vec<String>>)> {
        let me = self.me;
        let notes: Vec<_> = self.db.notes.iter().filter(|n| n.owner_id == me).collect();
        let candidates: Vec<_> = notes
            .iter()
            .filter(|n| notes.iter().filter(|o| o.title == n.title).count() == 1)
            .filter(|n| (2..=10).contains(&n.content.lines().count()) && !n.content.contains('\r'))
            .collect();
        let note = (**self.choose(&candidates)?).clone();
        let lines: Vec<String> = note.content.split('\n').map(str::to_owned).collect();
        let var = self.var("lines");
        let title = lit(&note.title);
        let code = format!(
            "note = [n for n in apis.notes.search_notes(access_token=notes_token, query={title}, page_limit=20) if n[\"title\"] == {title}][0]\n{var} = apis.notes.show_note(access_token=notes_token, note_id=note[\"note_id\"])[\"content\"].split(\"\\n\")\nprint({var})"
        );
        self.step(
            "notes.read_list",
            "notes",
            format!("Read the lines of your note \"{}\".", note.title),
            &code,
        );
        Some((
            note.title.clone(),
            Var {
                name: var,
                value: lines,
            },
        ))
    }

    /// `notes.create`: creates a note; `content_code` is a Starlark expression.
    pub fn create_note(&mut self, title: &str, content_code: &str, describe: &str) {
        self.step(
            "notes.create",
            "notes",
            format!("Create a note titled \"{title}\" containing {describe}."),
            &format!("apis.notes.create_note(access_token=notes_token, title={}, content={content_code})", lit(title)),
        );
    }

    /// `todo.add`: adds one task to the Inbox project.
    pub fn add_todo(&mut self, title_code: &str, describe: &str, due: &str) {
        self.step(
            "todo.add",
            "todo",
            format!("Add a to-do task {describe} due {due}."),
            &format!(
                "apis.todo.create_task(access_token=todo_token, title={title_code}, due_date={})",
                lit(due)
            ),
        );
    }

    /// `todo.add_each`: adds one task per item of a list variable.
    pub fn add_todos_from(&mut self, items: &Var<Vec<String>>, due: &str) {
        self.step(
            "todo.add_each",
            "todo",
            format!("Add each of those lines as a to-do task due {due}."),
            &format!(
                "for item in {}:\n    apis.todo.create_task(access_token=todo_token, title=item, due_date={})",
                items.name,
                lit(due)
            ),
        );
    }

    fn open_todos(&self) -> Vec<&crate::db::TodoItem> {
        self.db
            .todo_items
            .iter()
            .filter(|t| t.owner_id == self.me && !t.completed)
            .collect()
    }

    /// `todo.complete_overdue`: completes every open task due before today (at least one).
    pub fn complete_overdue(&mut self) -> Option<usize> {
        let today = time::shift_date(self.now, 0);
        let overdue = self
            .open_todos()
            .iter()
            .filter(|t| t.due_date.as_deref().is_some_and(|d| d < today.as_str()))
            .count();
        if overdue == 0 {
            return None;
        }
        let today_var = self.var("today");
        let code = format!(
            "{today_var} = apis.supervisor.show_date()[\"date\"]\n{}for t in todos:\n    if t[\"due_date\"] and t[\"due_date\"] < {today_var}:\n        apis.todo.complete_task(access_token=todo_token, task_id=t[\"task_id\"])",
            all_pages(
                "todos",
                "apis.todo.show_tasks(access_token=todo_token, completed=False"
            ),
        );
        self.step(
            "todo.complete_overdue",
            "todo",
            "Mark every open to-do task whose due date is before today as completed.".to_owned(),
            &code,
        );
        Some(overdue)
    }

    /// `todo.count_open`: the number of open tasks, after earlier sub-tasks of the same task
    /// changed it by `delta` (tasks added minus tasks completed).
    pub fn count_open_todos(&mut self, delta: i64) -> Var<i64> {
        let count = self.open_todos().len() as i64 + delta;
        let var = self.var("open_count");
        let code = format!(
            "{}{var} = len(todos)\nprint({var})",
            all_pages(
                "todos",
                "apis.todo.show_tasks(access_token=todo_token, completed=False"
            )
        );
        self.step(
            "todo.count_open",
            "todo",
            "Count your open to-do tasks.".into(),
            &code,
        );
        Var {
            name: var,
            value: count,
        }
    }

    /// `music.playlist_songs`: the song ids and titles of one of the supervisor's playlists.
    pub fn playlist_songs(&mut self) -> Option<(String, SongsVar)> {
        let me = self.me;
        let lists: Vec<_> = self
            .db
            .playlists
            .iter()
            .filter(|p| p.owner_id == me)
            .collect();
        let candidates: Vec<_> = lists
            .iter()
            .filter(|p| {
                !p.song_ids.is_empty() && lists.iter().filter(|o| o.title == p.title).count() == 1
            })
            .collect();
        let playlist = (**self.choose(&candidates)?).clone();
        let songs: Vec<(Id, String)> = playlist
            .song_ids
            .iter()
            .map(|id| {
                (
                    *id,
                    self.db
                        .songs
                        .get(*id)
                        .map(|s| s.title.clone())
                        .unwrap_or_default(),
                )
            })
            .collect();
        let var = self.var("songs");
        let title = lit(&playlist.title);
        let code = format!(
            "{}playlist = [p for p in playlists if p[\"title\"] == {title}][0]\n{var} = apis.music.show_playlist(access_token=music_token, playlist_id=playlist[\"playlist_id\"])[\"songs\"]\nprint({var})",
            all_pages(
                "playlists",
                "apis.music.show_playlists(access_token=music_token"
            )
        );
        self.step(
            "music.playlist_songs",
            "music",
            format!("Find the songs of your playlist \"{}\".", playlist.title),
            &code,
        );
        Some((
            playlist.title.clone(),
            Var {
                name: var,
                value: songs,
            },
        ))
    }

    /// `music.artist_songs`: the songs of an artist.
    pub fn artist_songs(&mut self) -> Option<(String, SongsVar)> {
        let artists: Vec<_> = self.db.artists.iter().collect();
        let artist = (*self.choose(&artists)?).clone();
        let songs: Vec<(Id, String)> = self
            .db
            .songs
            .iter()
            .filter(|s| s.artist_id == artist.id)
            .map(|s| (s.id, s.title.clone()))
            .collect();
        if songs.is_empty() {
            return None;
        }
        let var = self.var("songs");
        let name = lit(&artist.name);
        let code = format!(
            "artist = [a for a in apis.music.search_artists(access_token=music_token, query={name}) if a[\"name\"] == {name}][0]\n{var} = apis.music.show_artist(access_token=music_token, artist_id=artist[\"artist_id\"])[\"songs\"]\nprint({var})"
        );
        self.step(
            "music.artist_songs",
            "music",
            format!("Find the songs of the artist {}.", artist.name),
            &code,
        );
        Some((
            artist.name.clone(),
            Var {
                name: var,
                value: songs,
            },
        ))
    }

    /// `music.like_all`: likes every song of a list not liked yet (at least one).
    pub fn like_all(&mut self, songs: &SongsVar) -> Option<()> {
        let me = self.me;
        let liked = |id: Id| {
            self.db
                .song_likes
                .iter()
                .any(|l| l.person_id == me && l.song_id == id)
        };
        if songs.value.iter().all(|(id, _)| liked(*id)) {
            return None;
        }
        let code = format!(
            "for s in {}:\n    if not apis.music.show_song(access_token=music_token, song_id=s[\"song_id\"])[\"liked\"]:\n        apis.music.like_song(access_token=music_token, song_id=s[\"song_id\"])",
            songs.name
        );
        self.step(
            "music.like_all",
            "music",
            "Like each of those songs that you have not liked yet.".into(),
            &code,
        );
        Some(())
    }

    /// `music.create_playlist`: a new playlist holding the songs of a list variable.
    pub fn create_playlist(&mut self, title: &str, songs: &SongsVar) -> Option<()> {
        let me = self.me;
        if self
            .db
            .playlists
            .iter()
            .any(|p| p.owner_id == me && p.title.eq_ignore_ascii_case(title))
        {
            return None;
        }
        let var = self.var("new_playlist");
        let code = format!(
            "{var} = apis.music.create_playlist(access_token=music_token, title={})[\"playlist_id\"]\nfor s in {}:\n    apis.music.add_song_to_playlist(access_token=music_token, playlist_id={var}, song_id=s[\"song_id\"])",
            lit(title),
            songs.name
        );
        self.step(
            "music.create_playlist",
            "music",
            format!("Create a playlist \"{title}\" with those songs."),
            &code,
        );
        Some(())
    }

    /// `music.follow`: follows an artist the supervisor does not follow yet.
    pub fn follow_artist(&mut self, name: &str) -> Option<()> {
        let me = self.me;
        let artist = self.db.artists.iter().find(|a| a.name == name)?.id;
        if self
            .db
            .artist_follows
            .iter()
            .any(|f| f.person_id == me && f.artist_id == artist)
        {
            return None;
        }
        let code = format!(
            "artist = [a for a in apis.music.search_artists(access_token=music_token, query={n}) if a[\"name\"] == {n}][0]\napis.music.follow_artist(access_token=music_token, artist_id=artist[\"artist_id\"])",
            n = lit(name)
        );
        self.step(
            "music.follow",
            "music",
            format!("Follow the artist {name}."),
            &code,
        );
        Some(())
    }

    /// `music.count_liked`: the number of songs the supervisor likes.
    pub fn count_liked(&mut self) -> Var<i64> {
        let me = self.me;
        let count = self
            .db
            .song_likes
            .iter()
            .filter(|l| l.person_id == me)
            .count() as i64;
        let var = self.var("liked_count");
        let code = format!(
            "{}{var} = len(liked)\nprint({var})",
            all_pages(
                "liked",
                "apis.music.show_liked_songs(access_token=music_token"
            )
        );
        self.step(
            "music.count_liked",
            "music",
            "Count the songs you have liked.".into(),
            &code,
        );
        Var {
            name: var,
            value: count,
        }
    }

    /// `files.read`: the content of one of the supervisor's files.
    pub fn read_file(&mut self) -> Option<(String, Var<String>)> {
        let me = self.me;
        let files: Vec<_> = self
            .db
            .files
            .iter()
            .filter(|f| f.owner_id == me && !f.content.is_empty())
            .collect();
        let file = (*self.choose(&files)?).clone();
        let var = self.var("content");
        let code = format!(
            "{var} = apis.files.show_file(access_token=files_token, file_path={})[\"content\"]\nprint({var})",
            lit(&file.path)
        );
        self.step(
            "files.read",
            "files",
            format!("Read your file {}.", file.path),
            &code,
        );
        Some((
            file.path.clone(),
            Var {
                name: var,
                value: file.content.clone(),
            },
        ))
    }

    /// `files.write`: creates a file at a new path; `content_code` is a Starlark expression.
    pub fn write_file(&mut self, path: &str, content_code: &str, describe: &str) -> Option<()> {
        let me = self.me;
        if self
            .db
            .files
            .iter()
            .any(|f| f.owner_id == me && f.path == path)
        {
            return None;
        }
        self.step(
            "files.write",
            "files",
            format!("Create the file {path} containing {describe}."),
            &format!("apis.files.create_file(access_token=files_token, file_path={}, content={content_code})", lit(path)),
        );
        Some(())
    }

    /// `files.move`: moves one of the supervisor's files into another directory.
    pub fn move_file(&mut self, directory: &str) -> Option<()> {
        let me = self.me;
        let files: Vec<_> = self
            .db
            .files
            .iter()
            .filter(|f| f.owner_id == me && !f.path.starts_with(directory))
            .collect();
        let file = (*self.choose(&files)?).clone();
        let name = file.path.rsplit('/').next()?.to_owned();
        let target = format!("{directory}{name}");
        if self
            .db
            .files
            .iter()
            .any(|f| f.owner_id == me && f.path == target)
        {
            return None;
        }
        self.step(
            "files.move",
            "files",
            format!("Move your file {} into {directory}.", file.path),
            &format!(
                "apis.files.move_file(access_token=files_token, source_path={}, destination_path={})",
                lit(&file.path),
                lit(&target)
            ),
        );
        Some(())
    }

    /// `shop.cheapest`: the cheapest product of a category (unique price).
    pub fn cheapest_in(&mut self) -> Option<(String, ProductVar)> {
        let mut categories: Vec<String> = self
            .db
            .products
            .iter()
            .map(|p| p.category.clone())
            .collect();
        categories.sort();
        categories.dedup();
        let category = self.choose(&categories)?.clone();
        let mut products: Vec<_> = self
            .db
            .products
            .iter()
            .filter(|p| p.category == category)
            .collect();
        products.sort_by(|a, b| a.price.total_cmp(&b.price));
        let cheapest = products.first()?;
        if products.get(1).is_some_and(|p| p.price == cheapest.price) {
            return None;
        }
        let value = (cheapest.id, cheapest.name.clone(), cheapest.price);
        let var = self.var("product");
        let code = format!(
            "{}{var} = sorted(products, key=lambda p: p[\"price\"])[0]\nprint({var})",
            all_pages(
                "products",
                &format!(
                    "apis.shop.search_products(access_token=shop_token, category={}",
                    lit(&category)
                )
            )
        );
        self.step(
            "shop.cheapest",
            "shop",
            format!("Find the cheapest product in the {category} category."),
            &code,
        );
        Some((category, Var { name: var, value }))
    }

    /// `shop.buy`: orders a product to the home address with the first card.
    pub fn buy(&mut self, product: &ProductVar, quantity: u32) {
        let code = format!(
            "apis.shop.add_to_cart(access_token=shop_token, product_id={p}[\"product_id\"], quantity={quantity})\naddress = [a for a in apis.supervisor.show_addresses() if a[\"name\"] == \"home\"][0]\ncard = apis.supervisor.show_payment_cards()[0]\napis.shop.place_order(access_token=shop_token, address_id=address[\"address_id\"], card_id=card[\"card_id\"])",
            p = product.name
        );
        self.step(
            "shop.buy",
            "shop",
            format!("Order {quantity} of that product to your home address with your first payment card."),
            &code,
        );
    }

    /// `shop.last_order_total`: the total of the supervisor's most recent order.
    pub fn last_order_total(&mut self) -> Option<Var<f64>> {
        let me = self.me;
        let order = self
            .db
            .orders
            .iter()
            .filter(|o| o.owner_id == me)
            .max_by_key(|o| (o.created_at.clone(), o.id))?;
        let total = cents(order.total);
        let var = self.var("order_total");
        let code = format!(
            "{var} = apis.shop.show_orders(access_token=shop_token)[0][\"total\"]\nprint({var})"
        );
        self.step(
            "shop.last_order_total",
            "shop",
            "Find the total of your most recent order.".into(),
            &code,
        );
        Some(Var {
            name: var,
            value: total,
        })
    }

    /// `shop.cancel_placed`: cancels every order not yet delivered (at least one).
    pub fn cancel_placed_orders(&mut self) -> Option<()> {
        let me = self.me;
        if !self
            .db
            .orders
            .iter()
            .any(|o| o.owner_id == me && o.status == "placed")
        {
            return None;
        }
        let code = format!(
            "{}for o in orders:\n    apis.shop.cancel_order(access_token=shop_token, order_id=o[\"order_id\"])",
            all_pages(
                "orders",
                "apis.shop.show_orders(access_token=shop_token, status=\"placed\""
            )
        );
        self.step(
            "shop.cancel_placed",
            "shop",
            "Cancel every order of yours that is placed but not delivered.".into(),
            &code,
        );
        Some(())
    }

    /// Records a numeric or text answer from a variable.
    pub fn answer_with<T: serde::Serialize>(&mut self, var: &Var<T>) {
        let value = json!(var.value);
        self.answer(&var.name, value);
    }
}
