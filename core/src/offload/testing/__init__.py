"""Test helpers for backend authors: the conformance contract every backend keeps.

Import it from a backend's tests; it is not loaded as a pytest plugin on its own.
"""

from offload.testing.contract import BackendContract, make_request, wait_for, wait_until_running

__all__ = ["BackendContract", "make_request", "wait_for", "wait_until_running"]
