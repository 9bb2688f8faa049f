// `modelwatch stack`, and the integration tests' Prometheus and Alertmanager: the installed
// binaries on 127.0.0.1, with configs generated from the shipped prometheus/ files (targets,
// Alertmanager address, rule paths and receivers rewritten; expressions, routes and inhibitions
// as shipped). A time scale divides every duration of the generated copies, so that an alert's
// `for: 15m` lasts 15 s at --time-scale 60; the shipped files are never changed.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dump, load } from 'js-yaml';
import { findBinary, installInstructions, type BinaryName } from './binaries.js';
import { ConfigInvalidError, StackBinaryMissingError, StackStartFailedError } from './errors.js';

/** src/ and dist/ both sit one level below the repository root. */
const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const promDir = join(repoRoot, 'prometheus');
/** The scrape job the shipped prometheus.yml, the alert rules and the dashboard agree on. */
export const JOB = 'modelwatch';

/** Registers what to undo; tap's `t` is one, and so is a Teardowns. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Undoes what was registered, last first, each step even when an earlier one failed. */
class Teardowns implements Teardown {
  private readonly steps: (() => unknown)[] = [];
  teardown(fn: () => unknown): void {
    this.steps.push(fn);
  }
  async run(): Promise<void> {
    for (const step of this.steps.splice(0).reverse()) await Promise.resolve().then(step).catch(() => undefined);
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Polls `probe` until it returns something other than undefined; throws after `timeoutMs`,
 * saying what was awaited and, from `describe`, what was seen last, or as soon as `signal`
 * aborts, with its reason.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  { timeoutMs, intervalMs = 250, describe, signal }: { timeoutMs: number; intervalMs?: number; describe?: () => string; signal?: AbortSignal },
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    signal?.throwIfAborted();
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${describe ? `; last seen: ${describe()}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

export async function tempDir(t: Teardown, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `modelwatch-${prefix}-`));
  t.teardown(() => rm(dir, { recursive: true, force: true, maxRetries: 5 }));
  return dir;
}

/** The binary's path, or an error that names the packages to install. */
async function stackBinary(name: BinaryName): Promise<string> {
  const path = await findBinary(name);
  if (path === undefined) throw new StackBinaryMissingError(installInstructions(name, 'modelwatch stack runs'));
  return path;
}

// ----------------------------------------------------------------------- time scaling

const DURATION = /(\d+)(ms|s|m|h|d|w|y)/g;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1e3, m: 6e4, h: 36e5, d: 864e5, w: 6048e5, y: 31536e6 };

/** A Prometheus duration (1h30m, 15m, 500ms) in milliseconds. */
export function durationMs(duration: string): number {
  if (!new RegExp(`^(?:${DURATION.source})+$`).test(duration)) throw new Error(`not a Prometheus duration: ${duration}`);
  let ms = 0;
  for (const [, n, unit] of duration.matchAll(DURATION)) ms += Number(n) * UNIT_MS[unit!]!;
  return ms;
}

/** A Prometheus duration divided by `scale`, written in milliseconds, at least 1ms. */
function scaleDuration(duration: string, scale: number): string {
  return `${Math.max(1, Math.round(durationMs(duration) / scale))}ms`;
}

/** The durations inside an expression's range selectors ([5m], subqueries [1h:1m]) and offsets, scaled. */
function scaleExpression(expr: string, scale: number): string {
  return expr.replace(/\[[^\]]+\]|\boffset\s+\w+/g, (selector) => selector.replace(/(?:\d+(?:ms|s|m|h|d|w|y))+/g, (d) => scaleDuration(d, scale)));
}

interface Rule {
  expr: string;
  for?: string;
  keep_firing_for?: string;
  [key: string]: unknown;
}
interface RuleFile {
  groups: { name: string; interval?: string; rules: Rule[] }[];
}

/** A rule file with `for`, `keep_firing_for`, group intervals and range windows scaled; expressions otherwise unchanged. */
function scaleRuleFile(yaml: string, scale: number): string {
  const file = load(yaml) as RuleFile;
  for (const group of file.groups) {
    if (group.interval) group.interval = scaleDuration(group.interval, scale);
    for (const rule of group.rules) {
      rule.expr = scaleExpression(rule.expr, scale);
      if (rule.for) rule.for = scaleDuration(rule.for, scale);
      if (rule.keep_firing_for) rule.keep_firing_for = scaleDuration(rule.keep_firing_for, scale);
    }
  }
  return dump(file, { lineWidth: -1 });
}

/** The repository's rule files, prometheus/rules/*.yml. */
async function shippedRuleFiles(): Promise<string[]> {
  const dir = join(promDir, 'rules');
  return (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => join(dir, f));
}

// ------------------------------------------------------------------------- processes

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

export interface Started {
  /** host:port it listens on. */
  address: string;
  child: ChildProcess;
  /** The tail of its output: explains a failed start, or a later exit. */
  output(): string;
}

/**
 * Spawns a Prometheus or Alertmanager binary on 127.0.0.1:`port` and waits until GET /-/ready
 * answers 200. Port 0 takes a free port, found by binding and releasing it, so another process
 * can take it in between: such a start that fails on "address already in use" is retried.
 */
async function startServer(t: Teardown, name: BinaryName, bin: string, port: number, args: (address: string) => string[]): Promise<Started> {
  for (let attempt = 1; ; attempt++) {
    const address = `127.0.0.1:${port || (await freePort())}`;
    const child = spawn(bin, args(address), { stdio: ['ignore', 'pipe', 'pipe'] });
    t.teardown(() => stopProcess(child));
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-8000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    let spawnError: Error | undefined;
    child.once('error', (err) => (spawnError = err));
    const exited = () => spawnError !== undefined || child.exitCode !== null || child.signalCode !== null;
    const ready = await waitFor(
      `${name} on ${address} to be ready`,
      async () => {
        if (exited()) return false;
        try {
          const response = await fetch(`http://${address}/-/ready`, { signal: AbortSignal.timeout(1000) });
          return response.ok ? true : undefined;
        } catch {
          return undefined;
        }
      },
      { timeoutMs: 30_000, intervalMs: 100, describe: () => output },
    );
    if (ready) return { address, child, output: () => output };
    if (port === 0 && attempt < 3 && /address already in use/.test(output)) continue;
    throw new StackStartFailedError(name, address, `${spawnError?.message ?? `exit ${child.exitCode ?? child.signalCode}`}\n${output}`);
  }
}

