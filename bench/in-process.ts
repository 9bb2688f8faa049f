import { Agent, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep, setImmediate as yieldToLoop } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app.js';
import { parseServeConfig } from '../src/config.js';
import { loadRows } from '../src/simulate.js';
import { median } from './load.js';

export interface InProcessResult {
  width: number;
  /** CPU time per row of everything an accepted request records (ids, Monitor, CSV row written, counters, histograms), by batch size. */
  nsPerRow: Record<number, number>;
  /** CPU time per row of Monitor.record alone, batch 64: features observed, bins, windows, prediction histogram. */
  monitorNsPerRow: number;
  /** Median wall time of 100 GET /metrics over HTTP as Prometheus asks (OpenMetrics), ms. */
  scrapeMs: number;
  /** CPU time of one GET /metrics, ms: what the median means on a machine with nothing else running. */
  scrapeCpuMs: number;
}

/** CPU time of this process (every thread: the feature log's writes run on libuv's pool), in ns. */
const cpuNs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) * 1000;
};

/** Distinct prepared batches, so branch predictors and caches see varied rows, as in production. */
async function batches(app: FastifyInstance, rows: number[][], batch: number, count: number) {
  const width = app.watch.featureNames.length;
  return Promise.all(
    Array.from({ length: count }, async (_, b) => {
      const values = new Float64Array(batch * width);
      for (let r = 0; r < batch; r++) values.set(rows[(b * batch + r) % rows.length]!, r * width);
      return { values, answer: await app.watch.model.predict(values, batch, { protocol: 'json', body: undefined, batch: batch > 1, categorical: [] }) };
    }),
  );
}

/**
 * What the request path adds to each accepted request beyond the model: watch.record and the
 * inference histogram. The loop yields to the event loop every 1024 requests and the count stops
 * only when the feature log confirmed every row, so the CSV's asynchronous writes are paid. CPU
 * time rather than wall time: other processes on the machine then barely move the figure.
 */
async function recordCost(app: FastifyInstance, rows: number[][], batch: number, requests: number): Promise<number> {
  const { watch } = app;
  const prepared = await batches(app, rows, batch, 64);
  const log = watch.featureLog!;
  const run = async (n: number) => {
    const target = log.rowsWritten + log.rowErrors + n;
    for (let i = 0; i < n; i++) {
      const { values, answer } = prepared[i & 63]!;
      watch.record(values, answer, batch);
      watch.metrics.observeInference(0.0001);
      if ((i & 1023) === 1023) await yieldToLoop();
    }
    // Waiting on a timer, not spinning, so that waiting costs no CPU.
    while (log.rowsWritten + log.rowErrors < target) await sleep(1);
  };
  await run(Math.min(requests, 20_000));
  const started = cpuNs();
  await run(requests);
  return (cpuNs() - started) / (requests * batch);
}

async function monitorCost(app: FastifyInstance, rows: number[][], requests: number): Promise<number> {
  const { monitor } = app.watch;
  const prepared = await batches(app, rows, 64, 64);
  const run = (n: number) => {
    for (let i = 0; i < n; i++) monitor.record(prepared[i & 63]!.values, prepared[i & 63]!.answer, 64);
  };
  run(Math.min(requests, 5000));
  const started = cpuNs();
  run(requests);
  return (cpuNs() - started) / (requests * 64);
}

/** The Accept header Prometheus scrapes with: it is answered in OpenMetrics. */
const PROMETHEUS_ACCEPT = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

/**
 * GET /metrics as Prometheus scrapes it: over a kept-alive socket on 127.0.0.1, asking for
 * OpenMetrics, until the last byte has arrived. The client only counts the bytes.
 */
async function scrapeCost(app: FastifyInstance): Promise<{ scrapeMs: number; scrapeCpuMs: number }> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const scrape = () =>
    new Promise<void>((resolve, reject) => {
      get({ host: '127.0.0.1', port, path: '/metrics', agent, headers: { accept: PROMETHEUS_ACCEPT } }, (response) => {
        if (response.statusCode !== 200) reject(new Error(`GET /metrics answered ${response.statusCode}`));
        response.on('data', () => {});
        response.on('end', resolve);
      }).on('error', reject);
    });
  try {
    for (let i = 0; i < 10; i++) await scrape();
    const times: number[] = [];
    const cpuStarted = cpuNs();
    for (let i = 0; i < 100; i++) {
      const started = process.hrtime.bigint();
      await scrape();
      times.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
    return { scrapeMs: median(times), scrapeCpuMs: (cpuNs() - cpuStarted) / 100 / 1e6 };
  } finally {
    agent.destroy();
  }
}

export async function measureInProcess(modelDir: string, csv: string, requestsAtBatch1: number): Promise<InProcessResult> {
  const app = await buildApp(parseServeConfig(['--model-dir', modelDir, '--csv', csv, '--log-level', 'warn'], {}));
  try {
    const { rows } = await loadRows(join(modelDir, 'train.csv'), 'target');
    const nsPerRow: Record<number, number> = {};
    nsPerRow[1] = await recordCost(app, rows, 1, requestsAtBatch1);
    nsPerRow[64] = await recordCost(app, rows, 64, Math.ceil(requestsAtBatch1 / 16));
    const monitorNsPerRow = await monitorCost(app, rows, Math.ceil(requestsAtBatch1 / 16));
    return { width: app.watch.featureNames.length, nsPerRow, monitorNsPerRow, ...(await scrapeCost(app)) };
  } finally {
    await app.close();
  }
}
