"""A field given twice in one input record is refused (``invalid_fields``), not read as its last value:
another parser of the same bytes may take the first. `check_fields_once` counts commas against the
fields set, and parses again only when they differ; these tests hold it to an exact parse."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from pydantic import ValidationError

from fraudstream import constants
from fraudstream.config import Settings
from fraudstream.errors import ValidationFailed
from fraudstream.kafka_io import ensure_topics
from fraudstream.models import events
from fraudstream.models.events import Event, Label, Transaction, check_fields_once, fields_once
from fraudstream.stream.app import scoring_consumer
from fraudstream.stream.decode import RecordValidator
from tests.consumer_procs import run_until_committed
from tests.kafka_helpers import produce_raw, read_topic
from tests.test_pipeline import publish, scripted_transactions

VALIDATOR = RecordValidator(max_record_bytes=65536, max_future_skew=None, allowed_lateness=timedelta(hours=1))
TX = '"transaction_id":"t1","customer_id":"c1","terminal_id":"m1","event_time":"2018-04-01T00:00:31Z"'
LABEL = ('"transaction_id":"t1","customer_id":"c1","event_time":"2018-04-01T00:00:31Z",'
         '"reported_at":"2018-04-08T00:00:31Z"')
# every field of each input, with a value it accepts
FULL = {Transaction: {"transaction_id": "t1", "customer_id": "c1", "terminal_id": "m1", "amount": 12.5,
                      "currency": "EUR", "event_time": "2018-04-01T00:00:31Z", "merchant_category": "grocery",
                      "latitude": 48.85, "longitude": 2.35},
        Label: {"transaction_id": "t1", "customer_id": "c1", "terminal_id": "m1", "is_fraud": True,
                "event_time": "2018-04-01T00:00:31Z", "reported_at": "2018-04-08T00:00:31Z"}}


def decode(model: type[Event], raw: bytes) -> Event:
    return VALIDATOR.transaction(raw, watermark=None) if model is Transaction else VALIDATOR.label(raw)


def refusal(model: type[Event], raw: bytes) -> tuple[str, str] | None:
    """The reason and detail of `raw`'s refusal, None if it is accepted."""
    try:
        decode(model, raw)
    except ValidationFailed as exc:
        return exc.reason, exc.detail
    return None


def test_the_inputs_are_what_the_comma_count_needs() -> None:
    """The count's premises: unknown names refused, no aliases, and no field takes an object or an
    array (whose commas and names the count would mix with the record's). A field added otherwise
    fails here."""
    for model, full in FULL.items():
        assert model.model_config["extra"] == "forbid"
        assert model.model_fields.keys() == full.keys()
        assert model.model_validate_json(json.dumps(full)).model_fields_set == full.keys()
        for name, info in model.model_fields.items():
            assert info.alias is None and info.validation_alias is None, name
            for nested in ({"a": 1, "b": 2}, [1, 2], {}, []):
                with pytest.raises(ValidationError):
                    model.model_validate_json(json.dumps({**full, name: nested}))


