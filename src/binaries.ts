// Finds the Prometheus, Alertmanager and Kubernetes binaries that `modelwatch stack` and the tests
// run, and says how to install them when they are missing.
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

export type BinaryName = 'promtool' | 'amtool' | 'prometheus' | 'alertmanager' | 'kubectl';

/** Executable names to look for, in order: Debian installs Alertmanager as prometheus-alertmanager. */
const CANDIDATES: Record<BinaryName, readonly string[]> = {
  promtool: ['promtool'],
  amtool: ['amtool'],
  prometheus: ['prometheus'],
  alertmanager: ['alertmanager', 'prometheus-alertmanager'],
  kubectl: ['kubectl'],
};

/** The Debian packages that provide each binary. */
export const DEBIAN_PACKAGES: Record<BinaryName, readonly string[]> = {
  promtool: ['prometheus', 'prometheus-alertmanager'],
  amtool: ['prometheus', 'prometheus-alertmanager'],
  prometheus: ['prometheus', 'prometheus-alertmanager'],
  alertmanager: ['prometheus', 'prometheus-alertmanager'],
  kubectl: ['kubectl'],
};

/** Directories searched after PATH (sbin directories are often missing from a non-root PATH). */
const EXTRA_DIRS = ['/usr/local/bin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/sbin', '/sbin'];

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Absolute path of the first candidate found on PATH or in the usual bin directories, or undefined. */
export async function findBinary(name: BinaryName, path = process.env.PATH ?? ''): Promise<string | undefined> {
  const dirs = [...path.split(delimiter).filter((d) => d.startsWith('/')), ...EXTRA_DIRS];
  for (const candidate of CANDIDATES[name]) {
    for (const dir of dirs) {
      const file = join(dir, candidate);
      if (await isExecutable(file)) return file;
    }
  }
  return undefined;
}

/** What to run to get `name`: `who` says who needs it, e.g. "modelwatch stack runs". */
export function installInstructions(name: BinaryName, who: string): string {
  const names = CANDIDATES[name].join(' or ');
  const elsewhere =
    name === 'kubectl'
      ? 'install kubectl (https://kubernetes.io/docs/tasks/tools/) and put it on PATH.'
      : 'download prometheus and alertmanager from https://prometheus.io/download/ and put promtool, amtool, prometheus and alertmanager on PATH.';
  return (
    `${names} was not found on PATH. ${who} the real binary. Install it:\n` +
    `  Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y ${DEBIAN_PACKAGES[name].join(' ')}\n` +
    `  elsewhere:     ${elsewhere}`
  );
}
