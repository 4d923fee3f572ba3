"""The node's JSON-over-HTTP RPC server (aiohttp), versioned under /v1; docs/RPC.md is the reference.

`RpcServer(config, api)` serves a `NodeAPI` (node/api.py). Every answer is JSON except /metrics (Prometheus
text) and /v1/events (Server-Sent Events). Every error, including aiohttp's own 404/405, is
`{"error": {"code": "<stable-code>", "message": "..."}}`: the client's fault is a 4xx with a code from the table
in docs/RPC.md (a refused transaction is 422 with its chain reject code), and a 500 `internal` is a bug whose
traceback is logged. Admin routes need `Authorization: Bearer <token>` and are off (403) without a token.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chain import crypto
from chain.block import Block
from chain.encoding import U64_MAX
from chain.errors import DecodeError, RejectError
from chain.locks import MAX_NAME_CHARS, decode_kv_record, decode_lock_record, kv_key, lock_key
from chain.tx import Transaction, decode_tx
from node.api import (
    READ_LEVELS,
    WAIT_LEVELS,
    AccountTx,
    EventSubscription,
    NodeAPI,
    ReadProof,
    RecordView,
    TxStatus,
    WaitLevel,
)
from node.metrics import NodeMetrics
from p2p.listener import ListenerGuard, SocketLimits
from p2p.protocol.messages import normalize_peer_address

log = logging.getLogger("chainlab.rpc")

MIB = 1024 * 1024
# TCP connections to the RPC port, counted at accept: `bench rpc` and the testnet's load generator keep up to 256
# keep-alive connections from 127.0.0.1, so the per-address cap sits above that; the header deadline and idle
# timeout sit above aiohttp clients' own 15 s keep-alive, so a client never reuses a connection we just closed.
RPC_SOCKET_LIMITS = SocketLimits(max_connections=1024, max_connections_per_address=512, header_timeout_s=10.0,
                                 idle_timeout_s=30.0)
MAX_BLOCKS_PER_PAGE = 100
DEFAULT_BLOCKS_PER_PAGE = 20
MAX_MEMPOOL_PAGE = 10_000
DEFAULT_MEMPOOL_PAGE = 1_000
DEFAULT_WAIT_TIMEOUT_S = 30
MAX_WAIT_TIMEOUT_S = 120
MAX_BLOCKS_PER_MINE = 1000
MAX_ACCOUNT_TXS_PER_PAGE = 100
DEFAULT_ACCOUNT_TXS_PER_PAGE = 25
# Engine codes that are the client's fault rather than the node's momentary state (everything else is a 503).
_CLIENT_READ_CODES = frozenset({"unsupported-read-level"})
_HEIGHT_RE = re.compile(r"[0-9]{1,20}")
_HASH_RE = re.compile(r"[0-9a-fA-F]{64}")
_HEX_RE = re.compile(r"(?:[0-9a-fA-F]{2})*")
_CURSOR_RE = re.compile(r"[0-9a-f]{24}")  # height (8 bytes) and position (4 bytes), hex
_BODY_CHUNK_BYTES = 64 * 1024
_ADMIN_PREFIX = "/v1/admin/"

# The explorer (docs/EXPLORER.md): static files shipped in the package, read once, served read-only. The policy lets
# the page load only its own script and style and talk only to this origin; nothing inline runs.
EXPLORER_DIR = Path(__file__).with_name("explorer")
EXPLORER_FILES = {"": ("index.html", "text/html"), "common.js": ("common.js", "text/javascript"),
                  "explorer.js": ("explorer.js", "text/javascript"), "explorer.css": ("explorer.css", "text/css")}
EXPLORER_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# Codes for HTTP errors that aiohttp raises itself (routing) or that a handler raises as an HTTPException.
_HTTP_CODES = {
    400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
    413: "body-too-large",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True, kw_only=True)
class RpcConfig:
    """How the RPC server listens. `port=0` picks a free port (read it from `RpcServer.port` after start).

    `admin_token=None` (or a blank string, as `[rpc] admin_token = ""` in config.toml) disables the admin routes
    (403); `cors=True` lets browsers on any origin call the non-admin routes.
    """

    host: str = "127.0.0.1"
    port: int = 0
    admin_token: str | None = None
    max_body_bytes: int = 1 * MIB
    cors: bool = False
    events_keepalive_s: float = 15.0
    shutdown_timeout_s: float = 5.0
    socket_limits: SocketLimits = RPC_SOCKET_LIMITS  # p2p/listener.py: caps and deadlines below HTTP

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
        if self.events_keepalive_s <= 0 or self.shutdown_timeout_s < 0:
            raise ValueError("events_keepalive_s must be positive and shutdown_timeout_s not negative")


class ApiError(Exception):
    """A client's fault (4xx) or the node's momentary state (503, 504): answered with `status` and
    `{"error": {"code": code, "message": message, **details}}` (`details`: documented per code, e.g. the
    transaction `hash` of a `wait-timeout`)."""

    def __init__(self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None,
                 details: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.details = dict(details or {})


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None,
                   details: Mapping[str, str] | None = None) -> web.Response:
    """The JSON error answer."""
    return web.json_response({"error": {**(details or {}), "code": code, "message": message}}, status=status,
                             headers=headers)


def unavailable(error: RejectError) -> ApiError:
    """A refusal for the node's state now (no leader, no quorum, busy, stopping): 503, the client may retry."""
    return ApiError(503, error.code, error.message)


