"""Fairway: fair, documented, approved credit-risk models."""
