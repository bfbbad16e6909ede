/**
 * Gateway access keys ("virtual keys"). Clients authenticate with keys the gateway issued, never with
 * provider keys. Only SHA-256 digests are kept: a config `key` is hashed when the config is resolved, keys
 * created through the admin API are hashed before they are stored, and the plain value exists only in the
 * answer that hands it out. Lookup is by digest in a Map, confirmed with timingSafeEqual, so neither the
 * lookup nor the comparison depends on how much of a guessed key was right.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ResolvedAuthKey, ResolvedConfig } from '../types/index.js';
import type { GatewayContext } from './context.js';

/** Who a request is for, once authenticated; also what a host's own auth sets in `res.locals.gatewayAuth`. */
export interface AuthIdentity {
  user: string;
  /** The key's id (never the key): for logs, analytics and revocation. */
  keyId?: string;
  /** Models this identity may ask for; absent means every model. */
  models?: string[];
  rpm?: number;
  budgetUsdPerDay?: number;
  admin?: boolean;
}

/** Longer values are not keys; hashing megabytes of header on every request is not worth it. */
const MAX_KEY_LENGTH = 512;
/** Hex digest of a key. */
const SHA256_HEX = /^[0-9a-f]{64}$/;

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

/**
 * A key's public id. Derived from the digest through a second hash, so that the id does not even reveal a
 * prefix of what is stored.
 */
export function keyIdOf(digestHex: string): string {
  return `key_${sha256Hex(`key-id:${digestHex}`).slice(0, 16)}`;
}

export function isSha256Hex(value: string): boolean {
  return SHA256_HEX.test(value);
}

/** The key a request presents: `Authorization: Bearer <key>`, else `x-api-key: <key>`. */
export function presentedKey(headers: Record<string, string | string[] | undefined>): string | undefined {
  const authorization = headers.authorization;
  if (typeof authorization === 'string' && authorization !== '') {
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    // A present but unusable Authorization header is a wrong key, not a missing one.
    return match ? match[1] : '';
  }
  const apiKey = headers['x-api-key'];
  if (typeof apiKey === 'string' && apiKey !== '') return apiKey.trim();
  return undefined;
}

interface StoredKey {
  key: ResolvedAuthKey;
  digest: Buffer;
  createdAt?: string;
}

export interface CreatedKey {
  id: string;
  /** The plain key: shown once, in the answer that creates it. */
  key: string;
  user: string;
  models?: string[];
  rpm?: number;
  budget_usd_per_day?: number;
  created_at: string;
}

type AuthConfig = ResolvedConfig['auth'];

/**
 * One gateway's keys: the config's (rebuilt into an index once per config snapshot) plus those created at
 * run time, and the ids revoked at run time. Run-time state lives as long as the Gateway object, across
 * reloads; it is not persisted.
 */
export class KeyStore {
  private readonly created = new Map<string, StoredKey>();
  private readonly revoked = new Set<string>();
  private readonly indexes = new WeakMap<AuthConfig, Map<string, StoredKey>>();

  private index(auth: AuthConfig): Map<string, StoredKey> {
    let index = this.indexes.get(auth);
    if (!index) {
      index = new Map(
        auth.keys.map((key) => [key.sha256, { key, digest: Buffer.from(key.sha256, 'hex') }] as const),
      );
      this.indexes.set(auth, index);
    }
    return index;
  }

  /** Whether any user key is live: without one, the gateway is open. */
  hasKeys(auth: AuthConfig): boolean {
    if (this.created.size > 0) return true;
    return auth.keys.some((k) => !this.revoked.has(k.id));
  }

  /** The identity of a presented key, or undefined for a missing, unknown or revoked one. */
  lookup(auth: AuthConfig, presented: string | undefined): AuthIdentity | undefined {
    if (!presented || presented.length > MAX_KEY_LENGTH) return undefined;
    const digest = createHash('sha256').update(presented, 'utf8').digest();
    const hex = digest.toString('hex');
    const stored = this.index(auth).get(hex) ?? this.created.get(hex);
    // The Map lookup keys on the digest, which a guesser cannot steer; the constant-time compare confirms.
    if (!stored || !timingSafeEqual(stored.digest, digest) || this.revoked.has(stored.key.id))
      return undefined;
    const { key } = stored;
    return {
      user: key.user,
      keyId: key.id,
      ...(key.models ? { models: key.models } : {}),
      ...(key.rpm !== undefined ? { rpm: key.rpm } : {}),
      ...(key.budgetUsdPerDay !== undefined ? { budgetUsdPerDay: key.budgetUsdPerDay } : {}),
    };
  }

  /** Whether the presented key is an admin key. Compares against every admin digest, without an early exit. */
  isAdmin(auth: AuthConfig, presented: string | undefined): boolean {
    if (!presented || presented.length > MAX_KEY_LENGTH) return false;
    const digest = createHash('sha256').update(presented, 'utf8').digest();
    let match = false;
    for (const hex of auth.adminKeysSha256) {
      if (timingSafeEqual(Buffer.from(hex, 'hex'), digest)) match = true;
    }
    return match;
  }

