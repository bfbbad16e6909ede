/**
 * Detectors for personal data and secrets in free text. Each detector is a candidate regex (compiled once)
 * plus a validator that rejects look-alikes: Luhn for cards, mod-97 for IBANs, node's own IPv6 parser,
 * and context rules for phone numbers, so order numbers, dates, versions and prices survive. Measured on
 * test/fixtures/pii-corpus.json (`npm run measure:pii`).
 */
import { isIPv6 } from 'node:net';

export type PIIType = 'email' | 'phone' | 'card' | 'ssn' | 'ipv4' | 'ipv6' | 'iban' | 'secret';

export const PII_TYPES: readonly PIIType[] = [
  'email',
  'phone',
  'card',
  'ssn',
  'ipv4',
  'ipv6',
  'iban',
  'secret',
];

export interface PIIMatch {
  type: PIIType;
  start: number;
  end: number;
  value: string;
}

// What factsOf() notes about each ASCII character, as bit flags. TOKEN: a character keyword-introduced
// secrets are made of (`[A-Za-z0-9_\-+/=.]`).
const DIGIT = 1;
const DOT = 2;
const AT = 4;
const DASH = 8;
const UNDERSCORE = 16;
const COLON = 32;
const TOKEN = 64;

const CHAR_FLAGS = new Uint8Array(128);
for (let c = 48; c <= 57; c++) CHAR_FLAGS[c] = DIGIT | TOKEN;
for (let c = 65; c <= 90; c++) CHAR_FLAGS[c] = TOKEN;
for (let c = 97; c <= 122; c++) CHAR_FLAGS[c] = TOKEN;
for (const ch of '+/=') CHAR_FLAGS[ch.charCodeAt(0)] = TOKEN;
CHAR_FLAGS['.'.charCodeAt(0)] = DOT | TOKEN;
CHAR_FLAGS['-'.charCodeAt(0)] = DASH | TOKEN;
CHAR_FLAGS['_'.charCodeAt(0)] = UNDERSCORE | TOKEN;
CHAR_FLAGS['@'.charCodeAt(0)] = AT;
CHAR_FLAGS[':'.charCodeAt(0)] = COLON;

/** What one pass over a text counted: enough to rule most detectors out before their regex runs. */
interface TextFacts {
  /** ASCII digits, the only ones `\d` matches. */
  digits: number;
  dots: number;
  /** The flags of every character seen. */
  seen: number;
  longestTokenRun: number;
}

function factsOf(text: string): TextFacts {
  let digits = 0;
  let dots = 0;
  let seen = 0;
  let run = 0;
  let longestTokenRun = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const flags = c < 128 ? CHAR_FLAGS[c]! : 0;
    seen |= flags;
    if (flags & DIGIT) digits++;
    else if (flags & DOT) dots++;
    if (flags & TOKEN) {
      if (++run > longestTokenRun) longestTokenRun = run;
    } else run = 0;
  }
  return { digits, dots, seen, longestTokenRun };
}

interface Detector {
  type: PIIType;
  /** Global; with the `d` flag when group 1 (not the whole match) is the value. */
  regex: RegExp;
  valid?: (value: string, text: string, start: number) => boolean;
  /**
   * Whether the text has what every value this detector reports contains (a digit count its values
   * cannot do without, an `@`, a key prefix): if not, it cannot report anything and its costlier regex
   * pass is skipped. Most prompts have few digits, no `@`, no key prefix and no colon, so most passes go.
   */
  needs: (facts: TextFacts, text: string) => boolean;
}

function luhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

// Issuer prefixes of the major networks: a random Luhn-valid number (one in ten) rarely starts like these.
const CARD_PREFIX = /^(?:4|5[1-5]|2[2-7]|3[47]|3[0689]|6(?:011|5|4[4-9]|22)|35|62)/;

function validCard(value: string): boolean {
  const digits = value.replace(/[ -]/g, '');
  if (digits.length < 13 || digits.length > 19) return false;
  // Mixed separators ("4111-1111 1111 1111") are not how anyone writes a card.
  if (/ /.test(value) && /-/.test(value)) return false;
  return CARD_PREFIX.test(digits) && luhn(digits);
}

