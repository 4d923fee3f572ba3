"""Which node a command talks to when the user does not say (cli/endpoint.py): --node, $CHAINLAB_NODE, the user
config file, then the devnet's address; the admin token from the same sources, then the devnet's config.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.endpoint import DEVNET_URL, EndpointConfigError, config_path, resolve_endpoint
from tests.cli.helpers import Invoke, assert_one_line_error


def _config(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "xdg" / "chainlab" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}


def test_the_option_wins_then_the_variable_then_the_config_file_then_the_devnet(tmp_path: Path) -> None:
    env = _config(tmp_path, 'node = "127.0.0.1:9001"\nadmin_token = "from-file"\n')
    nowhere = tmp_path / "no-devnet"
    assert resolve_endpoint("127.0.0.1:9000", environ={**env, "CHAINLAB_NODE": "http://h:9002"},
                            devnet_dir=nowhere).url == "http://127.0.0.1:9000"
    from_env = resolve_endpoint(None, environ={**env, "CHAINLAB_NODE": "http://h:9002"}, devnet_dir=nowhere)
    assert (from_env.url, from_env.source) == ("http://h:9002", "$CHAINLAB_NODE")
    from_file = resolve_endpoint(None, environ=env, want_token=True, devnet_dir=nowhere)
    assert (from_file.url, from_file.admin_token) == ("http://127.0.0.1:9001", "from-file")
    assert from_file.source == str(tmp_path / "xdg" / "chainlab" / "config.toml")
    fallback = resolve_endpoint(None, environ={"XDG_CONFIG_HOME": str(tmp_path / "empty")}, devnet_dir=nowhere)
    assert (fallback.url, fallback.source, fallback.admin_token) == (DEVNET_URL, "devnet default", None)


def test_the_admin_token_comes_from_the_option_the_variable_the_file_then_the_devnet(tmp_path: Path) -> None:
    env = _config(tmp_path, 'admin_token = "from-file"\n')
    devnet = tmp_path / ".devnet"
    devnet.mkdir()
    (devnet / "config.toml").write_text('[rpc]\nadmin_token = "from-devnet"\n', encoding="utf-8")

    def token(option: str | None, environ: dict[str, str], node: str | None = None) -> str | None:
        return resolve_endpoint(node, option, environ=environ, want_token=True, devnet_dir=devnet).admin_token

    assert token("opt", {**env, "CHAINLAB_ADMIN_TOKEN": "var"}) == "opt"
    assert token(None, {**env, "CHAINLAB_ADMIN_TOKEN": "var"}) == "var"
    assert token(None, env) == "from-file"
    assert token(None, env, node="http://10.0.0.1:1") == "from-file"  # the file's token goes with --node too
    assert token(None, {"XDG_CONFIG_HOME": str(tmp_path / "empty")}) == "from-devnet"
    # The devnet's token is only sent to the devnet's address.
    assert token(None, {"XDG_CONFIG_HOME": str(tmp_path / "empty")}, node="http://10.0.0.1:1") is None
    # Without want_token nothing is looked up.
    assert resolve_endpoint(None, environ={**env, "CHAINLAB_ADMIN_TOKEN": "v"}, devnet_dir=devnet).admin_token is None


def test_config_path_order(tmp_path: Path) -> None:
    assert config_path({"CHAINLAB_CONFIG": str(tmp_path / "c.toml"), "XDG_CONFIG_HOME": "/x"}) == tmp_path / "c.toml"
    assert config_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/chainlab/config.toml")
    assert config_path({}) == Path.home() / ".config" / "chainlab" / "config.toml"


@pytest.mark.parametrize(("text", "needle"), [
    ("node = ", "not valid TOML"),
    ('node = 5\n', "node must be a non-empty string"),
    ('node = "ftp://x:1"\n', "not a node URL"),
    ('nod = "http://x:1"\n', "unknown key 'nod'"),
    ('admin_token = ""\n', "admin_token must be a non-empty string"),
])
def test_a_bad_config_file_is_a_typed_one_line_error(tmp_path: Path, text: str, needle: str) -> None:
    env = _config(tmp_path, text)
    with pytest.raises(EndpointConfigError) as caught:
        resolve_endpoint(None, environ=env, want_token=True, devnet_dir=tmp_path)
    assert needle in str(caught.value) and "\n" not in str(caught.value)
    assert "config.toml" in str(caught.value)


def test_commands_report_a_bad_config_file_and_a_bad_url_in_one_line(invoke: Invoke, tmp_path: Path) -> None:
    env = {**_config(tmp_path, 'node = "ftp://x:1"\n'), "CHAINLAB_NODE": None, "CHAINLAB_CONFIG": None}
    assert_one_line_error(invoke("mempool", env=env), "user config:", "not a node URL")
    assert_one_line_error(invoke("mempool", "--node", "http://x:notaport"), "--node:", "not a node URL")
    assert_one_line_error(invoke("events", env={"CHAINLAB_NODE": "nope://"}), "--node:")


def test_an_unreachable_default_names_the_url_tried(invoke: Invoke, tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "empty"), "CHAINLAB_NODE": "http://127.0.0.1:9", "CHAINLAB_CONFIG": None}
    for args in (["mempool"], ["events"], ["node", "peers", "list"], ["tx", "show", "ab" * 32],
                 ["mine", "1", "--admin-token", "t"], ["node", "peers", "add", "ws://127.0.0.1:1/p2p"],
                 ["node", "peers", "remove", "x"], ["node", "admin", "transfer-leader", "--to", "x"]):
        assert_one_line_error(invoke(*args, env=env), "http://127.0.0.1:9", "connection refused")
