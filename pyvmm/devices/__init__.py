"""Host-side backends that hypercalls reach: console, block, inter-VM streams, the null sink.

Every device is a :class:`~pyvmm.devices.base.Channel`; :func:`open_device` opens the
one a command-line spec (:mod:`pyvmm.devices.spec`) describes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyvmm.devices.base import Channel
    from pyvmm.devices.broker import Endpoint
    from pyvmm.devices.spec import ChannelSpec


def open_device(spec: ChannelSpec, endpoint: Endpoint | None = None) -> Channel:
    """Open the device behind *spec* (a stream's sockets through *endpoint*, by default
    made in this process); raises :class:`~pyvmm.devices.base.DeviceError`."""
    from pyvmm.devices.spec import DiskSpec

    if isinstance(spec, DiskSpec):
        from pyvmm.devices.block import BlockDevice

        return BlockDevice.open(spec.name, spec.path)
    from pyvmm.devices.stream import StreamChannel

    return StreamChannel.open(spec.name, spec.path, server=spec.server, endpoint=endpoint)
