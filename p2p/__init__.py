"""chainlab P2P: the pure protocol core (`p2p.protocol`) and its asyncio/aiohttp driver (`p2p.service`).

See docs/P2P.md.
"""
