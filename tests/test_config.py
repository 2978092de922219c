from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from click.testing import CliRunner

from fraudstream.cli import main
from fraudstream.config import Settings


def test_env_vars_and_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_LABEL_DELAY", "36h")
    monkeypatch.setenv("FRAUDSTREAM_GROUP_ID", "g-env")
    settings = Settings()
    assert settings.label_delay == timedelta(hours=36)
    assert settings.group_id == "g-env"


def test_max_future_skew_none_means_no_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the future skew takes "none" (a simulated clock may run ahead of the wall clock)."""
    from pydantic import ValidationError

    monkeypatch.setenv("FRAUDSTREAM_MAX_FUTURE_SKEW", "None")
    assert Settings().max_future_skew is None
    monkeypatch.setenv("FRAUDSTREAM_MAX_FUTURE_SKEW", "2d")
    assert Settings().max_future_skew == timedelta(days=2)
    monkeypatch.setenv("FRAUDSTREAM_LABEL_DELAY", "none")
    with pytest.raises(ValidationError, match="label_delay\n  Value error, not a duration"):
        Settings()


def test_secrets_never_in_repr() -> None:
    settings = Settings(redis_url="redis://:s3cret@h:1/0", kafka_sasl_password="pw-123", redis_password="rpw",
                        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="PLAIN", kafka_sasl_username="u")
    text = repr(settings) + str(settings) + str(settings.model_dump()) + settings.model_dump_json()
    for secret in ("s3cret", "pw-123", "rpw"):
        assert secret not in text


@pytest.mark.parametrize("url", ["redis://:s3cret@h:1/0", "redis://h:1/0?password=s3cret",
                                 "rediss://u@h:1/0?db=1&Password=s3cret&ssl_cert_reqs=none",
                                 # an @ in a query value: taken, and not read as the end of a user part
                                 "redis://:s3cret@h:1/0?client_name=fs@node1", "redis://h:1/0?password=s3@cret",
                                 "redis://h:1/0?pass%77ord=s3cret"])
def test_config_never_prints_a_password_of_the_redis_url(url: str) -> None:
    """redis-py takes a password from the URL's user part and from its query (``?password=``)."""
    result = CliRunner().invoke(main, ["config"], env={"FRAUDSTREAM_REDIS_URL": url})
    assert result.exit_code == 0 and "s3cret" not in result.output, result.output
    shown = next(line for line in result.output.splitlines() if line.startswith("FRAUDSTREAM_REDIS_URL="))
    assert "***" in shown and "h:1/0" in shown


def test_help_shows_env_vars() -> None:
    result = CliRunner().invoke(main, ["--help"])
    text = " ".join(result.output.split())  # wherever the help's lines wrap
    assert result.exit_code == 0
    assert "[env: FRAUDSTREAM_KAFKA_BOOTSTRAP]" in text and "[env: FRAUDSTREAM_REDIS_URL]" in text
    assert "(unset: `demo` starts one)" in text  # only demo starts embedded servers; the others need them
    commands = text.split("Commands:", 1)[1]
    assert "..." not in commands  # each command's first sentence whole (click cut them to the width)
    assert "Print alerts as they arrive on the alert topic (no consumer group; nothing is committed)." in commands
    assert "dead-letters Print the dead letters" in commands


