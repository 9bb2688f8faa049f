import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ServerOptions } from 'node:https';
import { createSecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls';
import bcrypt from 'bcryptjs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { load } from 'js-yaml';
import { guardedRoute } from './auth.js';
import type { ServeConfig } from './config.js';
import { UnauthorizedError, WebConfigInvalidError } from './errors.js';
import { watchFiles } from './file-watch.js';
import { send } from './routes/prediction-errors.js';

/** exporter-toolkit's client_auth_type values, Go's tls.ClientAuthType names. */
const clientAuthTypes = ['NoClientCert', 'RequestClientCert', 'RequireAnyClientCert', 'VerifyClientCertIfGiven', 'RequireAndVerifyClientCert'] as const;
type ClientAuthType = (typeof clientAuthTypes)[number];
const tlsVersions = { TLS10: 'TLSv1', TLS11: 'TLSv1.1', TLS12: 'TLSv1.2', TLS13: 'TLSv1.3' } as const;
/** What crypt(3) bcrypt writes: $2a$, $2b$ or $2y$, a two-digit cost, 22 characters of salt and 31 of hash. */
const BCRYPT = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;

interface TlsServerConfig {
  certFile: string;
  keyFile: string;
  clientCaFile: string | undefined;
  clientAuthType: ClientAuthType;
  minVersion: (typeof tlsVersions)[keyof typeof tlsVersions];
}

/** A --web-config-file, checked: TLS settings and basic-auth users with their bcrypt hashes. */
export interface WebConfig {
  readonly file: string;
  readonly tls: TlsServerConfig | undefined;
  readonly users: ReadonlyMap<string, string>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Reads and checks a web config file in the Prometheus exporter-toolkit format. As there, an
 * unknown field is an error: a misspelt client_auth_type must not leave a port unguarded. Inline
 * `cert` and `key` are not accepted: secrets come from files. The certificates are loaded once
 * here, so a missing or mismatched one fails start-up naming its field.
 */
export function loadWebConfig(file: string): WebConfig {
  const fail = (field: string, problem: string, cause?: unknown) => new WebConfigInvalidError(file, field, problem, ...(cause === undefined ? [] : [{ cause }]));
  let parsed: unknown;
  try {
    parsed = load(readFileSync(file, 'utf8'));
  } catch (cause) {
    throw fail('(file)', `cannot be read as YAML: ${(cause as Error).message}`, cause);
  }
  const top = parsed ?? {};
  if (!isObject(top)) throw fail('(file)', 'must be a YAML mapping with tls_server_config and/or basic_auth_users');
  const known = (where: Record<string, unknown>, prefix: string, fields: readonly string[]) => {
    for (const key of Object.keys(where)) {
      if (!fields.includes(key)) throw fail(`${prefix}${key}`, `unknown field; known ones are ${fields.join(', ')}`);
    }
  };
  known(top, '', ['tls_server_config', 'basic_auth_users']);
  const string = (where: Record<string, unknown>, field: string, prefix: string): string | undefined => {
    const v = where[field];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') throw fail(`${prefix}${field}`, 'must be a string');
    return v;
  };

  let tls: TlsServerConfig | undefined;
  if (top.tls_server_config !== undefined && top.tls_server_config !== null) {
    const t = top.tls_server_config;
    const p = 'tls_server_config.';
    if (!isObject(t)) throw fail('tls_server_config', 'must be a mapping');
    known(t, p, ['cert_file', 'key_file', 'client_ca_file', 'client_auth_type', 'min_version']);
    const certFile = string(t, 'cert_file', p);
    const keyFile = string(t, 'key_file', p);
    if (certFile === undefined) throw fail(`${p}cert_file`, 'is required with tls_server_config');
    if (keyFile === undefined) throw fail(`${p}key_file`, 'is required with tls_server_config');
    const clientAuthType = (string(t, 'client_auth_type', p) ?? 'NoClientCert') as ClientAuthType;
    if (!clientAuthTypes.includes(clientAuthType)) throw fail(`${p}client_auth_type`, `must be one of ${clientAuthTypes.join(', ')}`);
    const clientCaFile = string(t, 'client_ca_file', p);
    if (clientCaFile === undefined && (clientAuthType === 'VerifyClientCertIfGiven' || clientAuthType === 'RequireAndVerifyClientCert')) {
      throw fail(`${p}client_ca_file`, `is required with client_auth_type ${clientAuthType}: client certificates are verified against it`);
    }
    const version = string(t, 'min_version', p) ?? 'TLS12';
    if (!(version in tlsVersions)) throw fail(`${p}min_version`, `must be one of ${Object.keys(tlsVersions).join(', ')}`);
    tls = { certFile, keyFile, clientCaFile, clientAuthType, minVersion: tlsVersions[version as keyof typeof tlsVersions] };
    try {
      createSecureContext(secureContext(tls, fail));
    } catch (cause) {
      if (cause instanceof WebConfigInvalidError) throw cause;
      throw fail(`${p}cert_file`, `cert_file, key_file and client_ca_file make no usable TLS context: ${(cause as Error).message}`, cause);
    }
  }

  const users = new Map<string, string>();
  if (top.basic_auth_users !== undefined && top.basic_auth_users !== null) {
    if (!isObject(top.basic_auth_users)) throw fail('basic_auth_users', 'must be a mapping of user name to bcrypt hash');
    for (const [user, hash] of Object.entries(top.basic_auth_users)) {
      // The value is never echoed: if it is not a hash it may well be the password itself.
      if (typeof hash !== 'string' || !BCRYPT.test(hash)) {
        throw fail(`basic_auth_users.${user}`, 'is not a bcrypt hash ($2y$10$ and 53 characters); write the output of: htpasswd -nbBC 10 "" PASSWORD | tr -d \':\\n\'');
      }
      users.set(user, hash);
    }
  }
  return { file, tls, users };
}

/**
 * The web config of each listener: the one serving /metrics always gets it, the main port too
 * with --web-config-applies-to all. Basic auth and a bearer token cannot share one port: both
 * are the Authorization header.
 */
export function webConfigs(config: ServeConfig): { main: WebConfig | undefined; metrics: WebConfig | undefined } {
  if (config.webConfigFile === '') return { main: undefined, metrics: undefined };
  const web = loadWebConfig(config.webConfigFile);
  const main = config.metricsPort === 0 || config.webConfigAppliesTo === 'all' ? web : undefined;
  if (main && main.users.size > 0 && (config.ingestTokenFile !== '' || config.predictTokenFile !== '')) {
    throw new WebConfigInvalidError(
      web.file,
      'basic_auth_users',
      'would guard --port, whose --ingest-token-file or --predict-token-file also needs the Authorization header; serve /metrics on --metrics-port (with --web-config-applies-to metrics)',
    );
  }
  return { main, metrics: config.metricsPort === 0 ? undefined : web };
}

type Fail = (field: string, problem: string, cause?: unknown) => Error;

/** The key, certificate and client CA read from their files now. */
function secureContext(tls: TlsServerConfig, fail: Fail): SecureContextOptions {
  const read = (field: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (cause) {
      throw fail(`tls_server_config.${field}`, `cannot be read: ${(cause as Error).message}`, cause);
    }
  };
  return {
    cert: read('cert_file', tls.certFile),
    key: read('key_file', tls.keyFile),
    ...(tls.clientCaFile === undefined ? {} : { ca: read('client_ca_file', tls.clientCaFile) }),
    minVersion: tls.minVersion,
  };
}

/** What Fastify's `https` option needs for `web`'s TLS, or undefined for plain HTTP. */
export function httpsOptions(web: WebConfig | undefined): ServerOptions | undefined {
  if (!web?.tls) return undefined;
  const { clientAuthType } = web.tls;
  return {
    ...secureContext(web.tls, (field, problem, cause) => new WebConfigInvalidError(web.file, field, problem, { cause })),
    requestCert: clientAuthType !== 'NoClientCert',
    // Only this one refuses in the handshake; the two checks Node has no flag for are made on each connection.
    rejectUnauthorized: clientAuthType === 'RequireAndVerifyClientCert',
  };
}

const digest = (text: string) => createHash('sha256').update(text).digest();
const BASIC = /^Basic +([A-Za-z0-9+/]+={0,2}) *$/i;

/**
 * Applies `web` to a server built with httpsOptions(web): the client-certificate checks Node has
 * no flag for, certificates re-read when their files change (the server keeps its old ones if the
 * new ones are unusable), and basic auth on every route, before any other hook.
 */
export function secureServer(app: FastifyInstance, web: WebConfig): void {
  if (web.tls) {
    const tls = web.tls;
    const server = app.server as unknown as import('node:https').Server;
    if (tls.clientAuthType === 'RequireAnyClientCert' || tls.clientAuthType === 'VerifyClientCertIfGiven') {
      server.on('secureConnection', (socket: TLSSocket) => {
        const given = Object.keys(socket.getPeerCertificate()).length > 0;
        if (tls.clientAuthType === 'RequireAnyClientCert' ? !given : given && !socket.authorized) socket.destroy();
      });
    }
    const files = [tls.certFile, tls.keyFile, ...(tls.clientCaFile === undefined ? [] : [tls.clientCaFile])];
    const unwatch = watchFiles(files, () => {
      try {
        server.setSecureContext(secureContext(tls, (field, problem) => new Error(`${field} ${problem}`)));
        app.log.info({ files }, 'TLS certificates re-read');
      } catch (err) {
        app.log.error({ err, files }, 'TLS certificate files changed but cannot be used; the certificates read before still apply');
      }
    });
    app.addHook('onClose', async () => unwatch());
  }
  if (web.users.size === 0) return;
  const users = web.users;
  // A scrape every 15 s would cost a bcrypt comparison (~50 ms of CPU) each; exporter-toolkit
  // caches the same way: the digest of the password that last matched, per user.
  const matched = new Map<string, Buffer>();
  const anyHash = users.values().next().value!;
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const encoded = BASIC.exec(request.headers.authorization ?? '')?.[1];
    const decoded = encoded === undefined ? '' : Buffer.from(encoded, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      const user = decoded.slice(0, colon);
      const password = decoded.slice(colon + 1);
      const sent = digest(password);
      const known = matched.get(user);
      if (known !== undefined && timingSafeEqual(known, sent)) return;
      // An unknown user costs one comparison too, so the time taken does not tell which users exist.
      const hash = users.get(user);
      if ((await bcrypt.compare(password, hash ?? anyHash)) && hash !== undefined) {
        matched.set(user, sent);
        return;
      }
    }
    app.watch.metrics.countAuthFailure(guardedRoute(request) ?? (request.routeOptions.url === '/metrics' ? 'metrics' : 'other'));
    reply.header('www-authenticate', 'Basic realm="modelwatch"');
    return send(reply, new UnauthorizedError(`${request.method} ${request.url.split('?')[0]} needs basic auth with a user and password of --web-config-file`));
  });
}
