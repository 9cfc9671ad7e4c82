"""Metrics for trained embeddings: verification, one-shot identification, and run reports."""
