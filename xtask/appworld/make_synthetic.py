"""Writes a synthetic AppWorld data folder with the installed `appworld` package's own API.

AppWorld's task data cannot be downloaded here, but its engine, APIs and evaluator run offline
against any data folder in its format. This script builds one from scratch, in the virtualenv of
`cargo xtask appworld setup` (it needs `appworld==0.1.3.post1` after `appworld install`):

    <root>/data/base_dbs/<app>.db          every app's database (people, accounts, history),
                                           written by the apps' SQL models
    <root>/data/api_docs/standard/*.json   the API docs, built from the apps' code
    <root>/data/tasks/<task_id>/           specs.json, dbs/<app>.jsonl (the task's database
                                           changes, recorded while the models inserted them)
                                           and ground_truth/ (answer, evaluation code, tests
                                           with labels, metadata with difficulty, solution)
    <root>/data/datasets/<split>.txt       task ids of each split
    <root>/gold.json                       rung's gold file: every task's solution split into
                                           sub-tasks with their outputs, and state probes
    <root>/plans.jsonl                     the same plans, one task per line, for rung's
                                           segmenter (`rung curriculum show --tasks FILE`)
    <root>/all.txt                         every task id, one per line

Records are only ever created through the package's models (`Model.create_save`) or its APIs
(`apis.<app>.<api>(...)` in process), so every derived field (record hashes, search indexes,
notifications) is what AppWorld itself would write. Nothing of AppWorld's real data or decrypted
source is read or copied.

Every task is validated before it is kept: the gold solution, run sub-task by sub-task in
`AppWorld` itself, must pass all tests, and doing nothing must fail the `no_op_fail` ones. The
test labels are computed that way, with AppWorld's own `TestTracker.prepare_test_data`.

Usage: python make_synthetic.py --root DIR [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from textwrap import dedent
from typing import Any, Callable


def _real_clock() -> Callable[[], float]:
    # freezegun (AppWorld's clock) replaces every module attribute that is time.time; a
    # closure keeps the real one for timings.
    real = time.time
    return lambda: real()


_now = _real_clock()

GENERATOR_VERSION = 1
APPWORLD_VERSION = "0.1.3.post1"
TASK_DATETIME = datetime(2023, 5, 18, 12, 0, 0)
HISTORY_START = datetime(2023, 4, 20, 9, 0, 0)
DOMAIN = "mail.com"
# The apps the synthetic tasks act in; every person has an account on each.
TASK_APPS = ["simple_note", "todoist", "phone", "venmo", "gmail"]


# --- the people -------------------------------------------------------------------------------


@dataclass
class Person:
    first: str
    last: str
    sex: str
    birthday: str
    phone: str

    @property
    def email(self) -> str:
        return f"{self.first.lower()}.{self.last.lower()}@{DOMAIN}"

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    def password(self, app: str) -> str:
        digest = hashlib.sha256(f"{self.email}/{app}".encode()).hexdigest()
        return f"pw-{digest[:10]}"

    def username(self, app: str) -> str:
        return self.phone if app == "phone" else self.email


PEOPLE = [
    Person("Maya", "Patel", "female", "1989-03-14", "5550101001"),
    Person("Omar", "Haddad", "male", "1982-11-02", "5550101002"),
    Person("Lena", "Novak", "female", "1991-07-23", "5550101003"),
    Person("Ravi", "Patel", "male", "1993-01-30", "5550101004"),
    Person("Priya", "Shah", "female", "1990-05-05", "5550101005"),
    Person("Daniel", "Kim", "male", "1988-09-17", "5550101006"),
    Person("Sofia", "Haddad", "female", "1984-02-11", "5550101007"),
    Person("Yusuf", "Haddad", "male", "2004-06-21", "5550101008"),
    Person("Ana", "Novak", "female", "1994-12-08", "5550101009"),
    Person("Marco", "Rossi", "male", "1987-04-19", "5550101010"),
    Person("Grace", "Liu", "female", "1979-08-27", "5550101011"),
    Person("Tom", "Baker", "male", "1985-10-03", "5550101012"),
]
BY_FIRST = {p.first: p for p in PEOPLE}

# Each supervisor's phone contacts: relationship -> person. Variant n of a scenario is given by
# supervisor n.
SUPERVISORS = ["Maya", "Omar", "Lena"]
CONTACTS = {
    "Maya": {"brother": "Ravi", "friend": "Priya", "coworker": "Daniel", "manager": "Grace"},
    "Omar": {"wife": "Sofia", "son": "Yusuf", "friend": "Marco", "manager": "Tom"},
    "Lena": {"husband": "Daniel", "sister": "Ana", "friend": "Marco", "coworker": "Grace"},
}
NOTES = {
    "Maya": [
        ("Groceries", "milk\neggs\nspinach", ["home", "shopping"]),
        ("Book list", "Dune\nPiranesi", ["reading"]),
        ("Gift ideas", "scarf for Ravi", ["family", "shopping"]),
        ("Standup", "ship the billing fix", ["work"]),
    ],
    "Omar": [
        ("Garden", "plant tomatoes", ["home"]),
        ("Car service", "book for June", ["car", "todo"]),
        ("Recipes", "lentil soup", ["cooking", "home"]),
        ("Trip", "Lisbon in August", ["travel"]),
        ("Taxes", "collect receipts", ["todo"]),
    ],
    "Lena": [
        ("Climbing", "new shoes size 39", ["sport"]),
        ("Reading", "Middlemarch", ["books"]),
        ("Wedding", "send invitations", ["family", "todo"]),
        ("Work plan", "Q3 roadmap", ["work", "todo"]),
        ("Plants", "water ferns on Sunday", ["home", "todo"]),
    ],
}
PROJECTS = {
    "Maya": {
        "Home": [("Fix the sink", True), ("Buy curtains", False), ("Call the landlord", False)],
        "Work": [("Write the report", False), ("Review budget", True)],
    },
    "Omar": {
        "Garden": [("Buy seeds", False), ("Mow the lawn", True), ("Build a fence", False)],
        "Move": [("Pack books", False), ("Rent a van", False), ("Cancel internet", True)],
    },
    "Lena": {
        "Wedding": [("Book the venue", True), ("Pick a cake", False), ("Order flowers", False)],
        "Thesis": [("Draft chapter two", False), ("Email the advisor", True)],
    },
}
# Money each supervisor received on Venmo: (sender, amount, description).
RECEIVED = {
    "Maya": [("Ravi", 25.0, "pizza"), ("Priya", 40.5, "concert"), ("Ravi", 12.25, "coffee")],
    "Omar": [("Sofia", 60.0, "groceries"), ("Marco", 15.0, "lunch"), ("Yusuf", 8.5, "snacks")],
    "Lena": [("Ana", 33.0, "train"), ("Daniel", 120.0, "rent"), ("Ana", 7.75, "tea")],
}


# --- the scenarios ----------------------------------------------------------------------------


@dataclass
class Subtask:
    kind: str
    app: str
    instruction: str
    code: str
    # For a sub-task that changes the world: a read-only expression (with `_rung_token`, an
    # access token of `probe_app`) whose printed value shows whether the change was made.
    probe: str | None = None
    probe_app: str | None = None


@dataclass
class TaskSpec:
    scenario: str
    variant: int
    supervisor: Person
    instruction: str
    difficulty: int
    subtasks: list[Subtask]
    completion: str
    answer: Any
    evaluation: str
    private_data: dict
    # Creates this task's own records (through the APIs) on top of the base databases.
    setup: Callable[[Any], None] | None = None
    required_apps: list[str] = field(default_factory=list)


def scenario_id(name: str) -> str:
    return hashlib.sha256(f"rung-synthetic/{name}".encode()).hexdigest()[:7]


def passwords_line() -> str:
    return (
        'passwords = {a["account_name"]: a["password"] '
        "for a in apis.supervisor.show_account_passwords()}"
    )


def login_line(app: str, person: Person) -> str:
    return (
        f'{app}_token = apis.{app}.login(username="{person.username(app)}", '
        f'password=passwords["{app}"])["access_token"]'
    )


def lines(*parts: str) -> str:
    return "\n".join(part for part in parts if part)


def find_relative(sup: Person, rel: str, first: bool) -> Subtask:
    return Subtask(
        kind="phone.find_relative",
        app="phone",
        instruction=f"Find your {rel} in your phone contacts.",
        code=lines(
            passwords_line() if first else "",
            login_line("phone", sup),
            f"{rel} = apis.phone.search_contacts(access_token=phone_token, "
            f'relationship="{rel}")[0]',
            f"{rel} = {{key: {rel}[key] for key in (\"first_name\", \"last_name\", "
            f'"email", "phone_number")}}',
            f"print({rel})",
        ),
    )


def find_project(sup: Person, project: str, first: bool) -> Subtask:
    return Subtask(
        kind="todoist.find_project",
        app="todoist",
        instruction=f'Find your Todoist project "{project}".',
        code=lines(
            passwords_line() if first else "",
            login_line("todoist", sup),
            "projects = apis.todoist.show_projects(access_token=todoist_token, page_limit=20)",
            f'project_id = [p["project_id"] for p in projects if p["name"] == "{project}"][0]',
            "print(project_id)",
        ),
    )


ALL_NOTES = (
    "notes = []\n"
    "for page in range(100):\n"
    "    batch = apis.simple_note.search_notes(access_token=simple_note_token, "
    "page_index=page, page_limit=20)\n"
    "    notes.extend(batch)\n"
    "    if len(batch) < 20:\n"
    "        break"
)


def note_probe(title: str) -> str:
    return (
        "[n['title'] for n in apis.simple_note.search_notes(access_token=_rung_token, "
        f"page_limit=20) if n['title'] == {title!r}]"
    )


def task_probe(project: str, title: str) -> str:
    return (
        "[[t['title'], t['is_completed']] for p in apis.todoist.show_projects("
        f"access_token=_rung_token, page_limit=20) if p['name'] == {project!r} for t in "
        "apis.todoist.show_tasks(project_id=p['project_id'], access_token=_rung_token)"
        f"['no_section_tasks'] if t['title'] == {title!r}]"
    )


EVAL_HEADER = (
    "import json\n\n\n"
    "def evaluate(test, public_data, private_data, main_user, models, ground_truth_answer):\n"
)


def evaluation(body: str) -> str:
    return EVAL_HEADER + "    " + dedent(body).strip().replace("\n", "\n    ") + "\n"


ANSWER_TEST = '''
with test("""The answer given to complete_task is the right one."""):
    task = models.end.supervisor.Task.first()
    test.answer(json.loads(task.answer), ground_truth_answer)
'''

NOTHING_CHANGED = '''
with test("""Nothing was changed in any app."""):
    test.case(models.changed_model_names(), "==", set())
'''


def changes_only(allowed: list[str]) -> str:
    return f'''
with test("""No app data was changed beyond what the task asks for."""):
    test.case(models.changed_model_names(), "<=", {set(allowed)!r})
'''


def s_note_create(n: int, sup: Person) -> TaskSpec:
    title, content = [
        ("Weekend plan", "hike on Saturday"),
        ("Dentist", "appointment on Tuesday at 3pm"),
        ("Packing list", "passport and charger"),
    ][n]
    code = lines(
        passwords_line(),
        login_line("simple_note", sup),
        f"note = apis.simple_note.create_note(title={title!r}, content={content!r}, "
        "access_token=simple_note_token)",
        'note_id = note["note_id"]',
        "print(note_id)",
    )
    return TaskSpec(
        scenario="note_create",
        variant=n,
        supervisor=sup,
        instruction=[
            f"Create a note titled '{title}' in SimpleNote that says '{content}'.",
            f"Add a SimpleNote note called '{title}' with the text '{content}'.",
            f"In SimpleNote, write a new note '{title}' saying '{content}'.",
        ][n],
        difficulty=1,
        subtasks=[
            Subtask(
                "simple_note.create_note",
                "simple_note",
                f"Create the note '{title}' with the content '{content}'.",
                code,
                probe=note_probe(title),
                probe_app="simple_note",
            )
        ],
        completion="apis.supervisor.complete_task()",
        answer=None,
        evaluation=evaluation(
            '''
user = models.end.simple_note.User.find_one(email=main_user.email)
notes = models.end.simple_note.Note.find_all(user_id=user.id, title=private_data.title)
with test("""Exactly one note has the requested title."""):
    test.case(len(notes), "==", 1)
with test("""The note says the requested text."""):
    test.case(notes[0].content.strip(), "==", private_data.content)
'''
            + changes_only(["simple_note.Note"])
        ),
        private_data={"title": title, "content": content},
        required_apps=["simple_note"],
    )


def s_note_tag_count(n: int, sup: Person) -> TaskSpec:
    tag = ["shopping", "todo", "todo"][n]
    # One tagged note exists only in this task's database changes, so the answer differs from
    # what the base databases alone give.
    extra_title = f"Reminder {n + 1}"
    count = sum(tag in tags for _, _, tags in NOTES[sup.first]) + 1

    def setup(models: Any) -> None:
        user = models.simple_note.User.find_one(email=sup.email)
        models.simple_note.Note.create_save(
            user_id=user.id, title=extra_title, content="see the calendar", tags=[tag]
        )
    code = lines(
        passwords_line(),
        login_line("simple_note", sup),
        ALL_NOTES,
        f'tagged = len([n for n in notes if "{tag}" in n["tags"]])',
        "print(tagged)",
    )
    return TaskSpec(
        scenario="note_tag_count",
        variant=n,
        supervisor=sup,
        instruction=[
            f"How many of my SimpleNote notes are tagged '{tag}'?",
            f"Count my notes in SimpleNote that carry the tag '{tag}'.",
            f"What is the number of SimpleNote notes I have with the '{tag}' tag?",
        ][n],
        difficulty=1,
        subtasks=[
            Subtask(
                "simple_note.count_tagged",
                "simple_note",
                f"Count your notes tagged '{tag}'.",
                code,
            )
        ],
        completion="apis.supervisor.complete_task(answer=tagged)",
        answer=count,
        evaluation=evaluation(ANSWER_TEST + NOTHING_CHANGED),
        private_data={"tag": tag},
        setup=setup,
        required_apps=["simple_note"],
    )


def s_text_relative(n: int, sup: Person) -> TaskSpec:
    rel = ["brother", "son", "sister"][n]
    message = ["Dinner at 7 tonight?", "Call me when you land.", "Happy birthday!"][n]
    target = BY_FIRST[CONTACTS[sup.first][rel]]
    send = Subtask(
        "phone.send_text",
        "phone",
        f"Text your {rel} '{message}'.",
        f"apis.phone.send_text_message(phone_number={rel}[\"phone_number\"], "
        f"message={message!r}, access_token=phone_token)",
        probe=(
            "[m['message'] for m in apis.phone.search_text_messages(access_token=_rung_token, "
            f"phone_number={target.phone!r}, page_limit=20) if m['message'] == {message!r}]"
        ),
        probe_app="phone",
    )
    return TaskSpec(
        scenario="text_relative",
        variant=n,
        supervisor=sup,
        instruction=[
            f"Text my {rel} '{message}'",
            f"Send my {rel} a text message saying '{message}'",
            f"Message my {rel} on the phone: '{message}'",
        ][n],
        difficulty=1,
        subtasks=[find_relative(sup, rel, True), send],
        completion="apis.supervisor.complete_task()",
        answer=None,
        evaluation=evaluation(
            '''
sender = models.end.phone.User.find_one(phone_number=main_user.phone_number)
receiver = models.end.phone.User.find_one(phone_number=private_data.phone_number)
added, _, _ = models.changed_records("phone.GlobalTextMessage")
sent = [
    m for m in added
    if m.sender_id == sender.id and m.receiver_id == receiver.id
    and m.message == private_data.message
]
with test("""The text was sent to the right person."""):
    test.case(len(sent), "==", 1)
with test("""No other text was sent."""):
    test.case(len(added), "==", 1)
'''
            + changes_only(["phone.GlobalTextMessage", "phone.UserTextMessage"])
        ),
        private_data={"phone_number": target.phone, "message": message},
        required_apps=["phone"],
    )


def s_venmo_pay_relative(n: int, sup: Person) -> TaskSpec:
    rel = ["friend", "wife", "husband"][n]
    amount = [18.5, 42.0, 9.99][n]
    note = ["movie tickets", "farm box", "parking"][n]
    target = BY_FIRST[CONTACTS[sup.first][rel]]
    pay = Subtask(
        "venmo.send_money",
        "venmo",
        f"Send ${amount} to your {rel} on Venmo with the note '{note}'.",
        lines(
            login_line("venmo", sup),
            f"apis.venmo.create_transaction(receiver_email={rel}[\"email\"], amount={amount}, "
            f"description={note!r}, access_token=venmo_token)",
        ),
        probe=(
            "[[t['amount'], t['description']] for t in apis.venmo.show_transactions("
            f"access_token=_rung_token, user_email={target.email!r}, direction='sent', "
            f"page_limit=20) if t['description'] == {note!r}]"
        ),
        probe_app="venmo",
    )
    return TaskSpec(
        scenario="venmo_pay_relative",
        variant=n,
        supervisor=sup,
        instruction=[
            f"Send ${amount} to my {rel} on Venmo for '{note}'.",
            f"Pay my {rel} ${amount} through Venmo, note '{note}'.",
            f"Venmo my {rel} ${amount} with the description '{note}'.",
        ][n],
        difficulty=2,
        subtasks=[find_relative(sup, rel, True), pay],
        completion="apis.supervisor.complete_task()",
        answer=None,
        evaluation=evaluation(
            '''
sender = models.end.venmo.User.find_one(email=main_user.email)
receiver = models.end.venmo.User.find_one(email=private_data.email)
added, _, _ = models.changed_records("venmo.Transaction")
paid = [
    t for t in added
    if t.sender_id == sender.id and t.receiver_id == receiver.id
    and round(t.amount, 2) == private_data.amount
    and (t.description or "").strip().lower() == private_data.description
]
with test("""The money was sent to the right person with the right amount and note."""):
    test.case(len(paid), "==", 1)
with test("""No other payment was made."""):
    test.case(len(added), "==", 1)
'''
            + changes_only(["venmo.Transaction", "venmo.User", "venmo.Notification"])
        ),
        private_data={"email": target.email, "amount": amount, "description": note},
        required_apps=["phone", "venmo"],
    )


def s_todo_project_tasks(n: int, sup: Person) -> TaskSpec:
    project = ["Home", "Garden", "Wedding"][n]
    new = ["Paint the hallway", "Water the roses", "Send the invitations"][n]
    done = ["Buy curtains", "Buy seeds", "Pick a cake"][n]
    add = Subtask(
        "todoist.add_task",
        "todoist",
        f"Add the task '{new}' to the project.",
        lines(
            f"new_task = apis.todoist.create_task(project_id=project_id, title={new!r}, "
            "access_token=todoist_token)",
            'new_task_id = new_task["task_id"]',
            "print(new_task_id)",
        ),
        probe=task_probe(project, new),
        probe_app="todoist",
    )
    complete = Subtask(
        "todoist.complete_task",
        "todoist",
        f"Mark the task '{done}' in the project as completed.",
        lines(
            "tasks = apis.todoist.show_tasks(project_id=project_id, access_token=todoist_token)"
            '["no_section_tasks"]',
            f'done_id = [t["task_id"] for t in tasks if t["title"] == {done!r}][0]',
            "apis.todoist.update_task(task_id=done_id, is_completed=True, "
            "access_token=todoist_token)",
        ),
        probe=task_probe(project, done),
        probe_app="todoist",
    )
    return TaskSpec(
        scenario="todo_project_tasks",
        variant=n,
        supervisor=sup,
        instruction=[
            f"In my Todoist project '{project}', add a task '{new}' and check off '{done}'.",
            f"Add '{new}' to my '{project}' project in Todoist and mark '{done}' there as done.",
            f"Put a new task '{new}' in my Todoist project '{project}', then complete '{done}'.",
        ][n],
        difficulty=2,
        subtasks=[find_project(sup, project, True), add, complete],
        completion="apis.supervisor.complete_task()",
        answer=None,
        evaluation=evaluation(
            '''
user = models.end.todoist.User.find_one(email=main_user.email)
project = models.end.todoist.Project.find_one(user_id=user.id, name=private_data.project)
added, updated, _ = models.changed_records("todoist.Task")
with test("""The new task was added to the project."""):
    test.case(
        [t.title for t in added if t.project_id == project.id], "==", [private_data.new]
    )
with test("""The requested task was marked as completed."""):
    test.case(
        [t.title for t in updated if t.is_completed and t.project_id == project.id],
        "==",
        [private_data.done],
    )
'''
            + changes_only(["todoist.Task"])
        ),
        private_data={"project": project, "new": new, "done": done},
        required_apps=["todoist"],
    )


def s_todo_to_note(n: int, sup: Person) -> TaskSpec:
    project = ["Work", "Move", "Thesis"][n]
    title = ["Open work tasks", "Moving checklist", "Thesis to-dos"][n]
    open_titles = [t for t, completed in PROJECTS[sup.first][project] if not completed]
    listing = Subtask(
        "todoist.open_tasks",
        "todoist",
        "List the titles of the project's tasks that are not completed.",
        lines(
            "tasks = apis.todoist.show_tasks(project_id=project_id, access_token=todoist_token, "
            "is_completed=False)[\"no_section_tasks\"]",
            'open_titles = sorted(t["title"] for t in tasks)',
            "print(open_titles)",
        ),
    )
    note = Subtask(
        "simple_note.create_note",
        "simple_note",
        f"Create the note '{title}' with those titles, one per line.",
        lines(
            login_line("simple_note", sup),
            f"note = apis.simple_note.create_note(title={title!r}, "
            'content="\\n".join(open_titles), access_token=simple_note_token)',
            'note_id = note["note_id"]',
            "print(note_id)",
        ),
        probe=note_probe(title),
        probe_app="simple_note",
    )
    return TaskSpec(
        scenario="todo_to_note",
        variant=n,
        supervisor=sup,
        instruction=[
            f"Make a SimpleNote note '{title}' listing the unfinished tasks of my Todoist "
            f"project '{project}', one per line, alphabetically.",
            f"Write the open tasks of my '{project}' Todoist project into a new SimpleNote note "
            f"called '{title}', one title per line in alphabetical order.",
            f"Create a note in SimpleNote named '{title}' with the titles of the incomplete "
            f"tasks in my Todoist project '{project}', sorted, one per line.",
        ][n],
        difficulty=3,
        subtasks=[find_project(sup, project, True), listing, note],
        completion="apis.supervisor.complete_task()",
        answer=None,
        evaluation=evaluation(
            '''
user = models.end.simple_note.User.find_one(email=main_user.email)
notes = models.end.simple_note.Note.find_all(user_id=user.id, title=private_data.title)
with test("""Exactly one note has the requested title."""):
    test.case(len(notes), "==", 1)
with test("""The note lists the open tasks, one per line, in order."""):
    lines = [line.strip() for line in notes[0].content.strip().splitlines() if line.strip()]
    test.case(lines, "==", private_data.open_titles)
'''
            + changes_only(["simple_note.Note"])
        ),
        private_data={"title": title, "open_titles": sorted(open_titles)},
        required_apps=["todoist", "simple_note"],
    )


def s_venmo_received_total(n: int, sup: Person) -> TaskSpec:
    rel = ["brother", "wife", "sister"][n]
    target = BY_FIRST[CONTACTS[sup.first][rel]]
    total = round(sum(a for who, a, _ in RECEIVED[sup.first] if who == target.first), 2)
    received = Subtask(
        "venmo.total_received",
        "venmo",
        f"Add up the money you received from your {rel} on Venmo.",
        lines(
            login_line("venmo", sup),
            "received = []",
            "for page in range(100):",
            "    batch = apis.venmo.show_transactions(access_token=venmo_token, "
            f'user_email={rel}["email"], direction="received", page_index=page, page_limit=20)',
            "    received.extend(batch)",
            "    if len(batch) < 20:",
            "        break",
            'received_total = round(sum(t["amount"] for t in received), 2)',
            "print(received_total)",
        ),
    )
    return TaskSpec(
        scenario="venmo_received_total",
        variant=n,
        supervisor=sup,
        instruction=[
            f"How much money has my {rel} sent me on Venmo in total?",
            f"What is the total my {rel} paid me through Venmo?",
            f"Add up all Venmo payments I received from my {rel}. How much is it?",
        ][n],
        difficulty=2,
        subtasks=[find_relative(sup, rel, True), received],
        completion="apis.supervisor.complete_task(answer=received_total)",
        answer=total,
        evaluation=evaluation(ANSWER_TEST + NOTHING_CHANGED),
        private_data={"email": target.email},
        required_apps=["phone", "venmo"],
    )


def s_invite_and_email(n: int, sup: Person) -> TaskSpec:
    rel = ["coworker", "friend", "husband"][n]
    project = ["Work", "Move", "Wedding"][n]
    subject = ["Join my Work project", "Help with the move", "Wedding planning"][n]
    target = BY_FIRST[CONTACTS[sup.first][rel]]
    body = f"I invited you to my Todoist project {project}."
    invite = Subtask(
        "todoist.invite",
        "todoist",
        f"Invite your {rel} to the project.",
        f"apis.todoist.send_project_invite(project_id=project_id, email={rel}[\"email\"], "
        "access_token=todoist_token)",
        probe=(
            "[i['invitee']['email'] for p in apis.todoist.show_projects(access_token=_rung_token, "
            f"page_limit=20) if p['name'] == {project!r} for i in p['pending_invites']]"
        ),
        probe_app="todoist",
    )
    email = Subtask(
        "gmail.send_email",
        "gmail",
        f"Email your {rel} with the subject '{subject}' saying '{body}'.",
        lines(
            login_line("gmail", sup),
            f"apis.gmail.send_email(email_addresses=[{rel}[\"email\"]], subject={subject!r}, "
            f"body={body!r}, access_token=gmail_token)",
        ),
        probe=(
            "[t['subject'] for t in apis.gmail.show_outbox_threads(access_token=_rung_token, "
            f"page_limit=20) if t['subject'] == {subject!r}]"
        ),
        probe_app="gmail",
    )
    return TaskSpec(
        scenario="invite_and_email",
        variant=n,
        supervisor=sup,
        instruction=[
            f"Invite my {rel} to my Todoist project '{project}' and email them about it with "
            f"the subject '{subject}' and the text '{body}'",
            f"Send my {rel} an invite to the '{project}' project on Todoist, then email them "
            f"(subject '{subject}', body '{body}')",
            f"Add my {rel} to my Todoist project '{project}' by invitation and let them know "
            f"by email: subject '{subject}', message '{body}'",
        ][n],
        difficulty=3,
        subtasks=[find_relative(sup, rel, True), find_project(sup, project, False), invite, email],
        completion="apis.supervisor.complete_task()",
        answer=None,
        evaluation=evaluation(
            '''
todoist_user = models.end.todoist.User.find_one(email=main_user.email)
invitee = models.end.todoist.User.find_one(email=private_data.email)
project = models.end.todoist.Project.find_one(user_id=todoist_user.id, name=private_data.project)
added, _, _ = models.changed_records("todoist.ProjectInvite")
with test("""The right person was invited to the right project."""):
    test.case(
        [(i.invitor_id, i.invitee_id, i.project_id) for i in added],
        "==",
        [(todoist_user.id, invitee.id, project.id)],
    )
sender = models.end.gmail.User.find_one(email=main_user.email)
recipient = models.end.gmail.User.find_one(email=private_data.email)
emails = [e for e in models.changed_records("gmail.Email")[0] if e.sender_id == sender.id]
with test("""The email was sent to the right person with the right subject and text."""):
    test.case(
        [
            (e.sender_id, list(e.recipient_ids), e.subject, e.body.strip())
            for e in emails
        ],
        "==",
        [(sender.id, [recipient.id], private_data.subject, private_data.body)],
    )
'''
            + changes_only(
                [
                    "todoist.ProjectInvite",
                    "todoist.Notification",
                    "gmail.Email",
                    "gmail.GlobalEmailThread",
                    "gmail.UserEmailThread",
                ]
            )
        ),
        private_data={"email": target.email, "project": project, "subject": subject, "body": body},
        required_apps=["phone", "todoist", "gmail"],
    )


# Scenario builders and the split of their tasks.
SCENARIOS: list[tuple[Callable[[int, Person], TaskSpec], str]] = [
    (s_note_create, "train"),
    (s_text_relative, "train"),
    (s_todo_project_tasks, "train"),
    (s_invite_and_email, "train"),
    (s_note_tag_count, "dev"),
    (s_todo_to_note, "dev"),
    (s_venmo_pay_relative, "test_normal"),
    (s_venmo_received_total, "test_normal"),
]
SPLITS = ["train", "dev", "test_normal", "test_challenge"]


# --- building the folder ----------------------------------------------------------------------


class Clock:
    """Freezes AppWorld's clock (freezegun, as AppWorld does) at one datetime at a time."""

    def __init__(self) -> None:
        self.freezer = None

    def set(self, when: datetime) -> None:
        from appworld.apps.api_lib import set_local_date_and_time, unset_local_date_and_time

        if self.freezer is not None:
            unset_local_date_and_time(self.freezer)
        self.freezer = set_local_date_and_time(when)

    def stop(self) -> None:
        from appworld.apps.api_lib import unset_local_date_and_time

        if self.freezer is not None:
            unset_local_date_and_time(self.freezer)
            self.freezer = None