  /** Creates a key; the plain value is returned once and only its digest is kept. */
  create(spec: Omit<ResolvedAuthKey, 'id' | 'sha256'>): CreatedKey {
    // `sk-` makes a leaked gateway key look key-shaped to redactSecrets(), like a provider key would.
    const plain = `sk-gw-${randomBytes(32).toString('base64url')}`;
    const digestHex = sha256Hex(plain);
    const key: ResolvedAuthKey = { ...spec, id: keyIdOf(digestHex), sha256: digestHex };
    const createdAt = new Date().toISOString();
    this.created.set(digestHex, { key, digest: Buffer.from(digestHex, 'hex'), createdAt });
    return {
      id: key.id,
      key: plain,
      user: key.user,
      ...(key.models ? { models: key.models } : {}),
      ...(key.rpm !== undefined ? { rpm: key.rpm } : {}),
      ...(key.budgetUsdPerDay !== undefined ? { budget_usd_per_day: key.budgetUsdPerDay } : {}),
      created_at: createdAt,
    };
  }

  /**
   * Revokes a key by id: a created key is forgotten, a config key is refused until the process restarts
   * (remove it from the config to make that permanent). False when no such live key exists.
   */
  revoke(auth: AuthConfig, id: string): boolean {
    for (const [hex, stored] of this.created) {
      if (stored.key.id === id) {
        this.created.delete(hex);
        return true;
      }
    }
    if (auth.keys.some((k) => k.id === id) && !this.revoked.has(id)) {
      this.revoked.add(id);
      return true;
    }
    return false;
  }

  /** Every live key, without digests. */
  list(auth: AuthConfig) {
    const describe = (s: StoredKey, source: 'config' | 'api') => ({
      id: s.key.id,
      user: s.key.user,
      source,
      ...(s.key.models ? { models: s.key.models } : {}),
      ...(s.key.rpm !== undefined ? { rpm: s.key.rpm } : {}),
      ...(s.key.budgetUsdPerDay !== undefined ? { budget_usd_per_day: s.key.budgetUsdPerDay } : {}),
      ...(s.createdAt ? { created_at: s.createdAt } : {}),
    });
    return [
      ...[...this.index(auth).values()]
        .filter((s) => !this.revoked.has(s.key.id))
        .map((s) => describe(s, 'config')),
      ...[...this.created.values()].map((s) => describe(s, 'api')),
    ];
  }
}

const stores = new WeakMap<object, KeyStore>();

/** The key store of one gateway (kept beside it, so reloads keep run-time keys and revocations). */
export function keyStoreOf(gateway: object): KeyStore {
  let store = stores.get(gateway);
  if (!store) {
    store = new KeyStore();
    stores.set(gateway, store);
  }
  return store;
}

/**
 * What a request brought to authenticate with. Kept beside the context rather than in it, so that nothing
 * that serialises a context (logs, analytics, cache keys) can ever see a presented key.
 */
export interface Credential {
  /** The key from the request's headers (or `CallOptions.apiKey`), if any. */
  presented?: string;
  /** Set when something in front (gatewayAuth(), or the host's own auth) already authenticated. */
  identity?: AuthIdentity;
}

const credentials = new WeakMap<GatewayContext, Credential>();

export function bindCredential(ctx: GatewayContext, credential: Credential): void {
  credentials.set(ctx, credential);
}

/** Undefined for programmatic calls without `apiKey`: the host's own code, which is trusted. */
export function credentialOf(ctx: GatewayContext): Credential | undefined {
  return credentials.get(ctx);
}

/** Accepts what a host's own auth put in `res.locals.gatewayAuth` when it has the right shape. */
export function identityFrom(value: unknown): AuthIdentity | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.user !== 'string' || v.user === '') return undefined;
  return {
    user: v.user.slice(0, 256),
    ...(typeof v.keyId === 'string' ? { keyId: v.keyId } : {}),
    ...(Array.isArray(v.models) && v.models.every((m) => typeof m === 'string') ? { models: v.models } : {}),
    ...(typeof v.rpm === 'number' ? { rpm: v.rpm } : {}),
    ...(typeof v.budgetUsdPerDay === 'number' ? { budgetUsdPerDay: v.budgetUsdPerDay } : {}),
  };
}

/**
 * Whether `model` (bare, `provider/model`, or an alias) is one of `allowed`. A qualified name counts when
 * it is listed as such or when its provider is configured and the bare model is listed.
 */
export function modelAllowed(
  model: string,
  allowed: readonly string[],
  providerNames: Iterable<string>,
): boolean {
  if (allowed.includes(model)) return true;
  const slash = model.indexOf('/');
  if (slash <= 0) return false;
  const provider = model.slice(0, slash);
  return [...providerNames].includes(provider) && allowed.includes(model.slice(slash + 1));
}