def _json_default(value: object) -> object:
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(value: object) -> str:
    return json.dumps(value, default=_json_default)


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------- input parsing


def parse_block_ref(text: str) -> int | bytes:
    """A decimal height or a 64-hex-digit block hash (64 characters that are all hex are always a hash)."""
    if _HASH_RE.fullmatch(text):
        return bytes.fromhex(text)
    if _HEIGHT_RE.fullmatch(text):
        return int(text)
    raise ApiError(400, "bad-block-ref", "a block is named by its decimal height or its 64-hex-digit hash")


def parse_hash(text: str, what: str) -> bytes:
    """A 32-byte hash given as 64 hex digits."""
    if not _HASH_RE.fullmatch(text):
        raise ApiError(400, "bad-hex", f"a {what} hash is 64 hex digits")
    return bytes.fromhex(text)


def _query_uint(request: web.Request, name: str, default: int, *, least: int, most: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not _HEIGHT_RE.fullmatch(text) or not least <= int(text) <= most:
        raise ApiError(400, "bad-query", f"{name} must be an integer in [{least}, {most}]")
    return int(text)


def _wait_request(request: web.Request) -> tuple[WaitLevel | None, float]:
    """`wait=included|final` (absent: answer at once) and `timeout_s` (whole seconds, 1..MAX_WAIT_TIMEOUT_S)."""
    text = request.query.get("wait")
    level = next((candidate for candidate in WAIT_LEVELS if candidate == text), None)
    if text is not None and level is None:
        raise ApiError(400, "bad-query", f"wait must be one of {', '.join(WAIT_LEVELS)}")
    timeout_s = _query_uint(request, "timeout_s", DEFAULT_WAIT_TIMEOUT_S, least=1, most=MAX_WAIT_TIMEOUT_S)
    if level is None and "timeout_s" in request.query:
        raise ApiError(400, "bad-query", "timeout_s goes with wait=included|final")
    return level, float(timeout_s)


def _full_txs(request: web.Request) -> bool:
    value = request.query.get("txs", "hashes")
    if value not in ("hashes", "full"):
        raise ApiError(400, "bad-query", "txs must be 'hashes' (the default) or 'full'")
    return value == "full"


def encode_cursor(height: int, position: int) -> str:
    """The `next` cursor of an account's history page: where the next (older) page starts. Opaque to clients."""
    return (height.to_bytes(8, "big") + position.to_bytes(4, "big")).hex()


def parse_cursor(text: str) -> tuple[int, int]:
    """(height, position) of a cursor made by `encode_cursor`; ApiError `bad-query` for anything else."""
    if not _CURSOR_RE.fullmatch(text):
        raise ApiError(400, "bad-query", "before must be the `next` cursor of a previous page")
    raw = bytes.fromhex(text)
    return int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big")


def parse_address(text: str) -> bytes:
    """A checksummed text address; ApiError `bad-address` saying what is wrong."""
    try:
        return crypto.address_from_text(text)
    except crypto.AddressError as exc:
        raise ApiError(400, "bad-address", str(exc)) from None


def parse_record_name(text: str, what: str) -> str:
    """A lock name or register key (printable ASCII, 1..64 characters); ApiError `bad-name` otherwise."""
    if not 0 < len(text) <= MAX_NAME_CHARS or not text.isascii() or not text.isprintable():
        raise ApiError(400, "bad-name", f"a {what} is 1..{MAX_NAME_CHARS} printable ASCII characters")
    return text


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object: `bad-json` for anything that is not JSON, `bad-request` for a non-object."""
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError too
        raise ApiError(400, "bad-json", f"the body is not JSON: {exc.__class__.__name__}") from None
    if not isinstance(document, dict):
        raise ApiError(400, "bad-request", "the body must be a JSON object")
    return document


def _field(document: Mapping[str, Any], name: str, kind: type) -> Any:
    if name not in document:
        raise ApiError(400, "bad-request", f"missing field {name!r}")
    value = document[name]
    if type(value) is not kind:
        raise ApiError(400, "bad-request", f"field {name!r} must be a {'string' if kind is str else kind.__name__}")
    return value


# ----------------------------------------------------------------------------------------------- JSON views


def block_view(block: Block, *, full_txs: bool, final: bool, on_best_chain: bool,
               outcome_of: Callable[[bytes], str | None] | None = None) -> dict[str, object]:
    """Block JSON: Block.to_json plus where the block stands; with full transactions and `outcome_of`, each lock or
    register operation's recorded outcome as `result` (a best-chain fact: it spares a checker that reads every
    block one `GET /v1/transactions/{hash}` per operation, testnet/collect.py)."""
    view = block.to_json(full_txs=full_txs)
    if full_txs and outcome_of is not None:
        txs: list[dict[str, object]] = []
        for tx in block.txs:
            tx_view = tx.to_json()
            outcome = outcome_of(tx.hash) if tx.op is not None else None
            txs.append(tx_view if outcome is None else {**tx_view, "result": outcome})
        view["txs"] = txs
    view["final"] = final
    view["on_best_chain"] = on_best_chain
    return view


def tx_status_view(tx_hash: bytes, status: TxStatus) -> dict[str, object]:
    """Transaction status JSON."""
    return {
        "hash": tx_hash.hex(),
        "status": status.status,
        "height": status.height,
        "block": status.block_hash.hex() if status.block_hash is not None else None,
        "index": status.index,
        "tx": status.tx.to_json() if status.tx is not None else None,
        **({"result": status.outcome} if status.outcome is not None else {}),
    }


def account_tx_view(address: bytes, entry: AccountTx) -> dict[str, object]:
    """One row of an account's history, as `address` sees it."""
    tx = entry.tx
    direction = entry.direction(address)
    counterparty = tx.recipient if direction == "sent" else tx.sender_address
    return {
        "hash": tx.hash.hex(), "height": entry.height, "block": entry.block_hash.hex(), "position": entry.position,
        "direction": direction, "counterparty": crypto.address_to_text(counterparty), "amount": tx.amount,
        "fee": tx.fee, "nonce": tx.nonce, "final": entry.final, "confirmations": entry.confirmations,
    }