def write_api_docs(data: str) -> Any:
    """Builds the API docs from the apps' code and writes AppWorld's `standard` format."""
    from appworld.apps import get_all_apps
    from appworld.collections.api_docs import ApiDocCollection
    from appworld.common.constants import CANARY_STRING
    from appworld.common.utils import write_json

    docs = ApiDocCollection.build(load_apps=tuple(get_all_apps(skip_admin=True)))
    directory = os.path.join(data, "api_docs", "standard")
    os.makedirs(directory, exist_ok=True)
    for app_name, api_docs in docs.items():
        out = {}
        for api_name, doc in api_docs.items():
            doc = dict(doc)
            doc["canary_string"] = CANARY_STRING
            out[api_name] = doc
        write_json(out, os.path.join(directory, app_name + ".json"), silent=True)
    return docs


def login(apis: Any, app: str, person: Person) -> str:
    return getattr(apis, app).login(username=person.username(app), password=person.password(app))[
        "access_token"
    ]


def build_base(data: str, docs: Any, clock: Clock) -> None:
    """Every app's database: people, their accounts, contacts, notes, projects, payments."""
    from appworld.apps import get_all_apps
    from appworld.apps.api_lib import CompanyNotifier
    from appworld.collections.apis import ApiCollection
    from appworld.collections.models import ModelCollection

    apps = list(get_all_apps())
    home = ":memory:rung_synthetic_base"
    clock.set(HISTORY_START)
    models = ModelCollection.load(
        to_db_home_path=home, from_db_home_path=home, load_apps=apps, create_db=True
    )
    rows = [
        models.api_docs.ApiDoc.create(
            app_name_=app_name,
            api_name=api_name,
            path=doc["path"],
            method=doc["method"],
            description=doc["description"],
            parameters=doc["parameters"],
            response_schemas=doc["response_schemas"],
        )
        for app_name, api_docs in docs.items()
        for api_name, doc in api_docs.items()
    ]
    models.api_docs.ApiDoc.save_all(rows)
    for person in PEOPLE:
        models.admin.MainUser.create_save(
            first_name=person.first,
            last_name=person.last,
            email=person.email,
            phone_number=person.phone,
            birthday=person.birthday,
            sex=person.sex,
        )
        for app in TASK_APPS:
            user_model = getattr(models, app).User
            identity = (
                {"phone_number": person.phone} if app == "phone" else {"email": person.email}
            )
            extra: dict[str, Any] = {}
            if "verified" in user_model.__fields__:
                extra["verified"] = True
            if app == "venmo":
                extra["venmo_balance"] = 1000.0
            user_model.create_save(
                first_name=person.first,
                last_name=person.last,
                password=person.password(app),
                **identity,
                **extra,
            )
    for app in TASK_APPS:
        CompanyNotifier(app).create_accounts(skip_if_exists=True)

    apis, _ = ApiCollection.load(
        to_db_home_path=home,
        from_db_home_path=home,
        load_apps=apps,
        raise_on_failure=True,
    )
    minute = 0

    def act(app: str, person: Person, api: str, **kwargs: Any) -> Any:
        """One API call by `person`, a few minutes after the previous one. Access tokens
        expire after 10 to 30 minutes, so every call logs in afresh."""
        nonlocal minute
        minute += 7
        clock.set(HISTORY_START + _minutes(minute))
        token = login(apis, app, person)
        return getattr(getattr(apis, app), api)(access_token=token, **kwargs)

    for sup_name in SUPERVISORS:
        sup = BY_FIRST[sup_name]
        for rel, first in CONTACTS[sup_name].items():
            other = BY_FIRST[first]
            act(
                "phone",
                sup,
                "add_contact",
                first_name=other.first,
                last_name=other.last,
                phone_number=other.phone,
                email=other.email,
                relationships=[rel],
                birthday=other.birthday,
            )
        for title, content, tags in NOTES[sup_name]:
            act("simple_note", sup, "create_note", title=title, content=content, tags=tags)
        for project, tasks in PROJECTS[sup_name].items():
            project_id = act("todoist", sup, "create_project", name=project)["project_id"]
            for title, completed in tasks:
                task_id = act(
                    "todoist", sup, "create_task", project_id=project_id, title=title
                )["task_id"]
                if completed:
                    act("todoist", sup, "update_task", task_id=task_id, is_completed=True)
        for sender, amount, description in RECEIVED[sup_name]:
            act(
                "venmo",
                BY_FIRST[sender],
                "create_transaction",
                receiver_email=sup.email,
                amount=amount,
                description=description,
            )
        # Some texts and emails that the tasks do not ask about.
        for rel, first in list(CONTACTS[sup_name].items())[:2]:
            other = BY_FIRST[first]
            act(
                "phone",
                sup,
                "send_text_message",
                phone_number=other.phone,
                message=f"Hi {other.first}!",
            )
            act(
                "gmail",
                other,
                "send_email",
                email_addresses=[sup.email],
                subject=f"Hello from your {rel}",
                body=f"See you soon, {sup.first}.",
            )
    apis.close()
    models.save(
        db_home_path=os.path.join(data, "base_dbs"),
        format="full",
        app_names=apps,
        delete_if_exists=True,
    )
    models.close()


