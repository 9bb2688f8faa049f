import { execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { Pool } from 'undici';
import { featureLogHeader } from '../src/monitor/feature-log.js';
import { FLUSH_GRACE_MS } from '../src/shutdown.js';
import { featureNames, trainRows } from './helpers/app.js';
import { finished, freePort, httpRequest, spawnCli, tempDir, waitReady, type CliResult } from './helpers/cli.js';

const IN_FLIGHT = 20;
/** SIGTERM goes out once this many requests were answered 200: the server is well into the load. */
const OK_BEFORE_SIGTERM = 300;
const DEADLINE_MS = 60_000;

interface Answer {
  status: number | string;
  /** The request id of a 200 (a batch's row ids are `<request id>.<row>`). */
  id?: string;
  rows: number;
}

t.test('SIGTERM under sustained load: every 200 is in the CSV exactly once, nothing else is, exit 0', async (t) => {
  const dir = await tempDir(t);
  const csv = join(dir, 'log.csv');
  const port = await freePort();
  const child = spawnCli(['serve', '--port', String(port), '--csv', csv, '--log-level', 'warn']);
  const exit = finished(child, DEADLINE_MS + 30_000);
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await waitReady(port, child);

  // IN_FLIGHT workers, each with its own keep-alive connection and one request at a time.
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: IN_FLIGHT, headersTimeout: 10_000, bodyTimeout: 10_000 });
  t.teardown(() => pool.destroy());
  const answers: Answer[] = [];
  let ok = 0;
  let sigtermAt = -1;
  const started = Date.now();
  const send = async (n: number): Promise<Answer> => {
    // Every seventh request is a batch, so the CSV's rows column is checked too.
    const rows = n % 7 === 0 ? 3 : 1;
    const picked = Array.from({ length: rows }, (_, r) => trainRows[(n + r) % trainRows.length]!);
    try {
      const response = await pool.request({
        method: 'POST',
        path: '/predict',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(rows === 1 ? { features: picked[0] } : { instances: picked }),
      });
      const body = (await response.body.json()) as { id: string };
      if (response.statusCode !== 200) return { status: response.statusCode, rows };
      return { status: 200, id: body.id, rows };
    } catch (err) {
      return { status: (err as { code?: string }).code ?? 'network', rows };
    }
  };
  let next = 0;
  const worker = async () => {
    // Bounded: stops once the server refuses connections after SIGTERM, or at the deadline.
    while (Date.now() - started < DEADLINE_MS) {
      const answer = await send(next++);
      answers.push(answer);
      if (answer.status === 200 && ++ok === OK_BEFORE_SIGTERM) {
        sigtermAt = answers.length;
        child.kill('SIGTERM');
      }
      if (answer.status === 'ECONNREFUSED') return;
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const result = await exit;

  t.ok(sigtermAt > 0, `SIGTERM was sent after ${OK_BEFORE_SIGTERM} answers`);
  t.equal(result.code, 0, 'exit code 0');
  t.equal(result.signal, null, 'exited on its own, not killed by the signal');
  t.equal(result.stdout, '', 'no warning or error logged');
  t.equal(result.stderr, '');
  const served = answers.filter((a) => a.status === 200);
  const others = answers.filter((a) => a.status !== 200);
  const afterSigterm = answers.slice(sigtermAt).filter((a) => a.status === 200).length;
  const otherCounts: Record<string, number> = {};
  for (const a of others) otherCounts[a.status] = (otherCounts[a.status] ?? 0) + 1;
  t.comment(`${answers.length} requests: ${served.length} answered 200 (${afterSigterm} of them completed after SIGTERM); others: ${JSON.stringify(otherCounts)}`);
  // Refused connections, sockets closed by the shutdown and 503s while closing: never served, never logged.
  t.ok(others.every((a) => a.status === 503 || typeof a.status === 'string'), 'what was not served was refused, nothing else');
  t.ok(others.some((a) => a.status === 'ECONNREFUSED'), 'the load ran until the port closed');

  const lines = (await readFile(csv, 'utf8')).split('\n');
  const header = featureLogHeader(featureNames).join(',');
  t.equal(lines[0], header);
  t.equal(lines.at(-1), '', 'the last row is whole');
  const logged = lines.slice(1, -1).map((line) => line.split(','));
  t.equal(logged.length, served.length, 'one CSV row per 200');
  const loggedIds = logged.map((cells) => cells[1]!);
  t.equal(new Set(loggedIds).size, loggedIds.length, 'no id is logged twice');
  t.same(new Set(loggedIds), new Set(served.map((a) => a.id)), 'the logged ids are the ids answered 200');
  const rowsById = new Map(served.map((a) => [a.id, a.rows]));
  t.ok(logged.every((cells) => Number(cells[4]) === rowsById.get(cells[1])), 'each row records its request\'s row count');
});

/** Connects and sends a /predict that promises 100 bytes of body and sends 13: it never completes on its own. */
async function stalledRequest(port: number): Promise<{ socket: Socket; closed: Promise<void> }> {
  const socket = connect(port, '127.0.0.1');
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => {});
  socket.write('POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"features":[');
  return { socket, closed };
}

