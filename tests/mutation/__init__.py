"""Mutation testing of the engine core: `python -m tests.mutation.run` (docs/MUTATION.md)."""
