//! `music`: a streaming catalogue of artists and songs; each person likes songs, follows artists
//! and keeps playlists (private unless made public).

use rand::Rng;
use rand::seq::{SliceRandom, index};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{
    ApiError, ApiResult, ApiSpec, Call, Constraint, ParamType, account_apis, check_owner, matches,
    opt, page_params, paginate, req,
};
use crate::db::{Artist, ArtistFollow, Db, Id, Playlist, Song, SongLike};
use crate::time;

const APP: &str = "music";

/// Genres of the catalogue.
const GENRES: &[&str] = &["pop", "rock", "jazz", "hip-hop", "electronic", "folk"];

const ARTISTS: &[(&str, &str)] = &[
    ("Nova Reyes", "pop"),
    ("Bright Alley", "pop"),
    ("Kira Lane", "pop"),
    ("Static Harbor", "rock"),
    ("The Loud Maples", "rock"),
    ("Iron Tides", "rock"),
    ("Milo Grant Trio", "jazz"),
    ("Blue Lantern Quartet", "jazz"),
    ("Ella Moreau", "jazz"),
    ("MC Delta", "hip-hop"),
    ("Young Atlas", "hip-hop"),
    ("Pulse Theory", "electronic"),
    ("Neon Drift", "electronic"),
    ("Circuit Bloom", "electronic"),
    ("Willow & Wren", "folk"),
    ("Hollis Creek", "folk"),
];

const TITLE_WORDS: &[&str] = &[
    "Midnight", "Golden", "Broken", "Electric", "Silver", "Summer", "Lonely", "Wild", "Paper",
    "Neon", "Velvet", "Crimson", "Quiet", "Falling", "Distant", "Hollow", "Burning", "Northern",
    "Sweet", "Restless",
];
const TITLE_NOUNS: &[&str] = &[
    "Heart",
    "Road",
    "Rain",
    "Lights",
    "River",
    "Dreams",
    "Fire",
    "Sky",
    "Echo",
    "Garden",
    "Train",
    "Ocean",
    "Star",
    "Shadows",
    "Highway",
    "Letters",
    "Waves",
    "Morning",
    "City",
    "Satellite",
];
const ALBUMS: &[&str] = &[
    "After Hours",
    "Blue Room",
    "Open Windows",
    "Long Way Home",
    "Glass Houses",
    "Low Tide",
    "First Light",
    "Second Nature",
    "Small Hours",
    "Wide Awake",
    "Paper Planes",
    "Slow Motion",
    "Night Shift",
    "Fever Dream",
    "Cold Water",
    "Weather Report",
    "Soft Landing",
    "High Noon",
    "Back Roads",
    "Radio Silence",
    "Sea Glass",
    "Half Moon",
    "Kite Season",
    "Northbound",
    "Lantern",
    "Common Ground",
    "Echo Park",
    "Stay Gold",
    "Undertow",
    "Daylight",
    "Afterglow",
    "Wanderer",
];
const PLAYLIST_TITLES: &[&str] = &[
    "Morning Run",
    "Road Trip",
    "Chill Evening",
    "Focus",
    "Party Mix",
    "Workout",
    "Sunday Coffee",
    "Throwbacks",
    "Rainy Day",
    "Dinner Jazz",
];

