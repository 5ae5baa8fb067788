// A small HTTP/1.1 client for the handler contract: keep-alive connections to one address on the
// pod's loopback (TCP, or a Unix socket), one request per connection at a time, each request
// written in one write, answers read with content-length, chunked, or up to the close. It exists
// because node:http's client costs about 0.2 ms of CPU per call on the reference machine, which
// the contract's overhead target (< 1 ms at p50) cannot afford; docs/worker.md has the profile.
import net from 'node:net';

export type Http1Target = { host: string; port: number } | { socketPath: string };

/** How an exchange failed: `refused` means nothing was sent (the connection never opened: refused,
 *  unreachable, unresolvable; `code` says which). */
export type Http1FailureKind = 'refused' | 'broken' | 'too_large' | 'malformed';

export class Http1Failure extends Error {
  readonly kind: Http1FailureKind;
  readonly code: string | undefined;
  constructor(kind: Http1FailureKind, message: string, code?: string) {
    super(message);
    this.kind = kind;
    this.code = code;
  }
}

export interface Http1Answer {
  status: number;
  body: Buffer;
  /** The answer's header fields, names in lower case (a repeated field keeps its last value). */
  headers: Record<string, string>;
}

export interface Http1Request {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  headers: Record<string, string>;
  body?: string;
  maxResponseBytes: number;
}

export interface Http1PoolOptions {
  /** An idle connection is not used again after this long (the handler keeps them at least 5 s). */
  idleMs: number;
  maxIdle: number;
}

const MAX_HEAD_BYTES = 64 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');
const SAFE_HEADER_VALUE = /^[\t\x20-\x7e]*$/;

interface Pending {
  resolve: (answer: Http1Answer) => void;
  reject: (failure: Http1Failure) => void;
}

interface Exchange {
  pending: Pending;
  reader: ResponseReader;
  responded: boolean;
}

/** One connection and the exchange on it, if any. */
class Connection {
  idleSince = 0;
  private exchange: Exchange | undefined;
  private opened = false;
  private closed = false;
  readonly socket: net.Socket;
  private readonly free: (connection: Connection, reusable: boolean) => void;

  constructor(socket: net.Socket, free: (connection: Connection, reusable: boolean) => void) {
    this.socket = socket;
    this.free = free;
    socket.setNoDelay(true);
    socket.once('connect', () => (this.opened = true));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onClose(undefined));
    socket.on('close', () => this.onClose(undefined));
    socket.on('error', (error: NodeJS.ErrnoException) => this.onClose(error));
  }

  get usable(): boolean {
    return !this.closed && !this.exchange && !this.socket.destroyed && this.socket.writable;
  }

  send(payload: string, reader: ResponseReader, pending: Pending): void {
    this.exchange = { pending, reader, responded: false };
    this.socket.write(payload);
  }

  /** Gives up on the exchange in flight (the caller's deadline): the connection is closed, nothing settles. */
  abort(): void {
    this.exchange = undefined;
    this.destroy();
    this.free(this, false);
  }

  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    const exchange = this.exchange;
    if (!exchange) {
      this.destroy(); // bytes nobody asked for: the framing cannot be trusted any more
      return;
    }
    exchange.responded = true;
    let answer: Http1Answer | undefined;
    try {
      answer = exchange.reader.feed(chunk);
    } catch (error) {
      this.end(exchange, error instanceof Http1Failure ? error : new Http1Failure('malformed', String(error)));
      return;
    }
    if (answer) this.end(exchange, undefined, answer);
  }

  private onClose(error: NodeJS.ErrnoException | undefined): void {
    const wasClosed = this.closed;
    this.closed = true;
    const exchange = this.exchange;
    if (!exchange) {
      if (!wasClosed) this.free(this, false);
      return;
    }
    if (!error && exchange.reader.readsToClose) {
      this.end(exchange, undefined, exchange.reader.closed());
      return;
    }
    const code = error?.code;
    // Failed before the connection opened: nothing was sent (refused, unreachable, unresolvable).
    if (!this.opened && code !== undefined) this.end(exchange, new Http1Failure('refused', `connection refused (${code})`, code));
    else {
      const when = exchange.responded ? ' while answering' : '';
      this.end(exchange, new Http1Failure('broken', `the connection broke${when} (${code ?? 'closed'})`, code));
    }
  }

  private end(exchange: Exchange, failure: Http1Failure | undefined, answer?: Http1Answer): void {
    this.exchange = undefined;
    const reusable = !failure && !this.closed && exchange.reader.keepAlive;
    if (!reusable) this.destroy();
    this.free(this, reusable);
    if (failure || !answer) exchange.pending.reject(failure ?? new Http1Failure('broken', 'no answer'));
    else exchange.pending.resolve(answer);
  }
}