def _minutes(n: int) -> Any:
    from datetime import timedelta

    return timedelta(minutes=n)


def build_task(data: str, spec: TaskSpec, task_id: str, clock: Clock) -> None:
    """The task's folder: its database changes, specs and a provisional ground truth."""
    from appworld.apps import get_all_apps
    from appworld.collections.models import ModelCollection
    from appworld.common.constants import CANARY_STRING, DB_VERSION
    from appworld.common.utils import write_json

    apps = list(get_all_apps())
    sup = spec.supervisor
    directory = os.path.join(data, "tasks", task_id)
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    clock.set(TASK_DATETIME.replace(hour=8))
    home = f":memory:rung_synthetic_task-{task_id}"
    models = ModelCollection.load(
        to_db_home_path=home,
        from_db_home_path=os.path.join(data, "base_dbs"),
        load_apps=apps,
    )
    supervisor = models.supervisor.Supervisor.create_save(
        first_name=sup.first,
        last_name=sup.last,
        email=sup.email,
        phone_number=sup.phone,
        birthday=sup.birthday,
        sex=sup.sex,
    )
    for app in TASK_APPS:
        models.supervisor.AccountPassword.create_save(
            supervisor_id=supervisor.id, account_name=app, password=sup.password(app)
        )
    models.supervisor.Task.create_save(supervisor_id=supervisor.id, instruction=spec.instruction)
    if spec.setup is not None:
        spec.setup(models)
    models.save(
        db_home_path=os.path.join(directory, "dbs"),
        format="changes",
        app_names=apps,
        delete_if_exists=True,
    )
    models.close()
    specs = {
        "instruction": spec.instruction,
        "supervisor": {
            "first_name": sup.first,
            "last_name": sup.last,
            "email": sup.email,
            "phone_number": sup.phone,
        },
        "datetime": TASK_DATETIME.isoformat(),
        "db_version": DB_VERSION,
        "canary_string": CANARY_STRING,
    }
    write_json(specs, os.path.join(directory, "specs.json"), silent=True)
    save_ground_truth(spec, task_id, test_data=None)


