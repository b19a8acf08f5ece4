"""A key-value store the guest talks to over a channel written in Python.

Run: python examples/kv_channel.py   (boots the bundled guest's test=request client)
"""

from __future__ import annotations

import pyvmm
from pyvmm.paravirt.abi import ChannelFlag, ChannelKind


class KeyValue(pyvmm.Channel):
    """``set KEY VALUE`` / ``get KEY`` requests, one per SEND; each reply ends with a newline."""

    kind = ChannelKind.STREAM
    name = "kv"

    def __init__(self) -> None:
        self.store: dict[str, str] = {}
        self.replies = bytearray()

    def send(self, data: memoryview, offset: int) -> int:
        words = bytes(data).decode(errors="replace").split(maxsplit=2)
        if len(words) == 3 and words[0] == "set":
            self.store[words[1]] = words[2]
            self.replies += b"ok\n"
        elif len(words) == 2 and words[0] == "get":
            self.replies += self.store.get(words[1], "(none)").encode() + b"\n"
        else:
            self.replies += b"error\n"
        return len(data)

    def recv(self, buf: memoryview, offset: int) -> int:
        if not self.replies:
            raise pyvmm.ChannelError(pyvmm.Errno.EAGAIN)  # the guest retries
        n = min(len(buf), len(self.replies))
        buf[:n] = self.replies[:n]
        del self.replies[:n]
        return n

    def readiness(self) -> ChannelFlag:
        ready = ChannelFlag.WRITABLE | ChannelFlag.CONNECTED
        return ready | ChannelFlag.READABLE if self.replies else ready


def main() -> int:
    kv = KeyValue()
    with pyvmm.VM(cmdline="test=request name=kv msg=set+colour+teal;get+colour;get+size", timeout=60) as vm:
        vm.add_channel(kv)
        result = vm.run()
    print(vm.console_output.decode(), end="")
    print("store:", kv.store)
    return result.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
