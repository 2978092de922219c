"""Transaction simulator, recorder and replay into Kafka."""
