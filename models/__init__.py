"""Event contracts and the learning side: River pipelines, checkpoints, evaluation metrics."""