def solution_code(spec: TaskSpec) -> str:
    """The gold program, one commented block per sub-task, as AppWorld's `solution(apis)`."""
    blocks = []
    for k, subtask in enumerate(spec.subtasks):
        header = f"# sub-task {k + 1} ({subtask.app}): {subtask.instruction}"
        blocks.append(header + "\n" + subtask.code)
    blocks.append("# complete the task\n" + spec.completion)
    body = "\n\n".join(blocks)
    return "def solution(apis):\n" + "\n".join(
        ("    " + line) if line else "" for line in body.splitlines()
    ) + "\n"


def save_ground_truth(spec: TaskSpec, task_id: str, test_data: list | None) -> None:
    import appworld.ground_truth as ground_truth_module
    from appworld.ground_truth import GroundTruth

    solution = solution_code(spec)
    ground_truth = GroundTruth(
        task_id=task_id,
        required_apps=spec.required_apps,
        public_data={},
        private_data=spec.private_data,
        answer=spec.answer,
        evaluation_code=spec.evaluation,
        solution_code=solution,
        compiled_solution_code=solution,
        generator_code=f"# Written by rung's xtask/appworld/make_synthetic.py "
        f"(scenario {spec.scenario}, variant {spec.variant + 1}).",
        test_data=test_data,
        metadata={
            "difficulty": spec.difficulty,
            "num_solution_code_lines": solution.count("\n"),
            "scenario": spec.scenario,
            "num_subtasks": len(spec.subtasks),
        },
        api_calls=[],
    )
    # AppWorld formats saved ground truth with ruff, which the virtualenv does not need: the
    # code written here is already formatted.
    saved_ruff = ground_truth_module.run_ruff
    ground_truth_module.run_ruff = lambda *args, **kwargs: None
    try:
        ground_truth.save(mode="full", delete_if_exists=True)
    finally:
        ground_truth_module.run_ruff = saved_ruff