// ------------------------------------------------------------------------ prometheus

interface ScrapeJob {
  job_name: string;
  static_configs: { targets: string[] }[];
  [key: string]: unknown;
}

export interface PrometheusOptions {
  /** host:port of each modelwatch target, scraped as job "modelwatch". */
  targets: string[];
  /** Rule files to load, scaled; default: every shipped prometheus/rules/*.yml. */
  ruleFiles?: string[];
  /** Shipped time per run time; default 1. */
  timeScale?: number;
  /** Scrape and evaluation interval in seconds; default the shipped one scaled, at least 1. */
  intervalSeconds?: number;
  /** host:port of Alertmanagers to send alerts to; default none. */
  alertmanagers?: string[];
  /** The base of every runbook_url; default the one prometheus.yml sets. */
  runbookBase?: string;
  /** Scrape settings merged into the modelwatch job (scheme, tls_config, basic_auth); default none. */
  job?: Record<string, unknown>;
  /** More scrape jobs beside modelwatch; default none. */
  extraJobs?: ScrapeJob[];
  /** Port to listen on; 0 (default) takes a free one. */
  port?: number;
}

export interface RunningPrometheus extends Started {
  url: string;
  intervalSeconds: number;
}

/** Instant query; throws on a query error. */
async function instantQuery(url: string, expr: string): Promise<unknown[]> {
  const response = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: expr })}`, { signal: AbortSignal.timeout(10_000) });
  const body = (await response.json()) as { status: string; data: { result: unknown[] }; errorType?: string; error?: string };
  if (body.status !== 'success') throw new Error(`query ${expr}: ${body.errorType}: ${body.error}`);
  return body.data.result;
}

/**
 * Starts Prometheus on the shipped prometheus/prometheus.yml with the modelwatch job's targets,
 * the intervals, the rule files, the Alertmanagers and the runbook base replaced. Its data and
 * generated files live in `dir`.
 */
export async function startPrometheus(t: Teardown, bin: string, dir: string, options: PrometheusOptions): Promise<RunningPrometheus> {
  const { targets, timeScale = 1, alertmanagers = [] } = options;
  const ruleFiles: string[] = [];
  for (const [i, file] of (options.ruleFiles ?? (await shippedRuleFiles())).entries()) {
    const scaled = join(dir, `rules-${i}.yml`);
    await writeFile(scaled, scaleRuleFile(await readFile(file, 'utf8'), timeScale));
    ruleFiles.push(scaled);
  }
  const config = load(await readFile(join(promDir, 'prometheus.yml'), 'utf8')) as {
    global: { scrape_interval: string; external_labels?: Record<string, string>; [key: string]: unknown };
    rule_files: string[];
    alerting?: unknown;
    scrape_configs: ScrapeJob[];
  };
  const intervalSeconds = options.intervalSeconds ?? Math.max(1, durationMs(config.global.scrape_interval) / timeScale / 1000);
  const interval = `${intervalSeconds}s`;
  const externalLabels = { ...config.global.external_labels, ...(options.runbookBase === undefined ? {} : { runbook_base: options.runbookBase }) };
  config.global = { ...config.global, scrape_interval: interval, evaluation_interval: interval, external_labels: externalLabels };
  config.alerting = { alertmanagers: [{ static_configs: [{ targets: alertmanagers }] }] };
  const index = config.scrape_configs.findIndex((c) => c.job_name === JOB);
  if (index < 0) throw new Error(`prometheus/prometheus.yml has no scrape job "${JOB}"`);
  // The shipped transport is compose's (TLS and basic auth from files under /run/secrets); the
  // servers scraped here serve plain HTTP unless `job` says otherwise.
  const { scheme: _scheme, tls_config: _tls, basic_auth: _auth, ...job } = config.scrape_configs[index]!;
  config.scrape_configs[index] = Object.assign(job, options.job, { scrape_interval: interval, scrape_timeout: interval, static_configs: [{ targets }] });
  config.scrape_configs.push(...(options.extraJobs ?? []).map((extra) => ({ scrape_interval: interval, scrape_timeout: interval, ...extra })));
  const configFile = join(dir, 'prometheus.yml');
  // Prometheus applies new scrape targets every 5 seconds, so its first scrape comes up to 5s
  // after start. Scaled down, that is long enough for absent(up) to fire ModelExporterDown
  // (5m becomes 5s at a scale of 60), which a real Prometheus never does at start. So the rules
  // are loaded once every target has been scraped, or failed to be: start without them, then reload.
  await writeFile(configFile, dump({ ...config, rule_files: [] }));
  const started = await startServer(t, 'prometheus', bin, options.port ?? 0, (listen) => [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=${listen}`,
    '--web.enable-lifecycle',
  ]);
  const url = `http://${started.address}`;
  await waitFor(
    `a first scrape of every target (${targets.join(', ')})`,
    async () => ((await instantQuery(url, `up{job="${JOB}"}`)).length === targets.length ? true : undefined),
    { timeoutMs: 30_000 },
  );
  await writeFile(configFile, dump({ ...config, rule_files: ruleFiles }));
  const reload = await fetch(`${url}/-/reload`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
  if (!reload.ok) throw new Error(`reloading Prometheus with the rule files failed: ${reload.status} ${await reload.text()}`);
  return { ...started, url, intervalSeconds };
}

