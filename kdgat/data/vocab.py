"""The CAN-ID vocabulary: which IDs get their own embedding row, built from benign training traffic only.

An ID is keyed as ``can_id | extended << 32`` so that the 11-bit ID 0x100 and the 29-bit ID 0x100 stay
distinct. Index 0 is the unknown slot: IDs never seen (or seen fewer than ``min_count`` times) in benign
training frames map to it, so a test capture can never grow the vocabulary or smuggle in an ID the
model had a chance to memorise.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

UNKNOWN = 0
EXTENDED_BIT = np.int64(1) << np.int64(32)


def id_keys(can_id: np.ndarray, extended: np.ndarray) -> np.ndarray:
    """int64 key per frame: the ID with the 29-bit flag above it."""
    key = can_id.astype(np.int64)
    if extended.any():
        key[extended] |= EXTENDED_BIT
    return key


def format_id(key: int) -> str:
    """candump spelling: 3 hex digits for an 11-bit ID, 8 for a 29-bit one (the width carries the flag)."""
    key = int(key)
    return f"{key & 0x1FFFFFFF:08X}" if key & int(EXTENDED_BIT) else f"{key:03X}"


def parse_id(text: str) -> int:
    value = int(text, 16)
    return value | int(EXTENDED_BIT) if len(text) > 3 else value


@dataclass(frozen=True)
class Vocabulary:
    keys: np.ndarray  # sorted int64 ID keys; key i has index i + 1
    min_count: int = 1

    def __len__(self) -> int:
        """Rows an embedding needs: the known IDs plus the unknown slot."""
        return len(self.keys) + 1

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Vocabulary index per key (int64), UNKNOWN for IDs outside the vocabulary."""
        keys = np.asarray(keys, dtype=np.int64)
        if len(self.keys) == 0:
            return np.zeros(keys.shape, dtype=np.int64)
        pos = np.searchsorted(self.keys, keys)
        pos_clipped = np.minimum(pos, len(self.keys) - 1)
        found = self.keys[pos_clipped] == keys
        return np.where(found, pos_clipped + 1, UNKNOWN).astype(np.int64)

    @property
    def ids(self) -> list[str]:
        return [format_id(k) for k in self.keys]

    @property
    def sha256(self) -> str:
        """Hash of the sorted ID list, so two runs can tell cheaply whether their embeddings line up."""
        return hashlib.sha256("\n".join(self.ids).encode()).hexdigest()

    def to_meta(self) -> dict[str, Any]:
        return {
            "size": len(self),
            "unknown_index": UNKNOWN,
            "min_count": self.min_count,
            "ids": self.ids,
            "sha256": self.sha256,
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Vocabulary:
        keys = np.array(sorted(parse_id(t) for t in meta["ids"]), dtype=np.int64)
        vocab = cls(keys, int(meta.get("min_count", 1)))
        if "sha256" in meta and meta["sha256"] != vocab.sha256:
            raise ValueError("vocabulary in metadata does not match its sha256")
        return vocab


def build_vocab(keys: np.ndarray, min_count: int = 1) -> Vocabulary:
    """Vocabulary of the IDs occurring at least ``min_count`` times in ``keys``.

    Pass only the keys of benign frames from the train split: that is the whole leakage guarantee.
    """
    uniq, counts = np.unique(np.asarray(keys, dtype=np.int64), return_counts=True)
    return vocab_from_counts(uniq, counts, min_count)


def vocab_from_counts(keys: np.ndarray, counts: np.ndarray, min_count: int = 1) -> Vocabulary:
    """Same as build_vocab, from distinct sorted keys and their frame counts (cheaper on big tables)."""
    return Vocabulary(np.asarray(keys, dtype=np.int64)[np.asarray(counts) >= min_count], min_count)


def id_cooccurrence(n_nodes: np.ndarray, node_vocab: np.ndarray, benign: np.ndarray, size: int) -> np.ndarray:
    """[size, size] float32: C[u, v] = n(u and v) / (n(u) + 1) over the benign windows (graphs).

    ``n_nodes`` / ``benign`` are per graph, ``node_vocab`` per node (graphs in order). The extra window in
    the denominator keeps C below 1, so -log(1 - C) (how surprising v's absence is next to u, in nats)
    stays finite and grows with the evidence: v in all of 1,000 windows with u gives 6.9, in 98 % of them
    3.9. Row and column of the unknown slot stay 0: an unknown ID neither predicts nor is expected.
    """
    graph = np.repeat(np.arange(len(n_nodes)), n_nodes)
    present = np.zeros((len(n_nodes), size), dtype=np.float64)
    present[graph, node_vocab] = 1.0
    present = present[benign]
    present[:, UNKNOWN] = 0.0
    together = present.T @ present
    return (together / (np.diag(together) + 1.0)[:, None]).astype(np.float32)
