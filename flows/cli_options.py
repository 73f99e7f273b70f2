"""Options of the ``lrpath`` command built from the pydantic configuration.

Each option's default, help text and allowed range come from the config field it sets
(``ProjectConfig``, ``DemoSettings``, ``CompareSettings``), so a default lives in one place and
``lrpath COMMAND --help`` shows it.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import BaseModel, TypeAdapter, ValidationError

from lrpath_core.config import ProjectConfig, field_info
from lrpath_core.errors import LrpathError


class UsageError(LrpathError):
    """Arguments that do not fit together; the message names the options."""


def config_option(
    dotted: str, *flags: str, model: type[BaseModel] = ProjectConfig, override: bool = False, **kwargs: Any
) -> Any:
    """A ``typer.Option`` for the config field ``dotted`` (e.g. ``paradigm.alpha``).

    With ``override`` the option's value is ``None`` unless given, so a value from an
    ``lrpath.yaml`` or the store's saved config wins; the help still shows the config's default.
    """
    info = field_info(dotted, model)
    default = info.get_default(call_default_factory=True)
    annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    where = f"config: {dotted}" if model is ProjectConfig else f"{model.__name__}.{dotted}"
    text = info.description or dotted
    help_text = f"{text} [default: {default}; {where}]" if override else f"{text} [{where}]"

    def check(value: Any) -> Any:
        if value is None:
            return value
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            raise typer.BadParameter(exc.errors()[0]["msg"]) from None

    return typer.Option(
        None if override else default,
        *flags,
        help=help_text,
        show_default=not override,
        callback=check,
        **kwargs,
    )


def store_option() -> Any:
    return typer.Option(
        field_info("store").default,
        "--store",
        envvar="LRPATH_STORE",
        help="fsspec URL of the store: a local path or s3://bucket/prefix",
        show_envvar=True,
    )


def config_file_option() -> Any:
    return typer.Option(
        None, "--config", help="lrpath.yaml for a new store (a store keeps the config it started with)"
    )