/** Keep-alive connections to one target; idle ones are reused newest first and closed after idleMs. */
export class Http1Pool {
  private idle: Connection[] = [];
  private readonly open = new Set<Connection>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly host: string;
  private readonly target: Http1Target;
  private readonly options: Http1PoolOptions;

  constructor(target: Http1Target, options: Http1PoolOptions) {
    this.target = target;
    this.options = options;
    this.host = 'socketPath' in target ? 'localhost' : `${target.host}:${target.port}`;
    this.sweeper = setInterval(() => this.closeIdle(Date.now() - options.idleMs), Math.max(250, options.idleMs / 2));
    this.sweeper.unref();
  }

  /** Sends one request; `abort` closes its connection (the answer then never settles). `connecting`:
   *  the request waits for a new connection to open (no idle one could be reused). */
  request(request: Http1Request): { answer: Promise<Http1Answer>; abort: () => void; connecting: boolean } {
    let head = `${request.method} ${request.path} HTTP/1.1\r\nhost: ${this.host}\r\n`;
    for (const [name, value] of Object.entries(request.headers)) {
      if (!SAFE_HEADER_VALUE.test(value)) throw new Error(`header ${name} has a character HTTP does not allow`);
      head += `${name}: ${value}\r\n`;
    }
    if (request.body !== undefined) head += `content-length: ${Buffer.byteLength(request.body)}\r\n`;
    const payload = request.body === undefined ? `${head}\r\n` : `${head}\r\n${request.body}`;
    const connection = this.take();
    const reader = new ResponseReader(request.maxResponseBytes, false);
    const answer = new Promise<Http1Answer>((resolve, reject) => connection.send(payload, reader, { resolve, reject }));
    return { answer, abort: () => connection.abort(), connecting: connection.socket.connecting };
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const connection of this.open) connection.destroy();
    this.open.clear();
    this.idle = [];
  }

  private take(): Connection {
    const oldest = Date.now() - this.options.idleMs;
    for (let connection = this.idle.pop(); connection; connection = this.idle.pop()) {
      if (connection.usable && connection.idleSince > oldest) return connection;
      connection.destroy();
      this.open.delete(connection);
    }
    const socket = 'socketPath' in this.target ? net.connect(this.target.socketPath) : net.connect(this.target.port, this.target.host);
    const connection = new Connection(socket, (c, reusable) => this.free(c, reusable));
    this.open.add(connection);
    return connection;
  }

  private free(connection: Connection, reusable: boolean): void {
    if (reusable && this.idle.length < this.options.maxIdle) {
      connection.idleSince = Date.now();
      this.idle.push(connection);
      return;
    }
    if (reusable) connection.destroy();
    this.open.delete(connection);
    const at = this.idle.indexOf(connection);
    if (at !== -1) this.idle.splice(at, 1);
  }

  private closeIdle(before: number): void {
    const keep: Connection[] = [];
    for (const connection of this.idle) {
      if (connection.usable && connection.idleSince > before) keep.push(connection);
      else {
        connection.destroy();
        this.open.delete(connection);
      }
    }
    this.idle = keep;
  }
}

/** Reads one response: head, then a body framed by content-length, chunks or the close. */
export class ResponseReader {
  private buffer: Buffer = Buffer.alloc(0);
  private status = 0;
  private state: 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-crlf' | 'trailers' | 'close' = 'head';
  private remaining = 0;
  private readonly parts: Buffer[] = [];
  private headers: Record<string, string> = {};
  private size = 0;
  /** Whether the connection can carry another request after this answer. */
  keepAlive = true;
  private readonly maxBytes: number;
  private readonly noBody: boolean;

  constructor(maxBytes: number, noBody: boolean) {
    this.maxBytes = maxBytes;
    this.noBody = noBody;
  }

  get readsToClose(): boolean {
    return this.state === 'close';
  }

