"""fraudstream: streaming card-fraud detection on Kafka, Redis and River."""

__version__ = "0.1.0"
