// Writes the compose stack's TLS and basic-auth secrets into secrets/ (ignored by git): a CA, a
// server certificate signed by it for the modelwatch service (and localhost, 127.0.0.1), the web
// config modelwatch reads (tls_server_config, and basic_auth_users with the bcrypt hash of a
// random password) and that password, which Prometheus sends. Run `npm run compose-secrets`
// before `docker compose up`; run it again to replace them all (a new CA, a new password).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import bcrypt from 'bcryptjs';

const root = fileURLToPath(new URL('../', import.meta.url));
export const DEFAULT_DIR = join(root, 'secrets');
/** Where compose mounts a file secret in the container: /run/secrets/<secret name>. */
export const SECRETS_MOUNT = '/run/secrets';
/** The user Prometheus authenticates as. */
export const SCRAPE_USER = 'prometheus';
/** The names the certificate is valid for: the compose service Prometheus scrapes, and the host itself. */
export const SERVER_NAMES = ['DNS:modelwatch', 'DNS:localhost', 'IP:127.0.0.1'];

/** File name -> compose secret name, as docker-compose.yml declares them. */
export const COMPOSE_SECRETS = {
  'ca.crt': 'modelwatch_ca_crt',
  'tls.crt': 'modelwatch_tls_crt',
  'tls.key': 'modelwatch_tls_key',
  'web-config.yml': 'modelwatch_web_config',
  'scrape-password': 'modelwatch_scrape_password',
} as const;
export type SecretFile = keyof typeof COMPOSE_SECRETS;

const inContainer = (file: SecretFile) => `${SECRETS_MOUNT}/${COMPOSE_SECRETS[file]}`;

/** Writes every file of COMPOSE_SECRETS into `dir`; returns their paths. */
export function writeComposeSecrets(dir: string = DEFAULT_DIR, days = 365): Record<SecretFile, string> {
  mkdirSync(dir, { recursive: true });
  const path = (file: SecretFile) => join(dir, file);
  // The CA's key signs once and is thrown away: a new certificate means a new CA, so no key
  // that could sign more lies around beside the stack.
  const work = mkdtempSync(join(tmpdir(), 'modelwatch-ca-'));
  try {
    const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: work, stdio: ['ignore', 'ignore', 'pipe'] });
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', path('ca.crt'), '-days', String(days), '-subj', '/CN=modelwatch compose CA');
    writeFileSync(join(work, 'server.ext'), `subjectAltName=${SERVER_NAMES.join(',')}\nextendedKeyUsage=serverAuth\n`);
    openssl('req', ...ec, '-keyout', path('tls.key'), '-out', 'server.csr', '-subj', '/CN=modelwatch');
    openssl('x509', '-req', '-in', 'server.csr', '-CA', path('ca.crt'), '-CAkey', 'ca.key', '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', String(days), '-out', path('tls.crt'), '-extfile', 'server.ext');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  // Compose file secrets are bind mounts that keep the host's owner and mode: the image's
  // non-root user must be able to read the key (see prometheus/secrets/README.md).
  chmodSync(path('tls.key'), 0o644);
  const password = randomBytes(24).toString('base64url');
  writeFileSync(path('scrape-password'), `${password}\n`, { mode: 0o644 });
  writeFileSync(
    path('web-config.yml'),
    [
      '# Written by `npm run compose-secrets`: modelwatch --web-config-file in docker-compose.yml.',
      'tls_server_config:',
      `  cert_file: ${inContainer('tls.crt')}`,
      `  key_file: ${inContainer('tls.key')}`,
      '  min_version: TLS12',
      'basic_auth_users:',
      `  ${SCRAPE_USER}: ${bcrypt.hashSync(password, 10)}`,
      '',
    ].join('\n'),
  );
  return Object.fromEntries(Object.keys(COMPOSE_SECRETS).map((file) => [file, path(file as SecretFile)])) as Record<SecretFile, string>;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const files = writeComposeSecrets(process.argv[2] ?? DEFAULT_DIR);
  process.stdout.write(`${Object.values(files).join('\n')}\n${readFileSync(files['tls.crt'], 'utf8').length > 0 ? 'done' : ''}\n`);
}
