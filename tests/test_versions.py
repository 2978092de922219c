"""The versions of the libraries whose internals fraudstream mirrors (no servers needed)."""

from __future__ import annotations


def test_the_installed_kafka_python_is_the_one_the_workarounds_mirror() -> None:
    """pyproject allows other kafka-python versions, with which the workarounds switch themselves off
    and their tests skip: a set-up that resolves another one fails here instead of passing quietly.
    (In a module without the services mark, so that no selection leaves it out.)"""
    import kafka

    from fraudstream import kafka_join, kafka_records, kafka_transport

    mended = kafka_join.MENDED_VERSIONS & kafka_records.MENDED_VERSIONS & kafka_transport.MENDED_VERSIONS
    assert kafka.__version__ in mended, (
        f"kafka-python {kafka.__version__} installed; the workarounds (kafka_join, kafka_records, kafka_transport) "
        f"mirror {sorted(mended)}: check them against it, then add it to their MENDED_VERSIONS")