// ---------------------------------------------------------------------- alertmanager

interface Route {
  group_wait?: string;
  group_interval?: string;
  repeat_interval?: string;
  routes?: Route[];
}

function scaleRoute(route: Route, scale: number): void {
  for (const key of ['group_wait', 'group_interval', 'repeat_interval'] as const) {
    if (route[key]) route[key] = scaleDuration(route[key], scale);
  }
  for (const child of route.routes ?? []) scaleRoute(child, scale);
}

/** Where every receiver sends: PagerDuty with a routing key file, or a webhook. */
export type Delivery = { pagerduty: { routingKeyFile: string; url?: string } } | { webhookUrl: string };

export interface AlertmanagerOptions {
  delivery: Delivery;
  /** Shipped time per run time, for group_wait, group_interval and repeat_interval; default 1. */
  timeScale?: number;
  /** Port to listen on; 0 (default) takes a free one. */
  port?: number;
}

/**
 * Starts Alertmanager on the shipped prometheus/alertmanager.yml, its routes and inhibitions as
 * shipped, every receiver delivering as `delivery` says. Its data and config live in `dir`.
 */
export async function startAlertmanager(t: Teardown, bin: string, dir: string, options: AlertmanagerOptions): Promise<Started> {
  const config = load(await readFile(join(promDir, 'alertmanager.yml'), 'utf8')) as {
    global: Record<string, unknown>;
    route: Route;
    receivers: { name: string; pagerduty_configs?: { routing_key_file?: string }[]; webhook_configs?: unknown[] }[];
  };
  scaleRoute(config.route, options.timeScale ?? 1);
  const { delivery } = options;
  if ('pagerduty' in delivery) {
    if (delivery.pagerduty.url) config.global.pagerduty_url = delivery.pagerduty.url;
    for (const pd of config.receivers.flatMap((r) => r.pagerduty_configs ?? [])) pd.routing_key_file = delivery.pagerduty.routingKeyFile;
  } else {
    for (const receiver of config.receivers) {
      delete receiver.pagerduty_configs;
      receiver.webhook_configs = [{ url: delivery.webhookUrl, send_resolved: true }];
    }
  }
  const configFile = join(dir, 'alertmanager.yml');
  await writeFile(configFile, dump(config, { lineWidth: -1 }));
  return startServer(t, 'alertmanager', bin, options.port ?? 0, (listen) => [
    `--config.file=${configFile}`,
    `--storage.path=${join(dir, 'data')}`,
    `--web.listen-address=${listen}`,
    // A lone Alertmanager: no gossip port on 0.0.0.0:9094 to collide with another one's.
    '--cluster.listen-address=',
  ]);
}

