"""The README.md written beside the rendered files: how to build the image, bring the network up, attach the
toolkit and run the checker, for this very network (its namespace, image, node names and URLs)."""

from __future__ import annotations

from testnet.render import compose, kubernetes
from testnet.render.image import RPC_PORT
from testnet.render.network import RenderedNetwork, RenderOptions


def _header(network: RenderedNetwork, options: RenderOptions) -> str:
    genesis = network.genesis
    context = str(options.context.resolve()) if options.context else "/path/to/chainlab"
    return f"""\
# chainlab network: {len(network.nodes)} {genesis.consensus} nodes, chain {genesis.chain_id}

Written by `chainlab testnet render --target {options.target}` (seed `{network.seed}`, genesis
`{genesis.hash.hex()}`, topology `{network.topology}`). The genesis and node keys are those `chainlab testnet up`
makes with the same options and seed. docs/DEPLOY.md, "Kubernetes and Compose", explains every piece.

Files marked *secret* hold node keys or admin tokens: they are mode 0600; keep them so, and out of version control.

## 1. Build the node image

```
docker build -f {(options.out / "Dockerfile").resolve()} -t {options.image} {context}
```

The build context is the chainlab source tree; `Dockerfile.dockerignore` beside the Dockerfile (read by BuildKit,
the default builder) keeps caches, virtual environments, tests and this directory out of the image.
"""


def kubernetes_notes(network: RenderedNetwork, options: RenderOptions) -> str:
    """README.md for the Kubernetes target."""
    ns = options.namespace
    first = network.nodes[0]
    pods = ", ".join(f"{kubernetes.STATEFULSET}-{node.index}" for node in network.nodes)
    forwards = "\n".join(f"kubectl -n {ns} port-forward pod/{kubernetes.STATEFULSET}-{node.index} "
                         f"{18545 + node.index}:{RPC_PORT} &" for node in network.nodes)
    local_urls = ",".join(f"http://127.0.0.1:{18545 + node.index}" for node in network.nodes)
    return _header(network, options) + f"""
Make the image available to the cluster: push it to a registry the cluster pulls from (and render again with
`--image REGISTRY/NAME:TAG`), or load it into a local cluster (`kind load docker-image {options.image}`,
`minikube image load {options.image}`).

## 2. Apply

```
kubectl apply -f kubernetes/
kubectl -n {ns} rollout status statefulset/{kubernetes.STATEFULSET}
```

- `kubernetes/00-namespace.yaml`: Namespace `{ns}`
- `kubernetes/10-genesis-configmap.yaml`: ConfigMap `{kubernetes.GENESIS_CONFIGMAP}` (`genesis.toml`)
- `kubernetes/20-secrets.yaml` (*secret*): Secret `{kubernetes.KEYS_SECRET}` (each node's `node.key` and
  `config.toml`, which holds its admin token) and Secret `{kubernetes.TOKENS_SECRET}` (the `NAME TOKEN` file)
- `kubernetes/30-service.yaml`: headless Service `{kubernetes.SERVICE}`: `{first.host}`, ...
- `kubernetes/40-statefulset.yaml`: StatefulSet `{kubernetes.STATEFULSET}` (pods {pods}), probes on
  `/v1/status`, a 1Gi volume each
- `kubernetes/50-poddisruptionbudget.yaml`: at most one node down at a time for voluntary disruptions
- `kubernetes/60-checker-job.yaml`: Job `{kubernetes.CHECKER_JOB}`: attach, load, check
- `admin-tokens` (*secret*): the same `NAME TOKEN` file, for `testnet attach` from your machine

Each node bootstraps from its topology neighbours by their stable names (`{first.p2p_url}`, ...).

## 3. The checker Job

It starts with the nodes, retries `testnet attach` until every node answers, then runs `testnet load --tps
{options.load_tps:g} --duration {options.load_duration_s:g}` and `testnet check`. Its exit status is the verdict:

```
kubectl -n {ns} wait --for=condition=complete --timeout=15m job/{kubernetes.CHECKER_JOB}
kubectl -n {ns} logs job/{kubernetes.CHECKER_JOB}
```

To run it again:
`kubectl -n {ns} delete job {kubernetes.CHECKER_JOB} && kubectl apply -f kubernetes/60-checker-job.yaml`.

## 4. Attach the toolkit from your machine

```
{forwards}
chainlab testnet attach --dir ./{ns}-attached --rpc {local_urls} \\
    --admin-token-file admin-tokens --seed {network.seed}
export CHAINLAB_TESTNET=./{ns}-attached
chainlab testnet status
chainlab testnet partition 0 1,2,3 && chainlab testnet heal
chainlab testnet check
```

`kill`, `stop`, `pause` and `logs` are refused on attached nodes: use `kubectl delete pod`, `kubectl logs`.

## 5. Take it down

```
kubectl delete namespace {ns}
```

This deletes the volumes' claims with the namespace; whether the volumes go too is the storage class's
reclaim policy.
"""


def compose_notes(network: RenderedNetwork, options: RenderOptions) -> str:
    """README.md for the Compose target."""
    urls = ",".join(f"http://127.0.0.1:{compose.HOST_RPC_PORT + node.index}" for node in network.nodes)
    build_note = ("`docker compose build` builds it too (compose.yaml names this Dockerfile and the source tree)."
                  if options.context else "compose.yaml has no `build:` (no --context was known): build it first.")
    return _header(network, options) + f"""
{build_note}

## 2. Bring it up

```
docker compose -f compose.yaml up -d node{" node".join(str(n.index) for n in network.nodes)}
docker compose -f compose.yaml ps
```

- `compose.yaml`: services {", ".join(n.name for n in network.nodes)} on network `{compose.NETWORK}`, a volume
  each, health checks on `/v1/status`; the one-shot service `checker`
- `genesis.toml`: the genesis (a Compose config)
- `secrets/` (*secret*, 0700): each node's `node.key` and `config.toml` (with its admin token), and `admin-tokens`

Each node's RPC is published on the host's loopback: {urls}. The containers run as root inside: Compose
bind-mounts file secrets with their host owner and mode 0600, which only root in the container can read.

## 3. The checker

```
docker compose -f compose.yaml up checker          # waits for every node to be healthy; exit status is the verdict
```

It runs `testnet attach` against `http://node0:{RPC_PORT}`, ..., `testnet load --tps {options.load_tps:g} --duration
{options.load_duration_s:g}` and `testnet check`. `docker compose up` with no service names starts it too.

## 4. Attach the toolkit from the host

```
chainlab testnet attach --dir ./{options.namespace}-attached --rpc {urls} \\
    --admin-token-file secrets/{compose.ADMIN_TOKENS_SECRET} --seed {network.seed}
export CHAINLAB_TESTNET=./{options.namespace}-attached
chainlab testnet status
```

Peers know each other as `ws://node0:30301/p2p`, ...: from the host, `partition`, `heal`, `netem`, `load` and
`check` work through the published RPC ports; `kill`/`pause` are `docker compose kill node1` / `pause node1`.

## 5. Take it down

```
docker compose -f compose.yaml down -v     # -v also removes the nodes' volumes
```
"""
