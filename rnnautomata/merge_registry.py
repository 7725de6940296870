"""The merger registry: name -> merger class, imported on first lookup.

The mergers (:mod:`rnnautomata.merge`) are scikit-learn estimators, and importing scikit-learn
takes a second or two; the names alone (``config``'s choices for ``extract.merger``, the cli's
``track --merger``) come from here without importing it. Adding a merger = one estimator class +
one line here.

>>> tuple(MERGERS)
('leader', 'single_linkage', 'kmeans')
"""

from __future__ import annotations

from rnnautomata.models import LazyRegistry

__all__ = ["MERGERS"]

#: merger name -> its estimator class (``MERGERS[name](**params).fit(X).labels_``)
MERGERS = LazyRegistry({
    "leader": "rnnautomata.merge:LeaderMerger",
    "single_linkage": "rnnautomata.merge:SingleLinkageMerger",
    "kmeans": "rnnautomata.merge:KMeansMerger",
})
