"""`docflow reviews list|show|approve|reject`: the review queue and its decisions, through the API.

A decision names a version: `--version`, else the review's newest version (what the last reviewer saved, or
the model's output). `approve --data FILE.json` first saves the file as a new version on top of the newest,
then approves that version, as the review page does with an edit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from devstack.cli_client import Api, CliError, print_json, read_json_file, say
from devstack.cli_runs import JsonFlag, connection
from devstack.cli_view import reviews_table

reviews_app = typer.Typer(help="List, show, approve and reject reviews.", no_args_is_help=True)
ReviewArg = Annotated[str, typer.Argument(help="Review id (rev_…)")]
VersionOpt = Annotated[str | None, typer.Option("--version", help="The version to decide on; default: the newest")]
ReviewerOpt = Annotated[str | None, typer.Option(help="Your name, recorded on the decision")]


def _versions(api: Api, review_id: str) -> list[dict[str, Any]]:
    """The review's versions, oldest first."""
    return api.all("/reviews/versions", page_size=100, review_id=review_id)


def _newest(api: Api, review_id: str) -> dict[str, Any]:
    versions = _versions(api, review_id)
    if not versions:
        raise CliError(f"review '{review_id}' has no version to decide on")
    return versions[-1]


@reviews_app.command("list")
def reviews_list(
    ctx: typer.Context,
    workflow: Annotated[str | None, typer.Option(help="Only this workflow's reviews")] = None,
    run: Annotated[str | None, typer.Option(help="Only this run's reviews")] = None,
    status: Annotated[str, typer.Option(help="pending, approved, rejected, decided or all")] = "pending",
    limit: Annotated[int, typer.Option(min=1, max=100)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List reviews, oldest first (open ones by default)."""
    page = connection(ctx).api().get("/reviews", workflow_id=workflow, run_id=run, decision_status=status, limit=limit)
    print_json(page["data"]) if as_json else Console().print(reviews_table(page["data"]))


@reviews_app.command("show")
def reviews_show(ctx: typer.Context, review_id: ReviewArg, as_json: JsonFlag = False) -> None:
    """Show a review, its versions and the newest version's data."""
    api = connection(ctx).api()
    review = api.get(f"/reviews/{review_id}")
    versions = _versions(api, review_id)
    if as_json:
        print_json({"review": review, "versions": versions})
        return
    decision = review.get("decision") or {}
    say(
        f"review {review['id']} · run {review['run_id']} · block {review['step_id']} · "
        f"{decision.get('verdict', review.get('status', 'pending'))}"
    )
    for version in versions:
        author = version.get("author", {})
        say(f"  version {version['id']} by {author.get('display_name') or author.get('kind')}")
    if versions:
        say(json.dumps(versions[-1]["snapshot"], indent=2, ensure_ascii=False))


def _decided(answer: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(answer)
    else:
        review = answer["review"]
        verdict = (review.get("decision") or {}).get("verdict", "?")
        say(f"review {review['id']}: {verdict} ({answer['submission_status']}; run {answer['resume_status']})")
    if answer["submission_status"] == "conflict" or answer.get("resume_status") == "failed":
        raise CliError(f"review {answer['review']['id']}: {answer.get('resume_error') or answer['submission_status']}")


@reviews_app.command("approve")
def reviews_approve(
    ctx: typer.Context,
    review_id: ReviewArg,
    version: VersionOpt = None,
    data: Annotated[Path | None, typer.Option(help="A corrected snapshot (JSON) to save and approve")] = None,
    reviewer: ReviewerOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Approve a review: the run resumes with the approved data."""
    api = connection(ctx).api()
    if data is not None and version is not None:
        raise CliError("give --version or --data, not both")
    if data is not None:
        snapshot = read_json_file(data, "--data")
        body = {"review_id": review_id, "parent_id": _newest(api, review_id)["id"], "snapshot": snapshot}
        version = api.post("/reviews/versions", body, reviewer=reviewer)["id"]
    version_id = version or _newest(api, review_id)["id"]
    _decided(api.post(f"/reviews/{review_id}/approve", {"version_id": version_id}, reviewer=reviewer), as_json)


@reviews_app.command("reject")
def reviews_reject(
    ctx: typer.Context,
    review_id: ReviewArg,
    reason: Annotated[str, typer.Option(help="Why (required); the block fails with it")],
    version: VersionOpt = None,
    reviewer: ReviewerOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Reject a review: the block fails with the reason and nothing downstream of it runs."""
    api = connection(ctx).api()
    version_id = version or _newest(api, review_id)["id"]
    body = {"version_id": version_id, "reason": reason}
    _decided(api.post(f"/reviews/{review_id}/reject", body, reviewer=reviewer), as_json)
