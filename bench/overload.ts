import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { finished } from '../test/helpers/cli.js';
import { percentile, type Server } from './load.js';

export interface Latencies {
  statuses: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface OverloadRun {
  /** The storm as its load generator saw it; its percentiles are autocannon's (1 ms resolution). */
  storm: Latencies & { errors: number };
  /** model_requests_total{outcome="overloaded"} gained during the run, as the server counts it. */
  overloadedCounted: number;
  /** Probes of each route during the run, measured to the end of the answer. */
  probes: Record<string, Latencies>;
  /** Retry-After of the first 503 a probe saw, if any. */
  retryAfter: string | undefined;
}

const overloaded = /^model_requests_total\{[^}]*outcome="overloaded"\} (\S+)$/m;
const PROBE_EVERY_MS = 100;
const autocannonCli = createRequire(import.meta.url).resolve('autocannon/autocannon.js');

interface AutocannonJson {
  errors: number;
  timeouts: number;
  latency: { p50: number; p99: number; max: number };
  statusCodeStats?: Record<string, { count: number }>;
}

/**
 * `connections` clients post `body` as fast as they are answered, from autocannon in its own
 * process: probes timed in a process that also drives 256 connections would measure the load
 * generator's own event loop as much as the server.
 */
async function storm(port: number, body: string, connections: number, seconds: number): Promise<OverloadRun['storm']> {
  const dir = await mkdtemp(join(tmpdir(), 'modelwatch-storm-'));
  try {
    const file = join(dir, 'body.json');
    await writeFile(file, body);
    const args = ['-c', String(connections), '-d', String(seconds), '-t', '30', '-m', 'POST', '-H', 'content-type=application/json', '-i', file, '-j', '-n'];
    const child = spawn(process.execPath, [autocannonCli, ...args, `http://127.0.0.1:${port}/predict`], { stdio: ['ignore', 'pipe', 'pipe'] });
    const result = await finished(child, (seconds + 60) * 1000);
    if (result.code !== 0) throw new Error(`autocannon exited with ${result.code}: ${result.stderr}`);
    const json = JSON.parse(result.stdout) as AutocannonJson;
    const statuses = Object.fromEntries(Object.entries(json.statusCodeStats ?? {}).map(([code, { count }]) => [code, count]));
    return { statuses, errors: json.errors + json.timeouts, p50Ms: json.latency.p50, p99Ms: json.latency.p99, maxMs: json.latency.max };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * A bounded storm: `connections` clients send big batches as fast as they are answered for
 * `seconds`, while one prober asks /healthz, /readyz, /metrics and a one-row /predict every
 * 100 ms over four keep-alive connections. Shows whether the guard sheds predictions with 503 +
 * Retry-After, counted as overloaded, and how late the probes are answered meanwhile.
 */
export async function overload(server: Server, body: string, connections: number, seconds: number, probeRow: number[]): Promise<OverloadRun> {
  const pool = new Pool(`http://127.0.0.1:${server.port}`, { connections: 4, headersTimeout: 30_000, bodyTimeout: 30_000 });
  const scrapeOverloaded = async () => {
    const response = await pool.request({ method: 'GET', path: '/metrics' });
    return Number(overloaded.exec(await response.body.text())?.[1]);
  };
  const before = await scrapeOverloaded();
  const probes: Record<string, { statuses: Record<string, number>; times: number[] }> = {};
  let retryAfter: string | undefined;
  let running = true;
  const probe = async (name: string, method: 'GET' | 'POST', path: string, body?: string) => {
    const started = performance.now();
    let status: string;
    try {
      const response = await pool.request({ method, path, body, headers: body ? { 'content-type': 'application/json' } : {} });
      await response.body.dump();
      status = String(response.statusCode);
      if (response.statusCode === 503 && retryAfter === undefined) retryAfter = String(response.headers['retry-after']);
    } catch (err) {
      status = (err as { code?: string }).code ?? 'network';
    }
    const entry = (probes[name] ??= { statuses: {}, times: [] });
    entry.statuses[status] = (entry.statuses[status] ?? 0) + 1;
    entry.times.push(performance.now() - started);
  };
  const prober = (async () => {
    while (running) {
      await Promise.all([
        probe('GET /healthz', 'GET', '/healthz'),
        probe('GET /readyz', 'GET', '/readyz'),
        probe('GET /metrics', 'GET', '/metrics'),
        probe('POST /predict (1 row)', 'POST', '/predict', JSON.stringify({ features: probeRow })),
      ]);
      await new Promise((resolve) => setTimeout(resolve, PROBE_EVERY_MS));
    }
  })();
  const result = await storm(server.port, body, connections, seconds).finally(() => (running = false));
  await prober;
  const after = await scrapeOverloaded();
  await pool.close();
  return {
    storm: result,
    overloadedCounted: after - before,
    retryAfter,
    probes: Object.fromEntries(
      Object.entries(probes).map(([name, { statuses, times }]) => {
        const sorted = times.sort((a, b) => a - b);
        return [name, { statuses, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), maxMs: sorted.at(-1)! }];
      }),
    ),
  };
}
