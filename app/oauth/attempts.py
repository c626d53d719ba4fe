"""Wrong keys on the consent page, counted per client address in the store.

Each wrong key takes one of `LIMIT` slots of the address's current window with an atomic
`kv_add`, so processes and Lambda instances share the count without a counter primitive.
When every slot is taken the address is refused until the window ends. A right key takes
no slot: only failures count.
"""

from __future__ import annotations

import hashlib

from app.oauth.grants import KeyValue

__all__ = ["LIMIT", "WINDOW", "WrongKeys"]

LIMIT = 10
WINDOW = 900.0


class WrongKeys:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @staticmethod
    def _prefix(address: str, now: float) -> str:
        # The address is hashed: the store needs no personal data to count.
        who = hashlib.sha256(address.encode()).hexdigest()[:32]
        return f"oauth:wrong:{who}:{int(now // WINDOW)}:"

    async def blocked(self, address: str, now: float) -> bool:
        """True when `address` has used all its tries for this window."""
        return await self.kv.kv_get(self._prefix(address, now) + str(LIMIT - 1), now) is not None

    async def record(self, address: str, now: float) -> None:
        """Count one wrong key for `address`."""
        prefix = self._prefix(address, now)
        for slot in range(LIMIT):
            if await self.kv.kv_add(prefix + str(slot), b"1", WINDOW, now):
                return