@pytest.mark.parametrize("raw, repeated", [
    ('{%s,"amount":12.5,"amount":9000}' % TX, "amount"),
    ('{%s,"amount":9000,"amount":12.5}' % TX, "amount"),
    ('{%s,"amount":12.5,"amount":12.5}' % TX, "amount"),  # the same value: still two
    ('{%s,"amount" :12.5,"amount":9000}' % TX, "amount"),  # a space before a colon: one '":' fewer
    ('{%s,"amount" : 12.5 ,"amount"\t:\n9000}' % TX, "amount"),
    ('{%s,"amount":12.5,"\\u0061mount":9000}' % TX, "amount"),  # an escape: the same name decoded
    ('{%s,"amount":12.5,"am\\u006fun\\u0074":9000,"amount":1}' % TX, "amount"),  # three times
    ('{%s,"amount":12.5,"merchant_category":"a,b","amount":9000}' % TX, "amount"),  # a comma in a value too
    ('{%s,"amount":12.5,"merchant_category":"a\\u002cb","amount":9000}' % TX, "amount"),  # an escaped one
    ('{%s,"amount":1,"merchant_category":"a,b","merchant_category":"c"}' % TX, "merchant_category"),
    ('{%s,"amount":1,"merchant_category":"a","merchant_category":"b,c"}' % TX, "merchant_category"),
    ('{%s,"amount":1,"merchant_category":"a,b,c,d,e,f","amount":2}' % TX, "amount"),  # commas as many as fields
    # an escaped quote: the quotes no longer open and close strings in turn, and the commas outside
    # them, counted at every other quote, would be as many as the fields
    ('{"merchant_category":"\\"","transaction_id":"a,b,c,d,e,f","customer_id":"c1","terminal_id":"m1",'
     '"event_time":"2018-04-01T00:00:31Z","amount":1,"amount":2}', "amount"),
    ('{%s,"amount":1,"merchant_category":null,"merchant_category":"x"}' % TX, "merchant_category"),
    ('{"transaction_id":"t1","customer_id":"c1","customer\\u005fid":"c2","terminal_id":"m1",'
     '"event_time":"2018-04-01T00:00:31Z","amount":1}', "customer_id"),
    (json.dumps({**FULL[Transaction], "amount": 1}, indent=2)[:-2] + ',\n  "amount": 9000\n}', "amount"),
    ('{%s,"amount":12.5,"merchant_category":"x\\":\\"amount\\":1,\\"", "amount":2}' % TX, "amount"),
    ('{"transaction_id":"t1","customer_id":"c1","customer_id":"c1","terminal_id":"m1","event_time":'
     '"2018-04-01T00:00:31Z","amount":1}', "customer_id"),
])
def test_a_transaction_that_gives_a_field_twice_is_refused(raw: str, repeated: str) -> None:
    assert refusal(Transaction, raw.encode()) == ("invalid_fields", f"field {repeated!r} given twice (which value "
                                                                    "is meant?)")


@pytest.mark.parametrize("raw, amount", [
    ('{%s,"amount":12.5}' % TX, 12.5),
    ('{ %s , "amount" : 12.5 }' % TX.replace(",", " ,\n "), 12.5),  # whitespace everywhere
    ('{%s,"\\u0061mount":12.5}' % TX, 12.5),  # an escaped name, once
    ('{%s,"amount":12.5,"merchant_category":"\\":,\\"amount\\":9000,"}' % TX, 12.5),  # '":', ',' in a value
    ('{%s,"amount":12.5,"merchant_category":"a\\u002cb"}' % TX, 12.5),  # an escaped comma: not counted
    ('{%s,"amount":12.5,"merchant_category":"Eating Places, Restaurants"}' % TX, 12.5),
    ('{%s,"amount":12.5,"merchant_category":"a\\u002cb, c"}' % TX, 12.5),
    ('{"transaction_id":"t,1","customer_id":"c\\",1","terminal_id":",,,","event_time":"2018-04-01T00:00:31Z",'
     '"amount":3}', 3.0),
    (json.dumps(FULL[Transaction], indent=2), 12.5),
])
def test_a_transaction_that_gives_each_field_once_is_accepted(raw: str, amount: float) -> None:
    tx = VALIDATOR.transaction(raw.encode(), watermark=None)
    assert tx.amount == amount


