//! The sandbox's behaviour, in both isolations.

use super::*;
use crate::population;

fn world() -> World {
    let (db, now) = population::generate(1);
    World::new(db, now, 1)
}

fn run(sandbox: &mut Sandbox, world: &mut World, code: &str) -> String {
    sandbox.execute(code, world)
}

fn namespace_persists_and_print_is_captured(isolation: Isolation) {
    let mut sandbox = Sandbox::new(Limits {
        isolation,
        ..Limits::default()
    });
    let mut w = world();
    assert_eq!(run(&mut sandbox, &mut w, "x = [1, 2]"), SUCCESSFUL);
    assert_eq!(
        run(&mut sandbox, &mut w, "x.append(3)\nprint(x)"),
        "[1,2,3]"
    );
    assert_eq!(
        run(&mut sandbox, &mut w, "print({'a': True, 'b': None})"),
        r#"{"a":true,"b":null}"#
    );
    assert_eq!(
        run(
            &mut sandbox,
            &mut w,
            "print('n', len(x), sum(x), round(2.345, 2))"
        ),
        "n 3 6 2.35"
    );
    assert_eq!(
        run(&mut sandbox, &mut w, "name = 'Ann'\nprint(f'hi {name}')"),
        "hi Ann"
    );
    assert_eq!(
        run(&mut sandbox, &mut w, "x = 5\nprint(x)"),
        "5",
        "globals can be rebound"
    );
}

fn apis_reach_the_world(isolation: Isolation) {
    let mut sandbox = Sandbox::new(Limits {
        isolation,
        ..Limits::default()
    });
    let mut w = world();
    let out = run(
        &mut sandbox,
        &mut w,
        "p = apis.supervisor.show_profile()\nprint(p['email'])",
    );
    assert_eq!(out, w.db.person(1).email);
    let password =
        w.db.accounts
            .iter()
            .find(|a| a.person_id == 1 && a.app == "mail")
            .unwrap()
            .password
            .clone();
    let code = format!(
        "t = apis.mail.login(username=p['email'], password='{password}')['access_token']\n\
         r = apis.mail.send_mail(access_token=t, recipient_emails=['{}'], subject='Hi')\nprint(r['message'])",
        w.db.person(2).email
    );
    assert_eq!(run(&mut sandbox, &mut w, &code), "Mail sent.");
    assert!(
        w.db.mails
            .iter()
            .any(|m| m.owner_id == 2 && m.subject == "Hi" && m.folder == "inbox")
    );
}

fn failures_are_tracebacks_and_the_episode_goes_on(isolation: Isolation) {
    let mut sandbox = Sandbox::new(Limits {
        isolation,
        ..Limits::default()
    });
    let mut w = world();
    let out = run(&mut sandbox, &mut w, "x = 1\ny = (");
    assert!(
        out.starts_with(FAILED) && out.contains("SyntaxError"),
        "{out}"
    );
    let out = run(&mut sandbox, &mut w, "print(undefined_name)");
    assert!(
        out.starts_with(FAILED) && out.contains("undefined_name"),
        "{out}"
    );
    let out = run(
        &mut sandbox,
        &mut w,
        "apis.mail.show_inbox(access_token='nope')",
    );
    assert!(out.contains("Response status code is 401"), "{out}");
    assert!(out.contains("line 1"), "{out}");
    let out = run(&mut sandbox, &mut w, "apis.mail.show_inbox()");
    assert!(
        out.contains("Response status code is 401") && out.contains("access token is missing"),
        "{out}"
    );
    let out = run(&mut sandbox, &mut w, "apis.nosuchapp.f()");
    assert!(
        out.starts_with(FAILED) && out.contains("nosuchapp"),
        "{out}"
    );
    let out = run(&mut sandbox, &mut w, "apis.mail.nosuchapi()");
    assert!(
        out.starts_with(FAILED) && out.contains("nosuchapi"),
        "{out}"
    );
    let out = run(
        &mut sandbox,
        &mut w,
        "apis.api_docs.show_api_doc(app_name=3, api_name='x')",
    );
    assert!(out.contains("422") && out.contains("app_name"), "{out}");
    let out = run(&mut sandbox, &mut w, "v = [1 // 0 for i in range(3)]");
    assert!(
        out.starts_with(FAILED) && out.to_lowercase().contains("zero"),
        "{out}"
    );
    assert_eq!(
        run(&mut sandbox, &mut w, "print('still alive')"),
        "still alive"
    );
}

fn limits_stop_runaway_cells(isolation: Isolation) {
    let limits = Limits {
        max_time: Duration::from_millis(300),
        isolation,
        ..Limits::default()
    };
    let mut sandbox = Sandbox::new(limits);
    let mut w = world();
    let out = run(&mut sandbox, &mut w, "for i in range(100000000):\n    pass");
    assert!(out.starts_with(FAILED), "{out}");
    let out = run(
        &mut sandbox,
        &mut w,
        "for i in range(100000):\n    print('x' * 50)",
    );
    assert!(out.contains("output limit exceeded"), "{out}");
    let out = run(
        &mut sandbox,
        &mut w,
        "for i in range(1000):\n    apis.supervisor.show_profile()",
    );
    assert!(out.contains("API call limit exceeded"), "{out}");
    let out = run(&mut sandbox, &mut w, "def f(n):\n    return f(n + 1)\nf(0)");
    assert!(out.starts_with(FAILED), "{out}");
    assert_eq!(run(&mut sandbox, &mut w, "print(1 + 1)"), "2");
}

/// Each behaviour, in a thread and in a worker process: the two must not differ.
macro_rules! in_both_isolations {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[test]
            fn thread() {
                super::$name(Isolation::Thread);
            }

            #[test]
            fn process() {
                super::$name(Isolation::Process);
            }
        }
    )*};
}

in_both_isolations!(
    namespace_persists_and_print_is_captured,
    apis_reach_the_world,
    failures_are_tracebacks_and_the_episode_goes_on,
    limits_stop_runaway_cells
);