// IBAN lengths per country (ISO 13616); a wrong length is not an IBAN even if mod-97 happens to pass.
const IBAN_LENGTH: Record<string, number> = {
  AD: 24,
  AE: 23,
  AT: 20,
  AZ: 28,
  BA: 20,
  BE: 16,
  BG: 22,
  BH: 22,
  BR: 29,
  CH: 21,
  CR: 22,
  CY: 28,
  CZ: 24,
  DE: 22,
  DK: 18,
  DO: 28,
  EE: 20,
  EG: 29,
  ES: 24,
  FI: 18,
  FO: 18,
  FR: 27,
  GB: 22,
  GE: 22,
  GI: 23,
  GL: 18,
  GR: 27,
  GT: 28,
  HR: 21,
  HU: 28,
  IE: 22,
  IL: 23,
  IS: 26,
  IT: 27,
  JO: 30,
  KW: 30,
  KZ: 20,
  LB: 28,
  LI: 21,
  LT: 20,
  LU: 20,
  LV: 21,
  MC: 27,
  MD: 24,
  ME: 22,
  MK: 19,
  MR: 27,
  MT: 31,
  MU: 30,
  NL: 18,
  NO: 15,
  PK: 24,
  PL: 28,
  PS: 29,
  PT: 25,
  QA: 29,
  RO: 24,
  RS: 22,
  SA: 24,
  SE: 24,
  SI: 19,
  SK: 24,
  SM: 27,
  TN: 24,
  TR: 26,
  UA: 29,
  VG: 24,
  XK: 20,
};

function validIban(value: string): boolean {
  const iban = value.replace(/ /g, '').toUpperCase();
  if (IBAN_LENGTH[iban.slice(0, 2)] !== iban.length) return false;
  const rearranged = iban.slice(4) + iban.slice(0, 4);
  let rest = 0;
  for (const ch of rearranged) {
    const code = ch.charCodeAt(0);
    const n = code >= 65 ? String(code - 55) : ch;
    for (const d of n) rest = (rest * 10 + (d.charCodeAt(0) - 48)) % 97;
  }
  return rest === 1;
}

const VERSION_BEFORE = /\b(?:version|ver\.?|release|build|v)\s*$/i;

function validIpv4(value: string, text: string, start: number): boolean {
  return !VERSION_BEFORE.test(text.slice(Math.max(0, start - 12), start));
}

function validIpv6(value: string): boolean {
  if (!isIPv6(value)) return false;
  const groups = value.split(':').filter(Boolean);
  // "a::b" or "dead::beef" are C++ scopes and words; a real address has several groups or digits.
  return groups.length >= 3 || (value.includes('::') && /\d/.test(value));
}

const PHONE_CONTEXT =
  /(?:phone|tel|telephone|call|mobile|cell|fax|whatsapp|sms|text me|reach me|contact|number|ring)\b[^.\n]{0,25}$/i;
