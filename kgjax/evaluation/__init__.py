"""Evaluation: ranking metrics and one evaluator per task."""
