import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import { childEnv, finished, freePort, root, waitReady } from '../test/helpers/cli.js';

/** USER_HZ: 100 on every Linux the bench is meant for. */
const CLOCK_TICKS_PER_SECOND = 100;

/** A server under test: its own process on 127.0.0.1, apart from the load generator, as in production. */
export interface Server {
  name: string;
  port: number;
  child: ChildProcess;
  /** Resident memory of the server process now, from /proc. */
  rssBytes(): number;
  /** CPU time the server process (all its threads) has used so far, seconds, from /proc. */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

/** Starts `node <nodeFlags> --import tsx <script> <args> --port <free>` in the repository root and waits for GET /readyz. */
export async function startServer(name: string, script: string, args: string[], nodeFlags: string[] = []): Promise<Server> {
  const port = await freePort();
  const child = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', script, ...args, '--port', String(port)], {
    cwd: root,
    env: childEnv(),
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = finished(child, 30 * 60_000);
  await waitReady(port, child);
  return {
    name,
    port,
    child,
    rssBytes: () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) * 1024,
    cpuSeconds: () => {
      // Fields 14 and 15 of /proc/PID/stat, after the parenthesised command name: utime and stime in clock ticks.
      const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
    },
    async stop() {
      child.kill('SIGTERM');
      const { code } = await exited;
      if (code !== 0) throw new Error(`${name} exited with ${code}`);
    },
  };
}

export interface LoadResult {
  requests: number;
  seconds: number;
  /** Latency of each answered request, ms, sorted. */
  latencies: Float64Array;
  statusCounts: Record<string, number>;
  errors: number;
}

export interface LoadOptions {
  port: number;
  path?: string;
  bodies: string[];
  connections: number;
  /** Seconds, unless `amount` is set. */
  duration?: number;
  /** Requests in all, overrides `duration`. */
  amount?: number;
  /** Requests per second over all connections (open loop at that pace); default as fast as answered. */
  rate?: number;
}

/**
 * Closed-loop load with autocannon: `connections` keep one request each in flight. Latencies are
 * taken from autocannon's per-response times (floats) rather than its histogram, whose 1 ms
 * resolution is too coarse for sub-millisecond answers.
 */
export function load(options: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = [];
  return new Promise((resolve, reject) => {
    const tracker = autocannon(
      {
        url: `http://127.0.0.1:${options.port}`,
        connections: options.connections,
        duration: options.duration ?? 10,
        amount: options.amount,
        ...(options.rate === undefined ? {} : { overallRate: options.rate }),
        timeout: 30,
        requests: options.bodies.map((body) => ({ method: 'POST', path: options.path ?? '/predict', headers: { 'content-type': 'application/json' }, body })),
      },
      (err, result) => {
        if (err) return reject(err);
        const statusCounts = Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([code, { count }]) => [code, count ?? 0]));
        resolve({
          requests: latencies.length,
          seconds: (result.finish.getTime() - result.start.getTime()) / 1000,
          latencies: Float64Array.from(latencies).sort(),
          statusCounts,
          errors: result.errors + result.timeouts,
        });
      },
    );
    tracker.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => latencies.push(ms));
  });
}

export const percentile = (sorted: ArrayLike<number>, q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return percentile(sorted, 0.5);
}
