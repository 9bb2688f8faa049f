// Real Prometheus (and Alertmanager) against in-process modelwatch apps, for the integration
// tests. Time is compressed: the repository's rule files are loaded with every duration divided
// by `timeScale` (`for: 15m` becomes 15s at the default 60), so an alert that needs 15 minutes of
// sustained deviation fires after 15 seconds, while its expression stays exactly as shipped.
// Everything started here is stopped, and every temp dir removed, in the test's teardown.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { freePort } from '../helpers/cli.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { dump, load } from 'js-yaml';
import { repoRoot, testApp } from '../helpers/app.js';
import { requireBinary, type BinaryName } from '../helpers/binaries.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Rule-file minutes per test second: 15m of the shipped rules lasts 15s in a test. */
export const DEFAULT_TIME_SCALE = 60;
/** Scrape and rule evaluation interval of the test Prometheus, in seconds. */
export const DEFAULT_INTERVAL_SECONDS = 1;
/** The scrape job the shipped prometheus.yml, the alert rules and the dashboard agree on. */
export const JOB = 'modelwatch';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Polls `probe` until it returns something other than undefined; throws after `timeoutMs`,
 * saying what was awaited and, from `describe`, what was seen last, or as soon as `signal`
 * aborts (a traffic loop that failed), with its reason.
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

async function tempDir(t: Teardown, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `modelwatch-${prefix}-`));
  t.teardown(() => rm(dir, { recursive: true, force: true, maxRetries: 5 }));
  return dir;
}

// ---------------------------------------------------------------------------------- apps

export interface Target {
  app: FastifyInstance;
  /** host:port, as Prometheus scrapes it and as the `instance` label shows it. */
  address: string;
}

/**
 * The apps share their event loop with the test and the harness, on a machine that runs other
 * test files at the same time: the overload guard would shed the test's own traffic whenever the
 * machine is busy. It is off here (test/overload.test.ts covers it); `flags` can turn it back on.
 */
const APP_FLAGS = ['--max-event-loop-delay-ms', '0'];

/** Starts `count` modelwatch apps on the default model, each listening on 127.0.0.1:<free port>. */
export async function startApps(t: Teardown, count: number, flags: string[] = []): Promise<Target[]> {
  const targets: Target[] = [];
  for (let i = 0; i < count; i++) {
    const { app } = await testApp(t, [...APP_FLAGS, ...flags]);
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as { port: number };
    targets.push({ app, address: `127.0.0.1:${port}` });
  }
  return targets;
}

