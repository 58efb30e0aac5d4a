"""Unit tier: pure tests. Sockets are off, so a test that reaches for the network fails loudly."""

import socket

import pytest


class NetworkBlockedError(RuntimeError):
    """Raised instead of opening a connection from a unit test."""


def _refuse(*args, **kwargs):
    raise NetworkBlockedError("unit tests must not open network connections (use the integration tier)")


@pytest.fixture(autouse=True, scope="module")
def _sockets_off():
    # Module scope: hypothesis refuses function-scoped fixtures around @given tests, and a wider
    # scope would leave sockets off for the integration and e2e tiers that run after this one.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _refuse)
        patch.setattr(socket.socket, "connect_ex", _refuse)
        patch.setattr(socket, "create_connection", _refuse)
        patch.setattr(socket, "getaddrinfo", _refuse)
        yield
