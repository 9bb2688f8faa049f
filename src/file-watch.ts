import { unwatchFile, watchFile, type Stats } from 'node:fs';

/** How often watched files are stat()ed: a Secret update reaches a pod after a minute or so anyway. */
export const WATCH_INTERVAL_MS = 1000;

/**
 * Calls `onChange` when any of `paths` changes, until the returned function is called. Polling
 * stat() rather than fs.watch: a Kubernetes Secret volume swaps a symlink to a new directory, which
 * inotify on the old file never reports, and stat() follows the link. Not persistent, so a
 * watcher left open never keeps the process alive.
 */
export function watchFiles(paths: readonly string[], onChange: () => void): () => void {
  const listener = (current: Stats, previous: Stats) => {
    if (current.mtimeMs !== previous.mtimeMs || current.ino !== previous.ino || current.size !== previous.size) onChange();
  };
  for (const path of paths) watchFile(path, { persistent: false, interval: WATCH_INTERVAL_MS }, listener);
  return () => {
    for (const path of paths) unwatchFile(path, listener);
  };
}