pub(super) fn apis() -> Vec<ApiSpec> {
    let [login, logout] = account_apis(APP);
    let song_id = || req("song_id", ParamType::Int, "Id of the song.");
    let artist_id = || req("artist_id", ParamType::Int, "Id of the artist.");
    let playlist_id = || req("playlist_id", ParamType::Int, "Id of the playlist.");
    vec![
        login,
        logout,
        ApiSpec::new(APP, "search_songs", "GET", "/songs")
            .doc("Search the song catalogue. Filters combine; results in id order unless sort_by is given.")
            .params([
                opt("query", ParamType::Str, Value::Null, "Words in the title, album or artist name."),
                opt("artist_name", ParamType::Str, Value::Null, "Only songs by an artist whose name contains this."),
                opt("genre", ParamType::Str, Value::Null, "Only songs of this genre.").with(Constraint::OneOf(GENRES)),
                opt("min_release_year", ParamType::Int, Value::Null, "Only songs released in or after this year."),
                opt("max_release_year", ParamType::Int, Value::Null, "Only songs released in or before this year."),
                opt("sort_by", ParamType::Str, Value::Null, "'title' (A-Z), 'release_year' (newest first) or 'plays' (most first).")
                    .with(Constraint::OneOf(&["title", "release_year", "plays"])),
            ])
            .params(page_params())
            .returns(r#"[{"song_id":1,"title":"string","artist":"string","release_year":2020}]"#)
            .handler(search_songs),
        ApiSpec::new(APP, "show_song", "GET", "/songs/{song_id}")
            .doc("Show one song: album, genre, duration in seconds, plays and whether you like it.")
            .params([song_id()])
            .returns(r#"{"song_id":1,"title":"string","artist_id":1,"artist":"string","album":"string","genre":"string","duration":215,"release_year":2020,"plays":1000,"liked":false}"#)
            .handler(|call| {
                let s = song(call, "song_id")?;
                let liked = liked(&call.world.db, call.user(), s.id).is_some();
                Ok(json!({
                    "song_id": s.id, "title": s.title, "artist_id": s.artist_id,
                    "artist": artist_name(&call.world.db, s.artist_id), "album": s.album, "genre": s.genre,
                    "duration": s.duration, "release_year": s.release_year, "plays": s.plays, "liked": liked,
                }))
            }),
        ApiSpec::new(APP, "search_artists", "GET", "/artists")
            .doc("Search artists by name or genre, in id order.")
            .params([
                opt("query", ParamType::Str, Value::Null, "Words in the artist's name."),
                opt("genre", ParamType::Str, Value::Null, "Only artists of this genre.").with(Constraint::OneOf(GENRES)),
            ])
            .params(page_params())
            .returns(r#"[{"artist_id":1,"name":"string","genre":"string"}]"#)
            .handler(|call| {
                let query = call.args.opt_str("query");
                let genre = call.args.opt_str("genre");
                let artists = call
                    .world
                    .db
                    .artists
                    .iter()
                    .filter(|a| matches(query, &[&a.name]) && genre.is_none_or(|g| a.genre == g));
                Ok(paginate(artists, call.args.page()).into_iter().map(artist_row).collect::<Vec<_>>().into())
            }),
        ApiSpec::new(APP, "show_artist", "GET", "/artists/{artist_id}")
            .doc("Show one artist with their songs, follower count and whether you follow them.")
            .params([artist_id()])
            .returns(r#"{"artist_id":1,"name":"string","genre":"string","followers":3,"following":false,"song_count":7,"songs":[{"song_id":1,"title":"string"}]}"#)
            .handler(|call| {
                let a = artist(call, "artist_id")?;
                let db = &call.world.db;
                let songs: Vec<Value> = db
                    .songs
                    .iter()
                    .filter(|s| s.artist_id == a.id)
                    .map(|s| json!({"song_id": s.id, "title": s.title}))
                    .collect();
                Ok(json!({
                    "artist_id": a.id, "name": a.name, "genre": a.genre,
                    "followers": db.artist_follows.iter().filter(|f| f.artist_id == a.id).count(),
                    "following": following(db, call.user(), a.id).is_some(),
                    "song_count": songs.len(), "songs": songs,
                }))
            }),
        ApiSpec::new(APP, "show_liked_songs", "GET", "/liked_songs")
            .doc("List the songs you like, most recently liked first.")
            .params(page_params())
            .returns(r#"[{"song_id":1,"title":"string","artist":"string","release_year":2020}]"#)
            .handler(|call| {
                let me = call.user();
                let db = &call.world.db;
                let likes = db.song_likes.iter().rev().filter(|l| l.person_id == me);
                let rows: Vec<Value> = paginate(likes, call.args.page())
                    .into_iter()
                    .filter_map(|l| db.songs.get(l.song_id))
                    .map(|s| song_row(db, s))
                    .collect();
                Ok(rows.into())
            }),
        ApiSpec::new(APP, "like_song", "POST", "/liked_songs/{song_id}")
            .doc("Like a song.")
            .params([song_id()])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let s = song(call, "song_id")?.id;
                let me = call.user();
                if liked(&call.world.db, me, s).is_some() {
                    return Err(ApiError::conflict(format!("You already like song {s}.")));
                }
                call.world.db.song_likes.insert(SongLike { id: 0, person_id: me, song_id: s });
                Ok(json!({"message": "Song liked."}))
            }),
        ApiSpec::new(APP, "unlike_song", "DELETE", "/liked_songs/{song_id}")
            .doc("Remove a song from your liked songs.")
            .params([song_id()])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let s = song(call, "song_id")?.id;
                let like = liked(&call.world.db, call.user(), s)
                    .ok_or_else(|| ApiError::conflict(format!("You do not like song {s}.")))?;
                call.world.db.song_likes.remove(like);
                Ok(json!({"message": "Song unliked."}))
            }),
        ApiSpec::new(APP, "show_playlists", "GET", "/playlists")
            .doc("List your playlists, oldest first.")
            .params(page_params())
            .returns(r#"[{"playlist_id":1,"title":"string","is_public":false,"song_count":5}]"#)
            .handler(|call| {
                let me = call.user();
                let playlists = call.world.db.playlists.iter().filter(|p| p.owner_id == me);
                let rows: Vec<Value> = paginate(playlists, call.args.page())
                    .into_iter()
                    .map(|p| {
                        json!({"playlist_id": p.id, "title": p.title, "is_public": p.public, "song_count": p.song_ids.len()})
                    })
                    .collect();
                Ok(rows.into())
            }),
        ApiSpec::new(APP, "show_playlist", "GET", "/playlists/{playlist_id}")
            .doc("Show one of your playlists (or someone's public one) with its songs in order.")
            .params([playlist_id()])
            .returns(r#"{"playlist_id":1,"title":"string","is_public":false,"created_at":"string","songs":[{"song_id":1,"title":"string"}]}"#)
            .handler(|call| {
                let id = call.args.id("playlist_id");
                let db = &call.world.db;
                let p = db.playlists.get(id).ok_or_else(|| missing_playlist(id))?;
                if !p.public {
                    check_owner(p.owner_id, call.user(), "playlist", id)?;
                }
                let songs: Vec<Value> = p
                    .song_ids
                    .iter()
                    .filter_map(|s| db.songs.get(*s))
                    .map(|s| json!({"song_id": s.id, "title": s.title}))
                    .collect();
                Ok(json!({
                    "playlist_id": p.id, "title": p.title, "is_public": p.public, "created_at": p.created_at,
                    "songs": songs,
                }))
            }),
        ApiSpec::new(APP, "create_playlist", "POST", "/playlists")
            .doc("Create an empty playlist.")
            .params([
                req("title", ParamType::Str, "Title of the playlist.").with(Constraint::MinLen(1)),
                opt("is_public", ParamType::Bool, json!(false), "Whether others can see it."),
            ])
            .returns(r#"{"message":"string","playlist_id":1}"#)
            .handler(|call| {
                let playlist = Playlist {
                    id: 0,
                    owner_id: call.user(),
                    title: call.args.str("title").trim().to_owned(),
                    public: call.args.bool("is_public"),
                    song_ids: vec![],
                    created_at: call.world.now.clone(),
                };
                let id = call.world.db.playlists.insert(playlist);
                Ok(json!({"message": "Playlist created.", "playlist_id": id}))
            }),
        ApiSpec::new(APP, "add_song_to_playlist", "POST", "/playlists/{playlist_id}/songs")
            .doc("Add a song at the end of one of your playlists.")
            .params([playlist_id(), song_id()])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let s = song(call, "song_id")?.id;
                let p = owned_mut(call)?;
                if p.song_ids.contains(&s) {
                    return Err(ApiError::conflict(format!("Song {s} is already in playlist {}.", p.id)));
                }
                p.song_ids.push(s);
                Ok(json!({"message": "Song added to the playlist."}))
            }),
        ApiSpec::new(APP, "remove_song_from_playlist", "DELETE", "/playlists/{playlist_id}/songs/{song_id}")
            .doc("Remove a song from one of your playlists.")
            .params([playlist_id(), song_id()])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let s = song(call, "song_id")?.id;
                let p = owned_mut(call)?;
                let at = p
                    .song_ids
                    .iter()
                    .position(|x| *x == s)
                    .ok_or_else(|| ApiError::conflict(format!("Song {s} is not in playlist {}.", p.id)))?;
                p.song_ids.remove(at);
                Ok(json!({"message": "Song removed from the playlist."}))
            }),
        ApiSpec::new(APP, "rename_playlist", "PATCH", "/playlists/{playlist_id}")
            .doc("Rename one of your playlists.")
            .params([playlist_id(), req("title", ParamType::Str, "New title.").with(Constraint::MinLen(1))])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let title = call.args.str("title").trim().to_owned();
                owned_mut(call)?.title = title;
                Ok(json!({"message": "Playlist renamed."}))
            }),
        ApiSpec::new(APP, "delete_playlist", "DELETE", "/playlists/{playlist_id}")
            .doc("Delete one of your playlists.")
            .params([playlist_id()])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let id = owned_mut(call)?.id;
                call.world.db.playlists.remove(id);
                Ok(json!({"message": "Playlist deleted."}))
            }),
        ApiSpec::new(APP, "follow_artist", "POST", "/followed_artists/{artist_id}")
            .doc("Follow an artist.")
            .params([artist_id()])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let a = artist(call, "artist_id")?.id;
                let me = call.user();
                if following(&call.world.db, me, a).is_some() {
                    return Err(ApiError::conflict(format!("You already follow artist {a}.")));
                }
                call.world.db.artist_follows.insert(ArtistFollow { id: 0, person_id: me, artist_id: a });
                Ok(json!({"message": "Artist followed."}))
            }),
        ApiSpec::new(APP, "unfollow_artist", "DELETE", "/followed_artists/{artist_id}")
            .doc("Stop following an artist.")
            .params([artist_id()])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let a = artist(call, "artist_id")?.id;
                let follow = following(&call.world.db, call.user(), a)
                    .ok_or_else(|| ApiError::conflict(format!("You do not follow artist {a}.")))?;
                call.world.db.artist_follows.remove(follow);
                Ok(json!({"message": "Artist unfollowed."}))
            }),
        ApiSpec::new(APP, "show_followed_artists", "GET", "/followed_artists")
            .doc("List the artists you follow, most recently followed first.")
            .params(page_params())
            .returns(r#"[{"artist_id":1,"name":"string","genre":"string"}]"#)
            .handler(|call| {
                let me = call.user();
                let db = &call.world.db;
                let follows = db.artist_follows.iter().rev().filter(|f| f.person_id == me);
                let rows: Vec<Value> = paginate(follows, call.args.page())
                    .into_iter()
                    .filter_map(|f| db.artists.get(f.artist_id))
                    .map(artist_row)
                    .collect();
                Ok(rows.into())
            }),
    ]
}

