"""The package version: the one place it is written (pyproject reads it from here)."""

VERSION = "0.1.0"
