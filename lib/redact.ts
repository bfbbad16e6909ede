/**
 * Secret hygiene: anything that might echo a key (upstream error bodies, messages we relay, log lines) goes
 * through here before it leaves the process.
 */

// Shapes of provider and gateway keys: OpenAI/Anthropic `sk-...`, Google `AIza...`, bearer tokens, and
// long opaque tokens after words like key/token/secret.
const KEY_SHAPES = [
  /\bsk-[A-Za-z0-9_-]{6,}/g,
  /\bAIza[0-9A-Za-z_-]{20,}/g,
  /\b(?:Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi,
  /\b((?:api[_-]?key|token|secret|password)["']?\s*[:=]\s*["']?)[A-Za-z0-9._~+/=-]{8,}/gi,
];

/** `sk-proj-abc…` → `proj-abc…`, `abc…`: the key with one, two, three leading word- prefixes removed. */
function withoutPrefixes(secret: string): string[] {
  const out: string[] = [];
  let rest = secret;
  for (let i = 0; i < 3; i++) {
    const m = /^[A-Za-z]{2,8}-/.exec(rest);
    if (!m) break;
    rest = rest.slice(m[0].length);
    out.push(rest);
  }
  return out;
}

/** Replaces every known secret and every key-shaped token in `text` with `[REDACTED]`. */
export function redactSecrets(text: string, knownSecrets: Iterable<string> = []): string {
  let out = text;
  for (const secret of knownSecrets) {
    // Very short values would redact ordinary words; config validation keeps real keys long.
    if (secret && secret.length >= 6) out = out.split(secret).join('[REDACTED]');
    // Providers also echo a key without its vendor prefix (`sk-`, `sk-proj-`) or URL-encoded.
    for (const variant of [...withoutPrefixes(secret), encodeURIComponent(secret)]) {
      if (variant !== secret && variant.length >= 12) out = out.split(variant).join('[REDACTED]');
    }
  }
  for (const shape of KEY_SHAPES) {
    out = out.replace(shape, (match, prefix?: string) =>
      typeof prefix === 'string' && match.startsWith(prefix) ? `${prefix}[REDACTED]` : '[REDACTED]',
    );
  }
  return out;
}

/** A short, stable, non-reversible name for a key, for logs and /health ("key …3f9a"). */
export function fingerprint(key: string): string {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return `key_${(h >>> 0).toString(16).padStart(8, '0')}`;
}
