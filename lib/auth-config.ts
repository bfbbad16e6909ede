/**
 * The `auth` section of the config: its schema, the checks zod cannot express, and its resolution. Plain
 * keys are hashed here, so the resolved config (and everything built from it) holds digests only.
 * Messages name the path and never echo a key.
 */
import { z } from 'zod';
import type { AuthFileConfig, ResolvedConfig } from '../types/index.js';
import { isSha256Hex, keyIdOf, sha256Hex } from './auth.js';

/** Shortest plain key accepted: shorter ones can be guessed, and would redact ordinary words. */
export const MIN_KEY_LENGTH = 16;

export const authSchema = z.strictObject({
  keys: z
    .array(
      z.strictObject({
        key: z.string().optional(),
        key_sha256: z.string().optional(),
        user: z.string().min(1).max(256),
        models: z.array(z.string().min(1)).optional(),
        rpm: z.number().int().positive().optional(),
        budget_usd_per_day: z.number().positive().optional(),
      }),
    )
    .optional(),
  admin_keys: z.array(z.string()).optional(),
  admin_keys_sha256: z.array(z.string()).optional(),
  protect_admin_routes: z.boolean().optional(),
  admin_open: z.boolean().optional(),
});

const HOW_TO_MAKE_A_KEY = 'use at least 16 random characters, e.g. 32 random bytes written in hex';

/** Problems in `auth` that the schema cannot see; each names its path. */
export function authProblems(auth: AuthFileConfig | undefined): string[] {
  if (!auth) return [];
  const problems: string[] = [];
  const seen = new Map<string, string>();
  const note = (digest: string, at: string) => {
    const earlier = seen.get(digest);
    if (earlier) problems.push(`${at}: the same key as ${earlier}. Each key must be unique.`);
    else seen.set(digest, at);
  };
  (auth.keys ?? []).forEach((k, i) => {
    const at = `auth.keys[${i}]`;
    if ((k.key === undefined) === (k.key_sha256 === undefined)) {
      problems.push(
        `${at}: set exactly one of \`key\` (the plain key) or \`key_sha256\` (its SHA-256 in hex).`,
      );
      return;
    }
    if (k.key !== undefined) {
      if (k.key.length < MIN_KEY_LENGTH) problems.push(`${at}.key: too short; ${HOW_TO_MAKE_A_KEY}.`);
      else note(sha256Hex(k.key), at);
    } else if (!isSha256Hex(k.key_sha256!.toLowerCase())) {
      problems.push(`${at}.key_sha256: must be 64 hex characters, the SHA-256 of the key.`);
    } else {
      note(k.key_sha256!.toLowerCase(), at);
    }
  });
  (auth.admin_keys ?? []).forEach((k, i) => {
    if (k.length < MIN_KEY_LENGTH) problems.push(`auth.admin_keys[${i}]: too short; ${HOW_TO_MAKE_A_KEY}.`);
    else note(sha256Hex(k), `auth.admin_keys[${i}]`);
  });
  (auth.admin_keys_sha256 ?? []).forEach((k, i) => {
    if (!isSha256Hex(k.toLowerCase())) {
      problems.push(`auth.admin_keys_sha256[${i}]: must be 64 hex characters, the SHA-256 of the key.`);
    } else {
      note(k.toLowerCase(), `auth.admin_keys_sha256[${i}]`);
    }
  });
  return problems;
}

/** Hashes plain keys and applies defaults; the result holds no plain key. */
export function resolveAuth(auth: AuthFileConfig | undefined): ResolvedConfig['auth'] {
  const keys = (auth?.keys ?? []).map((k) => {
    const sha256 = k.key !== undefined ? sha256Hex(k.key) : k.key_sha256!.toLowerCase();
    return {
      id: keyIdOf(sha256),
      sha256,
      user: k.user,
      ...(k.models ? { models: k.models } : {}),
      ...(k.rpm !== undefined ? { rpm: k.rpm } : {}),
      ...(k.budget_usd_per_day !== undefined ? { budgetUsdPerDay: k.budget_usd_per_day } : {}),
    };
  });
  const adminKeysSha256 = [
    ...(auth?.admin_keys ?? []).map(sha256Hex),
    ...(auth?.admin_keys_sha256 ?? []).map((k) => k.toLowerCase()),
  ];
  return {
    keys,
    adminKeysSha256,
    protectAdminRoutes: auth?.protect_admin_routes ?? true,
    // Closed by default: with user keys but no admin key, /stats and /admin would otherwise be open to all.
    adminOpen: auth?.admin_open ?? false,
  };
}
