"""`chainlab testnet render`: the Kubernetes objects validate against the Kubernetes API schema (kubernetes-validate,
strict, a pinned version) and the Compose file against the Compose specification's schema (as vendored by
check-jsonschema); peers, probes, genesis and secrets are what `testnet up` would make. No process, no network."""

from __future__ import annotations

import copy
import json
import stat
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from cli.main import main
from node.config import load_config
from testnet.cluster import Cluster
from testnet.launcher import UpOptions, network_arguments
from testnet.render import kubernetes
from testnet.render.files import render
from testnet.render.image import RPC_PORT, start_script
from testnet.render.network import RenderOptions
from testnet.render.yamltext import to_yaml

K8S_VERSION = kubernetes.VERSION.lstrip("v")
ENGINES = ("pow", "pbft")
NODES = 4


def _render(tmp_path: Path, target: str, consensus: str, **extra: Any) -> Path:
    out = tmp_path / f"{target}-{consensus}"
    network = UpOptions(nodes=NODES, consensus=consensus, seed=f"render-{consensus}", load_accounts=16)
    render(RenderOptions(target=target, out=out, network=network, context=Path(__file__).resolve().parents[2],
                         **extra))
    return out


def _k8s_objects(out: Path) -> dict[str, dict[str, Any]]:
    objects = {}
    for path in sorted((out / "kubernetes").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            objects[f"{document['kind']}/{document['metadata']['name']}"] = document
    return objects


def _compose_schema() -> dict[str, Any]:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema: dict[str, Any] = json.loads(vendored.read_text(encoding="utf-8"))
    return schema


def _validate_compose(document: dict[str, Any]) -> None:
    schema = _compose_schema()
    jsonschema.validators.validator_for(schema)(schema, format_checker=jsonschema.FormatChecker()).validate(document)


def _genesis_of_up(tmp_path: Path, consensus: str) -> tuple[str, list[str]]:
    """The genesis and node keys `testnet up` writes for the same options, by its own code path (no process)."""
    options = UpOptions(nodes=NODES, consensus=consensus, seed=f"render-{consensus}", load_accounts=16)
    _, arguments = network_arguments(options)
    root = tmp_path / f"up-{consensus}"
    Cluster.create(root, NODES, **arguments)
    keys = [(root / f"node{i}" / "node.key").read_text() for i in range(NODES)]
    return (root / "node0" / "genesis.toml").read_text(), keys


@pytest.mark.parametrize("consensus", ENGINES)
def test_every_kubernetes_object_validates_strictly(tmp_path: Path, consensus: str) -> None:
    objects = _k8s_objects(_render(tmp_path, "kubernetes", consensus))
    assert set(objects) == {"Namespace/chainlab", "ConfigMap/genesis", "Secret/node-keys", "Secret/admin-tokens",
                            "Service/nodes", "StatefulSet/node", "PodDisruptionBudget/node", "Job/checker"}
    for name, document in objects.items():
        assert kubernetes_validate.validate(document, K8S_VERSION, strict=True) == K8S_VERSION[:4], name


def test_a_broken_kubernetes_object_fails_validation(tmp_path: Path) -> None:
    statefulset = _k8s_objects(_render(tmp_path, "kubernetes", "pow"))["StatefulSet/node"]
    unknown_field = copy.deepcopy(statefulset)
    unknown_field["spec"]["replicaz"] = 4
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown_field, K8S_VERSION, strict=True)
    wrong_type = copy.deepcopy(statefulset)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "p2p"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, K8S_VERSION, strict=True)