// ------------------------------------------------------------------ console receiver

interface WebhookAlert {
  status: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** Alertmanager's labels that say nothing about what is wrong. */
const PLAIN_LABELS = new Set(['alertname', 'severity', 'runbook_base']);

/** One line per alert of an Alertmanager webhook notification. */
function notificationLines(body: { receiver: string; alerts: WebhookAlert[] }, now = new Date()): string[] {
  return body.alerts.map(({ status, labels, annotations }) => {
    const where = Object.entries(labels)
      .filter(([name]) => !PLAIN_LABELS.has(name))
      .map(([name, value]) => `${name}=${value}`)
      .join(' ');
    return `${now.toISOString()} ${status.toUpperCase()} ${labels.alertname} ${labels.severity ?? '-'} (${body.receiver}) ${where}: ${annotations.summary ?? ''} runbook: ${annotations.runbook_url ?? '-'}`;
  });
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

/**
 * The stack's own HTTP server on 127.0.0.1: Alertmanager's webhook (POST /alerts), printed a line
 * per alert, and the runbook (GET /prometheus/RUNBOOK.md), so that the runbook_url of every alert
 * of the stack resolves on this machine. Returns its base URL.
 */
async function startConsoleReceiver(t: Teardown, print: (line: string) => void, port = 0): Promise<string> {
  const runbook = await readFile(join(promDir, 'RUNBOOK.md'));
  const server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    if (req.method === 'GET' && path === '/prometheus/RUNBOOK.md') {
      res.writeHead(200, { 'content-type': 'text/markdown; charset=utf-8' }).end(runbook);
    } else if (req.method === 'POST' && path === '/alerts') {
      readBody(req)
        .then((text) => {
          notificationLines(JSON.parse(text) as { receiver: string; alerts: WebhookAlert[] }).forEach(print);
          res.writeHead(200).end();
        })
        .catch(() => res.writeHead(400).end());
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

// ------------------------------------------------------------------------- the stack

export interface StackOptions {
  /** host:port of the modelwatch servers to scrape. */
  targets: string[];
  prometheusPort: number;
  alertmanagerPort: number;
  receiverPort: number;
  /** Send to PagerDuty with this routing key file instead of printing. */
  pagerdutyKeyFile?: string;
  timeScale: number;
}

/**
 * Starts the console receiver, Alertmanager and Prometheus, prints where they are and each
 * notification, and stops them all on SIGINT or SIGTERM (exit 0) or when one exits (exit 1).
 */
export async function runStack(options: StackOptions, print: (line: string) => void): Promise<number> {
  if (options.pagerdutyKeyFile !== undefined) {
    // Alertmanager reads the key only when it sends: a wrong path would fail the first page, not the start.
    await access(options.pagerdutyKeyFile, constants.R_OK).catch((cause: Error) => {
      throw new ConfigInvalidError(`--pagerduty-key-file = ${JSON.stringify(options.pagerdutyKeyFile)}`, `cannot be read: ${cause.message}`, { cause });
    });
  }
  const [prometheusBin, alertmanagerBin] = [await stackBinary('prometheus'), await stackBinary('alertmanager')];
  const started = new Teardowns();
  let done = false;
  let settle: (code: number) => void = () => undefined;
  const stopped = new Promise<number>((resolve) => (settle = resolve));
  const stopping = (code: number) => {
    done = true;
    settle(code);
  };
  const onSignal = () => stopping(0);
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  try {
    const receiver = await startConsoleReceiver(started, print, options.receiverPort);
    const delivery: Delivery = options.pagerdutyKeyFile ? { pagerduty: { routingKeyFile: options.pagerdutyKeyFile } } : { webhookUrl: `${receiver}/alerts` };
    const alertmanager = await startAlertmanager(started, alertmanagerBin, await tempDir(started, 'stack-alertmanager'), {
      delivery,
      timeScale: options.timeScale,
      port: options.alertmanagerPort,
    });
    const prometheus = await startPrometheus(started, prometheusBin, await tempDir(started, 'stack-prometheus'), {
      targets: options.targets,
      alertmanagers: [alertmanager.address],
      runbookBase: receiver,
      timeScale: options.timeScale,
      port: options.prometheusPort,
    });
    for (const [name, server] of [['prometheus', prometheus], ['alertmanager', alertmanager]] as const) {
      server.child.once('exit', (code, signal) => {
        // Stopping the stack stops them too: that exit is no news.
        if (done) return;
        print(`${name} exited (${code ?? signal}): ${server.output().trim().split('\n').slice(-5).join('\n')}`);
        stopping(1);
      });
    }
    print(`prometheus   ${prometheus.url} (scraping ${options.targets.join(', ')} every ${prometheus.intervalSeconds}s)`);
    print(`alertmanager http://${alertmanager.address}`);
    print(`runbook      ${receiver}/prometheus/RUNBOOK.md`);
    print(
      options.pagerdutyKeyFile
        ? `notifications go to PagerDuty with the routing key in ${options.pagerdutyKeyFile}`
        : `notifications are printed here (webhook ${receiver}/alerts)`,
    );
    if (options.timeScale !== 1) print(`every duration of the rules and routes is divided by ${options.timeScale}`);
    print('Ctrl-C stops them');
    return await stopped;
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    await started.run();
  }
}
