"""The scoring consumer: Kafka in, Redis event-time features, River scoring, alerts and dead letters out."""
