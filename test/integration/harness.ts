// Real Prometheus (and Alertmanager) against in-process modelwatch apps, for the integration
// tests. Time is compressed: the repository's rule files are loaded with every duration divided
// by `timeScale` (`for: 15m` becomes 15s at the default 60), so an alert that needs 15 minutes of
// sustained deviation fires after 15 seconds, while its expression stays exactly as shipped.
// Everything started here is stopped, and every temp dir removed, in the test's teardown.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { testApp } from '../helpers/app.js';
import { requireBinary } from '../helpers/binaries.js';
import {
  startAlertmanager as launchAlertmanager,
  startPrometheus as launchPrometheus,
  sleep,
  tempDir,
  type PrometheusOptions as StackPrometheusOptions,
  type Teardown,
} from '../../src/stack.js';

export { durationMs, JOB, waitFor } from '../../src/stack.js';

/** Rule-file minutes per test second: 15m of the shipped rules lasts 15s in a test. */
export const DEFAULT_TIME_SCALE = 60;
/** Scrape and rule evaluation interval of the test Prometheus, in seconds. */
export const DEFAULT_INTERVAL_SECONDS = 1;

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
export async function post(target: Pick<Target, 'address'>, path: string, body: unknown): Promise<{ status: number; body: unknown }> {
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

export type PrometheusOptions = Omit<StackPrometheusOptions, 'runbookBase' | 'port'>;

/** Starts Prometheus (src/stack.ts) with the test defaults: a time scale of 60, 1-second intervals. */
export async function startPrometheus(t: Teardown, options: PrometheusOptions): Promise<Prometheus> {
  const timeScale = options.timeScale ?? DEFAULT_TIME_SCALE;
  const intervalSeconds = options.intervalSeconds ?? DEFAULT_INTERVAL_SECONDS;
  const { url } = await launchPrometheus(t, await requireBinary('prometheus'), await tempDir(t, 'prometheus'), { ...options, timeScale, intervalSeconds });
  return new Prometheus(url, intervalSeconds, timeScale);
}

// ---------------------------------------------------------------------- alertmanager

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
  const routingKeyFile = join(dir, 'pagerduty_routing_key');
  await writeFile(routingKeyFile, `${options.routingKey}\n`);
  const { address } = await launchAlertmanager(t, await requireBinary('alertmanager'), dir, {
    delivery: { pagerduty: { routingKeyFile, url: options.pagerdutyUrl } },
    timeScale: options.timeScale ?? DEFAULT_TIME_SCALE,
  });
  return address;
}
