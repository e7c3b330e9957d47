"""Beam search, the one implementation behind every model that decodes with a beam.

It works on any model that offers a *step function* (as the decoders of
:mod:`rnnkit.models.generate` do)::

    step(tokens, state) -> (log_probs, state)
    tokens (K,) int, the last token of each of K hypotheses; log_probs (K, V) float

:func:`beam_search_batch` searches B sequences at once, one step call extending the live
hypotheses of every unfinished sequence together; :func:`beam_search` is that search for one
sequence. The state is any nest of tuples / lists / dicts of arrays whose batch axis is
``batch_axis`` (1 for rnnkit's recurrent states (L*dirs, B, H)); a model whose state has
another layout passes its own ``reorder(state, index)`` (:func:`select_state` by default).

>>> table = np.log(np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.4, 0.4, 0.2]]))
>>> step = lambda tokens, state: (table[tokens], state)   # a first-order Markov chain
>>> hyps = beam_search(step, None, bos=0, eos=2, beam_size=3, max_len=5, alpha=0.0)
>>> [(seq, round(score, 4)) for seq, score in hyps][:3]   # log P: 0.3, 0.6 * 0.3, ...
[([], -1.204), ([1], -1.7148), ([1, 0], -2.4079)]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Array = np.ndarray
StepFn = Callable[[Array, Any], tuple[Array, Any]]
Reorder = Callable[[Any, Array], Any]

__all__ = ["beam_search", "beam_search_batch", "select_state"]


def select_state(state: Any, index: Array, batch_axis: int = 1) -> Any:
    """Pick batch entries ``index`` from every array of a nested state (tuples, lists, dicts).

    >>> h = np.arange(6).reshape(1, 3, 2)            # (L, B, H)
    >>> select_state((h, h + 10), np.array([2, 2]))[1][0].tolist()
    [[14, 15], [14, 15]]
    """
    if state is None:
        return None
    if isinstance(state, np.ndarray):
        return np.take(state, index, axis=batch_axis)
    if isinstance(state, tuple):
        return tuple(select_state(s, index, batch_axis) for s in state)
    if isinstance(state, list):
        return [select_state(s, index, batch_axis) for s in state]
    if isinstance(state, Mapping):
        return {k: select_state(v, index, batch_axis) for k, v in state.items()}
    raise TypeError(f"select_state: cannot index a {type(state).__name__}")


def beam_search(
    step: StepFn,
    state: Any,
    bos: int,
    eos: int,
    beam_size: int,
    max_len: int,
    alpha: float = 1.0,
    reorder: Reorder | None = None,
    batch_axis: int = 1,
    early_stop: bool = False,
) -> list[tuple[list[int], float]]:
    """Beam search for one sequence; returns finished hypotheses, best first.

    Each step extends the K (= ``beam_size``) live prefixes by every token and keeps the K
    best extensions by total log-probability. An extension by EOS that ranks among those K is
    finished and leaves the beam. The search stops after ``max_len`` tokens (live prefixes
    then count as finished, unterminated), or once K hypotheses are finished and no live
    prefix can beat the K-th best of them: a live prefix of log-probability s <= 0 can at
    best score s / max_len^alpha later, since extending it only lowers s. With
    ``early_stop`` it stops as soon as K hypotheses are finished (fairseq's rule): faster,
    but a better live prefix may be dropped; on the digits demo (benchmarks/digits_names.py)
    that rule lost "eight" to "one" and "nine", which finished one step earlier. Finished
    hypotheses are ranked by log P(y) / T^alpha, T the number of tokens generated including
    EOS (the length normalisation of Wu et al. 2016, GNMT, in its simple 1/T^alpha form;
    alpha = 0 ranks by raw log-probability, which favours short outputs).

    Args:
        step: the step function (see the module doc). Called with K' <= K tokens.
        state: the initial state for a batch of one sequence.
        bos, eos: the begin and end token ids. beam_size: K. max_len: most tokens generated.
        alpha: the length-normalisation exponent (>= 0).
        early_stop: stop as soon as K hypotheses are finished (see above). With K = 1 the
            search always stops at the first EOS that wins the beam, so K = 1 is exactly
            greedy for any alpha (continuing could find a longer sequence that scores better
            after normalisation).
        reorder: ``reorder(state, index)`` selecting batch entries; default
            :func:`select_state` along ``batch_axis``.

    Returns:
        ``[(tokens, normalised score), ...]`` (tokens without BOS and EOS), every finished
        hypothesis, sorted by score, best first. With K = 1 the result
        is the greedy decoding; with K at least the number of candidate sequences it is the
        exact arg max of the normalised score over all sequences of at most ``max_len`` tokens.
    """
    if beam_size < 1 or max_len < 1:
        raise ValueError(f"beam_size and max_len must be positive, got {beam_size}, {max_len}")
    return beam_search_batch(step, state, bos, eos, beam_size, [max_len], alpha, reorder,
                             batch_axis, early_stop)[0]  # fmt: skip


def beam_search_batch(
    step: StepFn,
    state: Any,
    bos: int,
    eos: int,
    beam_size: int,
    max_lens: Sequence[int],
    alpha: float = 1.0,
    reorder: Reorder | None = None,
    batch_axis: int = 1,
    early_stop: bool = False,
) -> list[list[tuple[list[int], float]]]:
    """:func:`beam_search` for B sequences at once: each step function call extends the live
    hypotheses of every unfinished sequence together.

    Per sequence b the search is exactly that of ``beam_search(step, state_b, bos, eos,
    beam_size, max_lens[b], alpha, early_stop=early_stop)``: the same candidates (the best
    2K extensions, ties by index), the same finishing rule (an EOS extension ranked among
    the K best), the same stopping rule (K finished and no live prefix able to beat the
    K-th: min(best live log P, 0) / max_len^alpha <= K-th score) and the same ranking by
    log P / T^alpha. Only the batching differs: ``state`` holds B rows (one per sequence)
    at the start and ``reorder(state, rows)`` selects the rows of the surviving
    hypotheses of all sequences (so the step function must know each row's sequence, as
    :meth:`rnnkit.models.seq2seq.Seq2Seq.step_fn` does through ``state["sent"]``).

    Returns, per sequence, every finished hypothesis ``(tokens, score)``, best first.
    """
    K, B = int(beam_size), len(max_lens)
    if K < 1 or min(max_lens, default=1) < 1:
        raise ValueError(f"beam_size and max_len must be positive, got {K}, {list(max_lens)}")
    if alpha < 0:
        raise ValueError(f"alpha: must be >= 0, got {alpha}")
    pick = reorder or (lambda s, i: select_state(s, i, batch_axis))
    early_stop = early_stop or K == 1  # one beam: stop at the first EOS that wins it
    seqs: list[list[list[int]]] = [[[]] for _ in range(B)]  # live prefixes per sequence
    scores = [np.zeros(1) for _ in range(B)]
    finished: list[list[tuple[list[int], float]]] = [[] for _ in range(B)]
    active = list(range(B))  # sequences with live hypotheses, in row order
    tokens = np.full(B, bos, dtype=np.int64)
    t = 0
    while active:
        t += 1
        logp, state = step(tokens, state)
        logp = np.asarray(logp, dtype=np.float64)  # (R, V), rows grouped by sequence
        V = logp.shape[1]
        rows: list[int] = []
        next_tokens: list[int] = []
        still: list[int] = []
        row0 = 0
        for b in active:
            k_b = len(seqs[b])
            cand = (scores[b][:, None] + logp[row0 : row0 + k_b]).ravel()  # (k_b * V,)
            n = min(2 * K, cand.size)  # K live survivors exist among the best 2K
            top = np.argpartition(-cand, n - 1)[:n] if n < cand.size else np.arange(cand.size)
            top = top[np.lexsort((top, -cand[top]))]  # best first; ties by index (determinism)
            keep_rows, keep_tokens, keep_scores = [], [], []
            for rank, flat in enumerate(top):
                row, tok = divmod(int(flat), V)
                if tok == eos:
                    if rank < K:  # only EOS extensions that would have won a beam slot
                        finished[b].append((seqs[b][row], float(cand[flat]) / t**alpha))
                    continue
                if len(keep_rows) < K:
                    keep_rows.append(row)
                    keep_tokens.append(tok)
                    keep_scores.append(float(cand[flat]))
            base, row0 = row0, row0 + k_b
            if not keep_rows:
                continue
            if len(finished[b]) >= K:
                if early_stop:
                    continue
                kth = sorted((h[1] for h in finished[b]), reverse=True)[K - 1]
                if min(max(keep_scores), 0.0) / max_lens[b] ** alpha <= kth:
                    continue
            seqs[b] = [seqs[b][r] + [k] for r, k in zip(keep_rows, keep_tokens, strict=True)]
            scores[b] = np.array(keep_scores)
            if t == max_lens[b]:  # out of length: the live prefixes end unterminated
                finished[b] += [(q, float(v) / t**alpha)
                                for q, v in zip(seqs[b], scores[b], strict=True)]  # fmt: skip
                continue
            rows += [base + r for r in keep_rows]
            next_tokens += keep_tokens
            still.append(b)
        active = still
        if active:
            state = pick(state, np.array(rows))
            tokens = np.array(next_tokens, dtype=np.int64)
    for f in finished:
        f.sort(key=lambda h: -h[1])
    return finished
