//! Segmentation of hand-written trajectories of every kind, with exact boundaries.

use rung_segment::build::EpisodeBuilder;
use rung_segment::{
    GoldPlan, GoldPlans, GoldStep, Method, NoPlans, segment, segment_by_apps, segment_with_plan,
};
use rung_trajectory::{Role, SystemKind};

const TASK: &str = "c27d888_1";
const INSTRUCTION: &str = "How much money did I send my son on pay in the last 60 days?";

const LOGIN_PHONE: &str = "passwords = {a[\"account_name\"]: a[\"password\"] for a in apis.supervisor.show_account_passwords()}\nphone_token = apis.phone.login(username=\"5551121568\", password=passwords[\"phone\"])[\"access_token\"]";
const FIND_SON: &str = "son = apis.phone.search_contacts(access_token=phone_token, relationship=\"son\")[0]\nprint(son)";
const LOGIN_PAY: &str = "pay_token = apis.pay.login(username=\"ivan.ito@mail.com\", password=passwords[\"pay\"])[\"access_token\"]";
const SUM_PAY: &str = "payments = apis.pay.show_transactions(access_token=pay_token, direction=\"sent\", user_email=son[\"email\"])\nsent_total = round(sum([t[\"amount\"] for t in payments]), 2)\nprint(sent_total)";
const COMPLETE: &str = "apis.supervisor.complete_task(answer=sent_total)";

fn plan() -> GoldPlan {
    GoldPlan {
        task_id: TASK.parse().unwrap(),
        instruction: INSTRUCTION.to_owned(),
        steps: vec![
            GoldStep {
                kind: "phone.find_relative".into(),
                app: "phone".into(),
                instruction: "Find your son in your phone contacts.".into(),
                code: format!("{LOGIN_PHONE}\n{FIND_SON}"),
            },
            GoldStep {
                kind: "pay.total_sent".into(),
                app: "pay".into(),
                instruction: "Add up the money you sent your son.".into(),
                code: format!("{LOGIN_PAY}\n{SUM_PAY}"),
            },
        ],
    }
}

fn boundaries(seg: &rung_segment::Segmentation) -> Vec<Vec<usize>> {
    seg.boundaries()
}

