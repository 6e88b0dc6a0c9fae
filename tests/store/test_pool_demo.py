"""``intrafed demo --pool 2``: two OCS front ends on a real PostgreSQL database and an IM
and Presence node; presence and pager IMs reach carol on the front end IM and Presence does
not route to. Without a PostgreSQL URL the demo says what to install and give."""

from __future__ import annotations

import json

from click.testing import CliRunner

from intrafed.cli import main
from tests.integration.federation import free_base_port
from tests.store.postgres import Database


def test_the_pool_demo_relays_presence_and_ims_to_the_front_end_that_holds_the_client(
    postgres: Database,
) -> None:
    port = free_base_port(["127.0.0.2", "127.0.0.3", "127.0.0.6"])
    arguments = ["demo", "--pool", "2", "--db", postgres.url, "--base-port", str(port), "--json"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [step["name"] for step in report["steps"] if step["ok"]] == [
        step["name"] for step in report["steps"]
    ]
    assert len(report["steps"]) == 5
    assert postgres.password not in result.stdout


def test_the_pool_demo_without_a_postgresql_url_says_what_to_give() -> None:
    result = CliRunner().invoke(main, ["demo", "--pool", "2"])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "--db: intrafed demo --pool needs an empty PostgreSQL database for the pool — give "
        "--db postgresql://USER:PASSWORD@HOST:PORT/DATABASE (Debian: apt-get install postgresql"
    )
