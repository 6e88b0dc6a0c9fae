"""``intrafed config metrics``: an opt-in listener, staged and applied by a restart (the
hint says so, and a reload refuses it rather than pretend), or off."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from intrafed.cli import main
from intrafed.config.model import NodeIdentity, Role
from intrafed.control.protocol import Refused
from intrafed.node import Node
from intrafed.node_control import reload_staged
from intrafed.store import create_store, open_store


def config(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["config", *args, "--home", str(home)])
    return result.exit_code, result.output


def test_config_metrics_is_staged_for_a_restart_and_a_reload_refuses_it(tmp_path: Path) -> None:
    home = tmp_path / "ocs1"
    create_store(home, NodeIdentity(Role.OCS, "ocs1.example.com", "127.0.0.3")).close()
    code, said = config(home, "metrics", "--listen", "127.0.0.3:9464")
    assert code == 0, said
    assert said == (
        "metrics: served on http://127.0.0.3:9464/metrics "
        f"(staged; apply with intrafed service restart --home {home})\n"
    )
    assert "metrics: served on http://127.0.0.3:9464/metrics" in config(home, "show")[1]
    with open_store(home) as store:
        refused = reload_staged(home, Node.from_home(home, store), store, None)
        assert isinstance(refused, Refused)
        assert "metrics listener" in refused.reason
        assert store.load("running").metrics is None
    assert config(home, "metrics", "OFF") == (
        0,
        "metrics: off (staged; the same as the running configuration)\n",
    )
    assert config(home, "metrics", "--listen", "[::1]")[0] == 0
    with open_store(home) as store:
        assert str(store.load("staged").metrics) == "[::1]:9464"


def test_config_metrics_refuses_what_is_not_an_address_and_port(tmp_path: Path) -> None:
    home = tmp_path / "ocs1"
    create_store(home, NodeIdentity(Role.OCS, "ocs1.example.com", "127.0.0.3")).close()
    assert config(home, "metrics")[0] == 2
    assert config(home, "metrics", "off", "--listen", "127.0.0.3")[0] == 2
    code, said = config(home, "metrics", "--listen", "metrics.example.com:9464")
    assert code == 2
    assert "is not an IP address" in said
    code, said = config(home, "metrics", "--listen", "127.0.0.3:http")
    assert (code, "has no valid port" in said) == (2, True)
    assert config(home, "metrics", "--listen", "127.0.0.3:70000")[0] == 2