const DATE_LIKE = /^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})$/;
const NANP = /^\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4}$/;
// Identifiers introduced by their label ("Lot number 2024 0315 0042") are not phone numbers.
const NOT_PHONE_BEFORE =
  /(?:isbn(?:-1[03])?|order|invoice|ref|reference|tracking|lot|batch|part|case|ticket|policy|account|member|customer|sku|serial|version|#|id|v|\$|€|£)(?:\s*(?:number|num|no\.?|#))?[:\s#]*$/i;

function validPhone(value: string, text: string, start: number): boolean {
  const digits = value.replace(/\D/g, '');
  if (digits.length < 7 || digits.length > 15) return false;
  if (DATE_LIKE.test(value)) return false;
  const before = text.slice(Math.max(0, start - 40), start);
  if (NOT_PHONE_BEFORE.test(before)) return false;
  // A price or a measurement continues with a decimal point or a unit.
  if (/^[.,]\d/.test(text.slice(start + value.length, start + value.length + 2))) return false;
  // E.164 ("+14155552671") is written without separators; other long digit runs need them.
  if (value.startsWith('+')) return digits.length >= 10 || (digits.length >= 8 && /[\s.()-]/.test(value));
  if (NANP.test(value)) return true;
  // National formats ("020 7946 0958", "06 12 34 56 78"): trunk prefix 0 and grouped digits.
  if (/^0\d/.test(value) && digits.length >= 9 && /[\s.-]/.test(value)) return true;
  return PHONE_CONTEXT.test(before) && digits.length >= 7;
}

const SECRET_WORDS =
  'api[_-]?key|apikey|access[_-]?key|secret(?:[_-]?key)?|token|password|passwd|pwd|auth|bearer|credentials?';

function validKeyword(value: string): boolean {
  // Opaque tokens mix letters and digits; "password: correcthorsebattery" words alone are not caught here.
  return /\d/.test(value) && /[A-Za-z]/.test(value);
}

// Order matters: earlier detectors win overlaps (a key with an email-like suffix stays one secret).
const DETECTORS: Detector[] = [
  {
    type: 'secret',
    regex: /\b(?:sk|pk|rk)-(?:proj-|ant-(?:api\d\d-)?|live_|test_)?[A-Za-z0-9_-]{16,}/g,
    needs: (f) => (f.seen & DASH) !== 0,
  },
  {
    type: 'secret',
    regex: /\bAIza[0-9A-Za-z_-]{35}\b/g,
    needs: (_, text) => text.includes('AIza'),
  },
  {
    type: 'secret',
    regex: /\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}|xox[abprs]-[A-Za-z0-9-]{10,})/g,
    needs: (f) => (f.seen & (DASH | UNDERSCORE)) !== 0,
  },
  {
    type: 'secret',
    regex: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g,
    needs: (_, text) => text.includes('AKIA') || text.includes('ASIA'),
  },
  {
    type: 'secret',
    regex: /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g,
    needs: (_, text) => text.includes('eyJ'),
  },
  {
    type: 'secret',
    regex: new RegExp(
      `\\b(?:${SECRET_WORDS})\\b["']?\\s*(?:[:=]|is|:=|=>)?\\s*["']?([A-Za-z0-9_\\-+/=.]{20,})`,
      'gdi',
    ),
    valid: validKeyword,
    // The value: 20 or more of its characters in a row, a digit among them (validKeyword()).
    needs: (f) => f.digits >= 1 && f.longestTokenRun >= 20,
  },
  // Unicode letters in the domain: internationalised domains ("müller-gmbh.de") are common in European text.
  {
    type: 'email',
    regex: /\b[A-Za-z0-9._%+-]+(?:'[A-Za-z0-9._%+-]+)*@(?:[\p{L}\p{N}-]+\.)+\p{L}{2,}(?![\p{L}\p{N}])/gu,
    needs: (f) => (f.seen & AT) !== 0,
  },
  {
    type: 'iban',
    regex: /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b/g,
    valid: validIban,
    // The check digits.
    needs: (f) => f.digits >= 2,
  },
  {
    type: 'card',
    regex: /(?<![\d.,-])\d(?:[ -]?\d){12,18}(?![\d.,]\d)/g,
    valid: validCard,
    // validCard() wants 13 to 19 digits.
    needs: (f) => f.digits >= 13,
  },
  {
    type: 'ssn',
    regex: /(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])/g,
    needs: (f) => f.digits >= 9 && (f.seen & DASH) !== 0,
  },
  {
    type: 'ssn',
    regex:
      /\b(?:SSN|social security(?: number)?)(?:[:#\s]|\bis\b)*((?!000|666|9\d\d)\d{3} ?(?!00)\d{2} ?(?!0000)\d{4})\b/dgi,
    needs: (f) => f.digits >= 9,
  },
  {
    type: 'ipv6',
    regex: /(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?![\w:])/g,
    valid: validIpv6,
    needs: (f) => (f.seen & COLON) !== 0,
  },
  {
    type: 'ipv4',
    regex:
      /(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\.?\d|\w)/g,
    valid: validIpv4,
    needs: (f) => f.digits >= 4 && f.dots >= 3,
  },
  {
    type: 'phone',
    regex:
      /(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,5}\)[\s.-]?)?\d{1,5}(?:[\s.-]\d{1,8}){1,5}(?![\w])|(?<![\w+])\+\d{8,15}\b/g,
    valid: validPhone,
    // validPhone() wants 7 to 15 digits.
    needs: (f) => f.digits >= 7,
  },
];

function overlapsAny(found: readonly PIIMatch[], start: number, end: number): boolean {
  for (const f of found) if (start < f.end && end > f.start) return true;
  return false;
}

const TRAILING_SEPARATORS = /[\s.-]+$/;

/** Every detected value, non-overlapping and in text order. */
export function findPII(text: string, types: readonly PIIType[] = PII_TYPES): PIIMatch[] {
  const found: PIIMatch[] = [];
  const facts = factsOf(text);
  const allTypes = types === PII_TYPES;
  for (const d of DETECTORS) {
    if (!allTypes && !types.includes(d.type)) continue;
    if (!d.needs(facts, text)) continue;
    // exec() on the shared regex, not matchAll(), which clones the regex on every call.
    const regex = d.regex;
    regex.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = regex.exec(text)) !== null) {
      let value = m[0];
      // No detector matches the empty string; this only guards the loop should one ever do.
      if (value === '') {
        regex.lastIndex++;
        continue;
      }
      let start = m.index;
      const groupSpan = m.indices?.[1];
      if (groupSpan) {
        value = m[1]!;
        start = groupSpan[0];
      }
      // Phone candidates may end in a separator-less tail we do not want; trim trailing separators.
      value = value.replace(TRAILING_SEPARATORS, '');
      const end = start + value.length;
      if (!value || overlapsAny(found, start, end)) continue;
      if (d.valid && !d.valid(value, text, start)) continue;
      found.push({ type: d.type, start, end, value });
    }
  }
  if (found.length > 1) found.sort((a, b) => a.start - b.start);
  return found;
}

export function placeholderLabel(type: PIIType): string {
  return type.toUpperCase();
}

/** Replaces every detected value with an unnumbered `[TYPE]`: for logs, where nothing is restored. */
export function scrubPII(text: string, types?: readonly PIIType[]): string {
  const matches = findPII(text, types);
  let out = '';
  let at = 0;
  for (const m of matches) {
    out += `${text.slice(at, m.start)}[${placeholderLabel(m.type)}]`;
    at = m.end;
  }
  return out + text.slice(at);
}
