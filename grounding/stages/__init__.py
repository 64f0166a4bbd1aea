"""Stages: the method-independent steps regions (SLIC) → score map (φ) → box search, plus the feature cache."""
