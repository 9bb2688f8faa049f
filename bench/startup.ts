/** Start-up of the compiled CLI: wall time of `node bin/modelwatch.js ARGS` from spawn to exit, the way a shell sees it. */
import { spawn } from 'node:child_process';
import { root } from '../test/helpers/cli.js';
import { median } from './load.js';

export interface StartupResult {
  minMs: number;
  medianMs: number;
  maxMs: number;
}

export async function startupTimes(args: string[], runs: number): Promise<StartupResult> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, ['bin/modelwatch.js', ...args], { cwd: root, stdio: 'ignore' });
      child.once('error', reject);
      child.once('exit', resolve);
    });
    if (code !== 0) throw new Error(`modelwatch ${args.join(' ')} exited ${code}`);
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return { minMs: Math.min(...times), medianMs: median(times), maxMs: Math.max(...times) };
}
