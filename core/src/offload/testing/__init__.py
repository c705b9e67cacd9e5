"""Test helpers for plugin authors: the conformance contracts every backend and storage keeps.

Import them from a plugin's tests; they are not loaded as a pytest plugin on their own.
"""

from offload.testing.contract import BackendContract, make_request, wait_for, wait_for_line, wait_until_running
from offload.testing.storage_contract import StorageContract

__all__ = ["BackendContract", "StorageContract", "make_request", "wait_for", "wait_for_line", "wait_until_running"]
