import { maxHeaderSize, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance } from 'fastify';
import { HeadersTooLargeError, HttpMalformedError, RequestTimeoutError } from './errors.js';
import type { HttpClientErrorReason } from './monitor/metrics.js';

type ParserError = Error & { code?: string; reason?: string };

/** Node's parser codes, onto our closed reasons and coded errors. */
function classify(err: ParserError, requestTimeoutMs: number): { reason: HttpClientErrorReason; error: FastifyError } {
  const cause = { cause: err };
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return { reason: 'headers_too_large', error: new HeadersTooLargeError(maxHeaderSize, cause) };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { reason: 'timeout', error: new RequestTimeoutError(requestTimeoutMs, cause) };
    case 'HPE_INVALID_CHUNK_SIZE':
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_TRANSFER_ENCODING':
      return { reason: 'body_framing', error: new HttpMalformedError(err.reason ?? err.message, cause) };
    default:
      return { reason: 'malformed', error: new HttpMalformedError(err.reason ?? err.message, cause) };
  }
}

/**
 * Fastify's clientErrorHandler: what Node's HTTP parser refuses (bad chunk, Content-Length with
 * Transfer-Encoding, headers over the limit, a request timeout) never reaches a route, so it is
 * answered here in the same JSON shape as every other error, and counted. A reset connection is
 * the network's doing, not the client's mistake, and has nobody left to answer.
 */
export function answerClientError(this: FastifyInstance, err: ParserError, socket: Socket): void {
  if (err.code === 'ECONNRESET') return;
  const { reason, error } = classify(err, this.server.requestTimeout);
  this.watch.metrics.countHttpClientError(reason);
  this.log.debug({ err }, 'Node refused a request before routing');
  // As Node does: never write into a response that has begun, or the client reads garbage.
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent: boolean } })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    const statusCode = error.statusCode!;
    const body = JSON.stringify({ statusCode, code: error.code, error: STATUS_CODES[statusCode], message: error.message });
    socket.write(
      `HTTP/1.1 ${statusCode} ${STATUS_CODES[statusCode]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}
