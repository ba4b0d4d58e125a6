"""Test support shared by the project's tests, benchmarks and backend authors."""