fn search_songs(call: &mut Call<'_>) -> ApiResult {
    let db = &call.world.db;
    let args = &call.args;
    let query = args.opt_str("query");
    let by = args.opt_str("artist_name");
    let genre = args.opt_str("genre");
    let min_year = args.opt_int("min_release_year");
    let max_year = args.opt_int("max_release_year");
    let mut songs: Vec<&Song> = db
        .songs
        .iter()
        .filter(|s| {
            let artist = artist_name(db, s.artist_id);
            matches(query, &[&s.title, &s.album, artist])
                && by.is_none_or(|b| matches(Some(b), &[artist]))
                && genre.is_none_or(|g| s.genre == g)
                && min_year.is_none_or(|y| i64::from(s.release_year) >= y)
                && max_year.is_none_or(|y| i64::from(s.release_year) <= y)
        })
        .collect();
    match args.opt_str("sort_by") {
        Some("title") => songs.sort_by(|a, b| a.title.cmp(&b.title).then(a.id.cmp(&b.id))),
        Some("release_year") => {
            songs.sort_by(|a, b| b.release_year.cmp(&a.release_year).then(a.id.cmp(&b.id)))
        }
        Some("plays") => songs.sort_by(|a, b| b.plays.cmp(&a.plays).then(a.id.cmp(&b.id))),
        _ => {}
    }
    Ok(paginate(songs, args.page())
        .into_iter()
        .map(|s| song_row(db, s))
        .collect::<Vec<_>>()
        .into())
}