def test_python_dash_m_runs_the_command() -> None:
    result = subprocess.run([sys.executable, "-m", "fraudstream", "features", "--help"], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: python -m fraudstream features")


@pytest.mark.parametrize("command", ["replay", "features", "backtest"])
def test_help_shows_the_default_label_delay_as_the_option_takes_it(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "[default: 7d]" in " ".join(result.output.split()), result.output


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("FRAUDSTREAM_KAFKA_BOOTSTRAP", "abc:xyz", "'abc:xyz' is not host:port"),
    ("FRAUDSTREAM_KAFKA_BOOTSTRAP", "k1:9092,", "'' is not host:port"),
    ("FRAUDSTREAM_REDIS_URL", "localhost:6379", "a Redis URL starts with redis://"),
    ("FRAUDSTREAM_LOG_LEVEL", "verbose", "one of DEBUG, INFO, WARNING, ERROR"),
    ("FRAUDSTREAM_LOG_FORMAT", "xml", "text or json"),
    ("FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL", "TLS", "one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
    # kafka-python's refusals: 30 s of retries, then "the Kafka broker did not answer"
    ("FRAUDSTREAM_KAFKA_SASL_MECHANISM", "GSSAPI", "'GSSAPI': one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
    ("FRAUDSTREAM_KAFKA_SSL_CAFILE", "/nonexistent.pem", "'/nonexistent.pem' is not a readable file"),
    ("FRAUDSTREAM_KAFKA_SASL_PASSWORD", "s3cret", "FRAUDSTREAM_KAFKA_SASL_PASSWORD given, but "
                                                  "FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
    ("FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT", "FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL is SASL_PLAINTEXT: "
     "set FRAUDSTREAM_KAFKA_SASL_MECHANISM, FRAUDSTREAM_KAFKA_SASL_USERNAME, FRAUDSTREAM_KAFKA_SASL_PASSWORD too"),
    ("FRAUDSTREAM_TOPIC_ALERTS", "bad topic!", "'bad topic!' is not a Kafka topic name"),
    # an OverflowError at once, or after 5 s in the consumer's lateness check
    ("FRAUDSTREAM_LABEL_DELAY", "99999999999d", "longer than 3650d (ten years)"),
    ("FRAUDSTREAM_ALLOWED_LATENESS", "1000000d", "longer than 3650d (ten years)"),
    # what redis-py or kafka-python refused later, with a traceback (an operator's walk-through)
    ("FRAUDSTREAM_REDIS_URL", "redis://127.0.0.1:notaport/0", "Port could not be cast to integer"),
    ("FRAUDSTREAM_REDIS_URL", "redis://h:6379/0?socket_timeout=abc", "Invalid value for 'socket_timeout'"),
    ("FRAUDSTREAM_REDIS_URL", "redis://[::1/0", "Invalid IPv6 URL"),
    ("FRAUDSTREAM_REDIS_URL", "redis://:s3cret@127.0.0.1:notaport/0", "its host, port, database or query cannot be read"),
    ("FRAUDSTREAM_REDIS_URL", "redis://:s3cret@h:6379/0?socket_timeout=abc", "cannot be read (a password's / # ?"),
    ("FRAUDSTREAM_REDIS_URL", "redis://:s3cret@h:6379/abc", "the database of a Redis URL is a number"),
    # a password with / unencoded is read as the port or the database: the message quotes neither
    ("FRAUDSTREAM_REDIS_URL", "redis://:12/xys3cret@10.0.0.5:6379/0", "its user part cannot be read (a password's"),
    # with # or ? after digits it was a port and a fragment or query, and the URL was taken (its masked
    # form showed the password whole)
    ("FRAUDSTREAM_REDIS_URL", "redis://:1234#xys3cret@127.0.0.1:6379/0", "its user part cannot be read (a password's"),
    ("FRAUDSTREAM_REDIS_URL", "redis://u:1234?xys3cret@127.0.0.1:6379/0", "its user part cannot be read (a password's"),
    ("FRAUDSTREAM_REDIS_URL", "redis://:pa/ss3cret@127.0.0.1:6379/0", "written %2F %23 %3F %40 %25 in a URL"),
    # a listener's address, or servers joined by ';': taken, then 30 s of "Name or service not known"
    ("FRAUDSTREAM_KAFKA_BOOTSTRAP", "PLAINTEXT://127.0.0.1:9092", "no scheme (the protocol is "
                                                                  "FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL)"),
    ("FRAUDSTREAM_KAFKA_BOOTSTRAP", "k1:9092;k2:9092", "'k1:9092;k2:9092' is not host:port"),
    ("FRAUDSTREAM_SESSION_TIMEOUT_MS", "500", "FRAUDSTREAM_HEARTBEAT_INTERVAL_MS (1000) must be below "
                                              "FRAUDSTREAM_SESSION_TIMEOUT_MS (500)"),
])
def test_malformed_connection_and_log_settings_are_one_line_errors(variable: str, value: str, message: str) -> None:
    result = CliRunner().invoke(main, ["config"], env={variable: value})
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output
    assert "s3cret" not in result.output


def test_a_bad_variable_leaves_every_commands_help_readable() -> None:
    """It is refused by the command that reads the settings, not before the help is shown."""
    env = {"FRAUDSTREAM_LOG_LEVEL": "verbose"}
    helped = CliRunner().invoke(main, ["consume", "--help"], env=env)
    assert helped.exit_code == 0 and "Score transactions from Kafka" in helped.output, helped.output
    refused = CliRunner().invoke(main, ["consume"], env=env)
    assert refused.exit_code == 2 and "FRAUDSTREAM_LOG_LEVEL: 'verbose'" in refused.output, refused.output


def test_a_blank_after_a_redis_url_is_dropped() -> None:
    """A pasted URL with a blank after it was refused as "the database of a Redis URL is a number"."""
    assert Settings(redis_url="redis://127.0.0.1:6379/0 ").redis_url == "redis://127.0.0.1:6379/0"


def test_well_formed_ones_are_kept() -> None:
    s = Settings(kafka_bootstrap="k1:9092,[::1]:9093,kafka", redis_url="rediss://:pw@r:6380/1", log_level="debug",
                 kafka_security_protocol="sasl_ssl", kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="u",
                 kafka_sasl_password="p")
    assert (s.kafka_bootstrap, s.log_level, s.kafka_security_protocol) == ("k1:9092,[::1]:9093,kafka", "DEBUG", "SASL_SSL")


def test_a_redis_that_cannot_be_reached_is_a_one_line_error() -> None:
    result = CliRunner().invoke(main, ["models"], env={"FRAUDSTREAM_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.exit_code == 1 and "cannot reach Redis (FRAUDSTREAM_REDIS_URL)" in result.output, result.output
    assert "Traceback" not in result.output
    # given as an option, the option is named, not the env var that did not give it
    result = CliRunner().invoke(main, ["--redis-url", "redis://127.0.0.1:1/0", "models", "retire", "x"])
    assert result.exit_code == 1 and "cannot reach Redis (--redis-url)" in result.output, result.output
    assert "FRAUDSTREAM_REDIS_URL" not in result.output


@pytest.mark.services
def test_a_single_redis_taken_for_a_cluster_or_a_server_that_is_not_redis_is_a_one_line_error(
        settings: Settings) -> None:
    """Both raised out of the commands with a traceback of ~100 lines (a walk-through)."""
    import socket
    import threading

    env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url or "", "FRAUDSTREAM_REDIS_CLUSTER": "true"}
    result = CliRunner().invoke(main, ["models"], env=env)
    assert result.exit_code == 1 and "unset FRAUDSTREAM_REDIS_CLUSTER for a single server" in result.output, result.output
    with socket.create_server(("127.0.0.1", 0)) as server:  # answers every connection as an HTTP server would
        def answer() -> None:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn:
                    conn.sendall(b"<html>not redis</html>\r\n")
        threading.Thread(target=answer, daemon=True).start()
        url = f"redis://127.0.0.1:{server.getsockname()[1]}/0"
        result = CliRunner().invoke(main, ["models"], env={"FRAUDSTREAM_REDIS_URL": url})
    assert result.exit_code == 1 and "does not answer as Redis does" in result.output, result.output
    assert "Traceback" not in result.output


def test_config_output_is_read_back_as_the_same_settings() -> None:
    """`fraudstream config` prints each value as its variable takes it (durations as 7d, lists comma-separated,
    unset ones empty), so its lines can be exported as they are."""
    env = {"FRAUDSTREAM_CHALLENGERS": "logreg,htree", "FRAUDSTREAM_LABEL_DELAY": "36h",
           "FRAUDSTREAM_MAX_FUTURE_SKEW": "none", "FRAUDSTREAM_ALLOWED_LATENESS": "250ms"}
    first = CliRunner().invoke(main, ["config"], env=env).output
    printed = dict(line.split("=", 1) for line in first.splitlines() if not line.startswith("FRAUDSTREAM_MODEL_SIGNING"))
    assert printed["FRAUDSTREAM_LABEL_DELAY"] == "36h" and printed["FRAUDSTREAM_CHALLENGERS"] == "logreg,htree"
    assert printed["FRAUDSTREAM_KAFKA_BOOTSTRAP"] == "" and printed["FRAUDSTREAM_MAX_FUTURE_SKEW"] == "none"
    again = CliRunner().invoke(main, ["config"], env=printed)
    assert again.exit_code == 0 and again.output == first, again.output


@pytest.mark.parametrize(("args", "message"), [
    (["consume", "--max-transactions", "0"], "0 is not in the range x>=1"),
    (["consume", "--idle-timeout", "-1"], "'-1' is not a finite number > 0"),
    (["alerts", "--max", "-1"], "-1 is not in the range x>=1"),
    (["produce", "--customers", "0"], "0 is not in the range x>=1"),
    (["replay", "README.md", "--start", "2018-04-02", "--end", "2018-04-01"], "2018-04-01 is not after --start"),
    (["models", "import", "x.fsmodel", "--name", " "], "a model name is 1-64 letters"),
    (["models", "export", "gbt_window", "no/such/dir/x.fsmodel"], "no such directory"),
    (["alerts", "--min-score", "nan"], "'nan' is not a finite number >= 0 and <= 1"),
    (["record", "--days", "3", "--start", "2099-12-30", "--out", "x.csv"], "leaves the event times every reader accepts"),
    # before any server starts or is reached (demo and produce only failed in the producer)
    (["demo", "--transactions", "-5"], "-5 is not in the range x>=1"),
    (["produce", "--count", "-5"], "-5 is not in the range x>=1"),
    (["produce", "--count", "10", "--label-delay", "soon"], "not a duration: 'soon'"),
    (["demo", "--label-delay", "-1d"], "not a duration: '-1d'"),
    (["up", "--partitions", "0"], "0 is not in the range x>=1"),
    (["models", "export", "gbt_window", "x.fsmodel", "--version", "0"], "'0' is not a version (a number from 1"),
    (["record", "--days", "0", "--out", "x.csv"], "0 is not in the range x>=1"),
    (["record", "--days", "1", "--customers", "-3", "--out", "x.csv"], "-3 is not in the range x>=1"),
    (["record", "--days", "1", "--report-share", "1.5", "--out", "x.csv"], "'1.5' is not a finite number >= 0 and <= 1"),
    (["record", "--days", "1", "--out", "x.txt"], "Invalid value for --out: x.txt: unknown output format"),
    (["record", "--days", "1", "--out", "no/such/dir/x.jsonl"], "Invalid value for --out: no/such/dir/x.jsonl: no such directory"),
    (["topics", "--partitions", "0"], "Invalid value for '--partitions': 0 is not in the range x>=1"),
    # settings given as options: named by the option (not the settings field), exit 2 as for any bad option
    (["replay", "README.md", "--label-delay", "-1d"], "Invalid value: --label-delay: not a duration: '-1d'"),
    (["backtest", "README.md", "--threshold", "2"], "Invalid value for '--threshold': '2' is not a finite number >= 0 and <= 1"),
    (["consume", "--threshold", "nan"], "Invalid value for '--threshold': 'nan' is not a finite number >= 0 and <= 1"),
    # a bare number would be seconds: seven of them as a backtest's label delay learns each label at once
    (["backtest", "README.md", "--label-delay", "7"], "Invalid value: --label-delay: a duration needs its unit: '7'"),
])
def test_counts_windows_and_names_are_checked_before_anything_runs(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, args, env={"FRAUDSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("FRAUDSTREAM_LABEL_DELAY", "xyz", "not a duration: 'xyz'"),
    ("FRAUDSTREAM_ALERT_THRESHOLD", "abc", "Input should be a valid number"),
    # the one duration that also takes none says so (it said only "use e.g. 7d, 36h, 15m, 90s")
    ("FRAUDSTREAM_MAX_FUTURE_SKEW", "off", "not a duration: 'off' (use e.g. 7d, 36h, 15m, 90s), or none for no limit"),
    # an unknown zone, a lower-case one, a directory of zones, a path out of the zone database
    *[("FRAUDSTREAM_LOCAL_TIMEZONE", zone, f"'{zone}' is not an IANA time zone name (e.g. UTC, America/New_York, "
       "Europe/London)") for zone in ("Mars/Base", "america/new_york", "America", "../etc/passwd")],
])
def test_a_bad_env_var_is_named_in_the_error(variable: str, value: str, message: str) -> None:
    result = CliRunner().invoke(main, ["config"], env={variable: value})
    assert result.exit_code == 2 and f"Invalid value: {variable}: {message}" in result.output, result.output
    assert "Traceback" not in result.output


def test_a_time_zone_is_taken_and_shown() -> None:
    result = CliRunner().invoke(main, ["config"], env={"FRAUDSTREAM_LOCAL_TIMEZONE": " America/New_York"})
    assert result.exit_code == 0 and "FRAUDSTREAM_LOCAL_TIMEZONE=America/New_York\n" in result.output, result.output
    assert "FRAUDSTREAM_LOCAL_TIMEZONE=UTC\n" in CliRunner().invoke(main, ["config"], env={"FRAUDSTREAM_LOCAL_TIMEZONE": None}).output


def test_an_unreachable_broker_is_one_clear_error_not_kafka_pythons_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from fraudstream import kafka_reach

    monkeypatch.setattr(kafka_reach, "BROKER_WAIT_S", 1.2)
    result = CliRunner().invoke(main, ["alerts"], env={"FRAUDSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    assert result.exit_code == 1
    lines = result.output.splitlines()  # kafka-python's own retries logged ~20 lines before
    assert len(lines) == 2, lines
    assert "WARNING fraudstream.kafka_reach: waiting up to 1.2 s for a Kafka broker at 127.0.0.1:1" in lines[0]
    assert lines[1].startswith("Error: the Kafka broker did not answer (FRAUDSTREAM_KAFKA_BOOTSTRAP): "
                               "KafkaConnectionError: nothing accepted a connection at 127.0.0.1:1 within 1.2 s")


@pytest.mark.parametrize("command", ["consume", "demo"])
def test_a_metrics_port_in_use_is_refused_before_anything_starts(command: str) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, [command, "--metrics-port", str(port)],
                                    env={"FRAUDSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1",  # never reached
                                         "FRAUDSTREAM_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"Error: cannot serve metrics on 0.0.0.0:{port}: [Errno 98] Address already in use"]


@pytest.mark.parametrize("args", [["produce", "--count", "1"], ["replay", "README.md"], ["topics"], ["alerts"],
                                  ["consume"]])
def test_commands_that_need_a_broker_say_so_with_the_usage_errors_exit_code(args: list[str]) -> None:
    result = CliRunner().invoke(main, args, env={"FRAUDSTREAM_KAFKA_BOOTSTRAP": "", "FRAUDSTREAM_REDIS_URL": ""})
    assert result.exit_code == 2 and "set FRAUDSTREAM_KAFKA_BOOTSTRAP" in result.output, result.output


def test_a_global_option_after_the_command_says_where_it_goes() -> None:
    result = CliRunner().invoke(main, ["consume", "--kafka-bootstrap", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert ("No such option '--kafka-bootstrap' for `consume`: it is an option of `fraudstream` itself, given before "
            "the command (`fraudstream --kafka-bootstrap VALUE consume ...`), or set FRAUDSTREAM_KAFKA_BOOTSTRAP."
            in " ".join(result.output.split())), result.output
    nested = CliRunner().invoke(main, ["models", "import", "x.fsmodel", "--redis-url", "redis://h:1/0"])
    assert nested.exit_code == 2 and "for `models import`: it is an option of `fraudstream` itself" in nested.output
    flag = CliRunner().invoke(main, ["alerts", "--version"])  # an option of `fraudstream`, but no setting
    assert flag.exit_code == 2 and "it is an option of" not in flag.output
    other = CliRunner().invoke(main, ["consume", "--no-such-thing"])
    assert other.exit_code == 2 and "No such option '--no-such-thing'." in other.output


def test_config_says_when_the_signing_key_is_the_demo_default() -> None:
    default = CliRunner().invoke(main, ["config"], env={"FRAUDSTREAM_MODEL_SIGNING_KEY": None}).output
    own = CliRunner().invoke(main, ["config"], env={"FRAUDSTREAM_MODEL_SIGNING_KEY": "a secret of mine"}).output
    line = "FRAUDSTREAM_MODEL_SIGNING_KEY=**********"
    assert f"{line}  # the built-in default, for demos only\n" in default
    assert f"{line}\n" in own and "a secret of mine" not in own


def test_a_misspelt_variable_is_named_with_the_one_meant() -> None:
    """pydantic-settings ignores FRAUDSTREAM_* variables that are no setting: a misspelt one left its
    setting at the default without a word (a user's walk-through of the Configuration section)."""
    result = CliRunner().invoke(main, ["config"], env={"FRAUDSTREAM_ALERT_TRESHOLD": "0.9"})
    assert result.exit_code == 0, result.output
    assert ("Warning: FRAUDSTREAM_ALERT_TRESHOLD is not a fraudstream setting and is ignored (did you mean "
            "FRAUDSTREAM_ALERT_THRESHOLD?)") in result.output
    assert "FRAUDSTREAM_ALERT_THRESHOLD=0.5\n" in result.output
    known = CliRunner().invoke(main, ["config"], env={"FRAUDSTREAM_ALERT_THRESHOLD": "0.9"})
    assert known.exit_code == 0 and "Warning" not in known.output, known.output


def test_the_log_format_takes_any_case_as_the_log_level_does() -> None:
    """FRAUDSTREAM_LOG_FORMAT=JSON was refused (in a JSON log line) while FRAUDSTREAM_LOG_LEVEL=debug was taken."""
    for args, env in ((["config"], {"FRAUDSTREAM_LOG_FORMAT": "JSON"}), (["--log-format", "Json", "config"], {})):
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 0 and "FRAUDSTREAM_LOG_FORMAT=json\n" in result.output, result.output


def test_consume_names_only_the_server_that_is_not_set() -> None:
    result = CliRunner().invoke(main, ["consume"], env={"FRAUDSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1",
                                                        "FRAUDSTREAM_REDIS_URL": ""})
    assert result.exit_code == 2 and "Error: set FRAUDSTREAM_REDIS_URL (see `fraudstream up`)" in result.output, result.output
    both = CliRunner().invoke(main, ["consume"], env={"FRAUDSTREAM_KAFKA_BOOTSTRAP": "", "FRAUDSTREAM_REDIS_URL": ""})
    assert "set FRAUDSTREAM_KAFKA_BOOTSTRAP and FRAUDSTREAM_REDIS_URL" in both.output, both.output
