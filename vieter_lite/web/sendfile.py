"""Downloads with os.sendfile: waitress's channel sends a file_wrapper's file to the socket
from the page cache, without reading it into Python and copying it out again."""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from typing import Any

from waitress.buffers import ReadOnlyFileBasedBuffer
from waitress.channel import HTTPChannel

log = logging.getLogger(__name__)

# One sendfile call at most; also what one flush sends before it lets the I/O loop serve
# the other connections (a reader as fast as loopback would otherwise never yield it).
CHUNK = 4 << 20
# The socket is gone: like waitress's own send(), close the channel (when allowed).
_DISCONNECTED = frozenset({errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN,
                           errno.ECONNABORTED, errno.EPIPE, errno.EBADF})
_WOULD_BLOCK = frozenset({errno.EAGAIN, errno.EWOULDBLOCK})
# sendfile cannot send this file to this socket: send it the ordinary way.
_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSOCK,
                          errno.ESPIPE, errno.EOVERFLOW})
# the buffer attribute caching the file's descriptor, or None for "use the plain path"
_FD = "_vieter_sendfile_fd"


def sendfile_fd(outbuf: Any) -> int | None:
    """The descriptor to sendfile from when `outbuf` is a file_wrapper around a regular
    file (looked up once per buffer), else None."""
    if not isinstance(outbuf, ReadOnlyFileBasedBuffer):
        return None
    fd = getattr(outbuf, _FD, -1)
    if fd != -1:
        return fd
    fd = None
    if hasattr(os, "sendfile"):
        try:
            candidate = outbuf.file.fileno()
            if stat.S_ISREG(os.fstat(candidate).st_mode):
                outbuf.file.tell()  # seekable: the position is the offset to send from
                fd = candidate
        except (AttributeError, OSError, ValueError):
            fd = None
    setattr(outbuf, _FD, fd)
    return fd


class SendfileChannel(HTTPChannel):
    """waitress's HTTPChannel whose `_flush_some` sends file_wrapper buffers with
    os.sendfile, everything else (headers, small bodies, file-likes that are no regular
    file) as waitress does. Use it as the channel class or as a base next to others.

    The buffer stays the source of truth: each sendfile starts at the file's position and
    sends at most the buffer's `remain` (waitress caps that at Content-Length, and a Range
    response seeks to its start first), then `skip` moves both on."""

    sent_total = 0  # bytes sent on this connection so far (web/room.py's SendRate reads it)

    def _flush_some(self, do_close: bool = True) -> bool:
        # waitress's HTTPChannel._flush_some (3.0), with the sendfile branch added
        sent = 0
        while True:
            outbuf = self.outbufs[0]
            outbuflen = outbuf.__len__()
            fd = sendfile_fd(outbuf) if outbuflen > 0 else None
            dobreak = False
            while outbuflen > 0:
                if fd is not None:
                    count = min(outbuflen, CHUNK)
                    num_sent = self._sendfile(outbuf, fd, count, do_close)
                    if num_sent is None:  # not for this file: the plain path from here on
                        fd = None
                        continue
                    full = num_sent < count  # the socket's buffer is full (or it closed)
                else:
                    chunk = outbuf.get(self.sendbuf_len)
                    num_sent = self.send(chunk, do_close=do_close)
                    full = False
                if num_sent:
                    outbuf.skip(num_sent, True)
                    outbuflen -= num_sent
                    sent += num_sent
                    self.total_outbufs_len -= num_sent
                if not num_sent or full or (fd is not None and sent >= CHUNK and outbuflen):
                    # (a finished file goes on to the pop below, which closes it)
                    dobreak = True
                    break
            else:
                if len(self.outbufs) > 1:
                    toclose = self.outbufs.pop(0)
                    try:
                        toclose.close()
                    except Exception:
                        self.logger.exception("Unexpected error when closing an outbuf")
                else:
                    dobreak = True
            if dobreak:
                break
        if sent:
            self.sent_total += sent
            self.last_activity = time.time()
            return True
        return False

    def _sendfile(self, outbuf: ReadOnlyFileBasedBuffer, fd: int, count: int,
                  do_close: bool) -> int | None:
        """Bytes sent (0: would block, or the client is gone); None: sendfile cannot
        send this file, use the plain path."""
        try:
            offset = outbuf.file.tell()
            num_sent = os.sendfile(self.socket.fileno(), fd, offset, count)
        except OSError as exc:
            if exc.errno in _WOULD_BLOCK:
                return 0
            if exc.errno in _DISCONNECTED:
                if do_close:
                    self.handle_close()
                return 0
            if exc.errno in _UNSUPPORTED:
                log.debug("sendfile unavailable (%s); sending the file the plain way", exc)
                setattr(outbuf, _FD, None)
                return None
            raise
        if num_sent == 0:
            # the file ends before the Content-Length promised: the client can only be
            # told by closing the connection
            log.warning("file ended %d bytes short of its response; closing the connection",
                        len(outbuf))
            self.will_close = True
            return 0
        return num_sent
