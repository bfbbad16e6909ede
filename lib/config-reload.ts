/**
 * Hot reload support: watching the config file, and keeping the settings that only a restart can change
 * (they own connections or files) at their running values, with a clear log line, instead of applying them
 * halfway.
 */
import { type FSWatcher, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger, ResolvedConfig } from '../types/index.js';

/** `section.field` paths that a reload cannot apply. */
const RESTART_ONLY: readonly [keyof ResolvedConfig, string][] = [
  ['analytics', 'enabled'],
  ['analytics', 'storage'],
  ['analytics', 'sqlitePath'],
  ['analytics', 'postgresUrl'],
  ['cache', 'backend'],
  ['cache', 'redisUrl'],
  ['rateLimiting', 'store'],
  ['rateLimiting', 'redisUrl'],
  ['bodyLimit', ''],
];

/** Copies restart-only settings from `running` into `next`, and reports each one that differed. */
export function keepRestartOnlySettings(
  running: ResolvedConfig,
  next: ResolvedConfig,
  logger: Logger,
): string[] {
  const kept: string[] = [];
  for (const [section, field] of RESTART_ONLY) {
    const from = running as unknown as Record<string, any>;
    const to = next as unknown as Record<string, any>;
    if (!field) {
      if (from[section] !== to[section]) {
        kept.push(section);
        to[section] = from[section];
      }
      continue;
    }
    if (from[section]?.[field] !== to[section]?.[field]) {
      kept.push(`${section}.${field}`);
      to[section] = { ...to[section], [field]: from[section]?.[field] };
    }
  }
  if (kept.length) {
    logger.warn(
      { settings: kept },
      `Config reload: ${kept.join(', ')} changed but only take effect after a restart; the running values are kept until then.`,
    );
  }
  return kept;
}

/**
 * Calls `onChange` (debounced) when the file changes. Watches the directory, not the file: editors and
 * config-management tools replace files by rename, which ends a watch on the old inode.
 */
export function watchConfigFile(path: string, onChange: () => void, debounceMs = 200): () => void {
  const name = basename(path);
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
      if (file && file.toString() !== name) return;
      clearTimeout(timer);
      timer = setTimeout(onChange, debounceMs);
      timer.unref();
    });
    watcher.on('error', () => watcher?.close());
  } catch {
    // A directory that cannot be watched leaves SIGHUP and reload() as the ways to reload.
  }
  return () => {
    clearTimeout(timer);
    watcher?.close();
  };
}