def probe_cell(subtask: Subtask, sup: Person) -> str:
    app = subtask.probe_app
    return lines(
        "_rung_passwords = {a['account_name']: a['password'] "
        "for a in apis.supervisor.show_account_passwords()}",
        f"_rung_token = apis.{app}.login(username={sup.username(app)!r}, "
        f"password=_rung_passwords[{app!r}])['access_token']",
        f"print({subtask.probe})",
    )


FAILED = "Execution failed."


def validate_task(spec: TaskSpec, task_id: str) -> dict:
    """Runs the task in AppWorld: no-op and gold. Returns rung's gold entry; raises on a bug."""
    from appworld import AppWorld
    from appworld.evaluator import TestTracker

    experiment = "rung-synthetic-check"
    world = AppWorld(task_id=task_id, experiment_name=experiment)
    noop = world.evaluate(suppress_errors=True).to_dict()
    world.close()

    world = AppWorld(task_id=task_id, experiment_name=experiment)
    plan = []
    for k, subtask in enumerate(spec.subtasks):
        entry = {
            "kind": subtask.kind,
            "app": subtask.app,
            "instruction": subtask.instruction,
            "code": subtask.code,
        }
        if subtask.probe is not None:
            probe = probe_cell(subtask, spec.supervisor)
            before = world.execute(probe)
        output = world.execute(subtask.code)
        if output.startswith(FAILED):
            raise RuntimeError(f"{task_id}: gold sub-task {k + 1} failed:\n{output}")
        entry["output"] = output
        if subtask.probe is not None:
            after = world.execute(probe)
            if after.startswith(FAILED) or before.startswith(FAILED):
                raise RuntimeError(f"{task_id}: probe of sub-task {k + 1} failed:\n{after}")
            if before == after:
                raise RuntimeError(
                    f"{task_id}: the probe of sub-task {k + 1} does not see its change:\n{after}"
                )
            entry["probe"] = probe
            entry["probe_expected"] = after
        plan.append(entry)
    output = world.execute(spec.completion)
    if output.startswith(FAILED):
        raise RuntimeError(f"{task_id}: the completion failed:\n{output}")
    gold = world.evaluate(suppress_errors=True).to_dict()
    world.close()
    if not gold["success"]:
        raise RuntimeError(f"{task_id}: the gold solution fails its tests: {gold['failures']}")
    if noop["success"]:
        raise RuntimeError(f"{task_id}: doing nothing passes every test")
    test_data = TestTracker.prepare_test_data(
        [dict(p) for p in gold["passes"]], [dict(p) for p in noop["passes"]]
    )
    save_ground_truth(spec, task_id, test_data=test_data)
    return {"plan": plan}


