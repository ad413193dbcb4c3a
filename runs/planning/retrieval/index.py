"""A BM25 index over a few hundred short documents (stored plans, tool descriptions).

Ranking is Okapi BM25 from ``bm25s`` (Lucene's variant: a term's IDF never goes
negative, which matters when a corpus holds a handful of documents). BM25 scores
are not comparable across queries, so each hit also gets a ``similarity`` in 0..1:
its score over the most a document of average length could score, one occurrence
of each query term (the sum of the query terms' IDF). Query words no document
holds count in that sum at the highest IDF, so an unrelated task ("order pizza")
stays low even when one of its words happens to match.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import bm25s

from runs.planning.retrieval.text import terms

# bm25s logs every index build at DEBUG; one per planning call is noise, not news.
logging.getLogger("bm25s").setLevel(logging.WARNING)


_K1, _B = 1.5, 0.75  # the usual BM25 defaults


@dataclass(frozen=True)
class Document:
    """One thing that can be found: ``key`` says what it is (``playbook:demo-deploy``, ``tool:deploy``)."""

    key: str
    text: str
    payload: Any = None


@dataclass(frozen=True)
class Hit:
    document: Document
    score: float  # raw BM25
    similarity: float  # 0..1, comparable across queries (see the module docstring)
    matched: frozenset[str] = frozenset()  # the query's words (not value types) it holds


class Index:
    """BM25 over ``documents``; build once per planning call (cheap for this size)."""

    def __init__(self, documents: Sequence[Document]) -> None:
        self.documents = list(documents)
        self._terms = [terms(d.text) or ["<empty>"] for d in self.documents]
        self._df: dict[str, int] = {}
        for doc_terms in self._terms:
            for term in set(doc_terms):
                self._df[term] = self._df.get(term, 0) + 1
        self._bm25: bm25s.BM25 | None = None
        if self.documents:
            self._bm25 = bm25s.BM25(method="lucene", k1=_K1, b=_B)
            self._bm25.index(self._terms, show_progress=False)

    def _idf(self, term: str) -> float:
        n, df = len(self.documents), self._df.get(term, 0)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def search(self, text: str, *, limit: int = 5) -> list[Hit]:
        """The best ``limit`` documents for ``text``, best first (ties: the first listed wins)."""
        query = list(dict.fromkeys(terms(text)))
        if self._bm25 is None or not query:
            return []
        known = [t for t in query if t in self._df]
        if not known:
            return []
        scores = self._bm25.get_scores(known)
        # A value type no document holds (a file name where no text has one) is a parameter, not
        # the request: it does not lower the similarity.
        # bm25s scores Lucene's way, tf / (tf + k1 * norm) with no (k1 + 1) factor, so one
        # occurrence in a document of average length scores idf / (1 + k1).
        weight = sum(self._idf(t) for t in query if t in self._df or not t.startswith("<"))
        ceiling = weight / (1 + _K1)
        order = sorted(range(len(self.documents)), key=lambda i: (-float(scores[i]), i))
        hits = []
        for i in order[:limit]:
            score = float(scores[i])
            if score <= 0:
                break
            similarity = round(min(score / ceiling, 1.0), 4)
            # Words only: a value type (``<version>``) says what a task names, not what it wants.
            matched = frozenset(t for t in known if not t.startswith("<")).intersection(
                self._terms[i]
            )
            hits.append(Hit(self.documents[i], score, similarity, matched))
        return hits

    def best(self, text: str) -> Hit | None:
        hits = self.search(text, limit=1)
        return hits[0] if hits else None