const logLines = (stdout: string) => stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);

async function startServing(t: Test, flags: string[], csvPath?: string) {
  const csv = csvPath ?? join(await tempDir(t), 'log.csv');
  const port = await freePort();
  const child = spawnCli(['serve', '--port', String(port), '--csv', csv, '--log-level', 'info', ...flags]);
  const exit = finished(child, 30_000);
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await waitReady(port, child);
  return { child, exit, port, csv };
}

t.test('SIGTERM with a stalled request: cut after --shutdown-timeout-ms, the log flushed, exit 0, the cut counted', async (t) => {
  const TIMEOUT_MS = 1500;
  const { child, exit, port, csv } = await startServing(t, ['--shutdown-timeout-ms', String(TIMEOUT_MS)]);
  t.equal((await httpRequest(port, 'POST', '/predict', { features: trainRows[0] })).status, 200, 'one prediction before the stop');
  const stalled = await stalledRequest(port);
  t.teardown(() => stalled.socket.destroy());
  // The stalled request's headers must be parsed before the signal: then it is in flight.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const signalled = Date.now();
  child.kill('SIGTERM');
  const result = await exit;
  const took = Date.now() - signalled;
  t.equal(result.code, 0, 'exit code 0');
  t.equal(result.signal, null);
  t.ok(took >= TIMEOUT_MS - 100, `the request in flight was given the timeout (${took} ms)`);
  t.ok(took < TIMEOUT_MS + 3000, `and no more (${took} ms)`);
  await stalled.closed;
  const stopped = logLines(result.stdout).filter((l) => String(l.msg).startsWith('stopped'));
  t.same(
    stopped.map(({ level, connections, msg }) => ({ level, connections, msg })),
    [{ level: 40, connections: 1, msg: `stopped: 1 connection still open after --shutdown-timeout-ms ${TIMEOUT_MS} cut` }],
    'one warning says one connection was cut',
  );
  const rows = (await readFile(csv, 'utf8')).trim().split('\n');
  t.equal(rows.length, 2, 'the header and the one prediction: the feature log was flushed');
});

/** SIGTERM, then `second` once both handlers ran the first stop: the process must end within 3 s of it, not at the 60 s timeout. */
async function stopTwice(t: Test, child: ChildProcess, exit: Promise<CliResult>, second: NodeJS.Signals): Promise<CliResult> {
  child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 300));
  const signalled = Date.now();
  child.kill(second);
  const result = await exit;
  t.ok(Date.now() - signalled < 3000, `exited within 3 s of the second signal (${second}), not after the 60 s timeout`);
  return result;
}

t.test('a second signal exits at once, with a warning', async (t) => {
  const { child, exit, port } = await startServing(t, ['--shutdown-timeout-ms', '60000']);
  const stalled = await stalledRequest(port);
  t.teardown(() => stalled.socket.destroy());
  await new Promise((resolve) => setTimeout(resolve, 300));
  const result = await stopTwice(t, child, exit, 'SIGINT');
  t.equal(result.code, 1, 'exit code 1: the shutdown did not finish');
  t.equal(result.signal, null, 'exited on its own, not killed by the signal');
  const lines = logLines(result.stdout);
  t.ok(lines.some((l) => l.msg === 'stopping: finishing in-flight requests and flushing the feature log' && l.signal === 'SIGTERM'));
  t.ok(lines.some((l) => String(l.msg).startsWith('second signal') && l.signal === 'SIGINT' && l.level === 40));
});

