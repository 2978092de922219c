"""The exception hierarchy. Every error fraudstream raises on purpose derives from `FraudstreamError`."""

from __future__ import annotations


class FraudstreamError(Exception):
    """Root of all fraudstream errors."""


class ConfigError(FraudstreamError):
    """Settings are missing or inconsistent."""


class ServiceError(FraudstreamError):
    """An embedded or external server could not be started or reached."""


class KafkaAuthError(ServiceError):
    """A Kafka broker refused the SASL login; the message names the settings to check, never the password."""


class InputError(FraudstreamError):
    """A file or record could not be read; the message names where and why."""


class OutputError(FraudstreamError):
    """A file could not be written; the message names it and why."""


class ValidationFailed(FraudstreamError):
    """A record failed decoding or validation. `reason` is short and machine-readable."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class CheckpointError(FraudstreamError):
    """A model checkpoint is missing, unsigned, tampered with or signed with another key."""


class UnpicklableModel(CheckpointError):
    """A model cannot be pickled, so no checkpoint can be made of it (a lambda in a model of your own)."""


class ModelError(FraudstreamError):
    """An unknown model name or an unusable model."""
