"""Topic names, Redis key prefixes and other names shared across modules, in one place."""

from __future__ import annotations

ENV_PREFIX = "FRAUDSTREAM_"

# Default topic names.
TOPIC_TRANSACTIONS = "transactions"
TOPIC_LABELS = "labels"
TOPIC_ALERTS = "alerts"
TOPIC_TRANSACTIONS_DLQ = "transactions.dlq"
TOPIC_LABELS_DLQ = "labels.dlq"

DEFAULT_GROUP = "fraudstream-scorer"

# How long producers into the embedded broker wait to fill a batch (`demo`; `up` exports it as
# FRAUDSTREAM_PRODUCER_LINGER_MS): each fetch from Tansu 0.6 (memory storage) lists every batch stored
# in the partition, so its cost grows with the number of batches sent. With 5 ms, a raw consumer's
# p99 latency grew from 25 ms to 810 ms in 80 s at 1,000 tx/s (Tansu at 0.9 of a core); with 50 ms it
# stayed at 65-86 ms for 150 s (Tansu 0.08 -> 0.38 of a core). Apache Kafka has no such cost.
# Measured 2026-12-07 (one partition of N batches, kafka-python fetching the last one): Tansu spends
# ~0.75-0.9 us of CPU per batch the partition holds (N = 3,000 / 10,000 / 20,000: 2.5 / 7.3 / 15 ms;
# 50 records a batch instead of 1: 3.2 / 9.5 / 18 ms, so batches count, not records or bytes); a
# fetch at the log's end with nothing new costs ~1 ms whatever N, one of another topic likewise; and
# a fetch whose listing takes longer than its max wait comes back empty (1 ms wait, 3,000 batches:
# never answered). So the broker's work grows as partitions x batches per second x fetches per
# second x minutes run, and (inferred, consistent with the stall seen at ~18 minutes with 50 ms) the
# consumer stalls once one partition's listing outgrows the fetch's wait (20 ms / 0.9 us = ~22,000
# batches = 18 minutes at 20 batches a second). `demo` therefore also uses
# one partition and a 50 ms fetch wait on this broker (below): see EMBEDDED_BROKER_MINUTES (cli/demo.py).
EMBEDDED_PRODUCER_LINGER_MS = 100
# the embedded demo's partitions per topic and consumer fetch wait (unless set): by the cost above, 3x
# fewer listings per fetch than 3 partitions, fewer fetches than with 20 ms (Tansu holds each for the
# wait), and a listing may take 50 ms before a fetch comes back empty (not measured one by one: the
# three together in a 14-minute demo, cli/demo.py)
EMBEDDED_TOPIC_PARTITIONS = 1
EMBEDDED_FETCH_MAX_WAIT_MS = 50

# Dead-letter record headers (values are UTF-8 bytes).
DLQ_HEADER_ERROR = "fraudstream.error"
DLQ_HEADER_REASON = "fraudstream.reason"
DLQ_HEADER_TOPIC = "fraudstream.source.topic"
DLQ_HEADER_PARTITION = "fraudstream.source.partition"
DLQ_HEADER_OFFSET = "fraudstream.source.offset"
# On a record sent back from a dead-letter topic (`fraudstream dead-letters --redrive`): "<dlq>[<partition>]@<offset>"
REDRIVEN_FROM_HEADER = "fraudstream.redriven_from"

# Redis keys. Every key starts with the configured prefix (default "fs"). Keys of one customer
# share the hash tag {c:<id>}, keys of one terminal {t:<id>}, so each Lua script touches one slot.
REDIS_PREFIX = "fs"
CUSTOMER_TAG = "c"
TERMINAL_TAG = "t"
# event strings (stream/state/blobs.py, terminal_blobs.py), layout 2 since 2026-12-06: {prefix}:{c:<id>}:ev2
# and :geo2; {prefix}:{t:<id>}:ev3, sorted by time since the same day's twenty-third session (its ev2
# kept arrival order). Layout 1's ":ev" and ":geo" keys and the terminals' ":ev2" are converted by
# `fraudstream migrate-records`.
CUSTOMER_EVENTS, CUSTOMER_COORDINATES, TERMINAL_EVENTS = "ev2", "geo2", "ev3"
LEGACY_EVENTS, LEGACY_COORDINATES, UNSORTED_TERMINAL_EVENTS = "ev", "geo", "ev2"
RECORD_TAG = "r"  # scored records: one hash per hour of event time {r:<hour>} (stream/state/redis_records.py)
RECORD_SHARDS_CLUSTER = 64  # on a cluster, {r:<hour>:<shard>}: an hour's records spread over the nodes
MODELS_KEY = "models"
# a model's name in the registry: it is listed in FRAUDSTREAM_CHALLENGERS, comma-separated
MODEL_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
# a consumer group's partitions' newest event times at their commits: {newest:<group>} (stream/newest_times.py)
NEWEST_TIME_TAG = "newest"

# Model registry (see fraudstream.stream.registry): every key shares the hash tag {<prefix>:models}.
DEV_SIGNING_KEY = "fraudstream-dev-signing-key-not-secret"

# Live simulation (producer/live.py): event times from the simulator's clock ("simulated") or the wall clock
CLOCKS = ("simulated", "wall")
# the label delay when none is given, per clock: a simulated day passes every ~2.2 s at 1,000 tx/s
DEFAULT_LIVE_LABEL_DELAY = {"simulated": "1d", "wall": "2s"}