t.test('a keep-alive client answered during the stop and then quiet does not hold the process to the timeout', async (t) => {
  const TIMEOUT_MS = 20_000;
  const { child, exit, port } = await startServing(t, ['--shutdown-timeout-ms', String(TIMEOUT_MS)]);
  const { socket } = await stalledRequest(port);
  t.teardown(() => socket.destroy());
  let answer = '';
  socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
  await new Promise((resolve) => setTimeout(resolve, 300));
  const signalled = Date.now();
  child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 300));
  // The rest of the body: the request in flight completes, on a keep-alive connection the client then leaves open.
  const body = JSON.stringify({ features: trainRows[0] }).slice('{"features":['.length);
  socket.write(body.padEnd(100 - '{"features":['.length, ' '));
  const result = await exit;
  const took = Date.now() - signalled;
  t.match(answer, /^HTTP\/1\.1 200 /, 'the request in flight was answered 200');
  t.equal(result.code, 0, 'exit code 0');
  t.ok(took < 5000, `exited once its one request was answered (${took} ms), not after the ${TIMEOUT_MS} ms timeout`);
  const stopped = logLines(result.stdout).filter((l) => String(l.msg).startsWith('stopped'));
  t.same(stopped.map(({ level, connections }) => ({ level, connections })), [{ level: 30, connections: 0 }], 'no connection had to be cut');
});

/**
 * A server whose feature log is a pipe no one reads, after enough rows to fill it: its write is
 * then stuck in the kernel, as on a hung NFS mount, and process.exit alone would never return.
 */
const STUCK_REQUESTS = 1200;
async function servingIntoStuckPipe(t: Test, timeoutMs: number) {
  const fifo = join(await tempDir(t), 'log.csv');
  execFileSync('mkfifo', [fifo]);
  // Open for reading and never read: the server's open succeeds, its writes block once 64 KiB wait.
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  t.teardown(() => closeSync(reader));
  const serving = await startServing(t, ['--shutdown-timeout-ms', String(timeoutMs)], fifo);
  // A CSV row a request, of about 200 bytes: REQUESTS of them are more than three times what the pipe holds.
  const statuses = new Map<number, number>();
  for (let i = 0; i < STUCK_REQUESTS; i += 20) {
    const answers = await Promise.all(Array.from({ length: 20 }, (_, j) => httpRequest(serving.port, 'POST', '/predict', { features: trainRows[(i + j) % trainRows.length] })));
    for (const { status } of answers) statuses.set(status, (statuses.get(status) ?? 0) + 1);
  }
  t.same([...statuses], [[200, STUCK_REQUESTS]], 'every prediction answered while the log is stuck');
  await new Promise((resolve) => setTimeout(resolve, 300));
  return serving;
}

t.test('a feature-log write stuck in the kernel does not hold the stop: the process ends FLUSH_GRACE_MS after the deadline, saying what is lost', async (t) => {
  const TIMEOUT_MS = 1000;
  const { child, exit } = await servingIntoStuckPipe(t, TIMEOUT_MS);
  const signalled = Date.now();
  child.kill('SIGTERM');
  const result = await exit;
  const took = Date.now() - signalled;
  t.ok(took >= TIMEOUT_MS + FLUSH_GRACE_MS - 100, `not before the deadline and the grace (${took} ms)`);
  t.ok(took < TIMEOUT_MS + FLUSH_GRACE_MS + 3000, `ended ${took} ms after SIGTERM, not held by the write`);
  t.equal(result.signal, 'SIGKILL', 'it killed itself: process.exit would wait for the stuck write');
  const gaveUp = logLines(result.stdout).find((l) => String(l.msg).startsWith('stopping: the feature log did not flush'));
  t.equal(gaveUp?.level, 50, 'an error says so');
  const unwritten = gaveUp?.rowsUnwritten as number;
  t.ok(unwritten > 0 && unwritten <= STUCK_REQUESTS, `with the rows not written (${unwritten} of the ${STUCK_REQUESTS})`);
  t.ok((gaveUp?.fileTaskMs as number) >= TIMEOUT_MS + FLUSH_GRACE_MS, `and how long the write has been stuck (${gaveUp?.fileTaskMs} ms)`);
});

t.test('a second signal ends the process at once even while a feature-log write is stuck', async (t) => {
  const { child, exit } = await servingIntoStuckPipe(t, 60_000);
  const result = await stopTwice(t, child, exit, 'SIGTERM');
  t.equal(result.signal, 'SIGKILL');
  const second = logLines(result.stdout).find((l) => String(l.msg).startsWith('second signal'));
  t.ok((second?.rowsUnwritten as number) > 0, `the warning counts the rows not written (${second?.rowsUnwritten})`);
});
