/**
 * A body over `gateway.bodyLimitBytes` gets a 413 `{error, code}` the client can read.
 *
 * Fastify answers as soon as the declared length (or the bytes so far) pass the limit, marks the
 * response `Connection: close`, and Node closes the socket once the answer is written — while the
 * client is still sending. Closing a socket with unread bytes makes the kernel send a reset, so
 * the client saw EPIPE/ECONNRESET, often before it read the answer. Instead the rest of the body
 * is read and thrown away (at most `drainBytes` more; Node's request timeout still applies) and
 * the connection stays usable, as RFC 9112 §9.6 asks of a server that answers before the body
 * ends. A body that declares more than that is refused and cut, as before.
 *
 * A client that asks first (`Expect: 100-continue`, as curl does for large bodies) is answered
 * 413 at once from the declared length and sends nothing.
 */
import { STATUS_CODES } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { ShoalError } from '../cluster/index.ts';
import { GatewayErrors } from './errors.ts';

/** How much past the limit a refused body may still be read, to let the client see the answer. */
export function drainBytesFor(bodyLimit: number): number {
  return Math.max(bodyLimit, 16 * 1024 * 1024);
}

export function installBodyLimit(app: FastifyInstance, bodyLimit: number, refusedEarly: (e: ShoalError, where: Record<string, unknown>) => void): void {
  const drainBytes = drainBytesFor(bodyLimit);
  app.addHook('onSend', (req, reply, payload, done) => {
    const raw = req.raw;
    if (reply.statusCode !== 413 || raw.complete) return done(null, payload);
    const declared = Number(raw.headers['content-length'] ?? NaN);
    if (declared > bodyLimit + drainBytes) return done(null, payload); // too much to swallow: cut
    reply.removeHeader('connection');
    // A declared length bounds itself (the parser ends the body there); a chunked body is counted.
    if (Number.isNaN(declared)) {
      let discarded = 0;
      raw.on('data', (chunk: Buffer) => {
        discarded += chunk.length;
        if (discarded > drainBytes) raw.socket.destroy();
      });
    }
    raw.resume();
    done(null, payload);
  });

  // With a listener here Node no longer sends `100 Continue` by itself: it is sent only for bodies within the limit.
  app.server.on('checkContinue', (req, res) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (!(declared > bodyLimit)) {
      res.writeContinue();
      app.server.emit('request', req, res);
      return;
    }
    const e = GatewayErrors.PAYLOAD_TOO_LARGE(bodyLimit);
    refusedEarly(e, { method: req.method, url: req.url, declared });
    const body = JSON.stringify({ error: e.message, code: e.code });
    // The client has sent no body: closing loses nothing, and it may not send one now.
    res.writeHead(e.status, STATUS_CODES[e.status], { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(body);
  });
}
