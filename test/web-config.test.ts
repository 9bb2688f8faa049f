import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { connect } from 'node:tls';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import type { FastifyInstance } from 'fastify';
import { load } from 'js-yaml';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { parseServeConfig } from '../src/config.js';
import { listen } from '../src/listeners.js';
import { diabetesBaseline, repoRoot, sample, tempDir, testApp } from './helpers/app.js';
import { freePort } from './helpers/cli.js';
import { startPrometheus, waitFor } from './integration/harness.js';

const id = `model="${diabetesBaseline.model}",version="${diabetesBaseline.version}"`;
const PASSWORD = 'correct horse battery staple';
type Teardown = Parameters<typeof tempDir>[0];

const openssl = (dir: string, ...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it, made by openssl. */
async function certificates(t: Teardown) {
  const dir = await tempDir(t);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, 'req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=modelwatch test CA');
  await writeFile(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\n');
  const sign = (name: string, serial: string, ext: string[] = []) => {
    openssl(dir, 'req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', serial, '-days', '1', '-out', `${name}.crt`, ...ext);
  };
  sign('server', '0x1001', ['-extfile', 'server.ext']);
  sign('client', '0x2002');
  const path = (file: string) => join(dir, file);
  return { dir, path, resign: () => sign('server', '0x3003', ['-extfile', 'server.ext']) };
}

async function webConfig(t: Teardown, text: string): Promise<string> {
  const file = join(await tempDir(t), 'web-config.yml');
  await writeFile(file, text);
  return file;
}

const tlsSection = (path: (f: string) => string, extra = '') =>
  `tls_server_config:\n  cert_file: ${path('server.crt')}\n  key_file: ${path('server.key')}\n${extra}`;

/** A modelwatch whose metrics listener (on a free port) serves TLS with basic auth; returns it and the port. */
async function secured(t: Teardown, web: string, flags: string[] = []) {
  const port = await freePort();
  const metricsPort = await freePort();
  const { app } = await testApp(t, ['--metrics-port', String(metricsPort), '--web-config-file', web, '--max-event-loop-delay-ms', '0', ...flags]);
  await listen(app, { port, host: '127.0.0.1', metricsPort, metricsHost: '' });
  return { app, port, metricsPort };
}

interface HttpsAnswer {
  status: number;
  body: string;
  headers: Record<string, unknown>;
}
function get(port: number, path: string, options: { ca?: Buffer; cert?: Buffer; key?: Buffer; auth?: string }): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: 5000, ...options }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** The scrape job the README documents, with its file paths pointed at the test's files. */
function documentedJob(caFile: string, passwordFile: string): Record<string, unknown> {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const block = readme.split('<!-- scrape-config:start -->\n```yaml\n')[1]!.split('```\n<!-- scrape-config:end -->')[0]!;
  const [job] = load(block) as Record<string, unknown>[];
  const tls = job!.tls_config as Record<string, unknown>;
  const basic = job!.basic_auth as Record<string, unknown>;
  return { ...job, tls_config: { ...tls, ca_file: caFile }, basic_auth: { ...basic, password_file: passwordFile } };
}

