"""The shared label stream in Redis: what every consumer appends (a label with the features its
transaction was scored with and every model's score) and what the learner reads and learns; and
each model's prequential figures over its newest labelled scores (`performance`, `compare`).

Keys, all under the registry's hash tag (`fraudstream.stream.registry.ModelRegistry.key`):

- ``labels`` (stream): ``x`` = features (`fraudstream.stream.label_codec`), ``y`` = ``1``/``0``;
  ``feature_names:<id>`` (string): a list of feature names entries refer to
- ``markers:<hour>`` (hash ``<len(customer)>:<customer><transaction>`` -> ``1``/``0``, with a TTL):
  those labels are in the stream, per hour of their transactions' event time; ``markers:legacy``
  (fields ``<customer>:<transaction>``): markers moved from the one-key-per-label layout
  (``applied:<customer>:<transaction>``) by `migrate_legacy_markers`
- ``perf:<name>`` (list of ``"score,label,entry id"``, newest last, capped; earlier versions wrote
  ``"score,label"``): each model's prequential window

The types it carries are in `fraudstream.stream.label_stream`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import msgpack
import numpy as np
from redis.exceptions import ResponseError

from fraudstream.models import metrics
from fraudstream.models.metrics import Performance
from fraudstream.models.ranking import AucDifference, paired_auc_difference
from fraudstream.stream.label_codec import FeatureCodec
from fraudstream.stream.label_stream import AppendedRun, LabelEntry, LabelOutcome, LabelRow
from fraudstream.stream.state.base import Meanwhile, always_ready
from fraudstream.stream.state.script_io import call_script_meanwhile

log = logging.getLogger(__name__)

APPLIED_TTL_MS = 9 * 24 * 3600 * 1000  # an "applied" marker whose record's time to live is unknown
PERF_WINDOW = 50_000  # labelled scores kept per model for the prequential metrics
APPEND_CHUNK = 2000  # entries per script call (Lua's `unpack` takes up to a few thousand values)


class LabelLog:
    """The label stream of one registry: `key` makes its keys (``key("labels")``), `append_script`
    is the registered ``labels_append.lua``."""

    def __init__(self, client: Any, key: Callable[..., str], append_script: Any) -> None:
        self.client = client
        self.key = key
        self._append = append_script
        self._features = FeatureCodec(load=lambda names_id: self.client.get(self._names_key(names_id)))

    def _names_key(self, names_id: int) -> str:
        return self.key("feature_names", f"{names_id:x}")

    def append(self, entries: Sequence[LabelEntry], appended: list[AppendedRun] | None = None,
               meanwhile: Meanwhile | None = None) -> list[LabelOutcome]:
        """Append each entry's features and label to the stream and its scores to the models' score
        lists, once per transaction key (see `LabelEntry`), atomically per chunk of `APPEND_CHUNK`.
        Returns each entry's outcome; the entries appended are added to `appended`, one run per chunk
        (a learner that has read up to a run's `after` learns them without reading them back).
        `meanwhile` runs while the server works on each chunk (`state.base.Meanwhile`)."""
        names = sorted({name for e in entries for name in e.scores})
        keys = [self.key("labels"), *(self.key("perf", n) for n in names)]
        outcomes: list[LabelOutcome] = []
        for start in range(0, len(entries), APPEND_CHUNK):
            chunk, packed, names_ids = entries[start:start + APPEND_CHUNK], [], set()
            hours: dict[int, int] = {}  # marker hash: its index among the call's marker keys, from 1
            for e in chunk:
                features = b""
                if e.features is not None:
                    names_id, features = self._features.pack(e.features)
                    names_ids.add(names_id)
                packed.append([features, int(bool(e.is_fraud)), [e.scores.get(n) for n in names],
                               0 if e.key is None else hours.setdefault(e.hour, len(hours) + 1),
                               e.ttl_ms if e.ttl_ms and e.ttl_ms > 0 else APPLIED_TTL_MS, e.key or ""])
            ids = sorted(names_ids)  # their lists are written with the entries: entries never outlive their names
            call_keys = (keys + [self._names_key(i) for i in ids] + [self.key("markers", str(h)) for h in hours]
                         + [self.key("markers", "legacy")])
            args = [msgpack.packb(packed, use_bin_type=False), msgpack.packb(names), PERF_WINDOW,
                    msgpack.packb([self._features.names(i) for i in ids], use_bin_type=False)]
            if meanwhile is None:
                reply = self._append(keys=call_keys, args=args)
            else:
                reply = call_script_meanwhile(self._append, call_keys, args, meanwhile)
            codes, before, entry_ids = reply
            chunk_outcomes = [LabelOutcome(int(code)) for code in codes]
            outcomes += chunk_outcomes
            if appended is not None:
                added = [e for e, o in zip(chunk, chunk_outcomes) if o is LabelOutcome.APPENDED]
                appended.append(AppendedRun(before.decode(), [(rid.decode(), dict(e.features or {}), bool(e.is_fraud))
                                                              for rid, e in zip(entry_ids, added)]))
        if meanwhile is not None and not entries:
            meanwhile(always_ready)
        return outcomes

    def read(self, after: str, count: int = 1000) -> list[LabelRow]:
        """Entries strictly after the id `after`, oldest first; features None: an entry that cannot
        be read (`label_codec`), to skip."""
        rows = self.client.xrange(self.key("labels"), min=f"({after}", max="+", count=count)
        unpack = self._features.reader()
        return [(rid.decode(), unpack(f[b"x"]), f[b"y"] == b"1") for rid, f in rows]

    def end(self) -> str:
        """The id of the newest entry (``0-0`` when there is none)."""
        rows = self.client.xrevrange(self.key("labels"), count=1)
        return rows[0][0].decode() if rows else "0-0"

    def trimmed_start(self) -> str | None:
        """The id of the oldest entry when the stream no longer holds every entry appended to it (it
        was trimmed; a Redis before 7 does not count them: then whenever it has entries); else None."""
        try:
            info = self.client.xinfo_stream(self.key("labels"))
        except ResponseError:  # no stream yet
            return None
        first, added = info.get("first-entry"), info.get("entries-added")
        if not first or (added is not None and int(added) <= int(info["length"])):
            return None
        return first[0].decode()

    def trim(self, oldest_kept: str) -> None:
        """Drop the entries before the id `oldest_kept`."""
        self.client.xtrim(self.key("labels"), minid=oldest_kept, approximate=False)

    # -- each model's prequential figures ------------------------------------------------------
    def performance(self, name: str, threshold: float) -> Performance:
        """AUC ROC, average precision and precision at `threshold` over the newest labelled scores."""
        scores, labels, _ = self._scored_labels(name)
        return metrics.performance(labels, scores, threshold)

    def compare(self, name: str, other: str, threshold: float) -> tuple[Performance, Performance, AucDifference]:
        """The figures of `name` and of `other` over the same labels: those both scored, among the
        newest of each (an item written before the ids were kept counts in neither); and the AUC ROC
        of `name` minus that of `other` on them, with DeLong's 95 % confidence interval."""
        a_scores, a_labels, a_ids = self._scored_labels(name)
        b_scores, b_labels, b_ids = self._scored_labels(other)
        in_b = {entry: i for i, entry in enumerate(b_ids) if entry}
        a_at = [i for i, entry in enumerate(a_ids) if entry in in_b]
        b_at = [in_b[a_ids[i]] for i in a_at]
        labels, mine, theirs = a_labels[a_at], a_scores[a_at], b_scores[b_at]
        return (metrics.performance(labels, mine, threshold), metrics.performance(b_labels[b_at], theirs, threshold),
                paired_auc_difference(labels, mine, theirs))

    def _scored_labels(self, name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Scores, labels and label-stream entry ids ("" where not kept) of a model's score list; a
        NaN score (a model of your own's, kept by a version before NaN probabilities scored 0.0) has
        no rank and is left out, as the consumers' rolling figures leave it out."""
        rows = [r.split(b",") for r in self.client.lrange(self.key("perf", name), 0, -1)]
        rows = [r for r in rows if r[0].lower() not in (b"nan", b"-nan")]
        scores = np.array([float(r[0]) for r in rows], dtype=np.float64)
        labels = np.array([int(r[1]) for r in rows], dtype=np.int8)
        return scores, labels, [r[2].decode() if len(r) > 2 else "" for r in rows]
