// The compose stack's secure scrape: `npm run compose-secrets` writes a CA, a certificate, the web
// config and the scrape password; docker-compose.yml mounts each as a secret where modelwatch and
// Prometheus read them; and with those very files (the /run/secrets paths pointed at the
// generated dir, as no Docker engine runs here) a real Prometheus with the shipped scrape job
// scrapes a real modelwatch over TLS with basic auth.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { load } from 'js-yaml';
import t from 'tap';
import { COMPOSE_SECRETS, SCRAPE_USER, SECRETS_MOUNT, writeComposeSecrets, type SecretFile } from '../scripts/compose-secrets.js';
import { listen } from '../src/listeners.js';
import { loadWebConfig } from '../src/web-config.js';
import { repoRoot, tempDir, testApp } from './helpers/app.js';
import { freePort } from './helpers/cli.js';
import { startPrometheus, waitFor } from './integration/harness.js';

interface ComposeService {
  environment?: Record<string, string>;
  secrets?: string[];
}
const compose = load(await readFile(join(repoRoot, 'docker-compose.yml'), 'utf8')) as { services: Record<string, ComposeService>; secrets: Record<string, { file: string }> };
const prometheusYml = load(await readFile(join(repoRoot, 'prometheus/prometheus.yml'), 'utf8')) as { scrape_configs: { job_name: string; static_configs: unknown; scheme?: string; tls_config?: { ca_file: string }; basic_auth?: { username: string; password_file: string } }[] };
const job = prometheusYml.scrape_configs.find((c) => c.job_name === 'modelwatch')!;
const mounted = (path: string) => path.slice(SECRETS_MOUNT.length + 1);

t.test('docker-compose.yml mounts every generated file as a secret where each service reads it', async (t) => {
  for (const [file, secret] of Object.entries(COMPOSE_SECRETS)) t.equal(compose.secrets[secret]?.file, `./secrets/${file}`, `${secret} comes from secrets/${file}`);
  const modelwatch = compose.services.modelwatch!;
  t.equal(modelwatch.environment?.MODELWATCH_WEB_CONFIG_FILE, `${SECRETS_MOUNT}/${COMPOSE_SECRETS['web-config.yml']}`);
  for (const file of ['web-config.yml', 'tls.crt', 'tls.key'] as const) t.ok(modelwatch.secrets?.includes(COMPOSE_SECRETS[file]), `modelwatch mounts ${file}`);
  const prometheus = compose.services.prometheus!;
  t.equal(job.scheme, 'https');
  t.equal(job.basic_auth?.username, SCRAPE_USER);
  t.ok(prometheus.secrets?.includes(mounted(job.tls_config!.ca_file)), `prometheus mounts the CA it reads (${job.tls_config!.ca_file})`);
  t.ok(prometheus.secrets?.includes(mounted(job.basic_auth!.password_file)), `and the password (${job.basic_auth!.password_file})`);
  t.notOk(prometheus.secrets?.includes(COMPOSE_SECRETS['tls.key']), 'Prometheus never sees the server key');
});

t.test('the generated files: a certificate for the compose service, a web config naming the mounted files, a password the config\'s hash accepts', async (t) => {
  const dir = await tempDir(t);
  const files = writeComposeSecrets(dir, 2);
  const cert = new X509Certificate(await readFile(files['tls.crt']));
  t.ok(cert.checkHost('modelwatch'), 'valid for the host name Prometheus scrapes in compose');
  t.ok(cert.checkIP('127.0.0.1'), 'and for the host itself');
  t.ok(cert.verify(new X509Certificate(await readFile(files['ca.crt'])).publicKey), 'signed by the generated CA');
  const web = load(await readFile(files['web-config.yml'], 'utf8')) as { tls_server_config: { cert_file: string; key_file: string }; basic_auth_users: Record<string, string> };
  t.equal(web.tls_server_config.cert_file, `${SECRETS_MOUNT}/${COMPOSE_SECRETS['tls.crt']}`);
  t.equal(web.tls_server_config.key_file, `${SECRETS_MOUNT}/${COMPOSE_SECRETS['tls.key']}`);
  t.same(Object.keys(web.basic_auth_users), [SCRAPE_USER]);
  const again = writeComposeSecrets(dir, 2);
  t.not(await readFile(again['scrape-password'], 'utf8'), '', 'a rerun writes them anew');
});

t.test('a real Prometheus with the shipped scrape job scrapes modelwatch with the generated secrets: up == 1', async (t) => {
  const dir = await tempDir(t);
  const files = writeComposeSecrets(dir, 2);
  // Where compose mounts them, the files of `dir` here.
  const local = (text: string) => text.replaceAll(/\/run\/secrets\/(\w+)/g, (_, secret: string) => files[(Object.entries(COMPOSE_SECRETS).find(([, s]) => s === secret)![0]) as SecretFile]);
  const webFile = join(dir, 'web-config.local.yml');
  await writeFile(webFile, local(await readFile(files['web-config.yml'], 'utf8')));
  const parsed = loadWebConfig(webFile);
  t.same([...parsed.users.keys()], [SCRAPE_USER], 'modelwatch accepts the generated web config');
  t.ok(parsed.tls, 'with TLS');
  const port = await freePort();
  const metricsPort = await freePort();
  const { app } = await testApp(t, ['--metrics-port', String(metricsPort), '--web-config-file', webFile, '--max-event-loop-delay-ms', '0']);
  await listen(app, { port, host: '127.0.0.1', metricsPort, metricsHost: '' });
  const { job_name: _name, static_configs: _targets, ...transport } = job;
  const prometheus = await startPrometheus(t, { targets: [`127.0.0.1:${metricsPort}`], ruleFiles: [], job: JSON.parse(local(JSON.stringify(transport))) });
  const up = await waitFor('the modelwatch job to be scraped', async () => (await prometheus.query('up{job="modelwatch"}'))[0]?.value?.[1], { timeoutMs: 30_000 });
  t.equal(up, '1', 'scraped over TLS with basic auth, as compose does');
  const [info] = await prometheus.query('model_info{job="modelwatch"}');
  t.equal(info?.value?.[1], '1');
});