t.test('a real Prometheus with the README scrape job scrapes over TLS with basic auth; a wrong password or no CA gets up == 0', async (t) => {
  const { path, dir } = await certificates(t);
  const hash = bcrypt.hashSync(PASSWORD, 8);
  const web = await webConfig(t, `${tlsSection(path)}basic_auth_users:\n  prometheus: ${hash}\n`);
  const { app, metricsPort } = await secured(t, web);
  const target = `127.0.0.1:${metricsPort}`;
  const passwordFile = join(dir, 'password');
  const wrongFile = join(dir, 'wrong');
  await writeFile(passwordFile, `${PASSWORD}\n`);
  await writeFile(wrongFile, 'not the password\n');
  const job = documentedJob(path('ca.crt'), passwordFile);
  t.equal(job.scheme, 'https');
  t.equal((job.basic_auth as { username: string }).username, 'prometheus');
  const { job_name: _name, static_configs: _targets, ...scrape } = job;
  const prometheus = await startPrometheus(t, {
    targets: [target],
    ruleFiles: [],
    job: scrape,
    extraJobs: [
      { ...scrape, job_name: 'wrong-password', basic_auth: { username: 'prometheus', password_file: wrongFile }, static_configs: [{ targets: [target] }] },
      { ...scrape, job_name: 'no-ca', tls_config: {}, static_configs: [{ targets: [target] }] },
    ],
  });
  const up = async () => Object.fromEntries((await prometheus.query('up')).map((s) => [s.metric.job, s.value![1]]));
  const seen = await waitFor('every job to be scraped', async () => {
    const u = await up();
    return Object.keys(u).length === 3 ? u : undefined;
  }, { timeoutMs: 30_000 });
  t.same(seen, { modelwatch: '1', 'wrong-password': '0', 'no-ca': '0' });
  const [info] = await prometheus.query(`model_info{job="modelwatch"}`);
  t.equal(info?.value?.[1], '1', 'the samples arrived');
  const failed = await waitFor('a refused scrape to be counted', async () => {
    const n = sample((await app.metricsListener!.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Basic ${Buffer.from(`prometheus:${PASSWORD}`).toString('base64')}` } })).body, `model_auth_failures_total{${id},route="metrics"}`);
    return n !== undefined && n > 0 ? n : undefined;
  }, { timeoutMs: 10_000 });
  t.ok(failed > 0, `the wrong password's scrapes counted under route="metrics" (${failed})`);
});

t.test('basic auth: 401 with the JSON error shape without or with wrong credentials; the main port is untouched', async (t) => {
  const { path } = await certificates(t);
  const web = await webConfig(t, `${tlsSection(path)}basic_auth_users:\n  prometheus: ${bcrypt.hashSync(PASSWORD, 4)}\n`);
  const { port, metricsPort } = await secured(t, web);
  const ca = readFileSync(path('ca.crt'));
  const basic = (user: string, password: string) => `${user}:${password}`;
  const expected = { statusCode: 401, code: 'MW_ERR_UNAUTHORIZED', error: 'Unauthorized', message: 'GET /metrics needs basic auth with a user and password of --web-config-file' };
  for (const auth of [undefined, basic('prometheus', 'nope'), basic('someone', PASSWORD)]) {
    const answer = await get(metricsPort, '/metrics', { ca, ...(auth === undefined ? {} : { auth }) });
    t.equal(answer.status, 401, `refused: ${auth ?? 'no credentials'}`);
    t.same(JSON.parse(answer.body), expected);
    t.equal(answer.headers['www-authenticate'], 'Basic realm="modelwatch"');
  }
  const ok = await get(metricsPort, '/metrics', { ca, auth: basic('prometheus', PASSWORD) });
  t.equal(ok.status, 200);
  t.equal(sample(ok.body, `model_auth_failures_total{${id},route="metrics"}`), 3);
  t.equal((await get(metricsPort, '/healthz', { ca })).status, 401, 'every route of the secured listener needs it');
  const plain = await fetch(`http://127.0.0.1:${port}/healthz`);
  t.equal(plain.status, 200, 'the main port stays plain HTTP without --web-config-applies-to all');
});

t.test('mTLS: RequireAndVerifyClientCert refuses a client without a certificate in the handshake', async (t) => {
  const { path } = await certificates(t);
  const web = await webConfig(t, tlsSection(path, `  client_ca_file: ${path('ca.crt')}\n  client_auth_type: RequireAndVerifyClientCert\n`));
  const { metricsPort } = await secured(t, web);
  const ca = readFileSync(path('ca.crt'));
  await t.rejects(get(metricsPort, '/metrics', { ca }), 'no client certificate: refused');
  const withCert = await get(metricsPort, '/metrics', { ca, cert: readFileSync(path('client.crt')), key: readFileSync(path('client.key')) });
  t.equal(withCert.status, 200, 'a certificate signed by the client CA gets in');
  t.equal(sample(withCert.body, `model_info{${id}}`), 1);
});

t.test('--web-config-applies-to all serves the main port over TLS too; the certificate is re-read when its file changes', async (t) => {
  const { path, resign } = await certificates(t);
  const web = await webConfig(t, tlsSection(path));
  const { port } = await secured(t, web, ['--web-config-applies-to', 'all']);
  const ca = readFileSync(path('ca.crt'));
  t.equal((await get(port, '/healthz', { ca })).status, 200, 'the main port answers over TLS');
  const serial = () =>
    new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, ca }, () => {
        resolve(socket.getPeerCertificate().serialNumber);
        socket.destroy();
      });
      socket.on('error', reject);
    });
  t.equal(await serial(), '1001');
  resign();
  t.equal(await waitFor('the new certificate to be served', async () => ((await serial()) === '3003' ? '3003' : undefined), { timeoutMs: 10_000 }), '3003');
});