@pytest.mark.parametrize("consensus", ENGINES)
def test_peers_are_the_stable_pod_names(tmp_path: Path, consensus: str) -> None:
    out = _render(tmp_path, "kubernetes", consensus)
    objects = _k8s_objects(out)
    service, statefulset = objects["Service/nodes"], objects["StatefulSet/node"]
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert statefulset["spec"]["serviceName"] == "nodes" and statefulset["spec"]["replicas"] == NODES
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] == pod_labels == statefulset["spec"]["selector"]["matchLabels"]
    assert objects["PodDisruptionBudget/node"]["spec"]["selector"]["matchLabels"] == pod_labels
    hosts = [f"node-{i}.nodes.chainlab.svc.cluster.local" for i in range(NODES)]
    keys = objects["Secret/node-keys"]["stringData"]
    for index in range(NODES):
        datadir = tmp_path / f"datadir{index}"
        datadir.mkdir()
        (datadir / "config.toml").write_text(keys[f"node{index}.config.toml"])
        config = load_config(datadir)  # the node reads it as it is
        assert config.p2p.advertise_url == f"ws://{hosts[index]}:30301/p2p"
        assert list(config.p2p.bootstrap) == [f"ws://{h}:30301/p2p" for i, h in enumerate(hosts) if i != index]
        assert (config.p2p.host, config.rpc.host, config.rpc.port) == ("0.0.0.0", "0.0.0.0", RPC_PORT)
        assert len(config.rpc.admin_token) == 32
    job = objects["Job/checker"]["spec"]["template"]["spec"]["containers"][0]
    script = job["command"][2]
    assert ",".join(f"http://{h}:{RPC_PORT}" for h in hosts) in script
    assert "testnet attach" in script and "testnet load" in script and "testnet check" in script
    tokens = objects["Secret/admin-tokens"]["stringData"]["tokens"].splitlines()
    assert tokens == [f"node{i} {load_config(tmp_path / f'datadir{i}').rpc.admin_token}" for i in range(NODES)]
    assert (out / "admin-tokens").read_text().splitlines() == tokens


def test_probes_resources_and_mounts(tmp_path: Path) -> None:
    statefulset = _k8s_objects(_render(tmp_path, "kubernetes", "pbft"))["StatefulSet/node"]
    pod = statefulset["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"p2p": 30301, "rpc": RPC_PORT}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/v1/status", "port": "rpc"}
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["command"] == ["/bin/sh", "-ec", start_script()]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    env = {entry["name"]: entry["value"] for entry in container["env"]}
    assert env["CHAINLAB_KEYS"] == mounts["keys"] and env["CHAINLAB_GENESIS"].startswith(mounts["genesis"] + "/")
    secret_volume = next(v for v in pod["volumes"] if v["name"] == "keys")["secret"]
    assert secret_volume["defaultMode"] & 0o007 == 0  # not world-readable in the pod either
    assert pod["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("consensus", ENGINES)
def test_genesis_and_keys_are_those_of_testnet_up(tmp_path: Path, consensus: str) -> None:
    up_genesis, up_keys = _genesis_of_up(tmp_path, consensus)
    objects = _k8s_objects(_render(tmp_path, "kubernetes", consensus))
    assert objects["ConfigMap/genesis"]["data"]["genesis.toml"] == up_genesis
    assert [objects["Secret/node-keys"]["stringData"][f"node{i}.key"] for i in range(NODES)] == up_keys
    compose_out = _render(tmp_path, "compose", consensus)
    assert (compose_out / "genesis.toml").read_text() == up_genesis
    assert [(compose_out / "secrets" / f"node{i}.key").read_text() for i in range(NODES)] == up_keys


@pytest.mark.parametrize("consensus", ENGINES)
def test_compose_file_validates_against_the_compose_schema(tmp_path: Path, consensus: str) -> None:
    out = _render(tmp_path, "compose", consensus)
    document = yaml.safe_load((out / "compose.yaml").read_text())
    _validate_compose(document)
    services = document["services"]
    assert set(services) == {*(f"node{i}" for i in range(NODES)), "checker"}
    assert document["networks"] == {"chainlab": {"driver": "bridge"}}
    for index in range(NODES):
        service = services[f"node{index}"]
        assert service["networks"] == ["chainlab"] and service["volumes"][0]["source"] == f"node{index}-data"
        assert "/v1/status" in service["healthcheck"]["test"][-1]
        assert service["command"][2].replace("$$", "$") == start_script()  # Compose interpolation disarmed
        config_text = (out / "secrets" / f"node{index}.config.toml").read_text()
        assert f'advertise_url = "ws://node{index}:30301/p2p"' in config_text
        for secret in service["secrets"]:
            assert Path(out, document["secrets"][secret["source"]]["file"]).is_file()
    checker = services["checker"]
    assert checker["restart"] == "no"
    assert checker["depends_on"] == {f"node{i}": {"condition": "service_healthy"} for i in range(NODES)}
    assert ",".join(f"http://node{i}:{RPC_PORT}" for i in range(NODES)) in checker["command"][2]


def test_a_broken_compose_file_fails_validation(tmp_path: Path) -> None:
    document = yaml.safe_load((_render(tmp_path, "compose", "pow") / "compose.yaml").read_text())
    broken = copy.deepcopy(document)
    broken["services"]["node0"]["imagee"] = broken["services"]["node0"].pop("image")
    with pytest.raises(jsonschema.ValidationError):
        _validate_compose(broken)
    broken = copy.deepcopy(document)
    broken["services"]["checker"]["depends_on"]["node0"]["condition"] = "service_ready"
    with pytest.raises(jsonschema.ValidationError):
        _validate_compose(broken)


@pytest.mark.parametrize("target", ["kubernetes", "compose"])
def test_secrets_are_not_readable_by_others(tmp_path: Path, target: str) -> None:
    out = _render(tmp_path, target, "pow")
    secret_names = {"admin-tokens", "kubernetes/20-secrets.yaml"} if target == "kubernetes" else {
        f"secrets/{name}" for name in ("admin-tokens", *(f"node{i}.{kind}" for i in range(NODES)
                                                          for kind in ("key", "config.toml")))}
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} >= secret_names
    for path in out.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        name = path.relative_to(out).as_posix()
        if name in secret_names:
            assert mode == 0o600, name
        elif path.is_dir() and name == "secrets":
            assert mode == 0o700
        else:
            assert "admin_token" not in (path.read_text() if path.is_file() else ""), name
    assert not list(out.rglob("*.tmp"))


