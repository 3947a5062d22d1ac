"""Observers, features, rule classifiers and reports."""