t.test('a bad web config fails start-up with MW_ERR_WEB_CONFIG_INVALID naming the field', async (t) => {
  const { path } = await certificates(t);
  const build = (file: string, flags: string[] = []) =>
    buildApp(parseServeConfig(['--model-dir', join(repoRoot, 'models/diabetes'), '--csv', '', '--log-level', 'silent', '--web-config-file', file, ...flags], {})) as Promise<FastifyInstance>;
  const cases: [string, string, string, string[]?][] = [
    ['malformed YAML', 'tls_server_config: [', '(file): cannot be read as YAML'],
    ['an unknown field', 'tls_server_config:\n  cert: inline\n', 'tls_server_config.cert: unknown field; known ones are cert_file, key_file, client_ca_file, client_auth_type, min_version'],
    ['a missing certificate', `tls_server_config:\n  cert_file: ${path('nope.crt')}\n  key_file: ${path('server.key')}\n`, 'tls_server_config.cert_file: cannot be read: ENOENT'],
    ['a key that is no pair with the certificate', `tls_server_config:\n  cert_file: ${path('server.crt')}\n  key_file: ${path('client.key')}\n`, 'tls_server_config.cert_file: cert_file, key_file and client_ca_file make no usable TLS context'],
    ['a plain-text password', 'basic_auth_users:\n  prometheus: hunter2\n', 'basic_auth_users.prometheus: is not a bcrypt hash'],
    ['verification without a CA', tlsSection(path, '  client_auth_type: RequireAndVerifyClientCert\n'), 'tls_server_config.client_ca_file: is required with client_auth_type RequireAndVerifyClientCert'],
    ['an unknown TLS version', tlsSection(path, '  min_version: TLS14\n'), 'tls_server_config.min_version: must be one of TLS10, TLS11, TLS12, TLS13'],
  ];
  for (const [name, text, message] of cases) {
    const file = await webConfig(t, text);
    const err = await build(file).then(
      (app) => app.close().then(() => undefined),
      (e: Error & { code?: string }) => e,
    );
    t.equal(err?.code, 'MW_ERR_WEB_CONFIG_INVALID', name);
    t.ok(err?.message.startsWith(`web config file ${file}, field ${message}`), `${name}: ${err?.message}`);
    t.notMatch(err?.message ?? '', 'hunter2', `${name}: no password in the message`);
  }
  const tokens = join(await tempDir(t), 'tokens');
  await writeFile(tokens, 'token\n');
  const users = await webConfig(t, `basic_auth_users:\n  prometheus: ${bcrypt.hashSync(PASSWORD, 4)}\n`);
  await t.rejects(build(users, ['--ingest-token-file', tokens]), {
    code: 'MW_ERR_WEB_CONFIG_INVALID',
    message: /^web config file .*, field basic_auth_users: would guard --port, whose --ingest-token-file or --predict-token-file also needs the Authorization header/,
  }, 'basic auth and a bearer token on one port');
});
