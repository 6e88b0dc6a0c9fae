"""Form values read as the CLI reads options, and errors placed beside the fields the
``ConfigError`` names."""

from __future__ import annotations

import pytest

from intrafed.config.model import ConfigError, Role, StaticRoute
from intrafed.console.config_pages import config_pages
from intrafed.console.forms import Field, Form, FormValues, Upload
from intrafed.pki import PkiError


def _form(*fields: Field) -> Form:
    return Form("add", "Add", "Add", fields, lambda home, values: "")


def test_errors_land_beside_the_fields_the_setting_names() -> None:
    form = _form(
        Field("fqdn", "FQDN"), Field("ip", "IP"), Field("aor", "User", settings=("USER@DOMAIN",))
    )
    both = ConfigError("--ip/--fqdn", "a static route needs exactly one next hop", "give one")
    assert form.errors_of(both) == {"fqdn": str(both), "ip": str(both)}
    user = ConfigError("USER@DOMAIN", "bad", "fix")
    assert form.errors_of(user) == {"aor": str(user)}
    other = ConfigError("route", "no such route", "list them")
    assert form.errors_of(other) == {"": str(other)}
    pki = PkiError("FILE", "not a certificate", "give a PEM file")
    assert _form(Field("file", "File", "file", settings=("FILE",))).errors_of(pki) == {
        "file": str(pki)
    }


def test_the_route_error_of_the_model_lands_beside_the_ip_field() -> None:
    [routing] = [page for page in config_pages(Role.OCS) if page.slug == "routing"]
    form = routing.form("add")
    assert form is not None
    with pytest.raises(ConfigError) as refused:
        StaticRoute("example.com", "TLS", 5061, ip="192.0.2.1")
    assert list(form.errors_of(refused.value)) == ["ip"]


def test_values_read_as_options() -> None:
    values = FormValues(
        {"port": " 5061 ", "blank": "  ", "flag": "on", "password": " spaced "},
        {"file": Upload("a.pem", b"x")},
    )
    assert values.integer("port") == 5061
    assert values.text("blank") is None
    assert values.integer("blank") is None
    assert values.flag("flag")
    assert not values.flag("missing")
    assert values.secret("password") == " spaced "
    assert values.upload("file") == Upload("a.pem", b"x")
    assert values.upload("other") is None
    with pytest.raises(ConfigError, match="--blank: is required"):
        values.required("blank")
    with pytest.raises(ConfigError, match="--port: 'x' is not a whole number"):
        FormValues({"port": "x"}, {}).integer("port")


def test_each_role_has_the_seeds_tabs() -> None:
    assert [page.title for page in config_pages(Role.OCS)] == [
        "General",
        "Routing",
        "Host Authorization",
        "Security",
        "FIPS",
        "Hosts",
        "Users",
    ]
    assert [page.title for page in config_pages(Role.IMP)] == [
        "Application Listeners",
        "Static Routes",
        "TLS Peer Subjects",
        "Incoming ACL",
        "Routing Mode",
        "Security",
        "Hosts",
        "Users",
    ]