  /** Feeds bytes; the answer once it is complete. Throws Http1Failure on a malformed or oversized answer. */
  feed(chunk: Buffer): Http1Answer | undefined {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    for (;;) {
      switch (this.state) {
        case 'head': {
          const end = this.buffer.indexOf(HEAD_END);
          if (end === -1) {
            if (this.buffer.length > MAX_HEAD_BYTES) throw new Http1Failure('malformed', 'the answer’s head is too large');
            return undefined;
          }
          const head = this.buffer.subarray(0, end).toString('latin1');
          this.buffer = this.buffer.subarray(end + 4);
          if (this.readHead(head)) return this.done();
          break;
        }
        case 'length': {
          const take = Math.min(this.remaining, this.buffer.length);
          if (take > 0) this.keep(this.buffer.subarray(0, take));
          this.buffer = this.buffer.subarray(take);
          this.remaining -= take;
          if (this.remaining > 0) return undefined;
          return this.done();
        }
        case 'chunk-size': {
          const end = this.buffer.indexOf(CRLF);
          if (end === -1) {
            if (this.buffer.length > 1024) throw new Http1Failure('malformed', 'a chunk size line is too long');
            return undefined;
          }
          const line = this.buffer.subarray(0, end).toString('latin1');
          this.buffer = this.buffer.subarray(end + 2);
          const size = /^([0-9a-fA-F]{1,8})[ \t]*(;.*)?$/.exec(line);
          if (!size) throw new Http1Failure('malformed', 'a chunk size that is not hexadecimal');
          this.remaining = Number.parseInt(size[1] as string, 16);
          this.state = this.remaining === 0 ? 'trailers' : 'chunk-data';
          break;
        }
        case 'chunk-data': {
          const take = Math.min(this.remaining, this.buffer.length);
          if (take > 0) this.keep(this.buffer.subarray(0, take));
          this.buffer = this.buffer.subarray(take);
          this.remaining -= take;
          if (this.remaining > 0) return undefined;
          this.state = 'chunk-crlf';
          break;
        }
        case 'chunk-crlf': {
          if (this.buffer.length < 2) return undefined;
          if (this.buffer[0] !== 13 || this.buffer[1] !== 10) throw new Http1Failure('malformed', 'a chunk not ended by CRLF');
          this.buffer = this.buffer.subarray(2);
          this.state = 'chunk-size';
          break;
        }
        case 'trailers': {
          const end = this.buffer.indexOf(CRLF);
          if (end === -1) {
            if (this.buffer.length > MAX_HEAD_BYTES) throw new Http1Failure('malformed', 'the trailers are too large');
            return undefined;
          }
          this.buffer = this.buffer.subarray(end + 2);
          if (end === 0) return this.done();
          break;
        }
        case 'close':
          this.keep(this.buffer);
          this.buffer = Buffer.alloc(0);
          return undefined;
      }
    }
  }

  /** The connection closed: the answer, when it was one read up to the close. */
  closed(): Http1Answer {
    return { status: this.status, body: Buffer.concat(this.parts), headers: this.headers };
  }

  /** Reads a head; true when the answer has no body. A 1xx head is skipped (the real one follows). */
  private readHead(head: string): boolean {
    const lines = head.split('\r\n');
    const statusLine = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0] ?? '');
    if (!statusLine) throw new Http1Failure('malformed', 'the answer does not start with an HTTP/1.x status line');
    const status = Number(statusLine[2]);
    if (status >= 100 && status < 200) return false; // 100 Continue, 103 Early Hints: the answer follows
    this.status = status;
    let length: number | undefined;
    let chunked = false;
    let connection = '';
    const headers: Record<string, string> = {};
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i] as string;
      const colon = line.indexOf(':');
      if (colon <= 0) throw new Http1Failure('malformed', 'a header line without a name');
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = value;
      if (name === 'content-length') {
        if (!/^\d{1,15}$/.test(value) || (length !== undefined && length !== Number(value)))
          throw new Http1Failure('malformed', 'an invalid content-length');
        length = Number(value);
      } else if (name === 'transfer-encoding') chunked = value.toLowerCase().split(',').pop()?.trim() === 'chunked';
      else if (name === 'connection') connection = value.toLowerCase();
    }
    this.headers = headers;
    this.keepAlive = statusLine[1] === '1' ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
    if (this.noBody || status === 204 || status === 304) return true;
    if (chunked) this.state = 'chunk-size';
    else if (length !== undefined) {
      if (length > this.maxBytes) throw new Http1Failure('too_large', `answered ${length} bytes, over the limit of ${this.maxBytes}`);
      this.remaining = length;
      this.state = 'length';
      if (length === 0) return true;
    } else {
      this.state = 'close';
      this.keepAlive = false;
    }
    return false;
  }

  private keep(part: Buffer): void {
    this.size += part.length;
    if (this.size > this.maxBytes) throw new Http1Failure('too_large', `answered more than ${this.maxBytes} bytes`);
    this.parts.push(part);
  }

  private done(): Http1Answer {
    // Bytes after a complete answer: the connection's framing is off; do not reuse it.
    if (this.buffer.length > 0) this.keepAlive = false;
    const body = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts);
    return { status: this.status, body, headers: this.headers };
  }
}
