"""Variances of centred scores from a sparse Hessian, without the dense inverse.

Wald intervals need only the diagonal of the centred covariance
``C (H + J / n)^{-1} C`` (:func:`prefstore.models.base.centred_cov`). A pool's
comparison graph falls apart into one small connected component per prompt
(responses are only compared with responses to the same prompt), so ``H`` is
block diagonal up to a permutation. Each block is inverted on its own: small
blocks densely, many of one size in one batched ``numpy.linalg.inv``; a block
above :data:`DENSE_CI_BLOCK` items by a sparse LU factor (SuperLU, fill-reducing
ordering) solved against blocks of identity columns, of which only the diagonal
is kept, unless a cheap bound on its fill says a dense inverse is faster. The centring and the ``J / n`` gauge are rank-one corrections that need
one more vector, ``M^{-1} 1`` (Sherman & Morrison 1950). Issue 17.

Everything here is exact: no stochastic diagonal estimator. A connected
component whose factor fills in (a random comparison graph over many thousands
of items) is refused above :data:`SPARSE_CI_FLOPS` instead of running for hours.

References
----------
Sherman, J. & Morrison, W. J. (1950). Adjustment of an inverse matrix
corresponding to a change in one element of a given matrix. Annals of
Mathematical Statistics, 21(1), 124-127.

Li, X. S. (2005). An overview of SuperLU: algorithms, implementation, and user
interface. ACM Transactions on Mathematical Software, 31(3), 302-325.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, reverse_cuthill_mckee
from scipy.sparse.linalg import splu

from prefstore.errors import InvalidInput, NotConverged

__all__ = ["DENSE_CI_BLOCK", "DENSE_CI_MAX", "SPARSE_CI_FLOPS", "SPARSE_GAIN", "centred_var"]

#: Components up to this many items are inverted densely, many of one size at once.
DENSE_CI_BLOCK = 128
#: Larger components up to this many items are inverted densely when the bound on
#: their sparse factor exceeds 1 / SPARSE_GAIN of a dense one: on random comparison
#: graphs the LU factor fills in to ~s^2 / 2 and loses to the dense inverse, on a
#: chain or tree it wins at every size (benchmarks/bench_intervals.py, sweep).
DENSE_CI_MAX = 4000
SPARSE_GAIN = 8
#: Largest estimated cost (2 x size x factor nonzeros) of the sparse solves of one component.
SPARSE_CI_FLOPS = 2e11
_BATCH_ELEMENTS = 1 << 24  # elements of stacked dense blocks inverted at once
_SOLVE_COLUMNS = 256  # identity columns per sparse solve
_SINGULAR_RTOL = 1e-12  # |H 1| below this times max |H_ii|: H is singular along 1


def centred_var(hessian: Any) -> np.ndarray:
    """Return the diagonal of :func:`~prefstore.models.base.centred_cov` from a sparse Hessian.

    Parameters
    ----------
    hessian : scipy sparse matrix or ndarray, shape (n, n)
        Symmetric Hessian of a negative log-posterior over item scores: regular
        (a prior), or singular only along the all-ones vector (no prior, a
        connected comparison graph).

    Returns
    -------
    ndarray, shape (n,)
        Variances of the centred scores.

    Raises
    ------
    NotConverged
        If the Hessian is singular in another direction (a disconnected graph
        without a prior, or a block that is not positive definite).
    InvalidInput
        If a connected component is too big for a dense inverse and its sparse
        factor too full to solve in reasonable time (see :data:`SPARSE_CI_FLOPS`).
    """
    h = csr_matrix(hessian, dtype=float)
    h.sum_duplicates()  # one entry per (row, col): blocks are filled by assignment
    n = h.shape[0]
    n_comp, label = connected_components(h, directed=False)
    size = np.bincount(label, minlength=n_comp)
    diag = h.diagonal()
    scale = max(float(np.abs(diag).max(initial=0.0)), np.finfo(float).tiny)
    slack = np.bincount(label, np.abs(h @ np.ones(n)), minlength=n_comp)
    singular = slack <= _SINGULAR_RTOL * scale * size
    if singular.any() and n_comp > 1:
        raise NotConverged(
            f"the information matrix is singular: {n_comp} connected components "
            f"and no prior"
        )
    # M = H, or H grounded at one item: H + c e_k e_k^T is regular, and its inverse a
    # generalized inverse of H because M^{-1} e_k is constant (Sherman & Morrison 1950).
    ground = np.zeros(n)
    if singular.any():
        ground[0] = diag[0] if diag[0] > 0 else 1.0
    d = np.empty(n)  # diag(M^{-1})
    u = np.empty(n)  # M^{-1} 1
    order = np.argsort(label, kind="stable")
    start = np.concatenate([[0], np.cumsum(size)[:-1]])
    local = np.empty(n, dtype=np.intp)
    local[order] = np.arange(n) - start[label[order]]
    coo = h.tocoo()
    rows, cols, vals = coo.row, coo.col, coo.data
    row_size = size[label[rows]]
    for s in np.unique(size):
        comps = np.flatnonzero(size == s)
        if s <= DENSE_CI_BLOCK:
            _dense_blocks(int(s), comps, label, local, rows, cols, vals, row_size, ground, d, u)
        else:
            for c in comps:
                _large_block(h, order[start[c] : start[c] + s], ground, d, u)
    total = float(u.sum())
    if singular.any():
        # C G C with G = M^{-1}: the pseudo-inverse of H.
        return d - 2.0 * u / n + total / n**2
    # C (M + J / n)^{-1} C, the inner inverse expanded by Sherman & Morrison.
    denom = n + total
    return d - (u * u + 2.0 * u) / denom + total / (n * denom)


def _dense_blocks(s, comps, label, local, rows, cols, vals, row_size, ground, d, u) -> None:
    """Invert the blocks of the components ``comps`` (all of size ``s``), batched."""
    block_of = np.full(label.max() + 1, -1, dtype=np.intp)
    block_of[comps] = np.arange(comps.size)
    nodes = np.flatnonzero(block_of[label] >= 0)
    keep = row_size == s
    e_rows, e_cols, e_vals = rows[keep], cols[keep], vals[keep]
    e_block = block_of[label[e_rows]]
    n_block = max(1, _BATCH_ELEMENTS // (s * s))
    node_block = block_of[label[nodes]]
    for first in range(0, comps.size, n_block):
        last = min(comps.size, first + n_block)
        blocks = np.zeros((last - first, s, s))
        sel = (e_block >= first) & (e_block < last)
        blocks[e_block[sel] - first, local[e_rows[sel]], local[e_cols[sel]]] = e_vals[sel]
        in_batch = (node_block >= first) & (node_block < last)
        here = nodes[in_batch]
        b, i = node_block[in_batch] - first, local[here]
        blocks[b, i, i] += ground[here]
        try:
            inv = np.linalg.inv(blocks)
        except np.linalg.LinAlgError as exc:
            raise NotConverged(f"the information matrix is singular: {exc}") from None
        d[here] = inv[b, i, i]
        u[here] = inv.sum(axis=2)[b, i]


def _large_block(h: csr_matrix, nodes: np.ndarray, ground: np.ndarray, d, u) -> None:
    """Diagonal and row sums of one large block's inverse, dense or from a sparse LU factor."""
    s = nodes.size
    block = (h[nodes][:, nodes] + _diag(ground[nodes])).tocsr()
    # Bound the factor before building it: a tree has no fill; otherwise the
    # envelope of the reverse Cuthill-McKee ordering holds every fill-in.
    edges = (block.nnz - s) // 2
    bound = 2 * s if edges < s else _envelope(block)
    if s <= DENSE_CI_MAX and bound * SPARSE_GAIN > s * s:
        try:
            inv = np.linalg.inv(block.toarray())
        except np.linalg.LinAlgError as exc:
            raise NotConverged(f"the information matrix is singular: {exc}") from None
        d[nodes] = np.diag(inv)
        u[nodes] = inv.sum(axis=1)
        return
    _check_cost(s, bound, "at most")
    try:
        # SPD: no row pivoting, one symmetric fill-reducing ordering (Li 2005).
        lu = splu(block.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                  options={"SymmetricMode": True})
    except RuntimeError as exc:
        raise NotConverged(f"the information matrix is singular: {exc}") from None
    _check_cost(s, lu.L.nnz + lu.U.nnz, "")
    out = np.empty(s)
    for first in range(0, s, _SOLVE_COLUMNS):
        cols = np.arange(first, min(s, first + _SOLVE_COLUMNS))
        rhs = np.zeros((s, cols.size))
        rhs[cols, cols - first] = 1.0
        out[cols] = lu.solve(rhs)[cols, cols - first]
    d[nodes] = out
    u[nodes] = lu.solve(np.ones(s))


def _envelope(block: csr_matrix) -> int:
    """Nonzeros of the lower envelope (with the diagonal) in reverse Cuthill-McKee order."""
    perm = reverse_cuthill_mckee(block, symmetric_mode=True)
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(perm.size)
    rows = block[perm].tocsr()
    first = np.minimum.reduceat(inverse[rows.indices], rows.indptr[:-1])
    return int(np.sum(np.arange(perm.size) - first + 1)) * 2


def _check_cost(s: int, fill: int, how: str) -> None:
    if 2.0 * s * fill > SPARSE_CI_FLOPS:
        raise InvalidInput(
            f"Hessian 95% intervals over a connected component of {s:,} items: its sparse "
            f"factor has {how + ' ' if how else ''}{fill:,} nonzeros, about "
            f"{2.0 * s * fill:.1e} flops to invert (limit {SPARSE_CI_FLOPS:.0e}); "
            f"use ci='bootstrap' or ci=None"
        )


def _diag(values: np.ndarray) -> csr_matrix:
    k = np.arange(values.size)
    return csr_matrix((values, (k, k)), shape=(values.size, values.size))