def pending_tx_view(tx: Transaction) -> dict[str, object]:
    """One of the account's own pooled transactions."""
    direction = "self" if tx.sender_address == tx.recipient else "sent"
    return {"hash": tx.hash.hex(), "direction": direction, "counterparty": crypto.address_to_text(tx.recipient),
            "amount": tx.amount, "fee": tx.fee, "nonce": tx.nonce}


# ------------------------------------------------------------------------------------------------- server


class RpcServer:
    """Serves `api` over HTTP as configured; `await start()`, then read `port`/`url`; `await stop()` when done."""

    def __init__(self, config: RpcConfig, api: NodeAPI, *, metrics: NodeMetrics | None = None) -> None:
        self.config = config
        self.api = api
        self.metrics = metrics if metrics is not None else NodeMetrics.of(api.metrics)
        token = (config.admin_token or "").strip()
        self._token_digest = hashlib.sha256(token.encode("utf-8")).digest() if token else None
        self._runner: web.AppRunner | None = None
        self.listener = ListenerGuard("rpc", config.socket_limits)  # TCP-level caps and header deadline
        self._port: int | None = None
        self._streams: set[EventSubscription] = set()
        self._explorer_files = {route: ((EXPLORER_DIR / name).read_bytes(), content_type)
                                for route, (name, content_type) in EXPLORER_FILES.items()}
        self.app = self._build_app()

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=self.config.max_body_bytes)
        get = [
            ("/v1/status", self._status), ("/v1/genesis", self._genesis), ("/v1/blocks", self._blocks),
            ("/v1/blocks/{ref}", self._block),
            ("/v1/tips", self._tips), ("/v1/reorgs", self._reorgs), ("/v1/transactions/{hash}", self._tx_status),
            ("/v1/accounts/{address}", self._account), ("/v1/accounts/{address}/txs", self._account_txs),
            ("/v1/locks/{name}", self._lock), ("/v1/kv/{key}", self._kv),
            ("/v1/mempool", self._mempool), ("/v1/peers", self._peers),
            ("/v1/events", self._events), ("/metrics", self._metrics),
            ("/explorer", self._explorer_root), ("/explorer/", self._explorer), ("/explorer/{file}", self._explorer),
            ("/favicon.ico", self._no_icon), ("/v1/admin/trace", self._admin_trace),
        ]
        post = [
            ("/v1/transactions", self._submit_tx), ("/v1/admin/faults", self._admin_faults),
            ("/v1/admin/mining", self._admin_mining), ("/v1/admin/peers", self._admin_peers),
            ("/v1/admin/engine/{action}", self._admin_engine), ("/v1/admin/mine", self._admin_mine),
            ("/v1/admin/peers/remove", self._admin_remove_peer),
        ]
        for path, handler in get:
            app.router.add_get(path, handler, allow_head=False)
        for path, handler in post:
            app.router.add_post(path, handler)
        if self.config.cors:
            app.router.add_route("OPTIONS", "/{tail:.*}", self._preflight)
        return app

    async def start(self) -> None:
        """Bind and start serving."""
        if self._runner is not None:
            raise RuntimeError("the RPC server is already started")
        if self._token_digest is not None and not _is_loopback(self.config.host):
            log.warning("RPC admin routes are reachable on %s, which is not a loopback address", self.config.host)
        runner = web.AppRunner(self.app, shutdown_timeout=self.config.shutdown_timeout_s, handle_signals=False,
                               keepalive_timeout=self.config.socket_limits.idle_timeout_s)
        await runner.setup()
        self.listener.install(runner)
        try:
            site = web.TCPSite(runner, self.config.host, self.config.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        log.info("RPC listening on %s (explorer %s/explorer/)", self.url, self.url)

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._port is None:
            raise RuntimeError("the RPC server is not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the server, e.g. http://127.0.0.1:8545."""
        host = self.config.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    async def stop(self) -> None:
        """End event streams, stop listening and close connections; idempotent."""
        for subscription in list(self._streams):
            subscription.close()
        runner, self._runner, self._port = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    # -- middleware ------------------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        try:
            response = await handler(request)
        except ApiError as exc:
            response = error_response(exc.status, exc.code, exc.message, exc.headers, exc.details)
        except web.HTTPException as exc:
            response = self._http_exception_response(request, exc)
        except Exception:
            log.exception("RPC bug answering %s %s", request.method, request.path)
            self.metrics.rpc_internal_errors.inc()
            response = error_response(500, "internal", "internal error (a bug; the node logged it)")
        if self.config.cors and not response.prepared and not request.path.startswith(_ADMIN_PREFIX):
            response.headers["Access-Control-Allow-Origin"] = "*"
        self.metrics.rpc_requests.labels(method=request.method, route=route, status=str(response.status)).inc()
        if route != "/v1/events":
            self.metrics.rpc_request_seconds.labels(route=route).observe(time.perf_counter() - started)
        return response

    @staticmethod
    def _http_exception_response(request: web.Request, exc: web.HTTPException) -> web.Response:
        status = exc.status
        if status < 400:
            return error_response(500, "internal", f"unexpected HTTP {status} from a handler")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        if status == 404:
            message = f"no route {request.path}"
        elif status == 405:
            message = f"{request.method} is not allowed here; allowed: {exc.headers.get('Allow', '')}"
        else:
            message = exc.reason
        return error_response(status, _HTTP_CODES.get(status, f"http-{status}"), message, headers)

    async def _no_icon(self, request: web.Request) -> web.Response:
        return web.Response(status=204)  # the explorer has no icon; browsers ask for one on every page

    async def _explorer_root(self, request: web.Request) -> web.Response:
        return web.Response(status=301, headers={"Location": "/explorer/"})

    async def _explorer(self, request: web.Request) -> web.Response:
        entry = self._explorer_files.get(request.match_info.get("file", ""))
        if entry is None:
            raise web.HTTPNotFound()
        body, content_type = entry
        return web.Response(body=body, content_type=content_type, charset="utf-8", headers=EXPLORER_HEADERS)

    async def _preflight(self, request: web.Request) -> web.Response:
        if request.path.startswith(_ADMIN_PREFIX):
            raise ApiError(403, "forbidden", "admin routes do not allow cross-origin requests")
        return web.Response(status=204, headers={
            "Access-Control-Allow-Methods": "GET, POST",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "600",
        })

    # -- helpers ---------------------------------------------------------------------------------------------

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self.config.max_body_bytes
        too_large = ApiError(413, "body-too-large", f"the body exceeds {limit} bytes")
        declared = request.content_length
        if declared is not None and declared > limit:
            raise too_large
        body = bytearray()
        try:
            async for chunk in request.content.iter_chunked(_BODY_CHUNK_BYTES):
                body += chunk
                if len(body) > limit:
                    raise too_large
        except (ConnectionError, HttpProcessingError) as exc:  # a bad chunked encoding, a truncated body
            raise ApiError(400, "bad-request", f"the body could not be read: {exc.__class__.__name__}") from None
        return bytes(body)

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        return parse_json_object(await self._read_body(request))

    def _require_admin(self, request: web.Request) -> None:
        if self._token_digest is None:
            raise ApiError(403, "admin-disabled", "admin routes are disabled: the node has no admin token")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        given = hashlib.sha256(token.strip().encode("utf-8", "surrogateescape")).digest()
        # Comparing digests in constant time hides both the token and its length from timing.
        if not (hmac.compare_digest(given, self._token_digest) and scheme.lower() == "bearer"):
            raise ApiError(401, "unauthorized", "missing or wrong admin token (Authorization: Bearer <token>)",
                           headers={"WWW-Authenticate": 'Bearer realm="chainlab-admin"'})

    def _block_json(self, block: Block, full_txs: bool) -> dict[str, object]:
        position = self.api.block_height_info(block.hash)
        return block_view(block, full_txs=full_txs, final=position.final, on_best_chain=position.on_best_chain,
                          outcome_of=self.api.op_outcome if position.on_best_chain else None)

    # -- public routes ---------------------------------------------------------------------------------------

    async def _status(self, request: web.Request) -> web.Response:
        return _json(self.api.status())

    async def _genesis(self, request: web.Request) -> web.Response:
        genesis = self.api.genesis
        return _json({"genesis": genesis.hash.hex(), "chain_id": genesis.chain_id, "toml": genesis.to_toml()})

    async def _block(self, request: web.Request) -> web.Response:
        ref = parse_block_ref(request.match_info["ref"])
        full_txs = _full_txs(request)
        block = self.api.block(ref) if not isinstance(ref, int) or ref <= U64_MAX else None
        if block is None:
            shown = ref.hex() if isinstance(ref, bytes) else f"at height {ref}"
            raise ApiError(404, "unknown-block", f"no block {shown}")
        return _json({**self._block_json(block, full_txs), "seal_decoded": self.api.describe_seal(block.header)})

    async def _blocks(self, request: web.Request) -> web.Response:
        from_height = _query_uint(request, "from", 0, least=0, most=U64_MAX)
        limit = _query_uint(request, "limit", DEFAULT_BLOCKS_PER_PAGE, least=1, most=MAX_BLOCKS_PER_PAGE)
        full_txs = _full_txs(request)
        blocks = self.api.blocks_range(from_height, limit)[:limit]
        return _json({"blocks": [self._block_json(block, full_txs) for block in blocks]})

    async def _reorgs(self, request: web.Request) -> web.Response:
        return _json({"reorgs": self.api.reorgs()})

    async def _tips(self, request: web.Request) -> web.Response:
        rows = [
            {"hash": tip.hash.hex(), "height": tip.height, "work": str(tip.cumulative_work), "status": tip.status,
             "branch_length": tip.branch_length}
            for tip in self.api.tips()
        ]
        return _json({"tips": rows})

    async def _submit_tx(self, request: web.Request) -> web.Response:
        wait, timeout_s = _wait_request(request)
        refusal = self.api.write_refusal()  # before any decoding work: a node without a leader takes no writes
        if refusal is not None:
            self.metrics.tx_submissions.labels(result=refusal.code).inc()
            raise unavailable(refusal)
        text = _field(await self._json_body(request), "tx", str)
        if not _HEX_RE.fullmatch(text):
            raise ApiError(400, "bad-hex", "tx must be the hex of the transaction's canonical encoding")
        try:
            tx = decode_tx(bytes.fromhex(text))
        except DecodeError as exc:
            self.metrics.tx_submissions.labels(result=exc.code).inc()
            raise ApiError(400, exc.code, exc.message) from None
        try:
            await self.api.submit_tx(tx)
        except RejectError as exc:
            self.metrics.tx_submissions.labels(result=exc.code).inc()
            raise ApiError(422, exc.code, exc.message) from None
        self.metrics.tx_submissions.labels(result="accepted").inc()
        if wait is None:
            return _json({"hash": tx.hash.hex()}, status=202)
        try:
            status = await self.api.wait_for_tx(tx.hash, wait, timeout_s)
        except RejectError as exc:  # busy, stopping
            raise unavailable(exc) from None
        if status is None:
            raise ApiError(504, "wait-timeout", f"transaction {tx.hash.hex()} is submitted but not {wait} after "
                           f"{timeout_s:g} s", details={"hash": tx.hash.hex()})
        return _json({"hash": tx.hash.hex(), "status": status.status, "height": status.height,
                      "block_hash": status.block_hash.hex() if status.block_hash is not None else None,
                      "index": status.index, **({"result": status.outcome} if status.outcome is not None else {})})

    async def _tx_status(self, request: web.Request) -> web.Response:
        tx_hash = parse_hash(request.match_info["hash"], "transaction")
        return _json(tx_status_view(tx_hash, self.api.tx_status(tx_hash)))

    async def _account(self, request: web.Request) -> web.Response:
        address = parse_address(request.match_info["address"])
        level = request.query.get("at", "latest")
        if level not in READ_LEVELS:
            raise ApiError(400, "unsupported-read-level",
                           f"read level {level[:40]!r} is not supported; use one of {', '.join(READ_LEVELS)}")
        proof = None
        if level == "linearizable":
            try:
                view, proof = await self.api.account_linearizable(address)
            except RejectError as exc:
                if exc.code in _CLIENT_READ_CODES:
                    raise ApiError(400, exc.code, exc.message) from None
                raise unavailable(exc) from None
        else:
            view = self.api.account(address, "final" if level == "final" else "latest")
        body: dict[str, object] = {
            "address": crypto.address_to_text(address), "at": level, "balance": view.balance, "nonce": view.nonce,
            "height": view.height,
        }
        if proof is not None:
            body["read_proof"] = proof.to_json()
        if view.pending_nonce is not None:
            body["pending_nonce"] = view.pending_nonce
        return _json(body)

    async def _read_record(self, request: web.Request, key: bytes) -> tuple[str, RecordView, ReadProof | None]:
        """A record at the request's read level (`?at=`, default `final`: a grant counts once final)."""
        level = request.query.get("at", "final")
        if level not in READ_LEVELS:
            raise ApiError(400, "unsupported-read-level",
                           f"read level {level[:40]!r} is not supported; use one of {', '.join(READ_LEVELS)}")
        if level != "linearizable":
            return level, self.api.record(key, "final" if level == "final" else "latest"), None
        try:
            view, proof = await self.api.record_linearizable(key)
        except RejectError as exc:
            if exc.code in _CLIENT_READ_CODES:
                raise ApiError(400, exc.code, exc.message) from None
            raise unavailable(exc) from None
        return level, view, proof

    async def _lock(self, request: web.Request) -> web.Response:
        name = parse_record_name(request.match_info["name"], "lock name")
        level, view, proof = await self._read_record(request, lock_key(name))
        lock = decode_lock_record(view.record) if view.record is not None else None
        body: dict[str, object] = {"name": name, "at": level, "height": view.height,
                                   "lock": lock.to_json(view.height) if lock is not None else None}
        if proof is not None:
            body["read_proof"] = proof.to_json()
        return _json(body)

    async def _kv(self, request: web.Request) -> web.Response:
        key = parse_record_name(request.match_info["key"], "key")
        level, view, proof = await self._read_record(request, kv_key(key))
        record = decode_kv_record(view.record) if view.record is not None else None
        body: dict[str, object] = {"key": key, "at": level, "height": view.height,
                                   **(record.to_json() if record is not None else {"value": None})}
        if proof is not None:
            body["read_proof"] = proof.to_json()
        return _json(body)

    async def _account_txs(self, request: web.Request) -> web.Response:
        address = parse_address(request.match_info["address"])
        limit = _query_uint(request, "limit", DEFAULT_ACCOUNT_TXS_PER_PAGE, least=1, most=MAX_ACCOUNT_TXS_PER_PAGE)
        cursor = request.query.get("before")
        before = parse_cursor(cursor) if cursor is not None else None
        page = self.api.account_txs(address, before, limit)
        return _json({
            "address": crypto.address_to_text(address),
            "txs": [account_tx_view(address, entry) for entry in page.txs[:limit]],
            "next": encode_cursor(*page.older) if page.older is not None else None,
            "pending": [pending_tx_view(tx) for tx in page.pending],
        })

    async def _mempool(self, request: web.Request) -> web.Response:
        limit = _query_uint(request, "limit", DEFAULT_MEMPOOL_PAGE, least=1, most=MAX_MEMPOOL_PAGE)
        entries = self.api.mempool()
        return _json({
            "size": len(entries), "bytes": sum(entry.size_bytes for entry in entries),
            "txs": [entry.to_json() for entry in entries[:limit]],
        })

    async def _peers(self, request: web.Request) -> web.Response:
        return _json({"peers": self.api.peers(), "configured": self.api.configured_peers()})

    async def _metrics(self, request: web.Request) -> web.Response:
        self.metrics.refresh()
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        subscription = self.api.subscribe()
        self._streams.add(subscription)
        self.metrics.rpc_event_streams.inc()
        try:
            response = web.StreamResponse(headers={
                "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
            })
            if self.config.cors:
                response.headers["Access-Control-Allow-Origin"] = "*"
            await response.prepare(request)
            await self._pump_events(subscription, response)
            return response
        finally:
            subscription.close()
            self._streams.discard(subscription)
            self.metrics.rpc_event_streams.dec()

    async def _pump_events(self, subscription: EventSubscription, response: web.StreamResponse) -> None:
        """Write each event as one `data:` line until the subscription ends or the client goes away."""
        iterator = aiter(subscription)
        # The pending read survives keepalive timeouts (no cancellation), so a subscription need not be
        # cancellation-safe to lose no event.
        next_event: asyncio.Future[dict[str, object]] = asyncio.ensure_future(anext(iterator))
        try:
            await response.write(b"retry: 2000\n\n")
            while True:
                done, _ = await asyncio.wait({next_event}, timeout=self.config.events_keepalive_s)
                if not done:
                    await response.write(b": keepalive\n\n")
                    continue
                try:
                    event = next_event.result()
                except StopAsyncIteration:
                    return
                await response.write(f"data: {_dumps(event)}\n\n".encode())
                next_event = asyncio.ensure_future(anext(iterator))
        except ConnectionError:
            log.debug("event stream client went away")
        except Exception:
            # Headers are sent: a JSON error is impossible, so end the stream after logging the bug.
            log.exception("RPC bug in the event stream")
            self.metrics.rpc_internal_errors.inc()
        finally:
            next_event.cancel()

    # -- admin routes ----------------------------------------------------------------------------------------

    async def _admin_faults(self, request: web.Request) -> web.Response:
        self._require_admin(request)
        spec = await self._json_body(request)
        try:
            faults = self.api.set_faults(spec)
        except ValueError as exc:
            raise ApiError(400, "bad-fault-spec", str(exc)) from None
        return _json(faults)

    async def _admin_trace(self, request: web.Request) -> web.StreamResponse:
        """The node's causal trace file as it is now (JSON lines; a line being written may be torn at the end):
        `testnet trace` on a node of another host (docs/TRACING.md)."""
        self._require_admin(request)
        path = self.api.trace_path()
        if path is None or not path.is_file():
            raise ApiError(404, "no-trace", "this node does not trace ([node] trace_file is empty)" if path is None
                           else f"no trace file yet at {path}")
        return web.FileResponse(path, headers={"Content-Type": "application/x-ndjson"})

    async def _admin_mining(self, request: web.Request) -> web.Response:
        self._require_admin(request)
        enabled = _field(await self._json_body(request), "enabled", bool)
        try:
            state = self.api.set_mining(enabled)
        except ValueError as exc:
            raise ApiError(400, "mining-unsupported", str(exc)) from None
        return _json(state)

    async def _admin_engine(self, request: web.Request) -> web.Response:
        self._require_admin(request)
        action = request.match_info["action"]
        body = await self._json_body(request)
        if "value" not in body:
            raise ApiError(400, "bad-request", "missing field 'value'")
        try:
            answer = self.api.engine_admin(action[:64], body["value"])
        except RejectError as exc:
            status = 404 if exc.code == "unsupported" else 409 if exc.code in ("not-leader",
                                                                                 "config-change-pending") else 400
            raise ApiError(status, exc.code, exc.message) from None
        return _json(answer)

    async def _admin_mine(self, request: web.Request) -> web.Response:
        """Mine {"blocks": N} blocks now (regtest's generatetoaddress), paying {"address": "cl..."} if given."""
        self._require_admin(request)
        body = await self._json_body(request)
        count = _field(body, "blocks", int)
        if not 1 <= count <= MAX_BLOCKS_PER_MINE:
            raise ApiError(400, "bad-request", f"blocks must be in [1, {MAX_BLOCKS_PER_MINE}]")
        address: bytes | None = None
        if body.get("address") is not None:
            try:
                address = crypto.address_from_text(_field(body, "address", str))
            except ValueError as exc:
                raise ApiError(400, "bad-address", str(exc)) from None
        unknown = sorted(set(body) - {"blocks", "address"})
        if unknown:
            raise ApiError(400, "bad-request", f"unknown field {unknown[0]!r}")
        try:
            hashes = await self.api.mine_blocks(count, address)
        except RejectError as exc:
            status = 400 if exc.code == "mining-unsupported" else 503 if exc.code == "stopping" else 409
            raise ApiError(status, exc.code, exc.message) from None
        return _json({"blocks": [block_hash.hex() for block_hash in hashes]})

    async def _admin_remove_peer(self, request: web.Request) -> web.Response:
        """Forget {"peer": URL or node id} and disconnect it."""
        self._require_admin(request)
        target = _field(await self._json_body(request), "peer", str)
        if not target.strip() or len(target) > 512:
            raise ApiError(400, "bad-request", "peer must be a peer URL or node id (at most 512 characters)")
        try:
            disconnected = self.api.remove_peer(target)
        except ValueError as exc:
            raise ApiError(404, "unknown-peer", str(exc)) from None
        return _json({"peer": target, "disconnected": disconnected})

    async def _admin_peers(self, request: web.Request) -> web.Response:
        self._require_admin(request)
        given = _field(await self._json_body(request), "url", str)
        try:
            url = normalize_peer_address(given)  # host:port, ws://host:port[/path]
            self.api.connect_peer(url)
        except ValueError as exc:
            raise ApiError(400, "bad-peer-url", str(exc)) from None
        return _json({"url": url, "status": "connecting"}, status=202)