fn song_row(db: &Db, s: &Song) -> Value {
    json!({"song_id": s.id, "title": s.title, "artist": artist_name(db, s.artist_id), "release_year": s.release_year})
}

fn artist_row(a: &Artist) -> Value {
    json!({"artist_id": a.id, "name": a.name, "genre": a.genre})
}

fn artist_name(db: &Db, id: Id) -> &str {
    db.artists.get(id).map_or("", |a| a.name.as_str())
}

fn liked(db: &Db, person: Id, song: Id) -> Option<Id> {
    db.song_likes
        .iter()
        .find(|l| l.person_id == person && l.song_id == song)
        .map(|l| l.id)
}

fn following(db: &Db, person: Id, artist: Id) -> Option<Id> {
    db.artist_follows
        .iter()
        .find(|f| f.person_id == person && f.artist_id == artist)
        .map(|f| f.id)
}

fn song<'a>(call: &'a Call<'_>, param: &str) -> Result<&'a Song, ApiError> {
    let id = call.args.id(param);
    call.world
        .db
        .songs
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("No song with id {id}.")))
}

fn artist<'a>(call: &'a Call<'_>, param: &str) -> Result<&'a Artist, ApiError> {
    let id = call.args.id(param);
    call.world
        .db
        .artists
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("No artist with id {id}.")))
}

