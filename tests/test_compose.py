"""docker-compose.yml is checked without Docker: services, health-check ordering, settings and every
fraudstream command parsed by the real CLI (a mistyped flag fails here, not in someone's terminal)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from fraudstream.cli import main
from fraudstream.config import Settings
from fraudstream.constants import ENV_PREFIX

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
FRAUDSTREAM = {name: svc for name, svc in SERVICES.items() if svc.get("image") == "fraudstream:local"}


def parse_command(args: list[str]) -> list[click.Context]:
    """Parse `fraudstream ARGS` down to the leaf command without running anything; the contexts."""
    contexts = [main.make_context("fraudstream", list(args))]
    command: click.Command = main
    while isinstance(command, click.Group):
        parent = contexts[-1]
        protected = parent._protected_args if hasattr(parent, "_protected_args") else parent.protected_args  # click < 8.2
        remaining = [*protected, *parent.args]
        if not remaining and command is not main:  # a group on its own lists its commands
            break
        name, sub, rest = command.resolve_command(parent, remaining)
        assert sub is not None and name is not None, f"unknown command in {args}"
        contexts.append(sub.make_context(name, rest, parent=parent))
        command = sub
    return contexts


def test_services_and_replicas() -> None:
    assert {"kafka", "redis", "topics", "producer", "consumer", "alerts", "prometheus"} <= set(SERVICES)
    assert set(FRAUDSTREAM) == {"topics", "producer", "consumer", "alerts"}
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert SERVICES["redis"]["image"].startswith("redis:")
    assert SERVICES["consumer"]["deploy"]["replicas"] == 2
    assert all(svc["build"] == "." for svc in FRAUDSTREAM.values())
    assert (ROOT / "Dockerfile").read_text().count('ENTRYPOINT ["fraudstream"]') == 1


def test_health_checks_gate_the_start_order() -> None:
    for name in ("kafka", "redis"):
        check = SERVICES[name]["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"} and len(check["test"]) > 1
        assert check["retries"] >= 3
    assert SERVICES["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert SERVICES["topics"]["restart"] == "no"
    for name in ("producer", "consumer", "alerts"):
        deps = SERVICES[name]["depends_on"]
        assert deps["kafka"] == {"condition": "service_healthy"}, name
        assert deps["redis"] == {"condition": "service_healthy"}, name
        assert deps["topics"] == {"condition": "service_completed_successfully"}, name
    for name, svc in SERVICES.items():
        for dep in svc.get("depends_on", {}):
            assert dep in SERVICES, f"{name} depends on unknown service {dep}"


@pytest.mark.parametrize("service", sorted(FRAUDSTREAM))
def test_every_command_parses_with_the_real_cli(service: str) -> None:
    command = FRAUDSTREAM[service]["command"]
    contexts = parse_command(command)
    assert contexts[-1].info_name == command[0]


def test_a_mistyped_flag_is_caught() -> None:
    with pytest.raises(click.NoSuchOption):
        parse_command(["consume", "--metrics-prot", "9464"])
    with pytest.raises(click.BadParameter):
        parse_command(["consume", "--metrics-port", "ninety"])


def test_environment_is_valid_settings() -> None:
    for name, svc in FRAUDSTREAM.items():
        env = svc["environment"]
        for key in env:
            assert key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX):].lower() in Settings.model_fields, (name, key)
        settings = Settings(**{key[len(ENV_PREFIX):].lower(): value for key, value in env.items()})
        assert settings.kafka_bootstrap == "kafka:9092"  # the broker's in-network listener
        assert settings.redis_url and settings.redis_url.startswith("redis://redis:")
    listeners = SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "PLAINTEXT://kafka:9092" in listeners.split(",")


def test_prometheus_scrapes_the_consumers_metrics_port() -> None:
    consumer = parse_command(SERVICES["consumer"]["command"])[-1]
    port = consumer.params["metrics_port"]
    assert port is not None and str(port) in SERVICES["consumer"]["expose"]
    mount = next(v for v in SERVICES["prometheus"]["volumes"] if v.endswith(":/etc/prometheus/prometheus.yml:ro"))
    config = yaml.safe_load((ROOT / mount.split(":")[0]).read_text())
    targets = [sd for job in config["scrape_configs"] for sd in job.get("dns_sd_configs", [])]
    assert targets == [{"names": ["consumer"], "type": "A", "port": port}]
