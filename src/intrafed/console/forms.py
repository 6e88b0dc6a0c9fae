"""Forms of the console pages, described as data: the fields a form has (named after the
CLI's options, so that a ``ConfigError`` naming ``--ip`` lands beside the ``ip`` field), what
applying it does, and the listing a page shows above its forms."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from intrafed.config.model import ConfigError, NodeConfig
from intrafed.pki import PkiError
from intrafed.store import open_store

MAX_UPLOAD_BYTES = 1024 * 1024
"""A certificate or key file larger than this is refused unread."""


@dataclass(frozen=True, slots=True)
class Upload:
    """A file sent with a form."""

    filename: str
    data: bytes


class FormValues:
    """What a browser submitted, read as the CLI reads its options."""

    def __init__(self, values: Mapping[str, str], uploads: Mapping[str, Upload]) -> None:
        self._values = values
        self._uploads = uploads

    def text(self, name: str) -> str | None:
        """The field's text, stripped; None when left blank."""
        value = self._values.get(name, "").strip()
        return value or None

    def required(self, name: str, setting: str | None = None) -> str:
        """The field's text; ``ConfigError`` when it was left blank."""
        value = self.text(name)
        if value is None:
            raise ConfigError(setting or f"--{name}", "is required", f"fill in {name}")
        return value

    def secret(self, name: str) -> str:
        """A password field, exactly as typed."""
        return self._values.get(name, "")

    def integer(self, name: str, setting: str | None = None) -> int | None:
        """The field as a whole number; None when blank."""
        value = self.text(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise ConfigError(
                setting or f"--{name}", f"{value!r} is not a whole number", "give a number"
            ) from None

    def required_integer(self, name: str) -> int:
        """A whole number that must be given."""
        value = self.integer(name)
        if value is None:
            raise ConfigError(f"--{name}", "is required", f"fill in {name}")
        return value

    def flag(self, name: str) -> bool:
        """A checkbox: ticked or not."""
        return name in self._values

    def upload(self, name: str) -> Upload | None:
        """The file sent in the field; None when none was chosen."""
        return self._uploads.get(name)

    def shown(self) -> dict[str, str]:
        """The values to put back into a form shown again (file fields excluded)."""
        return dict(self._values)


@dataclass(frozen=True, slots=True)
class Field:
    """One input of a form."""

    name: str
    """The form field: the CLI option's name without its dashes."""
    label: str
    kind: str = "text"
    """text, number, password, checkbox, select or file."""
    choices: tuple[str, ...] = ()
    default: str = ""
    hint: str = ""
    settings: tuple[str, ...] = ()
    """The ``ConfigError`` settings shown beside this field (default ``--NAME``)."""

    def shows(self, setting: str) -> bool:
        """Whether an error about ``setting`` belongs beside this field."""
        names = self.settings or (f"--{self.name}",)
        return any(part in names for part in setting.split("/"))


Apply = Callable[[Path, FormValues], str]
"""Carries out a form on a home; returns what was done, or raises ``ConfigError``."""


@dataclass(frozen=True, slots=True)
class Form:
    """A form of a page: its action name, fields, and what submitting it does."""

    action: str
    title: str
    button: str
    fields: tuple[Field, ...]
    apply: Apply
    multipart: bool = False
    current: Callable[[NodeConfig], dict[str, str]] | None = None
    """The values the form starts with, from the staged configuration (a settings form)."""

    def errors_of(self, exc: ConfigError | PkiError) -> dict[str, str]:
        """``exc`` placed beside the fields it names (``""``: the form as a whole)."""
        setting = exc.setting if isinstance(exc, ConfigError) else exc.what
        names = [item.name for item in self.fields if item.shows(setting)]
        return {name: str(exc) for name in names} or {"": str(exc)}


@dataclass(frozen=True, slots=True)
class RowButton:
    """A button on a row of a listing: a form of the page with its values filled in."""

    action: str
    label: str
    values: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Row:
    """One entry of a listing."""

    cells: tuple[str, ...]
    buttons: tuple[RowButton, ...] = ()


@dataclass(frozen=True, slots=True)
class ConfigPage:
    """A tab: what it lists and the forms that change it."""

    slug: str
    title: str
    intro: str
    headers: tuple[str, ...]
    rows: Callable[[Path, NodeConfig], Sequence[Row]]
    forms: tuple[Form, ...]
    row_forms: tuple[Form, ...] = field(default=())
    """Forms reached only through row buttons (remove, select …)."""

    def form(self, action: str) -> Form | None:
        """The form named ``action``."""
        return next((f for f in (*self.forms, *self.row_forms) if f.action == action), None)


def staged(edit: Callable[[NodeConfig, FormValues], NodeConfig], done: str) -> Apply:
    """A form that stages one configuration edit; ``done`` may name form fields as
    ``{field}``."""

    def apply(home: Path, values: FormValues) -> str:
        with open_store(home) as store:
            store.stage(lambda config: edit(config, values))
        return done.format_map(_Blank(values.shown()))

    return apply


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def remove_button(values: dict[str, str]) -> tuple[RowButton, ...]:
    """A row's Remove button, posting ``values``."""
    return (RowButton("remove", "Remove", values),)


def remove_form(fields: tuple[Field, ...], apply: Apply) -> Form:
    """The form behind a row's Remove button."""
    return Form("remove", "Remove", "Remove", fields, apply)
