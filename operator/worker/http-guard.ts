// What the worker answers when Node's HTTP parser cannot read a request (a malformed request
// line or header, headers over the size limit, bytes after a request that has no body framing).
// Node's default answers a bare 400 at once, even while an earlier request on the same
// connection is still being served: a DELETE sent with an unframed body was carried out, and its
// client got that 400 instead of the DELETE's 200. Here the request in flight is answered first
// and the connection closed after it; with none in flight the client gets a JSON error.
import type { Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

interface ParserError extends Error {
  code?: string;
}

function errorAnswer(status: number, reason: string, code: string, message: string): string {
  const body = JSON.stringify({ error: { code, message } });
  return (
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  );
}

export function guardMalformedRequests(server: Server): void {
  const inFlight = new WeakMap<Duplex, ServerResponse>();
  server.on('request', (req, res: ServerResponse) => {
    inFlight.set(req.socket, res);
    res.once('close', () => {
      if (inFlight.get(req.socket) === res) inFlight.delete(req.socket);
    });
  });
  server.on('clientError', (error: ParserError, socket: Duplex) => {
    const pending = inFlight.get(socket);
    if (pending && !pending.writableFinished) {
      // Let the request being served answer, then close: the unreadable rest is dropped.
      pending.once('close', () => socket.destroy());
      return;
    }
    if (!socket.writable || error.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    socket.end(
      error.code === 'HPE_HEADER_OVERFLOW'
        ? errorAnswer(431, 'Request Header Fields Too Large', 'INVALID_REQUEST', 'the request headers are over the size limit')
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? errorAnswer(408, 'Request Timeout', 'INVALID_REQUEST', 'the request was not received in time')
          : errorAnswer(400, 'Bad Request', 'INVALID_REQUEST', 'the request is not well-formed HTTP/1.1'),
    );
    // end() lets the answer out; a peer that never closes its side is cut after a moment.
    setTimeout(() => socket.destroy(), 1_000).unref();
  });
}
