//! Scenario templates: each composes skills into a task and phrases its instruction a few ways.
//!
//! Normal templates make up train, dev and test_normal. Challenge templates combine skills that
//! no normal template puts together, so test_challenge measures composition beyond training.

use super::builder::{Builder, SongsVar, Var, lit};
use crate::time;

/// A scenario template.
pub struct Template {
    /// Unique name (the scenario kind).
    pub name: &'static str,
    /// Builds one variant; `None` when the world lacks what the template needs.
    pub build: fn(&mut Builder<'_>) -> Option<String>,
}

/// Picks a phrasing by variant.
fn say(b: &Builder<'_>, options: &[String]) -> String {
    options[(b.variant as usize - 1) % options.len()].clone()
}

fn due(b: &mut Builder<'_>) -> String {
    let days = b.int(1, 14);
    time::shift_date(b.now, days)
}

fn money(value: f64) -> String {
    format!("${value:.2}")
}

fn titles(songs: &SongsVar) -> String {
    format!("[s[\"title\"] for s in {}]", songs.name)
}

macro_rules! templates {
    ($($name:literal => $body:expr,)*) => {
        vec![$(Template { name: $name, build: $body },)*]
    };
}

/// Templates of train, dev and test_normal.
pub fn normal_templates() -> Vec<Template> {
    templates! {
        "relative_sent_total" => |b| {
            let who = b.find_relative()?;
            let (total, days) = b.total_sent_to(&who)?;
            b.answer_with(&total);
            Some(say(b, &[
                format!("How much money did I send {} on pay in the last {days} days?", who.mention),
                format!("What is the total I paid {} through the pay app over the past {days} days?", who.mention),
                format!("Tell me how much I have sent {} on pay in the last {days} days.", who.mention),
            ]))
        },
        "relative_sent_total_mail" => |b| {
            let who = b.find_relative()?;
            let (total, days) = b.total_sent_to(&who)?;
            b.mail(&who, "Payments", &format!("str({})", total.name), "that total");
            Some(say(b, &[
                format!("Email {} the total I sent them on pay in the last {days} days, with subject \"Payments\" and just the amount as the body.", who.mention),
                format!("Add up what I paid {} on pay over the past {days} days and email it to them (subject \"Payments\", body: the amount only).", who.mention),
            ]))
        },
        "pay_relative" => |b| {
            let who = b.find_relative()?;
            let amount = b.int(5, 80) as f64;
            let what = *b.choose(&["dinner", "groceries", "movie tickets", "gas", "flowers"])?;
            b.pay(&who, &format!("{amount}"), amount, what)?;
            Some(say(b, &[
                format!("Send {} {} on pay for \"{what}\".", who.mention, money(amount)),
                format!("Pay {} {} through the pay app with the description \"{what}\".", who.mention, money(amount)),
                format!("Use pay to send {} to {}, described as \"{what}\".", money(amount), who.mention),
            ]))
        },
        "request_named" => |b| {
            let who = b.find_named()?;
            let amount = b.int(10, 120) as f64;
            let what = *b.choose(&["concert tickets", "lunch", "taxi", "book club", "gift"])?;
            b.request(&who, &format!("{amount}"), amount, what)?;
            Some(say(b, &[
                format!("Request {} from {} on pay for \"{what}\".", money(amount), who.mention),
                format!("Ask {} for {} through pay with the description \"{what}\".", who.mention, money(amount)),
            ]))
        },
        "text_relative" => |b| {
            let who = b.find_relative()?;
            let message = *b.choose(&["Call me when you can.", "Running 10 minutes late.", "Happy birthday!", "Dinner at 7?"])?;
            b.text(&who, &lit(message), &format!("\"{message}\""));
            Some(say(b, &[
                format!("Text {} \"{message}\"", who.mention),
                format!("Send {} a text message saying \"{message}\"", who.mention),
            ]))
        },
        "mail_named" => |b| {
            let who = b.find_named()?;
            let (subject, body) = *b.choose(&[("Tomorrow", "See you tomorrow at 10."), ("Thanks", "Thanks for your help today!"), ("Notes", "I will send the notes tonight.")])?;
            b.mail(&who, subject, &lit(body), &format!("\"{body}\""));
            Some(say(b, &[
                format!("Email {} with subject \"{subject}\" and body \"{body}\"", who.mention),
                format!("Send {} an email: subject \"{subject}\", body \"{body}\"", who.mention),
            ]))
        },
        "relative_mail_count" => |b| {
            let who = b.find_relative()?;
            let count = b.count_mails_from(&who)?;
            b.answer_with(&count);
            Some(say(b, &[
                format!("How many emails from {} are in my inbox?", who.mention),
                format!("Count the emails {} sent me.", who.mention),
            ]))
        },
        "named_latest_subject" => |b| {
            let who = b.find_named()?;
            let subject = b.latest_subject_from(&who)?;
            b.answer_with(&subject);
            Some(say(b, &[
                format!("What is the subject of the latest email {} sent me?", who.mention),
                format!("Tell me the subject line of {}'s most recent email to me.", who.mention),
            ]))
        },
        "star_relative_mails" => |b| {
            let who = b.find_relative()?;
            b.star_mails_from(&who)?;
            Some(say(b, &[
                format!("Star all the emails {} sent me.", who.mention),
                format!("Mark every email from {} in my inbox with a star.", who.mention),
            ]))
        },
        "delete_named_mails" => |b| {
            let who = b.find_named()?;
            b.delete_mails_from(&who)?;
            Some(say(b, &[
                format!("Delete all emails from {} in my inbox.", who.mention),
                format!("Clear my inbox of every email {} sent me.", who.mention),
            ]))
        },
        "balance" => |b| {
            let balance = b.balance()?;
            b.answer_with(&balance);
            Some(say(b, &["What is my balance on pay?".to_owned(), "How much money do I have in my pay account?".to_owned()]))
        },
        "named_received_total" => |b| {
            let who = b.find_named()?;
            let (total, days) = b.total_received_from(&who)?;
            b.answer_with(&total);
            Some(say(b, &[
                format!("How much money did {} send me on pay in the last {days} days?", who.mention),
                format!("What is the total {} paid me through pay over the past {days} days?", who.mention),
            ]))
        },
        "note_line_count" => |b| {
            let (title, lines) = b.note_lines()?;
            let count = Var { name: format!("len({})", lines.name), value: lines.value.len() as i64 };
            b.answer_with(&count);
            Some(say(b, &[
                format!("How many lines are in my note \"{title}\"?"),
                format!("Count the lines of my \"{title}\" note."),
            ]))
        },
        "note_to_todos" => |b| {
            let (title, lines) = b.note_lines()?;
            let date = due(b);
            b.add_todos_from(&lines, &date);
            Some(say(b, &[
                format!("Turn each line of my note \"{title}\" into a to-do task due {date}."),
                format!("Add every line of my \"{title}\" note to my to-do list, due {date}."),
            ]))
        },
        "note_mail_relative" => |b| {
            let (title, lines) = b.note_lines()?;
            let who = b.find_relative()?;
            b.mail(&who, &title, &format!("\"\\n\".join({})", lines.name), "the note's lines");
            Some(say(b, &[
                format!("Email my note \"{title}\" to {} with the note's title as subject and its lines as the body.", who.mention),
                format!("Send {} the contents of my \"{title}\" note by email, subject \"{title}\".", who.mention),
            ]))
        },
        "create_note" => |b| {
            let (title, content) = *b.choose(&[("Gym plan", "Mon: run\nWed: swim\nFri: weights"), ("Call list", "Bank\nDentist\nPlumber"), ("Ideas", "Start a garden\nLearn guitar")])?;
            b.create_note(title, &lit(content), "the given lines");
            Some(say(b, &[
                format!("Create a note titled \"{title}\" with these lines: {}.", content.replace('\n', "; ")),
                format!("Write a new note \"{title}\" listing: {}.", content.replace('\n', "; ")),
            ]))
        },
        "add_todo" => |b| {
            let task = *b.choose(&["Renew passport", "Book dentist appointment", "Pay electricity bill", "Water the plants"])?;
            let date = due(b);
            b.add_todo(&lit(task), &format!("\"{task}\""), &date);
            Some(say(b, &[format!("Add \"{task}\" to my to-do list, due {date}."), format!("Create a to-do task \"{task}\" due on {date}.")]))
        },
        "complete_overdue" => |b| {
            b.complete_overdue()?;
            Some(say(b, &["Mark all my overdue to-do tasks as completed.".to_owned(), "Complete every open to-do task whose due date has passed.".to_owned()]))
        },
        "count_open_todos" => |b| {
            let count = b.count_open_todos(0);
            b.answer_with(&count);
            Some(say(b, &["How many open to-do tasks do I have?".to_owned(), "Count my to-do tasks that are not completed.".to_owned()]))
        },
        "overdue_then_count" => |b| {
            let done = b.complete_overdue()?;
            let count = b.count_open_todos(-(done as i64));
            b.answer_with(&count);
            Some(say(b, &[
                "Complete all my overdue to-do tasks, then tell me how many open tasks remain.".to_owned(),
                "Mark my past-due to-do tasks done and report how many are still open.".to_owned(),
            ]))
        },
        "like_playlist" => |b| {
            let (title, songs) = b.playlist_songs()?;
            b.like_all(&songs)?;
            Some(say(b, &[format!("Like every song of my playlist \"{title}\"."), format!("Make sure I have liked all songs in my \"{title}\" playlist.")]))
        },
        "copy_playlist" => |b| {
            let (title, songs) = b.playlist_songs()?;
            let new = format!("{title} copy");
            b.create_playlist(&new, &songs)?;
            Some(say(b, &[format!("Create a playlist \"{new}\" with the songs of my playlist \"{title}\"."), format!("Copy my playlist \"{title}\" into a new one named \"{new}\".")]))
        },
        "playlist_size" => |b| {
            let (title, songs) = b.playlist_songs()?;
            let count = Var { name: format!("len({})", songs.name), value: songs.value.len() as i64 };
            b.answer_with(&count);
            Some(say(b, &[format!("How many songs are in my playlist \"{title}\"?"), format!("Count the songs of my \"{title}\" playlist.")]))
        },
        "artist_playlist" => |b| {
            let (artist, songs) = b.artist_songs()?;
            let new = format!("Best of {artist}");
            b.create_playlist(&new, &songs)?;
            Some(say(b, &[format!("Create a playlist \"{new}\" with all songs by {artist}."), format!("Make a new playlist named \"{new}\" containing every song of {artist}.")]))
        },
        "like_artist" => |b| {
            let (artist, songs) = b.artist_songs()?;
            b.like_all(&songs)?;
            Some(say(b, &[format!("Like every song by {artist}."), format!("Make sure all of {artist}'s songs are in my liked songs.")]))
        },
        "follow_artist" => |b| {
            let artists: Vec<String> = b.db.artists.iter().map(|a| a.name.clone()).collect();
            let name = b.choose(&artists)?.clone();
            b.follow_artist(&name)?;
            Some(say(b, &[format!("Follow {name} on the music app."), format!("Start following the artist {name}.")]))
        },
        "liked_count" => |b| {
            let count = b.count_liked();
            b.answer_with(&count);
            Some(say(b, &["How many songs have I liked?".to_owned(), "Count my liked songs on the music app.".to_owned()]))
        },
        "playlist_to_note" => |b| {
            let (title, songs) = b.playlist_songs()?;
            b.create_note(&title, &format!("\"\\n\".join({})", titles(&songs)), "the song titles, one per line");
            Some(say(b, &[format!("Create a note titled \"{title}\" listing the titles of the songs in my playlist \"{title}\", one per line."), format!("Write the song titles of my \"{title}\" playlist into a new note of the same name, one per line.")]))
        },
        "file_line_count" => |b| {
            let (path, content) = b.read_file()?;
            let count = Var { name: format!("len({}.split(\"\\n\"))", content.name), value: content.value.split('\n').count() as i64 };
            b.answer_with(&count);
            Some(say(b, &[format!("How many lines does my file {path} have?"), format!("Count the lines in {path}.")]))
        },
        "file_to_note" => |b| {
            let (path, content) = b.read_file()?;
            let title = path.rsplit('/').next()?.to_owned();
            b.create_note(&title, &content.name, "the file's content");
            Some(say(b, &[format!("Copy the content of my file {path} into a new note titled \"{title}\"."), format!("Create a note \"{title}\" with the same content as {path}.")]))
        },
        "note_to_file" => |b| {
            let (title, lines) = b.note_lines()?;
            let path = format!("/notes/{}.txt", title.to_lowercase().replace(' ', "_"));
            b.write_file(&path, &format!("\"\\n\".join({})", lines.name), "the note's lines")?;
            Some(say(b, &[format!("Save my note \"{title}\" as the file {path}, one line per line."), format!("Create {path} with the lines of my \"{title}\" note.")]))
        },
        "file_mail_relative" => |b| {
            let (path, content) = b.read_file()?;
            let who = b.find_relative()?;
            b.mail(&who, &path, &content.name, "the file's content");
            Some(say(b, &[format!("Email the content of my file {path} to {} with the path as the subject.", who.mention), format!("Send {} my file {path} by email: subject \"{path}\", body its content.", who.mention)]))
        },
        "archive_file" => |b| {
            b.move_file("/archive/")?;
            let step = b.plan.last()?.instruction.clone();
            Some(step.replace("your file", "my file"))
        },
        "buy_cheapest" => |b| {
            let (category, product) = b.cheapest_in()?;
            let quantity = b.int(1, 3) as u32;
            b.buy(&product, quantity);
            Some(say(b, &[format!("Order {quantity} of the cheapest product in the {category} category to my home address, paying with my first card."), format!("Buy {quantity} of the least expensive {category} product; ship it home and pay with my first card.")]))
        },
        "cheapest_price" => |b| {
            let (category, product) = b.cheapest_in()?;
            let price = Var { name: format!("{}[\"price\"]", product.name), value: product.value.2 };
            b.answer_with(&price);
            Some(say(b, &[format!("What is the price of the cheapest product in the {category} category?"), format!("How much does the least expensive {category} product cost?")]))
        },
        "last_order_total" => |b| {
            let total = b.last_order_total()?;
            b.answer_with(&total);
            Some(say(b, &["What was the total of my most recent order on shop?".to_owned(), "How much did my latest shop order cost?".to_owned()]))
        },
        "cancel_orders" => |b| {
            b.cancel_placed_orders()?;
            Some(say(b, &["Cancel all my shop orders that have not been delivered yet.".to_owned(), "Cancel every undelivered order of mine on shop.".to_owned()]))
        },
        "split_last_order" => |b| {
            let total = b.last_order_total()?;
            let who = b.find_relative()?;
            let half = crate::apps::cents(total.value / 2.0);
            b.request(&who, &format!("round({} / 2, 2)", total.name), half, "split order")?;
            Some(say(b, &[format!("Split my most recent shop order with {}: request half of its total on pay, described as \"split order\".", who.mention), format!("Ask {} on pay for half the total of my latest shop order (description \"split order\").", who.mention)]))
        },
        "balance_note" => |b| {
            let balance = b.balance()?;
            b.create_note("Balance", &format!("str({})", balance.name), "the balance");
            Some(say(b, &["Write my current pay balance into a new note titled \"Balance\" (just the number).".to_owned(), "Create a note \"Balance\" holding my pay balance as a number.".to_owned()]))
        },
        "relative_sent_total_text" => |b| {
            let who = b.find_relative()?;
            let (total, days) = b.total_sent_to(&who)?;
            b.text(&who, &format!("str({})", total.name), "that total");
            Some(say(b, &[format!("Text {} the total I sent them on pay in the last {days} days (just the number).", who.mention), format!("Add up what I paid {} on pay over the past {days} days and text them the amount.", who.mention)]))
        },
        "latest_subject_todo" => |b| {
            let who = b.find_named()?;
            let subject = b.latest_subject_from(&who)?;
            let date = due(b);
            b.add_todo(&format!("\"Reply: \" + {}", subject.name), "\"Reply: <subject>\"", &date);
            Some(say(b, &[format!("Add a to-do task \"Reply: <subject>\" due {date}, where <subject> is the subject of {}'s latest email to me.", who.mention), format!("Find the latest email from {} and create a to-do \"Reply: \" followed by its subject, due {date}.", who.mention)]))
        },
        "family_payments_report" => |b| {
            let first = b.find_relative()?;
            let (a, days) = b.total_sent_to(&first)?;
            let second = b.find_relative()?;
            if second.id == first.id { return None; }
            let (c, days2) = b.total_sent_to(&second)?;
            let sum = Var { name: format!("round({} + {}, 2)", a.name, c.name), value: crate::apps::cents(a.value + c.value) };
            b.answer_with(&sum);
            Some(format!("How much did I send {} over the last {days} days and {} over the last {days2} days on pay, in total?", first.mention, second.mention))
        },
        "relative_digest" => |b| {
            let who = b.find_relative()?;
            let (total, days) = b.total_sent_to(&who)?;
            let count = b.count_mails_from(&who)?;
            let title = format!("{} digest", who.mention.trim_start_matches("my ").to_owned());
            let content = format!("\"paid: \" + str({}) + \"\\nmails: \" + str({})", total.name, count.name);
            b.create_note(&title, &content, "\"paid: <total>\" and \"mails: <count>\" on two lines");
            b.mail(&who, "Digest", &content, "the same two lines");
            Some(format!(
                "Make a note \"{title}\" with two lines, \"paid: <total>\" (what I sent {} on pay in the last {days} days) and \"mails: <count>\" (emails from them in my inbox), then email the same text to them with subject \"Digest\".",
                who.mention
            ))
        },
        "playlist_share" => |b| {
            let (title, songs) = b.playlist_songs()?;
            b.create_note(&title, &format!("\"\\n\".join({})", titles(&songs)), "the song titles, one per line");
            let who = b.find_relative()?;
            b.mail(&who, &title, &format!("\"\\n\".join({})", titles(&songs)), "the same titles");
            Some(say(b, &[
                format!("Save the song titles of my playlist \"{title}\" in a new note of the same name (one per line) and email that list to {} with the playlist's name as subject.", who.mention),
                format!("Write my \"{title}\" playlist's song titles into a note titled \"{title}\", one per line, then email the same list to {} (subject \"{title}\").", who.mention),
            ]))
        },
        "pay_back_named" => |b| {
            let who = b.find_named()?;
            let (total, days) = b.total_received_from(&who)?;
            b.pay(&who, &total.name, total.value, "paying you back")?;
            b.text(&who, &lit("Paid you back!"), "\"Paid you back!\"");
            Some(say(b, &[
                format!("Pay {} back everything they sent me on pay in the last {days} days (description \"paying you back\"), then text them \"Paid you back!\"", who.mention),
                format!("Return to {} the total they paid me through pay over the past {days} days, described as \"paying you back\", and text them \"Paid you back!\"", who.mention),
            ]))
        },
        "note_todos_count" => |b| {
            let (title, lines) = b.note_lines()?;
            let date = due(b);
            b.add_todos_from(&lines, &date);
            let count = b.count_open_todos(lines.value.len() as i64);
            b.answer_with(&count);
            Some(say(b, &[
                format!("Add every line of my note \"{title}\" as a to-do task due {date}, then tell me how many open to-do tasks I have."),
                format!("Turn the lines of my \"{title}\" note into to-do tasks due {date} and report my number of open tasks afterwards."),
            ]))
        },
        "artist_fan" => |b| {
            let (artist, songs) = b.artist_songs()?;
            b.follow_artist(&artist)?;
            b.like_all(&songs)?;
            let new = format!("All {artist}");
            b.create_playlist(&new, &songs)?;
            Some(say(b, &[
                format!("Become a fan of {artist}: follow them, like all their songs and put them all in a new playlist \"{new}\"."),
                format!("Follow {artist}, like every song of theirs I haven't liked yet, and create a playlist \"{new}\" with all their songs."),
            ]))
        },
        "split_order_and_text" => |b| {
            let total = b.last_order_total()?;
            let who = b.find_relative()?;
            let half = crate::apps::cents(total.value / 2.0);
            b.request(&who, &format!("round({} / 2, 2)", total.name), half, "split order")?;
            b.text(&who, &format!("\"I requested \" + str(round({} / 2, 2)) + \" for our order\"", total.name), "\"I requested <half> for our order\"");
            Some(say(b, &[
                format!("Request half of my latest shop order's total from {} on pay (description \"split order\") and text them \"I requested <half> for our order\".", who.mention),
                format!("Split my most recent shop order with {}: ask for half its total on pay (\"split order\"), then text \"I requested <half> for our order\".", who.mention),
            ]))
        },
        "inbox_cleanup" => |b| {
            let keep = b.find_relative()?;
            let count = b.count_mails_from(&keep)?;
            b.star_mails_from(&keep)?;
            let drop_from = b.find_named()?;
            if drop_from.id == keep.id { return None; }
            b.delete_mails_from(&drop_from)?;
            b.answer_with(&count);
            Some(say(b, &[
                format!("Clean up my inbox: star every email from {}, delete every email from {}, and tell me how many emails {} had sent me.", keep.mention, drop_from.mention, keep.mention),
                format!("Star all of {}'s emails, delete all of {}'s, and report how many emails from {} are in my inbox.", keep.mention, drop_from.mention, keep.mention),
            ]))
        },
        "weekly_review" => |b| {
            let done = b.complete_overdue()?;
            let open = b.count_open_todos(-(done as i64));
            let liked = b.count_liked();
            let balance = b.balance()?;
            let content = format!(
                "\"open: \" + str({}) + \"\\nliked: \" + str({}) + \"\\nbalance: \" + str({})",
                open.name, liked.name, balance.name
            );
            b.create_note("Weekly review", &content, "the three figures");
            let date = due(b);
            b.add_todo(&lit("Plan next week"), "\"Plan next week\"", &date);
            Some(format!("Weekly review: complete my overdue to-do tasks, then write a note \"Weekly review\" with the lines \"open: <open tasks left>\", \"liked: <liked songs>\" and \"balance: <pay balance>\", and add a to-do \"Plan next week\" due {date}."))
        },
    }
}

/// Templates of test_challenge: skill pairs that no normal template combines.
pub fn challenge_templates() -> Vec<Template> {
    templates! {
        "challenge_playlist_text" => |b| {
            let (title, songs) = b.playlist_songs()?;
            let who = b.find_relative()?;
            b.text(&who, &format!("\", \".join({})", titles(&songs)), "the song titles separated by commas");
            Some(format!("Text {} the titles of the songs in my playlist \"{title}\", separated by \", \".", who.mention))
        },
        "challenge_file_request" => |b| {
            let (path, content) = b.read_file()?;
            let who = b.find_named()?;
            let amount = content.value.split('\n').count() as f64;
            b.request(&who, &format!("len({}.split(\"\\n\"))", content.name), amount, &path)?;
            Some(format!("Request from {} on pay as many dollars as my file {path} has lines, with the path as the description.", who.mention))
        },
        "challenge_cheapest_mail" => |b| {
            let (category, product) = b.cheapest_in()?;
            let who = b.find_named()?;
            b.mail(&who, &format!("Cheapest {category}"), &format!("{}[\"name\"]", product.name), "the product's name");
            Some(format!("Email {} the name of the cheapest {category} product on shop, with subject \"Cheapest {category}\".", who.mention))
        },
        "challenge_todos_text" => |b| {
            let count = b.count_open_todos(0);
            let who = b.find_relative()?;
            b.text(&who, &format!("\"I have \" + str({}) + \" open tasks\"", count.name), "\"I have <n> open tasks\"");
            Some(format!("Text {} \"I have <n> open tasks\" with <n> the number of my open to-do tasks.", who.mention))
        },
        "challenge_artist_note" => |b| {
            let (artist, songs) = b.artist_songs()?;
            b.create_note(&artist, &format!("\"\\n\".join({})", titles(&songs)), "the song titles, one per line");
            Some(format!("Create a note titled \"{artist}\" listing every song title by {artist}, one per line."))
        },
        "challenge_balance_text" => |b| {
            let balance = b.balance()?;
            let who = b.find_relative()?;
            b.text(&who, &format!("str({})", balance.name), "the balance");
            Some(format!("Text {} my current pay balance (just the number).", who.mention))
        },
        "challenge_subject_note" => |b| {
            let who = b.find_named()?;
            let subject = b.latest_subject_from(&who)?;
            let title = format!("From {}", who.mention);
            b.create_note(&title, &subject.name, "that subject");
            Some(format!("Create a note titled \"{title}\" whose content is the subject of the latest email {} sent me.", who.mention))
        },
        "challenge_liked_mail" => |b| {
            let count = b.count_liked();
            let who = b.find_relative()?;
            b.mail(&who, "Liked songs", &format!("str({})", count.name), "that number");
            Some(format!("Email {} how many songs I have liked, subject \"Liked songs\", body just the number.", who.mention))
        },
        "challenge_received_file" => |b| {
            let who = b.find_named()?;
            let (total, days) = b.total_received_from(&who)?;
            let path = format!("/documents/from_{}.txt", who.mention.split(' ').next()?.to_lowercase());
            b.write_file(&path, &format!("str({})", total.name), "that total")?;
            Some(format!("Save the total {} sent me on pay in the last {days} days into a new file {path} (just the number).", who.mention))
        },
        "challenge_order_file" => |b| {
            let total = b.last_order_total()?;
            b.write_file("/documents/last_order.txt", &format!("str({})", total.name), "that total")?;
            Some("Write the total of my most recent shop order into a new file /documents/last_order.txt (just the number).".to_owned())
        },
        "challenge_file_todos" => |b| {
            let (path, content) = b.read_file()?;
            let lines = Var { name: format!("{}.split(\"\\n\")", content.name), value: content.value.split('\n').map(str::to_owned).collect::<Vec<_>>() };
            if lines.value.len() > 8 { return None; }
            let date = due(b);
            b.add_todos_from(&lines, &date);
            Some(format!("Add each line of my file {path} as a to-do task due {date}."))
        },
        "challenge_overdue_mail" => |b| {
            let done = b.complete_overdue()?;
            let who = b.find_relative()?;
            let count = Var { name: done.to_string(), value: done as i64 };
            b.mail(&who, "Done", &format!("\"Finished \" + str({}) + \" tasks\"", count.name), "\"Finished <n> tasks\"");
            Some(format!("Complete my overdue to-do tasks, then email {} \"Finished <n> tasks\" (subject \"Done\") with <n> how many you completed.", who.mention))
        },
        "challenge_playlist_cart" => |b| {
            let (category, product) = b.cheapest_in()?;
            let (title, songs) = b.playlist_songs()?;
            let quantity = songs.value.len().min(5) as u32;
            b.buy(&product, quantity);
            Some(format!("Order as many of the cheapest {category} product as there are songs in my playlist \"{title}\" (at most 5), to my home address with my first card."))
        },
        "challenge_note_text" => |b| {
            let (title, lines) = b.note_lines()?;
            let who = b.find_named()?;
            b.text(&who, &format!("\", \".join({})", lines.name), "the note's lines separated by commas");
            Some(format!("Text {} the lines of my note \"{title}\", separated by \", \".", who.mention))
        },
    }
}