def test_commas_in_text_values_are_counted_without_parsing_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parse again is for escapes and repeats only: a merchant category (or an id) with commas,
    written without escapes, costs a sum of its commas, not a second parse of the record."""
    def parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(events, "json", SimpleNamespace(loads=parse))
    for raw in ['{%s,"amount":1}' % TX, '{%s,"amount":1,"merchant_category":"Eating Places, Restaurants"}' % TX,
                '{"transaction_id":"t,1","customer_id":" ,c, ","terminal_id":",","event_time":"2018-04-01T00:00:31Z",'
                '"amount":1,"merchant_category":"é, ,"}']:
        check_fields_once(raw.encode(), Transaction.model_validate_json(raw))
    with pytest.raises(AssertionError, match="parsed again"):  # an escape and a comma: parsed again
        raw = '{%s,"amount":1,"merchant_category":"a\\u002cb, c"}' % TX
        check_fields_once(raw.encode(), Transaction.model_validate_json(raw))


def test_a_label_that_gives_a_field_twice_is_refused() -> None:
    assert VALIDATOR.label(('{%s,"is_fraud":true}' % LABEL).encode()).is_fraud
    for raw, repeated in [('{%s,"is_fraud":false,"is_fraud":true}' % LABEL, "is_fraud"),
                          ('{%s,"is_fraud" :false,"is_fraud":true}' % LABEL, "is_fraud"),
                          ('{%s,"is_fraud":true,"reported_at":"2018-04-09T00:00:00Z"}' % LABEL, "reported_at"),
                          ('{%s,"terminal_id":null,"is_fraud":true,"terminal\\u005fid":"m1"}' % LABEL, "terminal_id")]:
        assert refusal(Label, raw.encode()) == ("invalid_fields", f"field {repeated!r} given twice (which value is "
                                                                  "meant?)")


def test_a_repeat_is_refused_whichever_of_its_values_is_bad() -> None:
    """Pydantic checks the last value only: a bad first one is refused as a repeat, a bad last one
    for its type."""
    assert refusal(Transaction, ('{%s,"amount":"lots","amount":9000}' % TX).encode()) == (
        "invalid_fields", "field 'amount' given twice (which value is meant?)")
    reason, detail = refusal(Transaction, ('{%s,"amount":9000,"amount":"lots"}' % TX).encode())
    assert reason == "invalid_fields" and detail.startswith("amount: Input should be a valid number")


def test_what_pydantic_accepts_json_reads() -> None:
    """The parse again uses json, the more lenient of the two: each text where they differ is refused
    by pydantic or read by json (else a record could reach `check_fields_once`'s parse and fail it)."""
    differing = ['{%s,"amount":NaN}', '{%s,"amount":Infinity}', '{%s,"amount":1,}', '\ufeff{%s,"amount":1}',
                 '{%s,"amount":01}', '{%s,"amount":1.}', '{%s,"amount":.5}', '{%s,"amount":1' + "0" * 5000 + "}",
                 '{%s,"amount":1e400}', '{%s,"amount":1,"merchant_category":"\\ud800"}', '{%s,"amount":-0}',
                 '{%s,"amount":1E+2,"merchant_category":"\\u00e9\\ud83d\\ude00"}',
                 '{%s,"amount":1,"merchant_category":"a\tb"}', '{%s,"amount":1}{}', '\x0c{%s,"amount":1}']
    # and bytes that are not UTF-8 (a surrogate, an overlong form, past U+10FFFF) or odd UTF-8, with a comma
    odd = [b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xef\xbf\xbe", b"\x7f"]
    for raw in [(text % TX).encode() for text in differing] + [
            ('{%s,"amount":1,"merchant_category":"a,' % TX).encode() + bad + b'"}' for bad in odd]:
        try:
            tx = Transaction.model_validate_json(raw)
        except ValidationError:
            continue
        json.loads(raw.decode("utf-8"), object_pairs_hook=fields_once)
        check_fields_once(raw, tx)


TEXT = st.text(st.sampled_from('ab1,:"\\{}[] é\t'), min_size=1, max_size=12).filter(lambda s: s.strip())
VALUES = {"transaction_id": TEXT, "customer_id": TEXT, "terminal_id": TEXT, "merchant_category": TEXT | st.none(),
          "amount": st.floats(0, 1e6) | st.integers(0, 10**6), "currency": st.sampled_from(["EUR", "USD"]),
          "event_time": st.sampled_from(["2018-04-01T00:00:31Z", "2024-02-29T23:59:59.5+01:00"]),
          "latitude": st.floats(-90, 90) | st.none(), "longitude": st.floats(-180, 180) | st.none()}
SPACE = st.sampled_from(["", " ", "\n", "\t ", "\r\n  "])


@st.composite
def records(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """A transaction's JSON text written by hand: its names (some escaped, some given more than once)
    and values (strings with commas, quotes, colons) in any order, with any whitespace."""
    required = ["transaction_id", "customer_id", "terminal_id", "amount", "event_time"]
    optional = draw(st.lists(st.sampled_from(["currency", "merchant_category", "latitude", "longitude"]), unique=True))
    repeats = draw(st.lists(st.sampled_from(required + optional), max_size=3))
    names = draw(st.permutations(required + optional + repeats))
    members = []
    for name in names:
        spelt = "".join(f"\\u{ord(c):04x}" if draw(st.booleans()) and draw(st.booleans()) else c for c in name)
        value = json.dumps(draw(VALUES[name]), ensure_ascii=draw(st.booleans()))
        members.append(f'{draw(SPACE)}"{spelt}"{draw(SPACE)}:{draw(SPACE)}{value}{draw(SPACE)}')
    return ("{" + ",".join(members) + "}").encode(), names


@given(records())
@hsettings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_refused_exactly_when_a_name_is_repeated(record: tuple[bytes, list[str]]) -> None:
    raw, names = record
    repeated = [name for i, name in enumerate(names) if name in names[:i]]
    refused = refusal(Transaction, raw)
    if repeated:
        assert refused is not None and refused[0] == "invalid_fields"
        assert refused[1].split("'")[1] in repeated
    else:
        assert refused is None, raw
        assert decode(Transaction, raw).model_dump(mode="json") == Transaction.model_validate(
            json.loads(raw)).model_dump(mode="json")


@pytest.mark.services
def test_a_repeated_field_is_dead_lettered_and_the_next_record_scored(settings: Settings) -> None:
    """On the real broker: the transaction and the label that give a field twice go to their
    dead-letter topics with the reason and the field named; the records after them are scored and
    learned."""
    settings = settings.model_copy(update={"alert_threshold": 0.0, "alert_warmup_labels": 0})  # every one alerts
    ensure_topics(settings)
    txs = scripted_transactions(6)
    twice = (b'{"transaction_id":"tx-twice","customer_id":"c1","terminal_id":"m1","amount":12.5,'
             b'"event_time":"2024-03-01T00:20:00Z","amount":9000}')
    publish(settings, txs[:3])
    produce_raw(settings, settings.topic_transactions, [(b"c1", twice)])
    publish(settings, txs[3:])
    label = Label(transaction_id=txs[4].transaction_id, customer_id=txs[4].customer_id, is_fraud=False,
                  event_time=txs[4].event_time, reported_at=txs[4].event_time + timedelta(days=7)).to_json_bytes()
    label_twice = label[:-1] + b',"is_fraud":true}'
    produce_raw(settings, settings.topic_labels, [(txs[4].customer_id.encode(), label_twice),
                                                  (txs[4].customer_id.encode(), label)])
    with scoring_consumer(settings) as app:
        stats = run_until_committed(app, settings)
    assert (stats.processed, stats.dead_lettered, stats.labels_learned, stats.labels_dead_lettered) == (6, 1, 1, 1)
    alerted = {json.loads(r.value)["transaction_id"] for r in read_topic(settings, settings.topic_alerts, expect=6)}
    assert alerted == {tx.transaction_id for tx in txs}  # the one after the refused record too
    for topic, value, field in [(settings.topic_dlq, twice, "amount"),
                                (settings.topic_labels_dlq, label_twice, "is_fraud")]:
        [dead] = read_topic(settings, topic, expect=1)
        headers = dict(dead.headers)
        assert dead.value == value
        assert headers[constants.DLQ_HEADER_REASON] == b"invalid_fields"
        error = f"invalid_fields: field {field!r} given twice (which value is meant?)"
        assert headers[constants.DLQ_HEADER_ERROR] == error.encode()
