import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { envName, flagName, type OptionName, type ServeConfig } from './config.js';
import { ConfigInvalidError, UnauthorizedError } from './errors.js';
import { watchFiles } from './file-watch.js';
import type { AuthRoute } from './monitor/metrics.js';
import { costlyToDrain } from './overload.js';
import { send, type ErrorText } from './routes/prediction-errors.js';

declare module 'fastify' {
  interface FastifyInstance {
    tokens: { ingest: TokenFile | undefined; predict: TokenFile | undefined };
  }
}

type TokenOption = Extract<OptionName, 'ingestTokenFile' | 'predictTokenFile'>;

/** The tokens of a token file's text: one a line, blank lines and surrounding spaces ignored. */
export const parseTokens = (text: string): string[] => text.split('\n').map((line) => line.trim()).filter((line) => line !== '');

// Digests have one length whatever a token's, which timingSafeEqual needs, and hide that length too.
const digest = (token: string) => createHash('sha256').update(token).digest();

/**
 * The bearer tokens of one file, one a line, so a new
 * token can be added before the old one is removed: a rotation without downtime. Only digests are
 * kept. The file is re-read when it changes; a re-read that fails keeps the tokens of the last good
 * one, since refusing every client because a Secret volume was briefly unreadable is an outage.
 */
export class TokenFile {
  private digests: Buffer[];
  private readonly unwatch: () => void;

  constructor(
    private readonly option: TokenOption,
    private readonly path: string,
    private readonly log: FastifyBaseLogger,
  ) {
    this.digests = this.read();
    this.unwatch = watchFiles([path], () => this.reload());
  }

  /** Compares against every token, without stopping at a match, so the time taken says nothing about which one. */
  accepts(token: string): boolean {
    const sent = digest(token);
    let accepted = false;
    for (const known of this.digests) accepted = timingSafeEqual(sent, known) || accepted;
    return accepted;
  }

  close(): void {
    this.unwatch();
  }

  private read(): Buffer[] {
    const where = `--${flagName(this.option)} / ${envName(this.option)} = ${JSON.stringify(this.path)}`;
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (cause) {
      throw new ConfigInvalidError(where, `cannot be read: ${(cause as Error).message}`, { cause });
    }
    const tokens = parseTokens(text);
    if (tokens.length === 0) throw new ConfigInvalidError(where, 'holds no token; write one token a line');
    return tokens.map(digest);
  }

  private reload(): void {
    try {
      this.digests = this.read();
      this.log.info({ file: this.path, tokens: this.digests.length }, 'token file re-read');
    } catch (err) {
      // The message names the file and the OS error, never a line of it.
      this.log.error({ err, tokens: this.digests.length }, 'token file changed but cannot be used; the tokens read before still apply');
    }
  }
}

/** The routes a token guards, by Fastify route URL: one closed table, so no route is forgotten in its own file. */
const guarded: Record<string, { route: AuthRoute; tokens: 'ingest' | 'predict'; errorText: ErrorText }> = {
  '/observe': { route: 'observe', tokens: 'ingest', errorText: 'status' },
  '/feedback': { route: 'feedback', tokens: 'ingest', errorText: 'status' },
  '/predict': { route: 'predict', tokens: 'predict', errorText: 'status' },
  // The Open Inference Protocol's clients show only `error`: it carries the message there.
  '/v2/models/:name/infer': { route: 'v2_infer', tokens: 'predict', errorText: 'message' },
  '/v2/models/:name/versions/:version/infer': { route: 'v2_infer', tokens: 'predict', errorText: 'message' },
};

const guardOf = (request: FastifyRequest) => (request.routeOptions.url === undefined ? undefined : guarded[request.routeOptions.url]);
/** The label of model_auth_failures_total for a request a token may guard; undefined for the other routes. */
export const guardedRoute = (request: FastifyRequest): AuthRoute | undefined => guardOf(request)?.route;

const BEARER = /^Bearer +(\S+) *$/i;

/**
 * With --ingest-token-file, POST /observe and /feedback need `Authorization: Bearer <token>`;
 * with --predict-token-file, /predict and V2 infer do. A refusal is answered before the body is
 * read and before any other hook (call this before guardAgainstOverload): a request without the
 * token is shed by nothing, validated by nothing, counted nowhere but model_auth_failures_total.
 */
export function requireTokens(app: FastifyInstance, config: Pick<ServeConfig, TokenOption>): void {
  const open = (option: TokenOption) => (config[option] === '' ? undefined : new TokenFile(option, config[option], app.log));
  const ingest = open('ingestTokenFile');
  let predict: TokenFile | undefined;
  try {
    predict = open('predictTokenFile');
  } catch (err) {
    ingest?.close();
    throw err;
  }
  app.decorate('tokens', { ingest, predict });
  app.addHook('onClose', async () => {
    ingest?.close();
    predict?.close();
  });
  if (!ingest && !predict) return;
  const flags = { ingest: `--${flagName('ingestTokenFile')}`, predict: `--${flagName('predictTokenFile')}` };
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const guard = guardOf(request);
    const tokens = guard && app.tokens[guard.tokens];
    if (!guard || !tokens) return;
    const sent = BEARER.exec(request.headers.authorization ?? '')?.[1];
    if (sent !== undefined && tokens.accepts(sent)) return;
    app.watch.metrics.countAuthFailure(guard.route);
    reply.header('www-authenticate', 'Bearer realm="modelwatch"');
    if (costlyToDrain(request.headers)) reply.header('connection', 'close');
    const why = sent === undefined ? 'needs the header Authorization: Bearer <token>' : 'got a bearer token that is not accepted';
    return send(reply, new UnauthorizedError(`${request.method} ${request.url.split('?')[0]} ${why}, with a token from the file of ${flags[guard.tokens]}`), guard.errorText);
  });
}