/** POSTs a JSON body to `path` of a target over its real socket. */
export async function post(target: Target, path: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`http://${target.address}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  return { status: response.status, body: await response.json() };
}

export interface Traffic {
  /** Aborted, with the error as its reason, when a tick fails: pass it to waitFor. */
  signal: AbortSignal;
  /** Stops the loop; rethrows the error a tick raised. */
  stop(): Promise<void>;
}

/**
 * Runs `tick` every `intervalMs` until stopped or for `maxMs` at most, so a test that fails
 * midway cannot leave traffic running. A tick that throws ends the loop and aborts `signal`.
 */
export function startTraffic(t: Teardown, tick: () => Promise<void>, { intervalMs, maxMs }: { intervalMs: number; maxMs: number }): Traffic {
  const failed = new AbortController();
  let stopped = false;
  const deadline = Date.now() + maxMs;
  const loop = (async () => {
    while (!stopped && Date.now() < deadline) {
      const started = Date.now();
      await tick();
      await sleep(Math.max(0, intervalMs - (Date.now() - started)));
    }
  })().catch((err: unknown) => failed.abort(err));
  const stop = async () => {
    stopped = true;
    await loop;
    failed.signal.throwIfAborted();
  };
  t.teardown(() => {
    stopped = true;
    return loop;
  });
  return { signal: failed.signal, stop };
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
export function scaleDuration(duration: string, scale: number): string {
  return `${Math.max(1, Math.round(durationMs(duration) / scale))}ms`;
}

/** The durations inside an expression's range selectors ([5m], subqueries [1h:1m]) and offsets, scaled. */
export function scaleExpression(expr: string, scale: number): string {
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
export function scaleRuleFile(yaml: string, scale: number): string {
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
export async function shippedRuleFiles(): Promise<string[]> {
  const dir = join(repoRoot, 'prometheus', 'rules');
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

/**
 * Spawns a server binary on 127.0.0.1:<free port> and waits until GET /-/ready answers 200.
 * The free port is found by binding and releasing it, so another process can take it in
 * between: a start that fails on "address already in use" is retried on a new port.
 */
async function startServer(t: Teardown, name: BinaryName, args: (address: string) => string[]): Promise<string> {
  const bin = await requireBinary(name);
  for (let attempt = 1; ; attempt++) {
    const address = `127.0.0.1:${await freePort()}`;
    const child = spawn(bin, args(address), { stdio: ['ignore', 'pipe', 'pipe'] });
    t.teardown(() => stopProcess(child));
    // The tail of the output explains a failed start or a failed test.
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
    if (ready) return address;
    if (attempt < 3 && /address already in use/.test(output)) continue;
    throw new Error(`${name} exited before it was ready (${spawnError?.message ?? `exit ${child.exitCode ?? child.signalCode}`}):\n${output}`);
  }
}

// ------------------------------------------------------------------------ prometheus

export interface Sample {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}

export interface ActiveAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
  activeAt: string;
  value: string;
}

export class Prometheus {
  constructor(
    readonly url: string,
    /** Scrape and evaluation interval, in seconds. */
    readonly intervalSeconds: number,
    /** Rule-file time per test time. */
    readonly timeScale: number,
  ) {}

  private async api<T>(path: string, params: Record<string, string>): Promise<T> {
    const response = await fetch(`${this.url}/api/v1/${path}?${new URLSearchParams(params)}`, { signal: AbortSignal.timeout(10_000) });
    const body = (await response.json()) as { status: string; data: T; errorType?: string; error?: string };
    if (body.status !== 'success') throw new Error(`${path} ${JSON.stringify(params)}: ${body.errorType}: ${body.error}`);
    return body.data;
  }

  /** Instant query at `time` (unix seconds; default now); throws on a query error. */
  async query(expr: string, time?: number): Promise<Sample[]> {
    const params: Record<string, string> = { query: expr };
    if (time !== undefined) params.time = String(time);
    return (await this.api<{ result: Sample[] }>('query', params)).result;
  }

  /** Range query (unix seconds, step in seconds); throws on a query error. */
  async queryRange(expr: string, start: number, end: number, step: number): Promise<Sample[]> {
    const params = { query: expr, start: String(start), end: String(end), step: String(step) };
    return (await this.api<{ result: Sample[] }>('query_range', params)).result;
  }

  /** Values of `label` on the series that match `selector`, as Grafana's label_values() lists them. */
  async labelValues(label: string, selector: string): Promise<string[]> {
    return this.api<string[]>(`label/${encodeURIComponent(label)}/values`, { 'match[]': selector });
  }

  /** Pending and firing alerts, with their annotations rendered. */
  async alerts(): Promise<ActiveAlert[]> {
    return (await this.api<{ alerts: ActiveAlert[] }>('alerts', {})).alerts;
  }
}

export interface PrometheusOptions {
  /** host:port of each modelwatch app, scraped as job "modelwatch". */
  targets: string[];
  /** Rule files to load, scaled; default: every shipped prometheus/rules/*.yml. */
  ruleFiles?: string[];
  /** Rule-file time per test time; default 60 (a minute becomes a second). */
  timeScale?: number;
  /** Scrape and evaluation interval in seconds; default 1. */
  intervalSeconds?: number;
  /** host:port of Alertmanagers to send alerts to; default none. */
  alertmanagers?: string[];
  /** Scrape settings merged into the modelwatch job (scheme, tls_config, basic_auth); default none. */
  job?: Record<string, unknown>;
  /** More scrape jobs beside modelwatch, each with its job_name and static_configs; default none. */
  extraJobs?: { job_name: string; static_configs: { targets: string[] }[]; [key: string]: unknown }[];
}

/**
 * Starts Prometheus on the shipped prometheus/prometheus.yml with the modelwatch job's targets,
 * the intervals, the rule files and the Alertmanagers replaced for the test.
 */
export async function startPrometheus(t: Teardown, options: PrometheusOptions): Promise<Prometheus> {
  const { targets, timeScale = DEFAULT_TIME_SCALE, intervalSeconds = DEFAULT_INTERVAL_SECONDS, alertmanagers = [] } = options;
  const dir = await tempDir(t, 'prometheus');
  const ruleFiles: string[] = [];
  for (const [i, file] of (options.ruleFiles ?? (await shippedRuleFiles())).entries()) {
    const scaled = join(dir, `rules-${i}.yml`);
    await writeFile(scaled, scaleRuleFile(await readFile(file, 'utf8'), timeScale));
    ruleFiles.push(scaled);
  }

  const interval = `${intervalSeconds}s`;
  const config = load(await readFile(join(repoRoot, 'prometheus', 'prometheus.yml'), 'utf8')) as {
    global: Record<string, unknown>;
    rule_files: string[];
    alerting?: unknown;
    scrape_configs: { job_name: string; static_configs: { targets: string[] }[]; [key: string]: unknown }[];
  };
  config.global = { ...config.global, scrape_interval: interval, evaluation_interval: interval };
  config.alerting = { alertmanagers: [{ static_configs: [{ targets: alertmanagers }] }] };
  const job = config.scrape_configs.find((c) => c.job_name === JOB);
  if (!job) throw new Error(`prometheus/prometheus.yml has no scrape job "${JOB}"`);
  Object.assign(job, options.job, { scrape_interval: interval, scrape_timeout: interval, static_configs: [{ targets }] });
  config.scrape_configs.push(...(options.extraJobs ?? []).map((extra) => ({ scrape_interval: interval, scrape_timeout: interval, ...extra })));
  const configFile = join(dir, 'prometheus.yml');
  // Prometheus applies new scrape targets every 5 seconds, so its first scrape comes up to 5s
  // after start. Scaled down, that is long enough for absent(up) to fire ModelExporterDown
  // (5m becomes 5s), which a real Prometheus never does at start. So the rules are loaded only
  // once every target has been scraped: start without them, then reload.
  await writeFile(configFile, dump({ ...config, rule_files: [] }));

  const address = await startServer(t, 'prometheus', (listen) => [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=${listen}`,
    '--web.enable-lifecycle',
  ]);
  const prometheus = new Prometheus(`http://${address}`, intervalSeconds, timeScale);
  await waitFor(
    `a first scrape of every target (${targets.join(', ')})`,
    async () => ((await prometheus.query(`up{job="${JOB}"}`)).length === targets.length ? true : undefined),
    { timeoutMs: 30_000 },
  );
  await writeFile(configFile, dump({ ...config, rule_files: ruleFiles }));
  const reload = await fetch(`${prometheus.url}/-/reload`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
  if (!reload.ok) throw new Error(`reloading Prometheus with the rule files failed: ${reload.status} ${await reload.text()}`);
  return prometheus;
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

export interface AlertmanagerOptions {
  /** Where PagerDuty events go instead of events.pagerduty.com (global.pagerduty_url). */
  pagerdutyUrl: string;
  /** Written to a temp file that every receiver's routing_key_file points at. */
  routingKey: string;
  /** Config time per test time for group_wait, group_interval and repeat_interval; default 60. */
  timeScale?: number;
}

/** Starts Alertmanager on the shipped prometheus/alertmanager.yml, pointed at a fake PagerDuty. Returns host:port. */
export async function startAlertmanager(t: Teardown, options: AlertmanagerOptions): Promise<string> {
  const dir = await tempDir(t, 'alertmanager');
  const keyFile = join(dir, 'pagerduty_routing_key');
  await writeFile(keyFile, `${options.routingKey}\n`);
  const config = load(await readFile(join(repoRoot, 'prometheus', 'alertmanager.yml'), 'utf8')) as {
    global: Record<string, unknown>;
    route: Route;
    receivers: { name: string; pagerduty_configs?: { routing_key_file?: string }[] }[];
  };
  config.global.pagerduty_url = options.pagerdutyUrl;
  scaleRoute(config.route, options.timeScale ?? DEFAULT_TIME_SCALE);
  for (const pd of config.receivers.flatMap((r) => r.pagerduty_configs ?? [])) pd.routing_key_file = keyFile;
  const configFile = join(dir, 'alertmanager.yml');
  await writeFile(configFile, dump(config, { lineWidth: -1 }));

  return startServer(t, 'alertmanager', (listen) => [
    `--config.file=${configFile}`,
    `--storage.path=${join(dir, 'data')}`,
    `--web.listen-address=${listen}`,
    // A lone Alertmanager: no gossip port on 0.0.0.0:9094 to collide with a parallel test's.
    '--cluster.listen-address=',
  ]);
}
