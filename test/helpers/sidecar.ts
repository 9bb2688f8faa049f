import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { FastifyInstance } from 'fastify';
import { repoRoot } from './app.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Listens on 127.0.0.1 on a free port; returns the base URL. The app is closed by whoever built it. */
export async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

export const postJson = (app: FastifyInstance, url: string, body: unknown) =>
  app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });

/**
 * The model_ series of an exposition, except the one that differs between two servers fed the
 * same traffic: the time spent in the model (a sidecar's includes the trip to its upstream).
 */
export const modelSeries = (exposition: string): string[] =>
  exposition.split('\n').filter((line) => line.startsWith('model_') && !line.startsWith('model_inference_duration_seconds'));

export { eventually } from './app.js';

/** An HTTP server on 127.0.0.1 standing in for an upstream model server; closed in teardown, open connections too. */
export async function fakeUpstream(t: Teardown, handle: (request: IncomingMessage, body: string, response: ServerResponse) => void) {
  const server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => handle(request, body, response));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  t.teardown(close);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close };
}

/** Starts test/fixtures/v2_upstream.py (the Python standard library only); stopped in teardown. */
export async function pythonV2Upstream(t: Teardown, model: string, input: string, width: number): Promise<string> {
  const child = spawn('python3', [join(repoRoot, 'test/fixtures/v2_upstream.py'), model, input, String(width)], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    child.kill();
  });
  const lines = createInterface({ input: child.stdout });
  const port = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the Python upstream did not print its port within 10 s')), 10_000);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the Python upstream exited with ${code}`)));
    lines.once('line', (line) => {
      clearTimeout(timer);
      resolve(line.trim());
    });
  });
  return `http://127.0.0.1:${port}`;
}
