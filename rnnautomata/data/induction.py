"""In-context copying tasks for induction heads: a repeated random segment, or associative recall.

Every sequence is ``T`` tokens from a vocabulary of ``V``; some positions are *predictable in
context*: the next token is the one that followed the most recent earlier occurrence of the
current token (the induction rule of Olsson et al. 2022, "[A][B] ... [A] -> [B]"). The loss and the
in-context accuracy use those positions only; all other tokens are fresh random draws that no model
can predict.

- ``copy`` (default): a segment of L distinct random tokens (L uniform in [min_segment,
  max_segment], drawn per sequence) appears ``n_copies`` times back to back, at a random offset,
  with fresh distinct filler tokens before and after. Varying L and the offset rules out a
  fixed-offset positional shortcut: only "find the previous occurrence, copy what followed" works.

  Example (V = 10, T = 9, L = 3, offset 2)::

      tokens  7 1 | 4 0 8 | 4 0 8 | 5      (filler | segment | copy | filler)
      mask    . . . . . . X X . .          positions 5, 6: x_5 = 4 was followed by 0, x_6 = 0 by 8

- ``recall``: ``n_pairs`` key-value pairs ``k_1 v_1 ... k_n v_n`` (distinct keys from the lower
  half of the vocabulary, values with replacement from the upper half), then query-answer pairs
  ``q_1 a_1 q_2 a_2 ...`` filling the rest of the sequence (distinct queries drawn from the keys,
  ``a_j`` the value of ``q_j``): multi-query associative recall. Predictable positions: the queries.

A batch also gives, per position, ``source``: the position of the most recent earlier occurrence of
the current token at predictable positions (−1 elsewhere), so that the induction score can read the
attention from ``t`` to ``source[t] + 1``, the token after that occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from rnnautomata.errors import ConfigError

__all__ = ["InductionBatch", "copy_batch", "recall_batch", "INDUCTION_TASKS", "make_batch", "check_task"]


@dataclass(frozen=True)
class InductionBatch:
    """Sequences and what is predictable in them (numpy, int64 / bool).

    tokens : (B, T) token ids in [0, V).
    target : (B, T) the next token x_{t+1} (−1 at the last position).
    mask : (B, T) True where x_{t+1} is predictable in context (the loss positions).
    source : (B, T) at masked positions, the most recent s < t with x_s = x_t; −1 elsewhere.
    """

    tokens: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    source: np.ndarray


def _finish(tokens: np.ndarray, mask: np.ndarray, source: np.ndarray) -> InductionBatch:
    target = np.full_like(tokens, -1)
    target[:, :-1] = tokens[:, 1:]
    return InductionBatch(tokens, target, mask, source)


def copy_batch(rng: np.random.Generator, batch_size: int, vocab_size: int, seq_len: int,
               min_segment: int, max_segment: int, n_copies: int) -> InductionBatch:
    """A random segment repeated ``n_copies`` times amid distinct filler (see the module docstring)."""
    B, T = batch_size, seq_len
    tokens = np.empty((B, T), dtype=np.int64)
    mask = np.zeros((B, T), dtype=bool)
    source = np.full((B, T), -1, dtype=np.int64)
    lengths = rng.integers(min_segment, max_segment + 1, size=B)                 # (B,) L per sequence
    for b in range(B):
        L = int(lengths[b])
        span = n_copies * L
        offset = int(rng.integers(0, T - span + 1))
        fresh = rng.permutation(vocab_size)[: T - (n_copies - 1) * L]              # distinct tokens
        segment, filler = fresh[:L], fresh[L:]
        tokens[b, :offset] = filler[:offset]
        tokens[b, offset:offset + span] = np.tile(segment, n_copies)
        tokens[b, offset + span:] = filler[offset:]
        # x_t at t in copies 2.. has its previous occurrence at t - L; x_{t+1} follows it when t + 1
        # is still inside the copies
        t = np.arange(offset + L, offset + span - 1)
        mask[b, t] = True
        source[b, t] = t - L
    return _finish(tokens, mask, source)


def recall_batch(rng: np.random.Generator, batch_size: int, vocab_size: int, seq_len: int,
                 n_pairs: int) -> InductionBatch:
    """``n_pairs`` key-value pairs, then (seq_len − 2 n_pairs) / 2 query-answer pairs."""
    B, T = batch_size, seq_len
    n_keys = vocab_size // 2
    n_queries = (T - 2 * n_pairs) // 2
    tokens = np.empty((B, T), dtype=np.int64)
    mask = np.zeros((B, T), dtype=bool)
    source = np.full((B, T), -1, dtype=np.int64)
    for b in range(B):
        keys = rng.permutation(n_keys)[:n_pairs]                                       # (n,) distinct
        values = rng.integers(n_keys, vocab_size, size=n_pairs)                        # (n,)
        asked = rng.permutation(n_pairs)[:n_queries]                                   # (m,) distinct
        tokens[b, 0:2 * n_pairs:2], tokens[b, 1:2 * n_pairs:2] = keys, values
        q = 2 * n_pairs + 2 * np.arange(n_queries)                                     # query positions
        tokens[b, q], tokens[b, q + 1] = keys[asked], values[asked]
        mask[b, q] = True
        source[b, q] = 2 * asked
    return _finish(tokens, mask, source)


#: task name -> (batch builder taking (rng, batch_size, data config), one-line description)
INDUCTION_TASKS: dict[str, tuple[Callable, str]] = {
    "copy": (lambda rng, n, d: copy_batch(rng, n, d.vocab_size, d.seq_len, d.min_segment, d.max_segment, d.n_copies),
             "a random segment repeated back to back amid distinct filler; predict the copy"),
    "recall": (lambda rng, n, d: recall_batch(rng, n, d.vocab_size, d.seq_len, d.n_pairs),
               "key-value pairs, then queries; predict each query's value"),
}


def make_batch(data, rng: np.random.Generator, batch_size: int) -> InductionBatch:
    """A batch of the task ``data.task`` (``data``: the study's data section)."""
    return INDUCTION_TASKS[data.task][0](rng, batch_size, data)


def check_task(data) -> None:
    """``ConfigError`` (one line, naming the field) when ``data`` cannot make a single predictable position."""
    if data.task not in INDUCTION_TASKS:
        raise ConfigError(f"data.task = {data.task!r} is not allowed; choose one of: {', '.join(INDUCTION_TASKS)}")
    V, T = data.vocab_size, data.seq_len
    if data.task == "copy":
        if data.n_copies < 2:
            raise ConfigError(f"data.n_copies must be at least 2 for anything to be copied (got {data.n_copies})")
        if data.min_segment < 2:
            raise ConfigError(f"data.min_segment must be at least 2 for a copy to hold a predictable token (got {data.min_segment})")
        if data.max_segment < data.min_segment:
            raise ConfigError(f"data.max_segment ({data.max_segment}) must be ≥ data.min_segment ({data.min_segment})")
        if data.n_copies * data.max_segment > T:
            raise ConfigError(f"data.n_copies × data.max_segment = {data.n_copies * data.max_segment} does not fit in "
                              f"data.seq_len = {T}; lower them or raise data.seq_len")
        need = T - (data.n_copies - 1) * data.min_segment
        if V < need:
            raise ConfigError(f"data.vocab_size = {V} is too small: a sequence holds up to {need} distinct tokens "
                              f"(seq_len − (n_copies − 1) × min_segment); raise data.vocab_size to ≥ {need}")
    else:
        if data.n_pairs < 1:
            raise ConfigError(f"data.n_pairs must be at least 1 (got {data.n_pairs})")
        if V // 2 < data.n_pairs:
            raise ConfigError(f"data.vocab_size = {V} gives {V // 2} keys (the lower half) for data.n_pairs = "
                              f"{data.n_pairs} distinct keys; raise data.vocab_size to ≥ {2 * data.n_pairs}")
        rest = T - 2 * data.n_pairs
        if rest < 2 or rest % 2:
            raise ConfigError(f"data.seq_len − 2 × data.n_pairs = {rest} must be even and ≥ 2 (room for query-answer "
                              f"pairs); set data.seq_len to 2 × (n_pairs + n_queries)")
        if rest // 2 > data.n_pairs:
            raise ConfigError(f"data.seq_len = {T} asks {rest // 2} distinct queries of only data.n_pairs = "
                              f"{data.n_pairs} keys; set data.seq_len ≤ {4 * data.n_pairs}")
