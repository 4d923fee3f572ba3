"""Kubernetes objects for a rendered network: a Namespace, a ConfigMap with the genesis, Secrets with the node keys
(and their configs, which hold the admin tokens) and the attach token file, a headless Service whose stable pod
names are the bootstrap peers, a StatefulSet with probes on /v1/status and resources, a PodDisruptionBudget, and a
Job that attaches the toolkit to the Service's URLs, loads the network and checks it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from testnet.render.image import DATADIR, NODE_UID, P2P_PORT, RPC_PORT, check_script, start_script
from testnet.render.network import RenderedNetwork, RenderOptions

STATEFULSET = "node"  # pods node-0, node-1, ...
SERVICE = "nodes"  # headless: node-K.nodes.<namespace>.svc.cluster.local
GENESIS_CONFIGMAP = "genesis"
KEYS_SECRET = "node-keys"
TOKENS_SECRET = "admin-tokens"
CHECKER_JOB = "checker"
KEYS_DIR = "/etc/chainlab/keys"
GENESIS_DIR = "/etc/chainlab/genesis"
ADMIN_DIR = "/etc/chainlab/admin"
# A node idles at ~60 MB and a few % of a core, and its mining worker adds ~55 MB (docs/TESTNET.md, Performance);
# under load a node took ~30% of a core. The limits leave room for bursts of block validation.
NODE_RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
CHECKER_RESOURCES = {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
DATA_VOLUME_SIZE = "1Gi"
SECRET_FILE_MODE = 0o440  # owner root, group the pod's fsGroup: the node user reads them, nobody else
VERSION = "v1.30.0"  # the Kubernetes API the objects are written for (and validated against in the tests)


def host_of(namespace: str) -> Callable[[int], str]:
    """Node K's stable DNS name: the StatefulSet's pod K under the headless Service."""
    return lambda index: f"{STATEFULSET}-{index}.{SERVICE}.{namespace}.svc.cluster.local"


def _labels(options: RenderOptions, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "chainlab", "app.kubernetes.io/instance": options.namespace,
            "app.kubernetes.io/component": component}


def _meta(options: RenderOptions, name: str, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": options.namespace, "labels": _labels(options, component)}


def _security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _pod_security() -> dict[str, Any]:
    return {"runAsUser": NODE_UID, "runAsGroup": NODE_UID, "fsGroup": NODE_UID, "runAsNonRoot": True}


def objects(network: RenderedNetwork, options: RenderOptions) -> dict[str, list[dict[str, Any]]]:
    """The objects by file name (applied in this order by `kubectl apply -f DIR/kubernetes/`). The file of
    Secrets must be written 0600."""
    namespace = {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": options.namespace, "labels": _labels(options, "network")}}
    genesis = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(options, GENESIS_CONFIGMAP, "genesis"),
               "data": {"genesis.toml": network.genesis.to_toml()}}
    keys: dict[str, str] = {}
    for node in network.nodes:
        keys[f"{node.name}.key"] = node.key_text
        keys[f"{node.name}.config.toml"] = node.config.to_toml()
    secrets = [
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": _meta(options, KEYS_SECRET, "node"),
         "stringData": keys},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": _meta(options, TOKENS_SECRET, "checker"),
         "stringData": {"tokens": network.admin_tokens_text()}},
    ]
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": _meta(options, SERVICE, "node"),
        "spec": {
            "clusterIP": "None",
            # the nodes dial each other by name while they start, before any of them is ready
            "publishNotReadyAddresses": True,
            "selector": _labels(options, "node"),
            "ports": [{"name": "p2p", "port": P2P_PORT, "targetPort": "p2p"},
                      {"name": "rpc", "port": RPC_PORT, "targetPort": "rpc"}],
        },
    }
    budget = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(options, "node", "node"),
              # one node at a time: PBFT keeps its quorum from 4 nodes (f = 1), Raft from 3
              "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _labels(options, "node")}}}
    return {
        "00-namespace.yaml": [namespace],
        "10-genesis-configmap.yaml": [genesis],
        "20-secrets.yaml": secrets,
        "30-service.yaml": [service],
        "40-statefulset.yaml": [_statefulset(network, options)],
        "50-poddisruptionbudget.yaml": [budget],
        "60-checker-job.yaml": [_checker_job(network, options)],
    }


def _probe(period_s: int, timeout_s: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": "/v1/status", "port": "rpc"}, "periodSeconds": period_s,
            "timeoutSeconds": timeout_s, "failureThreshold": failures}


def _statefulset(network: RenderedNetwork, options: RenderOptions) -> dict[str, Any]:
    container = {
        "name": "node", "image": options.image, "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-ec", start_script()],
        "env": [{"name": "CHAINLAB_KEYS", "value": KEYS_DIR},
                {"name": "CHAINLAB_GENESIS", "value": f"{GENESIS_DIR}/genesis.toml"}],
        "ports": [{"name": "p2p", "containerPort": P2P_PORT}, {"name": "rpc", "containerPort": RPC_PORT}],
        # startup: opening the store and first sync; then liveness restarts a node whose RPC stopped answering
        # for a minute, and readiness takes it out of the Service's ready endpoints after 15 s
        "startupProbe": _probe(2, 3, 60),
        "livenessProbe": _probe(10, 5, 6),
        "readinessProbe": _probe(5, 3, 3),
        "resources": NODE_RESOURCES,
        "securityContext": _security(),
        "volumeMounts": [{"name": "data", "mountPath": DATADIR.rsplit("/", 1)[0]},
                         {"name": "genesis", "mountPath": GENESIS_DIR, "readOnly": True},
                         {"name": "keys", "mountPath": KEYS_DIR, "readOnly": True}],
    }
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(options, STATEFULSET, "node"),
        "spec": {
            "serviceName": SERVICE,
            "replicas": len(network.nodes),
            "podManagementPolicy": "Parallel",  # all at once: a BFT network needs a quorum before any block
            "selector": {"matchLabels": _labels(options, "node")},
            "template": {
                "metadata": {"labels": _labels(options, "node")},
                "spec": {
                    "securityContext": _pod_security(),
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container],
                    "volumes": [
                        {"name": "genesis", "configMap": {"name": GENESIS_CONFIGMAP}},
                        {"name": "keys", "secret": {"secretName": KEYS_SECRET, "defaultMode": SECRET_FILE_MODE}},
                    ],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data", "labels": _labels(options, "node")},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": DATA_VOLUME_SIZE}}},
            }],
        },
    }


def _checker_job(network: RenderedNetwork, options: RenderOptions) -> dict[str, Any]:
    script = check_script([node.rpc_url for node in network.nodes], load_tps=options.load_tps,
                          load_duration_s=options.load_duration_s, converge_timeout_s=options.converge_timeout_s)
    container = {
        "name": "checker", "image": options.image, "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-ec", script],
        "env": [{"name": "CHAINLAB_ADMIN_TOKENS", "value": f"{ADMIN_DIR}/tokens"},
                {"name": "CHAINLAB_SEED", "value": network.seed}, {"name": "HOME", "value": "/tmp"}],
        "resources": CHECKER_RESOURCES,
        "securityContext": _security(),
        "volumeMounts": [{"name": "admin", "mountPath": ADMIN_DIR, "readOnly": True},
                         {"name": "work", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": _meta(options, CHECKER_JOB, "checker"),
        "spec": {
            "backoffLimit": 0,  # a failed check is the answer, not a flake to retry
            "activeDeadlineSeconds": 900,
            "template": {
                "metadata": {"labels": _labels(options, "checker")},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": _pod_security(),
                    "enableServiceLinks": False,
                    "containers": [container],
                    "volumes": [{"name": "admin", "secret": {"secretName": TOKENS_SECRET,
                                                             "defaultMode": SECRET_FILE_MODE}},
                                {"name": "work", "emptyDir": {}}],
                },
            },
        },
    }
