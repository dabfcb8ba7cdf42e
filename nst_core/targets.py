"""Style targets kept between jobs: a style's Gram matrices depend only on its pixels and
on what changes them (size, layers, precision), so a daemon that runs the same style again
skips computing them."""

from __future__ import annotations

import threading
from collections import OrderedDict

import torch


class StyleTargetCache:
    """Bounded LRU of style Gram targets, keyed by style pixels and what changes them."""

    def __init__(self, max_bytes: int = 512 << 20) -> None:
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def _size(targets: dict[str, torch.Tensor]) -> int:
        return sum(t.numel() * t.element_size() for t in targets.values())

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        with self._lock:
            targets = self._items.get(key)
            if targets is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return targets

    def put(self, key: str, targets: dict[str, torch.Tensor]) -> None:
        size = self._size(targets)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = targets
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= self._size(old)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)
