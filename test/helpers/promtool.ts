import { spawn } from 'node:child_process';
import { requireBinary } from './binaries.js';

/** Runs `promtool check metrics` on the text, as Prometheus' own linter reads an exposition. */
export async function promtoolCheckMetrics(text: string): Promise<{ code: number | null; output: string }> {
  const promtool = await requireBinary('promtool');
  const child = spawn(promtool, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  child.stdin.end(text);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, output };
}

/** The model_ families of an exposition: prom-client's default nodejs_active_*_total gauges fail promtool's lint by design. */
export const modelFamilies = (exposition: string) =>
  exposition
    .split('\n\n')
    .filter((family) => family.includes('# TYPE model_'))
    .join('\n\n');