def test_the_dockerfile_installs_the_project_and_runs_a_node(tmp_path: Path) -> None:
    out = _render(tmp_path, "compose", "pow")
    dockerfile = (out / "Dockerfile").read_text()
    assert dockerfile.count("\nFROM python:3.11-slim\n") == 1
    assert "RUN pip install /src" in dockerfile and '"chainlab", "node", "run", "--datadir"' in dockerfile
    ignored = (out / "Dockerfile.dockerignore").read_text().splitlines()
    assert ".venv" in ignored and ".git" in ignored
    inside = Path(__file__).resolve().parents[2] / "rendered-here"
    from testnet.render.image import dockerignore

    assert "rendered-here" in dockerignore(inside.parent, inside).splitlines()  # its secrets stay out of the image


def test_a_scenario_manifest_gives_the_network(tmp_path: Path) -> None:
    manifest = Path(__file__).resolve().parents[2] / "testnet" / "scenarios" / "pbft-primary-kill.toml"
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["testnet", "render", "--target", "kubernetes", "--out", str(out),
                                       "--manifest", str(manifest), "--json"])
    assert result.exit_code == 0, result.output
    objects = _k8s_objects(out)
    assert "consensus = \"pbft\"" in objects["ConfigMap/genesis"]["data"]["genesis.toml"]
    assert objects["StatefulSet/node"]["spec"]["replicas"] == 4


@pytest.mark.parametrize(("args", "message"), [
    (["--target", "k8s"], "error: --target 'k8s': choose kubernetes or compose"),
    (["--target", "compose", "--nodes", "0"], "error: --nodes 0: must be 1..64"),
    (["--target", "compose", "--nodes", "65"], "error: --nodes 65: must be 1..64"),
    (["--target", "compose", "--nodes", "four"], "error: --nodes 'four': must be a whole number"),
    (["--target", "compose", "--consensus", "paxos"], "error: --consensus: consensus must be one of"),
    (["--target", "compose", "--topology", "star"], "error: unknown topology 'star'"),
    (["--target", "compose", "--namespace", "My_Net"], "error: --namespace 'My_Net': use 1 to 63"),
    (["--target", "compose", "--load-tps", "0"], "error: --load-tps 0: must be above 0"),
    (["--target", "compose", "--genesis-param", "no_such=1"], "error: "),
    (["--target", "compose", "--manifest", "x.toml", "--nodes", "3"], "error: --manifest gives the network; drop"),
])
def test_bad_values_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["testnet", "render", "--out", str(out), *args])
    assert result.exit_code == 1
    assert result.output.startswith(message) and result.output.count("\n") == 1, result.output
    assert not out.exists()


def test_a_non_empty_out_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    args = ["testnet", "render", "--target", "compose", "--out", str(out), "--seed", "f"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and result.output.startswith(f"error: --out {out} is not empty")
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    result = CliRunner().invoke(main, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert (out / "compose.yaml").is_file() and (out / "mine.txt").read_text() == "keep"


def test_yaml_text_reads_back_as_the_data() -> None:
    data = {"on": "yes", "n": "8545", "f": 1.5, "t": True, "none": None, "empty": {}, "list": [[1, 2], {}, []],
            "script": "line one\n  two: x\n$HOME\n", "no newline": "a\nb", "lead": "  x\ny", "nested": [{"a": 1}]}
    assert yaml.safe_load(to_yaml(data)) == data
