"""Metrics over well-kept libraries."""