def api_parameters(docs: Any) -> dict:
    """`app.api` -> [[name, required], ...] for every API, for rung's experts."""
    return {
        f"{app_name}.{api_name}": [[p["name"], bool(p["required"])] for p in doc["parameters"]]
        for app_name, api_docs in docs.items()
        for api_name, doc in api_docs.items()
    }


def script_digest() -> str:
    with open(__file__, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="folder to write (it gets data/ inside)")
    parser.add_argument(
        "--force", action="store_true", help="rebuild even if the folder is up to date"
    )
    args = parser.parse_args()
    root = os.path.abspath(args.root)
    stamp_path = os.path.join(root, "rung-synthetic.stamp")
    stamp = f"generator {GENERATOR_VERSION} {script_digest()}\n"
    if not args.force and os.path.exists(stamp_path):
        with open(stamp_path) as file:
            if file.read() == stamp:
                print(f"{root} is up to date (delete it or pass --force to rebuild)")
                return 0

    # AppWorld reads APPWORLD_ROOT when it is imported.
    os.environ["APPWORLD_ROOT"] = root
    try:
        import appworld
    except ImportError as error:
        print(
            f"error: the appworld package is not importable ({error}); run this script with "
            "the virtualenv of `cargo xtask appworld setup`",
            file=sys.stderr,
        )
        return 2
    if appworld.__version__ != APPWORLD_VERSION:
        print(
            f"error: appworld {appworld.__version__} is installed; this generator is written "
            f"for {APPWORLD_VERSION}",
            file=sys.stderr,
        )
        return 2
    appworld.update_root(root)

    started = _now()
    data = os.path.join(root, "data")
    shutil.rmtree(data, ignore_errors=True)
    leftovers = ("experiments", "gold.json", "plans.jsonl", "all.txt", "rung-synthetic.stamp")
    for leftover in leftovers:
        path = os.path.join(root, leftover)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    os.makedirs(data)
    clock = Clock()
    docs = write_api_docs(data)
    build_base(data, docs, clock)
    print(f"base databases and API docs written ({_now() - started:.1f} s)")

    gold_tasks = []
    splits: dict[str, list[str]] = {split: [] for split in SPLITS}
    for builder, split in SCENARIOS:
        for n, sup_name in enumerate(SUPERVISORS):
            spec = builder(n, BY_FIRST[sup_name])
            task_id = f"{scenario_id(spec.scenario)}_{n + 1}"
            build_task(data, spec, task_id, clock)
            clock.stop()
            entry = validate_task(spec, task_id)
            splits[split].append(task_id)
            sup = spec.supervisor
            gold_tasks.append(
                {
                    "task_id": task_id,
                    "split": split,
                    "scenario": spec.scenario,
                    "difficulty": spec.difficulty,
                    "instruction": spec.instruction,
                    "supervisor": {
                        "first_name": sup.first,
                        "last_name": sup.last,
                        "email": sup.email,
                        "phone_number": sup.phone,
                    },
                    "apps": spec.required_apps,
                    "plan": entry["plan"],
                    "completion": spec.completion,
                    "answer": spec.answer,
                }
            )
            print(f"  {task_id} ({spec.scenario}, {split}): {len(spec.subtasks)} sub-task(s)")
    clock.stop()

    datasets = os.path.join(data, "datasets")
    os.makedirs(datasets, exist_ok=True)
    for split, ids in splits.items():
        with open(os.path.join(datasets, split + ".txt"), "w") as file:
            file.write("".join(task_id + "\n" for task_id in ids))
    with open(os.path.join(root, "all.txt"), "w") as file:
        file.write("".join(t["task_id"] + "\n" for t in gold_tasks))
    # The same plans, one task per line, as rung's segmenter reads task files
    # (`rung curriculum show --tasks FILE`).
    with open(os.path.join(root, "plans.jsonl"), "w") as file:
        for task in gold_tasks:
            file.write(json.dumps(task) + "\n")
    gold = {
        "format": "rung-appworld-gold",
        "version": 1,
        "appworld_version": APPWORLD_VERSION,
        "generator_version": GENERATOR_VERSION,
        "splits": splits,
        "api_parameters": api_parameters(docs),
        "tasks": gold_tasks,
    }
    with open(os.path.join(root, "gold.json"), "w") as file:
        json.dump(gold, file, indent=1)
        file.write("\n")
    # The validation runs leave experiment outputs behind; they are not part of the data.
    shutil.rmtree(os.path.join(root, "experiments"), ignore_errors=True)
    with open(stamp_path, "w") as file:
        file.write(stamp)
    print(
        f"wrote {len(gold_tasks)} tasks in {len(SCENARIOS)} scenarios to {data} and "
        f"{os.path.join(root, 'gold.json')} ({_now() - started:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
