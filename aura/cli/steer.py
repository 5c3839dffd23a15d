"""Commands that act on a running run: wake (a brain cycle now), limits (the watchdog's limits, shown
or changed), the questions the run asks (questions, answer, approve, deny) and direct changes to
the task tree (task add|retry|block|unblock|note). All only talk to a daemon."""

from __future__ import annotations

import click

from .common import fail_not_running, paths_of, when, width, wrap


@click.command()
@click.argument("reason", required=False, default="aura wake")
@click.pass_context
def wake(ctx: click.Context, reason: str) -> None:
    """Ask the brain to run a cycle now (REASON is logged)."""
    from ..control import NotRunning, call

    paths = paths_of(ctx)
    try:
        reply = call(paths, "brain", "wake", {"reason": reason}, timeout=2.0)
    except NotRunning as exc:
        fail_not_running(str(exc))
    click.echo(f"brain woken: cycle {reply.get('cycle')} starts now")


@click.command()
@click.argument("settings", nargs=-1, metavar="[KEY=VALUE]...")
@click.pass_context
def limits(ctx: click.Context, settings: tuple[str, ...]) -> None:
    """Show the resource limits in force, or change them at run time (logged by the watchdog)."""
    from aura.ipc.client import RemoteError

    from ..control import NotRunning, call

    paths = paths_of(ctx)
    try:
        if settings:
            values = {}
            for s in settings:
                key, sep, value = s.partition("=")
                if not sep:
                    raise click.ClickException(f"expected KEY=VALUE, got {s!r}")
                values[key.strip()] = value.strip()
            reply = call(paths, "watchdog", "set_limits", {"values": values})
            for key, change in reply["changed"].items():
                click.echo(f"{key}: {change['old']} -> {change['new']}")
            return
        reply = call(paths, "watchdog", "limits")
    except NotRunning as exc:
        fail_not_running(str(exc))
    except RemoteError as exc:
        raise click.ClickException(exc.message) from None
    from ..limits_view import limit_lines

    for line in limit_lines(reply["limits"], reply.get("overrides", {})):
        click.echo(line)


def brain_request(ctx: click.Context, op: str, args: dict) -> dict:
    """One request to the brain; a refusal or a stopped run is one line."""
    from aura.ipc.client import RemoteError

    from ..control import NotRunning, call

    paths = paths_of(ctx)
    try:
        return call(paths, "brain", op, args, timeout=5.0)
    except NotRunning as exc:
        fail_not_running(str(exc))
    except RemoteError as exc:
        raise click.ClickException(exc.message) from None


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Include the questions already answered.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def questions(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    """The questions and approvals the run waits on (aura answer / approve / deny)."""
    import json

    listed = brain_request(ctx, "questions", {"all": show_all})["questions"]
    if as_json:
        click.echo(json.dumps(listed, default=str, indent=1))
        return
    if not listed:
        click.echo("no open questions" + ("" if show_all else " (aura questions -a shows the answered ones)"))
        return
    for line in question_lines(listed, width()):
        click.echo(line)


def question_lines(listed: list[dict], columns: int | None) -> list[str]:
    out = []
    for q in listed:
        about = f" · task {q['task_id']}" if q.get("task_id") else ""
        out.append(
            f"{q['id']}  {q['status']}  {q['kind']}{about} · asked by {q.get('asked_by')} {when(q.get('asked_at'))}"
        )
        out.append(wrap(q.get("text", ""), columns, "    "))
        if q.get("options"):
            out.append(wrap(" / ".join(q["options"]), columns, "    ", first="    options: "))
        if q.get("answered_at"):
            out.append(wrap(str(q.get("answer")), columns, "    ", first="    answer: "))
    return out


@click.command()
@click.argument("words", nargs=-1, required=True, metavar="[ID] TEXT")
@click.pass_context
def answer(ctx: click.Context, words: tuple[str, ...]) -> None:
    """Answer a question the run asked (ID may be left out while only one is open)."""
    import re

    qid, text = ("", " ".join(words))
    if len(words) > 1 and re.fullmatch(r"[Qq]\d+", words[0]):
        qid, text = words[0], " ".join(words[1:])
    reply = brain_request(ctx, "answer", {"question_id": qid, "text": text})
    echo_answered(reply)


@click.command()
@click.argument("question_id", metavar="ID")
@click.pass_context
def approve(ctx: click.Context, question_id: str) -> None:
    """Let the action an approval holds go ahead."""
    echo_answered(brain_request(ctx, "answer", {"question_id": question_id, "verdict": "approve"}))


@click.command()
@click.argument("question_id", metavar="ID")
@click.argument("why", nargs=-1, required=True)
@click.pass_context
def deny(ctx: click.Context, question_id: str, why: tuple[str, ...]) -> None:
    """Refuse the action an approval holds (its task is blocked with WHY)."""
    echo_answered(brain_request(ctx, "answer", {"question_id": question_id, "text": " ".join(why), "verdict": "deny"}))


def echo_answered(reply: dict) -> None:
    q, task = reply["question"], reply.get("task")
    what = {"approve": "approved", "deny": "denied"}.get(str(q.get("verdict")), "answered")
    after = f"; task {task['id']} is now {task['status']}" if task else ""
    click.echo(f"{q['id']} {what}{after}")


@click.group()
def task() -> None:
    """Change the task tree yourself: each change is logged (aura history) like the model's."""


def echo_task(reply: dict, did: str) -> None:
    t = reply["task"]
    click.echo(f"{t['id']} {did}: [{t['status']}] {t.get('title') or ''}".rstrip())


@task.command("add")
@click.argument("description")
@click.option("--parent", default="", metavar="ID", help="Add it under this task (default: the goal).")
@click.option("--accept", multiple=True, metavar="CMD", help="A command that must pass for it to count as done.")
@click.pass_context
def task_add(ctx: click.Context, description: str, parent: str, accept: tuple[str, ...]) -> None:
    """Add a task."""
    args = {"action": "add", "text": description, "parent": parent, "accept": list(accept)}
    echo_task(brain_request(ctx, "task", args), "added")


@task.command("retry")
@click.argument("task_id", metavar="ID")
@click.pass_context
def task_retry(ctx: click.Context, task_id: str) -> None:
    """Run a blocked, failed or killed task again, with fresh attempts."""
    echo_task(brain_request(ctx, "task", {"action": "retry", "task_id": task_id}), "to retry")


@task.command("block")
@click.argument("task_id", metavar="ID")
@click.argument("reason", nargs=-1, required=True)
@click.pass_context
def task_block(ctx: click.Context, task_id: str, reason: tuple[str, ...]) -> None:
    """Hold a task that is not running (REASON is logged and shown)."""
    args = {"action": "block", "task_id": task_id, "text": " ".join(reason)}
    echo_task(brain_request(ctx, "task", args), "blocked")


@task.command("unblock")
@click.argument("task_id", metavar="ID")
@click.pass_context
def task_unblock(ctx: click.Context, task_id: str) -> None:
    """Let a blocked task run again."""
    echo_task(brain_request(ctx, "task", {"action": "unblock", "task_id": task_id}), "unblocked")


@task.command("note")
@click.argument("task_id", metavar="ID")
@click.argument("text", nargs=-1, required=True)
@click.pass_context
def task_note(ctx: click.Context, task_id: str, text: tuple[str, ...]) -> None:
    """Leave a note on a task: the model reads it, and its next worker finds it in task.md."""
    echo_task(brain_request(ctx, "task", {"action": "note", "task_id": task_id, "text": " ".join(text)}), "noted")
