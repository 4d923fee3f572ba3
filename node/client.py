"""A synchronous client of the node RPC (docs/RPC.md), on the standard library only.

CLI commands use it without an event loop. Each method maps to one route and returns the decoded JSON. A JSON
error answer raises `RpcError(code, message, http_status)`; a node that cannot be reached (connection refused,
timeout, connection dropped) raises `RpcUnavailable(url, reason)`. The client connects directly to the node:
proxy environment variables are ignored, since a node is normally on this machine or its network.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Generator, Mapping
from typing import Any

DEFAULT_TIMEOUT_S = 10.0
_MAX_ERROR_BODY_BYTES = 64 * 1024


class RpcError(Exception):
    """The node answered with an error: `code` is the stable error code, `http_status` the HTTP status, `details`
    the error's other fields (e.g. the transaction `hash` of a `wait-timeout`)."""

    def __init__(self, code: str, message: str, http_status: int, details: Mapping[str, object] | None = None) -> None:
        super().__init__(f"[{code}] {message} (HTTP {http_status})")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.details = dict(details or {})


class RpcUnavailable(Exception):
    """The node at `url` could not be reached or went away mid-answer; `reason` says why."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the node at {url}: {reason}")
        self.url = url
        self.reason = reason


def normalize_base_url(base_url: str) -> str:
    """`base_url` with `http://` added when it has no scheme and without a trailing slash; ValueError when it is
    not an http(s) URL with a host."""
    text = base_url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or parts.query or parts.fragment:
        raise ValueError(f"not a node URL: {base_url!r} (expected http://HOST:PORT)")
    return text.rstrip("/")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or exc.__class__.__name__


class RpcClient:
    """Calls the node RPC at `base_url` (e.g. http://127.0.0.1:8545), waiting at most `timeout_s` per call."""

    def __init__(self, base_url: str, *, admin_token: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.base_url = normalize_base_url(base_url)
        self.admin_token = admin_token
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # -- transport -------------------------------------------------------------------------------------------

    def _url(self, path: str, query: Mapping[str, object] | None = None) -> str:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: str(v) for k, v in query.items() if v is not None})
        return url

    def _open(
        self, method: str, path: str, *, query: Mapping[str, object] | None = None, body: object = None,
        admin: bool = False, timeout_s: float | None,
    ) -> http.client.HTTPResponse:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if admin and self.admin_token is not None:
            headers["Authorization"] = f"Bearer {self.admin_token}"
        request = urllib.request.Request(self._url(path, query), data=data, headers=headers, method=method)
        try:
            response: http.client.HTTPResponse = self._opener.open(request, timeout=timeout_s)
        except urllib.error.HTTPError as exc:
            with exc:
                raise self._error_from(exc.code, exc.read(_MAX_ERROR_BODY_BYTES)) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise RpcUnavailable(self.base_url, _reason(exc)) from None
        return response

    @staticmethod
    def _error_from(status: int, raw: bytes) -> RpcError:
        try:
            error = json.loads(raw)["error"]
            code, message = error["code"], error["message"]
            if isinstance(code, str) and isinstance(message, str):
                details = {k: v for k, v in error.items() if k not in ("code", "message")}
                return RpcError(code, message, status, details)
        except (ValueError, TypeError, KeyError):
            pass
        text = raw.decode("utf-8", "replace").strip()[:200]
        return RpcError(f"http-{status}", text or f"HTTP {status} without an error body", status)

    def _call(
        self, method: str, path: str, *, query: Mapping[str, object] | None = None, body: object = None,
        admin: bool = False, timeout_s: float | None = None,
    ) -> Any:
        response = self._open(method, path, query=query, body=body, admin=admin,
                              timeout_s=self.timeout_s if timeout_s is None else timeout_s)
        with response:
            try:
                raw = response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise RpcUnavailable(self.base_url, _reason(exc)) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise RpcError("bad-response", "the node's answer is not JSON", response.status) from None

    # -- routes ----------------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """GET /v1/status."""
        result: dict[str, Any] = self._call("GET", "/v1/status")
        return result

    def genesis(self) -> dict[str, Any]:
        """GET /v1/genesis: {"genesis": hash hex, "chain_id", "toml": the genesis document}."""
        result: dict[str, Any] = self._call("GET", "/v1/genesis")
        return result

    def block(self, ref: int | str | bytes, *, full_txs: bool = False) -> dict[str, Any]:
        """GET /v1/blocks/{ref}: a height, or a hash (bytes or hex)."""
        text = ref.hex() if isinstance(ref, bytes) else str(ref)
        result: dict[str, Any] = self._call(
            "GET", f"/v1/blocks/{urllib.parse.quote(text, safe='')}", query={"txs": "full" if full_txs else None}
        )
        return result

    def blocks(self, from_height: int = 0, limit: int = 20, *, full_txs: bool = False) -> list[dict[str, Any]]:
        """GET /v1/blocks?from=&limit=: up to `limit` (at most 100) best-chain blocks from `from_height`."""
        query = {"from": from_height, "limit": limit, "txs": "full" if full_txs else None}
        result: list[dict[str, Any]] = self._call("GET", "/v1/blocks", query=query)["blocks"]
        return result

    def tips(self) -> list[dict[str, Any]]:
        """GET /v1/tips."""
        result: list[dict[str, Any]] = self._call("GET", "/v1/tips")["tips"]
        return result

    def reorgs(self) -> list[dict[str, Any]]:
        """GET /v1/reorgs: the node's last reorgs, newest first."""
        result: list[dict[str, Any]] = self._call("GET", "/v1/reorgs")["reorgs"]
        return result

    def submit_tx(self, raw: bytes) -> str:
        """POST /v1/transactions with a transaction's canonical encoding; returns its hash (hex)."""
        result: str = self._call("POST", "/v1/transactions", body={"tx": bytes(raw).hex()})["hash"]
        return result

    def submit_tx_and_wait(self, raw: bytes, wait: str = "final", *, timeout_s: int = 30) -> dict[str, Any]:
        """POST /v1/transactions?wait=included|final&timeout_s=: submit, then return once the node has the
        transaction in a connected (`included`) or final block: {hash, status, height, block_hash}. After
        `timeout_s` (1..120) the node answers RpcError `wait-timeout` (HTTP 504) with the hash in `details`; the
        transaction stays submitted. The socket waits `timeout_s` plus this client's own timeout."""
        result: dict[str, Any] = self._call("POST", "/v1/transactions", query={"wait": wait, "timeout_s": timeout_s},
                                            body={"tx": bytes(raw).hex()}, timeout_s=timeout_s + self.timeout_s)
        return result

    def tx_status(self, tx_hash: str | bytes) -> dict[str, Any]:
        """GET /v1/transactions/{hash}: status pending|included|final|unknown, height, block, index."""
        text = tx_hash.hex() if isinstance(tx_hash, bytes) else tx_hash
        result: dict[str, Any] = self._call("GET", f"/v1/transactions/{urllib.parse.quote(text, safe='')}")
        return result

    def account(self, address: str, at: str = "latest") -> dict[str, Any]:
        """GET /v1/accounts/{address}?at=latest|final|linearizable: balance, nonce, height (and pending_nonce for
        latest, read_proof {term, read_index, applied_height, block_hash} for linearizable). A linearizable read
        the node cannot serve now is RpcError with HTTP 503 (`no-leader`, `no-quorum`, `read-timeout`, `busy`);
        an engine without such reads answers 400 `unsupported-read-level`."""
        path = f"/v1/accounts/{urllib.parse.quote(address, safe='')}"
        result: dict[str, Any] = self._call("GET", path, query={"at": at})
        return result

    def lock(self, name: str, at: str = "final") -> dict[str, Any]:
        """GET /v1/locks/{name}?at=final|latest|linearizable: {name, at, height, lock} with `lock` None when never
        granted, else {holder, token, expires_at, granted_height, granted_index, held} (docs/LOCKS.md)."""
        result: dict[str, Any] = self._call("GET", f"/v1/locks/{urllib.parse.quote(name, safe='')}",
                                            query={"at": at})
        return result

    def kv(self, key: str, at: str = "final") -> dict[str, Any]:
        """GET /v1/kv/{key}?at=final|latest|linearizable: {key, at, height, value (hex or None), lock, token,
        written_height}."""
        result: dict[str, Any] = self._call("GET", f"/v1/kv/{urllib.parse.quote(key, safe='')}", query={"at": at})
        return result

    def account_txs(self, address: str, *, limit: int | None = None, before: str | None = None) -> dict[str, Any]:
        """GET /v1/accounts/{address}/txs: a page of the account's transactions, newest first, and `next`, the
        cursor to pass as `before` for the older page (None on the last page)."""
        path = f"/v1/accounts/{urllib.parse.quote(address, safe='')}/txs"
        result: dict[str, Any] = self._call("GET", path, query={"limit": limit, "before": before})
        return result

    def mempool(self, limit: int | None = None) -> dict[str, Any]:
        """GET /v1/mempool: size, bytes and the best-paying transactions."""
        result: dict[str, Any] = self._call("GET", "/v1/mempool", query={"limit": limit})
        return result

    def peers(self) -> list[dict[str, Any]]:
        """GET /v1/peers."""
        result: list[dict[str, Any]] = self._call("GET", "/v1/peers")["peers"]
        return result

    def metrics_text(self) -> str:
        """GET /metrics: the Prometheus text exposition."""
        response = self._open("GET", "/metrics", timeout_s=self.timeout_s)
        with response:
            try:
                return response.read().decode("utf-8")
            except (OSError, http.client.HTTPException) as exc:
                raise RpcUnavailable(self.base_url, _reason(exc)) from None

    def events(self, *, timeout_s: float | None = 60.0) -> Generator[dict[str, Any], None, None]:
        """GET /v1/events: yield each event until the node ends the stream. `timeout_s` bounds the wait for any
        line, keepalives included (the node sends one every 15 s by default); None waits forever. Close the
        generator to drop the connection."""
        response = self._open("GET", "/v1/events", timeout_s=timeout_s)
        with response:
            while True:
                try:
                    line = response.readline()
                except (OSError, http.client.HTTPException) as exc:
                    raise RpcUnavailable(self.base_url, _reason(exc)) from None
                if not line:
                    return
                if line.startswith(b"data:"):
                    try:
                        yield json.loads(line[5:])
                    except ValueError:
                        raise RpcError("bad-response", "an event is not JSON", response.status) from None

    # -- admin -----------------------------------------------------------------------------------------------

    def set_faults(self, spec: Mapping[str, object]) -> dict[str, Any]:
        """POST /v1/admin/faults (needs the admin token)."""
        result: dict[str, Any] = self._call("POST", "/v1/admin/faults", body=dict(spec), admin=True)
        return result

    def trace(self) -> str:
        """GET /v1/admin/trace (needs the admin token): the node's causal trace file, JSON lines."""
        response = self._open("GET", "/v1/admin/trace", admin=True, timeout_s=max(self.timeout_s, 60.0))
        with response:
            try:
                return response.read().decode("utf-8", "replace")
            except (OSError, http.client.HTTPException) as exc:
                raise RpcUnavailable(self.base_url, _reason(exc)) from None

    def set_mining(self, enabled: bool) -> dict[str, Any]:
        """POST /v1/admin/mining (needs the admin token)."""
        result: dict[str, Any] = self._call("POST", "/v1/admin/mining", body={"enabled": enabled}, admin=True)
        return result

    def engine_admin(self, action: str, value: object) -> dict[str, Any]:
        """POST /v1/admin/engine/{action} with `{"value": value}` (needs the admin token)."""
        result: dict[str, Any] = self._call("POST", f"/v1/admin/engine/{action}", body={"value": value},
                                            admin=True)
        return result

    def connect_peer(self, url: str) -> None:
        """POST /v1/admin/peers: ask the node to connect to the peer at `url` (needs the admin token)."""
        self._call("POST", "/v1/admin/peers", body={"url": url}, admin=True)

    def mine(self, blocks: int, address: str | None = None) -> list[str]:
        """POST /v1/admin/mine: the node mines `blocks` blocks now (paying `address`, else itself) and returns
        their hashes (needs the admin token). Waits as long as the mining takes."""
        body: dict[str, object] = {"blocks": blocks}
        if address is not None:
            body["address"] = address
        result: list[str] = self._call("POST", "/v1/admin/mine", body=body, admin=True, timeout_s=3600.0)["blocks"]
        return result

    def remove_peer(self, peer: str) -> list[str]:
        """POST /v1/admin/peers/remove: forget the peer URL or node id and disconnect it; the node ids
        disconnected (needs the admin token). RpcError `unknown-peer` (404) when the node knows no such peer."""
        result: list[str] = self._call("POST", "/v1/admin/peers/remove", body={"peer": peer},
                                       admin=True)["disconnected"]
        return result