#[test]
fn two_agent_sub_tasks_open_at_delegations() {
    let mut b = EpisodeBuilder::new(SystemKind::TwoAgent, TASK, INSTRUCTION);
    let orch = b.open(Role::Orchestrator, "plan", INSTRUCTION);
    b.malformed(orch, None, "I think we should look at the phone"); // 0
    b.user(orch, "Reply in a valid format.");
    b.delegate(orch, 0, "phone", "Find your son."); // 1
    let e0 = b.open(Role::Executor, "code", "Find your son.");
    b.code(e0, Some(0), LOGIN_PHONE, true, "Execution successful."); // 2
    b.code(e0, Some(0), FIND_SON, true, "{\"email\": \"m@x\"}"); // 3
    b.report(e0, 0, "son = {...}", true); // 4
    b.user(orch, "Result: son = {...}");
    b.delegate(orch, 1, "pay", "Add up the money."); // 5
    let e1 = b.open(Role::Executor, "code", "Add up the money.");
    b.code(e1, Some(1), LOGIN_PAY, true, "Execution successful."); // 6
    b.code(e1, Some(1), SUM_PAY, true, "15.81"); // 7
    b.report(e1, 1, "sent_total = 15.81", true); // 8
    b.user(orch, "Result: sent_total = 15.81");
    b.complete(orch, "15.81"); // 9
    let episode = b.finish();

    // A gold plan is ignored for teams: what was trained is what the orchestrator issued.
    let seg = segment(&episode, &GoldPlans::from_iter([plan()]));
    assert_eq!(seg.method, Method::Delegations);
    assert_eq!(seg.turn_subtask, vec![0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    assert_eq!(
        boundaries(&seg),
        vec![vec![0, 1, 2, 3, 4], vec![5, 6, 7, 8, 9]]
    );
    assert_eq!(seg.subtasks[0].opened_by, Some(1));
    assert_eq!(seg.subtasks[1].opened_by, Some(5));
    assert_eq!(seg.subtasks[0].app.as_deref(), Some("phone"));
    assert_eq!(
        seg.subtasks[1].instruction.as_deref(),
        Some("Add up the money.")
    );
    assert_eq!(seg.subtasks[0].turns_of(Role::Orchestrator), &[0, 1]);
    assert_eq!(seg.subtasks[0].turns_of(Role::Executor), &[2, 3, 4]);
    assert_eq!(seg.subtasks[1].turns_of(Role::Orchestrator), &[5, 9]);
    assert_eq!(seg.subtasks[1].turns_of(Role::Executor), &[6, 7, 8]);
    assert!(seg.subtasks[1].turns_of(Role::Critic).is_empty());
}

#[test]
fn three_agent_verdicts_and_retries_stay_in_their_sub_task() {
    let mut b = EpisodeBuilder::new(SystemKind::ThreeAgent, TASK, INSTRUCTION);
    let orch = b.open(Role::Orchestrator, "plan", INSTRUCTION);
    b.delegate(orch, 0, "phone", "Find your son."); // 0
    let e0 = b.open(Role::Executor, "code", "Find your son.");
    b.code(e0, Some(0), LOGIN_PHONE, true, "Execution successful."); // 1
    b.report(e0, 0, "done", false); // 2: premature
    let c0 = b.open(
        Role::Critic,
        "check",
        "Sub-task: find your son. Report: done",
    );
    b.verdict(c0, 0, Some("You have not searched the contacts.")); // 3
    b.user(e0, "Feedback: You have not searched the contacts.");
    // A third-party file may leave `subtask` out: the latest delegation is used.
    b.code(e0, None, FIND_SON, true, "{\"email\": \"m@x\"}"); // 4
    b.report(e0, 0, "son = {...}", true); // 5
    let c1 = b.open(
        Role::Critic,
        "check",
        "Sub-task: find your son. Report: son",
    );
    b.verdict(c1, 0, None); // 6
    b.user(orch, "Result: son = {...}");
    b.delegate(orch, 1, "pay", "Add up the money."); // 7
    let e1 = b.open(Role::Executor, "code", "Add up the money.");
    b.code(
        e1,
        Some(1),
        &format!("{LOGIN_PAY}\n{SUM_PAY}"),
        true,
        "15.81",
    ); // 8
    b.report(e1, 1, "sent_total = 15.81", true); // 9
    let c2 = b.open(Role::Critic, "check", "Sub-task: add up. Report: 15.81");
    b.verdict(c2, 1, None); // 10
    b.user(orch, "Result: 15.81");
    b.malformed(orch, None, "The answer is 15.81"); // 11
    b.user(orch, "Reply in a valid format.");
    b.complete(orch, "15.81"); // 12
    let episode = b.finish();

    let seg = segment(&episode, &NoPlans);
    assert_eq!(seg.method, Method::Delegations);
    assert_eq!(
        seg.turn_subtask,
        vec![0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    );
    assert_eq!(seg.subtasks[0].turns_of(Role::Critic), &[3, 6]);
    assert_eq!(seg.subtasks[0].turns_of(Role::Executor), &[1, 2, 4, 5]);
    assert_eq!(seg.subtasks[1].turns_of(Role::Critic), &[10]);
    assert_eq!(seg.subtasks[1].turns_of(Role::Orchestrator), &[7, 11, 12]);
}

#[test]
fn team_without_delegation_is_one_sub_task() {
    let mut b = EpisodeBuilder::new(SystemKind::TwoAgent, TASK, INSTRUCTION);
    let orch = b.open(Role::Orchestrator, "plan", INSTRUCTION);
    b.malformed(orch, None, "hmm");
    b.user(orch, "Reply in a valid format.");
    b.complete(orch, "None");
    let seg = segment(&b.finish(), &NoPlans);
    assert_eq!(seg.len(), 1);
    assert_eq!(seg.turn_subtask, vec![0, 0]);
    assert_eq!(seg.subtasks[0].opened_by, None);
}

/// An expert-like single-agent episode: login and main cell per gold step, a documentation
/// look-up, a wrong-parameter mistake with its recovery, a malformed output, the completion.
fn single_episode() -> rung_trajectory::Episode {
    let mut b = EpisodeBuilder::new(SystemKind::Single, TASK, INSTRUCTION);
    let c = b.open(Role::Single, "code", INSTRUCTION);
    b.code(c, None, LOGIN_PHONE, true, "Execution successful."); // 0
    b.code(
        c,
        None,
        "son = apis.phone.search_contacts(access_token=phone_token, relation=\"son\")[0]",
        false,
        "Execution failed. Traceback: unexpected parameter relation",
    ); // 1: mistake
    b.code(c, None, FIND_SON, true, "{\"email\": \"m@x\"}"); // 2
    b.malformed(c, None, "Now the pay app."); // 3
    b.user(c, "Reply with one Python cell.");
    b.code(
        c,
        None,
        "print(apis.api_docs.show_api_doc(app_name=\"pay\", api_name=\"show_transactions\"))",
        true,
        "{...}",
    ); // 4
    b.code(c, None, LOGIN_PAY, true, "Execution successful."); // 5
    b.code(c, None, SUM_PAY, true, "15.81"); // 6
    b.code(c, None, "print(sent_total)", true, "15.81"); // 7
    b.code(c, None, COMPLETE, true, "Execution successful."); // 8
    b.finish()
}

#[test]
fn single_agent_follows_gold_plan_boundaries() {
    let episode = single_episode();
    let plans = GoldPlans::from_iter([plan()]);
    let seg = segment(&episode, &plans);
    assert_eq!(seg.method, Method::GoldPlan);
    assert_eq!(seg.turn_subtask, vec![0, 0, 0, 0, 1, 1, 1, 1, 1]);
    assert_eq!(seg.len(), 2);
    assert_eq!(seg.subtasks[1].app.as_deref(), Some("pay"));
    assert_eq!(seg.subtasks[0].turns_of(Role::Single), &[0, 1, 2, 3]);
}

#[test]
fn gold_plan_separates_consecutive_steps_in_the_same_app() {
    // Two gold steps in `phone`: the heuristic cannot tell them apart, the plan can.
    let first =
        "son = apis.phone.search_contacts(access_token=phone_token, relationship=\"son\")[0]";
    let second = "apis.phone.send_text_message(access_token=phone_token, phone_number=son[\"phone_number\"], message=\"hi\")";
    let plan = GoldPlan {
        task_id: TASK.parse().unwrap(),
        instruction: String::new(),
        steps: vec![
            GoldStep {
                kind: String::new(),
                app: "phone".into(),
                instruction: "Find your son.".into(),
                code: format!("{LOGIN_PHONE}\n{first}"),
            },
            GoldStep {
                kind: String::new(),
                app: "phone".into(),
                instruction: "Text him.".into(),
                code: second.into(),
            },
        ],
    };
    let mut b = EpisodeBuilder::new(SystemKind::Single, TASK, INSTRUCTION);
    let c = b.open(Role::Single, "code", INSTRUCTION);
    b.code(c, None, LOGIN_PHONE, true, "ok"); // 0
    b.code(c, None, first, true, "ok"); // 1
    b.code(c, None, "print(son)", true, "{...}"); // 2: no evidence, stays
    b.code(c, None, second, true, "ok"); // 3
    b.code(c, None, COMPLETE, true, "ok"); // 4
    let episode = b.finish();
    let seg = segment_with_plan(&episode, Some(&plan));
    assert_eq!(seg.turn_subtask, vec![0, 0, 0, 1, 1]);
    let heuristic = segment_with_plan(&episode, None);
    assert_eq!(heuristic.method, Method::AppSwitch);
    assert_eq!(heuristic.turn_subtask, vec![0, 0, 0, 0, 0]);
}

#[test]
fn gold_plan_alignment_uses_api_overlap_for_code_of_another_author() {
    // A teacher model writes its own code: no line matches the gold code, the APIs do.
    let mut b = EpisodeBuilder::new(SystemKind::Single, TASK, INSTRUCTION);
    let c = b.open(Role::Single, "code", INSTRUCTION);
    b.code(
        c,
        None,
        "pw = apis.supervisor.show_account_passwords()",
        true,
        "[...]",
    ); // 0
    b.code(
        c,
        None,
        "tok = apis.phone.login(username='5551121568', password=pw[3]['password'])",
        true,
        "{...}",
    ); // 1
    b.code(c, None, "kids = apis.phone.search_contacts(access_token=tok['access_token'], relationship='son')\nprint(kids)", true, "[...]"); // 2
    b.code(
        c,
        None,
        "ptok = apis.pay.login(username='ivan.ito@mail.com', password=pw[5]['password'])",
        true,
        "{...}",
    ); // 3
    b.code(c, None, "tx = apis.pay.show_transactions(access_token=ptok['access_token'], direction='sent')\nprint(sum([t['amount'] for t in tx]))", true, "15.81"); // 4
    b.code(
        c,
        None,
        "apis.supervisor.complete_task(answer=15.81)",
        true,
        "ok",
    ); // 5
    let seg = segment(&b.finish(), &GoldPlans::from_iter([plan()]));
    assert_eq!(seg.method, Method::GoldPlan);
    assert_eq!(seg.turn_subtask, vec![0, 0, 0, 1, 1, 1]);
}

#[test]
fn unreached_gold_steps_are_empty_sub_tasks() {
    let mut b = EpisodeBuilder::new(SystemKind::Single, TASK, INSTRUCTION);
    let c = b.open(Role::Single, "code", INSTRUCTION);
    b.code(c, None, LOGIN_PHONE, true, "ok");
    b.code(c, None, FIND_SON, true, "ok");
    let seg = segment(&b.finish(), &GoldPlans::from_iter([plan()]));
    assert_eq!(seg.turn_subtask, vec![0, 0]);
    assert_eq!(seg.len(), 2);
    assert_eq!(seg.subtasks[1].num_turns(), 0);
}

#[test]
fn plan_of_another_task_text_is_not_used() {
    let mut other = plan();
    other.instruction = "Something else entirely.".into();
    let seg = segment(&single_episode(), &GoldPlans::from_iter([other]));
    assert_eq!(seg.method, Method::AppSwitch);
}

#[test]
fn heuristic_cuts_at_app_switches_and_logins() {
    let seg = segment(&single_episode(), &NoPlans);
    assert_eq!(seg.method, Method::AppSwitch);
    // The pay documentation look-up switches to pay; the malformed turn stays with phone.
    assert_eq!(seg.turn_subtask, vec![0, 0, 0, 0, 1, 1, 1, 1, 1]);
    assert_eq!(seg.subtasks[0].app.as_deref(), Some("phone"));
    assert_eq!(seg.subtasks[1].app.as_deref(), Some("pay"));

    // Cells: tool-only, phone, a cell that still reads phone but logs into pay (a login
    // boundary), pay, plain Python, back to phone, completion.
    let cells = [
        Some("p = apis.supervisor.show_account_passwords()"),
        Some(
            "t = apis.phone.login(username='1', password='x')\nprint(apis.phone.search_contacts(access_token=t))",
        ),
        Some(
            "c = apis.phone.show_contact(access_token=t, contact_id=1)\npt = apis.pay.login(username='a', password='y')",
        ),
        Some("apis.pay.send_money(access_token=pt, amount=5)"),
        None,
        Some("x = 1 + 1"),
        Some("apis.phone.send_text_message(access_token=t, message='sent')"),
        Some("apis.supervisor.complete_task()"),
    ];
    let (turns, apps) = segment_by_apps(&cells);
    assert_eq!(turns, vec![0, 0, 1, 1, 1, 1, 2, 2]);
    assert_eq!(
        apps,
        vec![
            Some("phone".into()),
            Some("pay".into()),
            Some("phone".into())
        ]
    );
    // A re-login into the current app (a refreshed token) is not a boundary.
    let (turns, _) = segment_by_apps(&[
        Some("t = apis.phone.login(username='1', password='x')"),
        Some("apis.phone.search_contacts(access_token=t)"),
        Some("t = apis.phone.login(username='1', password='x')"),
    ]);
    assert_eq!(turns, vec![0, 0, 0]);
}

#[test]
fn recorded_single_agent_sub_tasks_are_used() {
    let mut b = EpisodeBuilder::new(SystemKind::Single, TASK, INSTRUCTION);
    let c = b.open(Role::Single, "code", INSTRUCTION);
    b.code(c, Some(0), LOGIN_PHONE, true, "ok");
    b.code(c, Some(1), FIND_SON, true, "ok");
    b.code(c, Some(1), COMPLETE, true, "ok");
    let seg = segment(&b.finish(), &GoldPlans::from_iter([plan()]));
    assert_eq!(seg.method, Method::Recorded);
    assert_eq!(seg.turn_subtask, vec![0, 1, 1]);
}

#[test]
fn empty_episode_has_no_sub_tasks() {
    let episode = EpisodeBuilder::new(SystemKind::Single, TASK, INSTRUCTION).finish();
    assert!(segment(&episode, &NoPlans).is_empty());
    assert_eq!(segment(&episode, &GoldPlans::from_iter([plan()])).len(), 2);
}

#[test]
fn gold_plans_load_from_an_exported_task_file() {
    let dir = std::env::temp_dir().join(format!("rung-segment-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("train.jsonl");
    let line = serde_json::json!({
        "task_id": TASK, "split": "train", "difficulty": 2, "instruction": INSTRUCTION,
        "plan": [{"kind": "k", "app": "phone", "instruction": "i", "code": FIND_SON}],
        "completion": COMPLETE, "answer": 15.81
    });
    std::fs::write(&path, format!("{line}\n\n")).unwrap();
    let plans = GoldPlans::read_jsonl(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(plans.len(), 1);
    use rung_segment::PlanSource;
    let plan = plans.plan(&TASK.parse().unwrap()).unwrap();
    assert_eq!(plan.steps[0].app, "phone");
    assert_eq!(plan.instruction, INSTRUCTION);
}