fn missing_playlist(id: Id) -> ApiError {
    ApiError::not_found(format!("No playlist with id {id}."))
}

/// The caller's playlist named by `playlist_id`, mutably (404 if missing, 401 if someone else's).
fn owned_mut<'a>(call: &'a mut Call<'_>) -> Result<&'a mut Playlist, ApiError> {
    let id = call.args.id("playlist_id");
    let me = call.user();
    let p = call
        .world
        .db
        .playlists
        .get_mut(id)
        .ok_or_else(|| missing_playlist(id))?;
    check_owner(p.owner_id, me, "playlist", id)?;
    Ok(p)
}

/// Seeds the catalogue, then each person's liked songs, followed artists and playlists.
pub(super) fn populate(db: &mut Db, rng: &mut ChaCha8Rng, now: &str) {
    let mut albums: Vec<&str> = ALBUMS.to_vec();
    albums.shuffle(rng);
    let mut titles: Vec<String> = TITLE_WORDS
        .iter()
        .flat_map(|a| TITLE_NOUNS.iter().map(move |b| format!("{a} {b}")))
        .collect();
    titles.shuffle(rng);
    for (name, genre) in ARTISTS {
        let artist_id = db.artists.insert(Artist {
            id: 0,
            name: (*name).to_owned(),
            genre: (*genre).to_owned(),
        });
        let album_count = rng.random_range(1..=2);
        let songs = rng.random_range(6..=8);
        let years: Vec<u32> = (0..album_count)
            .map(|_| rng.random_range(1990..=2024))
            .collect();
        let names: Vec<&str> = (0..album_count)
            .map(|_| albums.pop().expect("enough album names"))
            .collect();
        for i in 0..songs {
            let album = i * album_count / songs;
            db.songs.insert(Song {
                id: 0,
                title: titles.pop().expect("enough song titles"),
                artist_id,
                album: names[album].to_owned(),
                genre: (*genre).to_owned(),
                duration: rng.random_range(120..=420),
                release_year: years[album],
                plays: rng.random_range(1_000..5_000_000),
            });
        }
    }
    let song_ids: Vec<Id> = db.songs.iter().map(|s| s.id).collect();
    let artist_ids: Vec<Id> = db.artists.iter().map(|a| a.id).collect();
    let people: Vec<Id> = db.people.iter().map(|p| p.id).collect();
    for person in people {
        let likes = rng.random_range(5..=15);
        for i in index::sample(rng, song_ids.len(), likes) {
            db.song_likes.insert(SongLike {
                id: 0,
                person_id: person,
                song_id: song_ids[i],
            });
        }
        let follows = rng.random_range(1..=4);
        for i in index::sample(rng, artist_ids.len(), follows) {
            db.artist_follows.insert(ArtistFollow {
                id: 0,
                person_id: person,
                artist_id: artist_ids[i],
            });
        }
        let lists = rng.random_range(1..=3);
        let mut created: Vec<String> = (0..lists)
            .map(|_| {
                time::timestamp(
                    now,
                    -rng.random_range(10..400),
                    rng.random_range(7..23),
                    rng.random_range(0..60),
                )
            })
            .collect();
        created.sort();
        for (t, created_at) in index::sample(rng, PLAYLIST_TITLES.len(), lists)
            .into_iter()
            .zip(created)
        {
            let count = rng.random_range(3..=8);
            let songs = index::sample(rng, song_ids.len(), count);
            db.playlists.insert(Playlist {
                id: 0,
                owner_id: person,
                title: PLAYLIST_TITLES[t].to_owned(),
                public: rng.random_bool(0.4),
                song_ids: songs.into_iter().map(|i| song_ids[i]).collect(),
                created_at,
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

    fn password(w: &World, person: Id, app: &str) -> String {
        w.db.accounts
            .iter()
            .find(|a| a.person_id == person && a.app == app)
            .unwrap()
            .password
            .clone()
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
        let playlist = w.db.playlists.iter().find(|p| p.owner_id == 1).unwrap().id;
        let reads = [
            ("search_songs", json!({})),
            ("show_song", json!({"song_id": 1})),
            ("search_artists", json!({})),
            ("show_artist", json!({"artist_id": 1})),
            ("show_liked_songs", json!({})),
            ("show_playlists", json!({})),
            ("show_playlist", json!({"playlist_id": playlist})),
            ("show_followed_artists", json!({})),
        ];
        check_docs(&mut w, &t, 19, &reads);
    }

    #[test]
    fn catalogue_is_seeded_within_bounds() {
        let (db, _) = generate(11);
        assert_eq!(db.artists.len(), 16);
        assert!((96..=128).contains(&db.songs.len()));
        let titles: std::collections::BTreeSet<&str> =
            db.songs.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(titles.len(), db.songs.len(), "song titles are unique");
        for s in db.songs.iter() {
            assert!((120..=420).contains(&s.duration) && (1990..=2024).contains(&s.release_year));
            assert_eq!(s.genre, db.artists.get(s.artist_id).unwrap().genre);
        }
        for p in db.people.iter() {
            let likes = db.song_likes.iter().filter(|l| l.person_id == p.id).count();
            let follows = db
                .artist_follows
                .iter()
                .filter(|f| f.person_id == p.id)
                .count();
            let lists: Vec<&Playlist> =
                db.playlists.iter().filter(|l| l.owner_id == p.id).collect();
            assert!(
                (5..=15).contains(&likes)
                    && (1..=4).contains(&follows)
                    && (1..=3).contains(&lists.len())
            );
            assert!(lists.iter().all(|l| (3..=8).contains(&l.song_ids.len())));
        }
        assert_eq!(generate(11).0.songs, db.songs);
    }

    #[test]
    fn login_checks_password_and_app() {
        let mut w = world();
        let email = w.db.person(1).email.clone();
        let err = call(
            &mut w,
            "login",
            json!({"username": email, "password": "wrong"}),
        )
        .unwrap_err();
        assert_eq!(err.status, 401);
        let pay_pw = password(&w, 1, "pay");
        let pay = w.call(
            "pay",
            "login",
            vec![],
            vec![
                ("username".into(), json!(email)),
                ("password".into(), json!(pay_pw)),
            ],
        );
        let pay_token = pay.unwrap()["access_token"].as_str().unwrap().to_owned();
        assert_eq!(
            status(call(
                &mut w,
                "show_liked_songs",
                json!({"access_token": pay_token})
            )),
            401
        );
        let token = login(&mut w, 1);
        assert!(call(&mut w, "show_liked_songs", json!({"access_token": token})).is_ok());
        call(&mut w, "logout", json!({"access_token": token})).unwrap();
        assert_eq!(
            status(call(
                &mut w,
                "show_liked_songs",
                json!({"access_token": token})
            )),
            401
        );
    }

    #[test]
    fn reads_change_nothing() {
        let mut w = world();
        let t = login(&mut w, 1);
        let before = w.db.clone();
        call(
            &mut w,
            "search_songs",
            json!({"access_token": t, "query": "a", "sort_by": "plays"}),
        )
        .unwrap();
        call(
            &mut w,
            "show_song",
            json!({"access_token": t, "song_id": 1}),
        )
        .unwrap();
        call(
            &mut w,
            "show_artist",
            json!({"access_token": t, "artist_id": 1}),
        )
        .unwrap();
        call(&mut w, "show_playlists", json!({"access_token": t})).unwrap();
        call(
            &mut w,
            "show_liked_songs",
            json!({"access_token": t, "page_limit": 20}),
        )
        .unwrap();
        call(&mut w, "show_followed_artists", json!({"access_token": t})).unwrap();
        assert!(w.db.diff(&before).is_empty());
    }

    #[test]
    fn search_filters_sorts_and_paginates() {
        let mut w = world();
        let t = login(&mut w, 1);
        let jazz: Vec<Id> =
            w.db.songs
                .iter()
                .filter(|s| s.genre == "jazz")
                .map(|s| s.id)
                .collect();
        let ids = |v: &Value, key: &str| -> Vec<Id> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|r| r[key].as_u64().unwrap() as Id)
                .collect()
        };
        let page0 = call(
            &mut w,
            "search_songs",
            json!({"access_token": t, "genre": "jazz"}),
        )
        .unwrap();
        assert_eq!(ids(&page0, "song_id"), jazz[..5]);
        let page1 = call(
            &mut w,
            "search_songs",
            json!({"access_token": t, "genre": "jazz", "page_index": 1, "page_limit": 4}),
        )
        .unwrap();
        assert_eq!(ids(&page1, "song_id"), jazz[4..8]);
        let all = call(
            &mut w,
            "search_songs",
            json!({"access_token": t, "artist_name": "moreau", "page_limit": 20}),
        )
        .unwrap();
        let moreau =
            w.db.artists
                .iter()
                .find(|a| a.name == "Ella Moreau")
                .unwrap()
                .id;
        let expected: Vec<Id> =
            w.db.songs
                .iter()
                .filter(|s| s.artist_id == moreau)
                .map(|s| s.id)
                .collect();
        assert_eq!(ids(&all, "song_id"), expected);
        assert_eq!(all[0]["artist"], "Ella Moreau");
        let newest = call(
            &mut w,
            "search_songs",
            json!({"access_token": t, "sort_by": "plays", "page_limit": 1}),
        )
        .unwrap();
        let most =
            w.db.songs
                .iter()
                .max_by_key(|s| (s.plays, std::cmp::Reverse(s.id)))
                .unwrap()
                .id;
        assert_eq!(ids(&newest, "song_id"), [most]);
        let recent = call(
            &mut w,
            "search_songs",
            json!({"access_token": t, "min_release_year": 2015, "page_limit": 20}),
        )
        .unwrap();
        let n =
            w.db.songs
                .iter()
                .filter(|s| s.release_year >= 2015)
                .count()
                .min(20);
        assert_eq!(recent.as_array().unwrap().len(), n);
        let rock = call(
            &mut w,
            "search_artists",
            json!({"access_token": t, "genre": "rock"}),
        )
        .unwrap();
        assert_eq!(ids(&rock, "artist_id"), [4, 5, 6]);
        assert_eq!(
            status(call(
                &mut w,
                "search_songs",
                json!({"access_token": t, "genre": "polka"})
            )),
            422
        );
        assert_eq!(
            status(call(
                &mut w,
                "search_songs",
                json!({"access_token": t, "page_limit": 21})
            )),
            422
        );
        assert_eq!(
            status(call(
                &mut w,
                "show_song",
                json!({"access_token": t, "song_id": "1"})
            )),
            422
        );
        assert_eq!(
            status(call(
                &mut w,
                "show_song",
                json!({"access_token": t, "song_id": 9999})
            )),
            404
        );
        let artist = call(
            &mut w,
            "show_artist",
            json!({"access_token": t, "artist_id": moreau}),
        )
        .unwrap();
        assert_eq!(artist["song_count"], expected.len());
    }

    #[test]
    fn likes_and_follows() {
        let mut w = world();
        let t = login(&mut w, 1);
        let liked: Vec<Id> =
            w.db.song_likes
                .iter()
                .filter(|l| l.person_id == 1)
                .map(|l| l.song_id)
                .collect();
        let fresh =
            w.db.songs
                .iter()
                .map(|s| s.id)
                .find(|s| !liked.contains(s))
                .unwrap();
        assert_eq!(
            status(call(
                &mut w,
                "like_song",
                json!({"access_token": t, "song_id": liked[0]})
            )),
            409
        );
        let before = w.db.clone();
        call(
            &mut w,
            "like_song",
            json!({"access_token": t, "song_id": fresh}),
        )
        .unwrap();
        let diff = w.db.diff(&before);
        assert_eq!(diff.len(), 1);
        assert_eq!(
            (
                diff[0].table,
                diff[0].after.as_ref().unwrap()["song_id"].as_u64()
            ),
            ("song_likes", Some(fresh.into()))
        );
        let shown = call(
            &mut w,
            "show_liked_songs",
            json!({"access_token": t, "page_limit": 1}),
        )
        .unwrap();
        assert_eq!(shown[0]["song_id"], fresh);
        assert_eq!(
            call(
                &mut w,
                "show_song",
                json!({"access_token": t, "song_id": fresh})
            )
            .unwrap()["liked"],
            true
        );
        call(
            &mut w,
            "unlike_song",
            json!({"access_token": t, "song_id": fresh}),
        )
        .unwrap();
        assert!(w.db.diff(&before).is_empty());
        assert_eq!(
            status(call(
                &mut w,
                "unlike_song",
                json!({"access_token": t, "song_id": fresh})
            )),
            409
        );

        let followed: Vec<Id> =
            w.db.artist_follows
                .iter()
                .filter(|f| f.person_id == 1)
                .map(|f| f.artist_id)
                .collect();
        let other = (1..=16).find(|a| !followed.contains(a)).unwrap();
        assert_eq!(
            status(call(
                &mut w,
                "follow_artist",
                json!({"access_token": t, "artist_id": followed[0]})
            )),
            409
        );
        assert_eq!(
            status(call(
                &mut w,
                "unfollow_artist",
                json!({"access_token": t, "artist_id": other})
            )),
            409
        );
        assert_eq!(
            status(call(
                &mut w,
                "follow_artist",
                json!({"access_token": t, "artist_id": 99})
            )),
            404
        );
        call(
            &mut w,
            "follow_artist",
            json!({"access_token": t, "artist_id": other}),
        )
        .unwrap();
        let shown = call(
            &mut w,
            "show_followed_artists",
            json!({"access_token": t, "page_limit": 20}),
        )
        .unwrap();
        assert_eq!(shown.as_array().unwrap().len(), followed.len() + 1);
        assert_eq!(shown[0]["artist_id"], other);
        call(
            &mut w,
            "unfollow_artist",
            json!({"access_token": t, "artist_id": other}),
        )
        .unwrap();
        assert!(w.db.diff(&before).is_empty());
    }

    #[test]
    fn playlists_lifecycle_and_ownership() {
        let mut w = world();
        let t = login(&mut w, 1);
        let before = w.db.clone();
        let out = call(
            &mut w,
            "create_playlist",
            json!({"access_token": t, "title": "Study"}),
        )
        .unwrap();
        let id = out["playlist_id"].as_u64().unwrap() as Id;
        assert_eq!(
            status(call(
                &mut w,
                "create_playlist",
                json!({"access_token": t, "title": ""})
            )),
            422
        );
        call(
            &mut w,
            "add_song_to_playlist",
            json!({"access_token": t, "playlist_id": id, "song_id": 3}),
        )
        .unwrap();
        call(
            &mut w,
            "add_song_to_playlist",
            json!({"access_token": t, "playlist_id": id, "song_id": 1}),
        )
        .unwrap();
        assert_eq!(
            status(call(
                &mut w,
                "add_song_to_playlist",
                json!({"access_token": t, "playlist_id": id, "song_id": 3})
            )),
            409
        );
        assert_eq!(
            status(call(
                &mut w,
                "add_song_to_playlist",
                json!({"access_token": t, "playlist_id": id, "song_id": 9999})
            )),
            404
        );
        let p = w.db.playlists.get(id).unwrap();
        assert_eq!(
            (p.song_ids.clone(), p.public, p.created_at.clone()),
            (vec![3, 1], false, w.now.clone())
        );
        let shown = call(
            &mut w,
            "show_playlist",
            json!({"access_token": t, "playlist_id": id}),
        )
        .unwrap();
        assert_eq!(shown["songs"][1]["title"], w.db.songs.get(1).unwrap().title);
        call(
            &mut w,
            "remove_song_from_playlist",
            json!({"access_token": t, "playlist_id": id, "song_id": 3}),
        )
        .unwrap();
        assert_eq!(
            status(call(
                &mut w,
                "remove_song_from_playlist",
                json!({"access_token": t, "playlist_id": id, "song_id": 3})
            )),
            409
        );
        call(
            &mut w,
            "rename_playlist",
            json!({"access_token": t, "playlist_id": id, "title": "Exams"}),
        )
        .unwrap();
        let p = w.db.playlists.get(id).unwrap();
        assert_eq!(
            (p.title.as_str(), p.song_ids.as_slice()),
            ("Exams", &[1][..])
        );
        let mine = call(
            &mut w,
            "show_playlists",
            json!({"access_token": t, "page_limit": 20}),
        )
        .unwrap();
        assert_eq!(mine.as_array().unwrap().last().unwrap()["title"], "Exams");
        call(
            &mut w,
            "delete_playlist",
            json!({"access_token": t, "playlist_id": id}),
        )
        .unwrap();
        assert_eq!(
            status(call(
                &mut w,
                "delete_playlist",
                json!({"access_token": t, "playlist_id": id})
            )),
            404
        );
        assert!(w.db.diff(&before).is_empty());

        let private =
            w.db.playlists
                .iter()
                .find(|p| p.owner_id != 1 && !p.public)
                .unwrap()
                .id;
        let public =
            w.db.playlists
                .iter()
                .find(|p| p.owner_id != 1 && p.public)
                .unwrap()
                .id;
        let err = call(
            &mut w,
            "delete_playlist",
            json!({"access_token": t, "playlist_id": private}),
        )
        .unwrap_err();
        assert_eq!(err.status, 401);
        assert!(err.message.contains("another user"));
        assert_eq!(
            status(call(
                &mut w,
                "show_playlist",
                json!({"access_token": t, "playlist_id": private})
            )),
            401
        );
        assert!(
            call(
                &mut w,
                "show_playlist",
                json!({"access_token": t, "playlist_id": public})
            )
            .is_ok()
        );
        assert_eq!(
            status(call(
                &mut w,
                "rename_playlist",
                json!({"access_token": t, "playlist_id": public, "title": "x"})
            )),
            401
        );
        assert!(w.db.diff(&before).is_empty());
    }
}
