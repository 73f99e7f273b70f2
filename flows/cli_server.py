"""``lrpath server up|down|status``: the local Prefect server, pools, deployments and workers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from flows.cli_options import config_option
from lrpath_core.config import ServerSettings

server_app = typer.Typer(
    help="A local Prefect server with the lrpath pools, deployments and workers.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _home_option() -> str:
    return config_option("home", "--home", model=ServerSettings)


@server_app.command()
def up(
    store: str = typer.Option(
        "",
        "--store",
        envvar="LRPATH_STORE",
        show_envvar=True,
        help="fsspec URL of the store the deployments use (required: no silent default)",
    ),
    db: str = config_option("db", "--db", model=ServerSettings),
    workers: int = config_option("workers", "--workers", model=ServerSettings),
    port: int = config_option("port", "--port", model=ServerSettings),
    home: str = _home_option(),
) -> None:
    """Start what is not running yet: server, pools, `gpu` limit (workers × device slots), store variable,
    deployments, workers."""
    from deployments.server import ServerRequest
    from deployments.server import up as server_up

    url = store if "://" in store else os.path.abspath(store) if store.strip() else store
    state = server_up(ServerRequest(store=url, home=Path(home), port=port, workers=workers, db=db))
    print(f"UI http://127.0.0.1:{state['port']}   export PREFECT_API_URL={state['api_url']}")


@server_app.command()
def down(home: str = _home_option()) -> None:
    """Stop the server and workers that `lrpath server up` started from this home."""
    from deployments.server import down as server_down

    server_down(Path(home))


@server_app.command()
def status(
    home: str = _home_option(),
    json_out: bool = typer.Option(False, "--json", help="print exactly one JSON object"),
) -> None:
    """Which processes run, and the deployments the server knows."""
    from deployments.server import status as server_status

    found = server_status(Path(home))
    if json_out:
        print(json.dumps(found))
        return
    print(
        f"home {found['home']}  api {found['api_url'] or '-'}  db {found['db'] or '-'}  store {found['store'] or '-'}"
    )
    for name, running in found["processes"].items():
        print(f"  {name:<22} {'running' if running else 'stopped'}")
    if found["healthy"]:
        print(f"  deployments: {', '.join(found['deployments'])}")
