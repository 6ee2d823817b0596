"""Test helpers for users and for the suite: synthetic tables and small fits."""
