/**
 * Prompt-injection scoring: weighted signals over normalised text, combined as independent evidence
 * (1 - Π(1 - w)), so one strong signal or several weak ones cross the threshold while a lone benign
 * "ignore" or "system" does not. Base64 blobs are decoded and scored too. Measured on
 * test/fixtures/injection-corpus.json (`npm run measure:injection`).
 */

export interface InjectionSignal {
  id: string;
  weight: number;
  regex: RegExp;
}

export interface InjectionScore {
  score: number;
  /** Ids of the signals that fired (`b64:` prefixed when found in a decoded payload). */
  signals: string[];
}

const IGNORE =
  '(?:ignore|disregard|forget|override|bypass|skip|drop|abandon|set aside|throw out|stop following)';
const PRIOR =
  '(?:all|any|every|the|your|my|these|those|previous|prior|above|earlier|preceding|foregoing|initial|original|old|existing|system|developer|safety|of the|of your|their|its|and|or|following|earlier)';
const RULES =
  '(?:instructions?|prompts?|rules|directions|directives?|guidelines?|guardrails|constraints|restrictions|programming|commands|orders|context|system message|guidance)';

// Each regex runs on lower-cased text with whitespace collapsed (see normalise()).
export const SIGNALS: InjectionSignal[] = [
  {
    id: 'ignore_instructions',
    weight: 0.9,
    regex: new RegExp(`\\b${IGNORE}\\s+(?:${PRIOR}\\s+){1,4}${RULES}\\b`),
  },
  {
    id: 'ignore_everything',
    weight: 0.7,
    regex: new RegExp(
      `\\b${IGNORE}\\s+(?:everything|anything|all)\\s+(?:above|before|previously|you were told|(?:that )?(?:i|you|we) (?:said|told you|wrote) (?:before|above|earlier))`,
    ),
  },
  {
    id: 'ignore_task',
    weight: 0.5,
    regex: new RegExp(
      `\\b${IGNORE}\\s+(?:the\\s+)?(?:user'?s?|original|current|above|previous|translation|summari[sz]ation)\\s+(?:request|question|task|query)\\b`,
    ),
  },
  {
    id: 'new_instructions',
    weight: 0.6,
    regex:
      /\b(?:new|updated|real|actual|true|revised) (?:system )?(?:instructions|directives|rules|task)\s*(?::|are\b|follow)/,
  },
  {
    id: 'instead_do',
    weight: 0.35,
    regex:
      /\binstead,? (?:you (?:will|must|should)|do the following|follow these|respond with|say|output|print)\b/,
  },
  // Other languages: the same attack is common in the major European languages.
  {
    id: 'ignore_instructions_i18n',
    weight: 0.85,
    regex:
      /\b(?:ignora|olvida) (?:todas )?(?:las )?instrucciones (?:anteriores|previas)|\b(?:ignoriere|vergiss) (?:alle )?(?:vorherigen|bisherigen|obigen) (?:anweisungen|instruktionen)|\b(?:ignore|oublie)z? (?:toutes )?les instructions (?:précédentes|antérieures)|\bignore (?:todas )?as instruções anteriores|\bignora (?:tutte )?le istruzioni precedenti/,
  },
  {
    id: 'known_jailbreak',
    weight: 0.9,
    regex:
      /mandatory bullshit|developer mode output|always intelligent and machiavellian|evil confidant|anti-dan|do anything now/,
  },
  {
    id: 'break_rules',
    weight: 0.45,
    regex:
      /\b(?:let's|let us|we will|you will|you must|time to) break (?:the|your|all|any) (?:rules|guidelines|policies)\b/,
  },
  {
    id: 'dan',
    weight: 0.9,
    regex:
      /\b(?:dan|stan|dude|aim)\b.{0,40}\b(?:do anything now|strive to avoid norms|always intelligent and machiavellian)|\bdo anything now\b|\byou are (?:now )?dan\b/,
  },
  {
    id: 'you_are_now',
    weight: 0.6,
    regex:
      /\b(?:you are|you're) now (?:an? |the |my )?(?:(?:unrestricted|unfiltered|uncensored|evil|jailbroken|rogue|free|unbound|liberated|new|different)\b|no longer\b|in (?:developer|god|admin|debug|jailbreak) mode|(?:dan|stan|aim)\b)/,
  },
  {
    id: 'no_restrictions',
    weight: 0.45,
    regex:
      /\b(?:without|no|free (?:of|from)|not bound by|freed from|unbound by|ignore) (?:any |all |your |the )?(?:ethical |moral |content |safety )?(?:restrictions|filters|limitations|guidelines|rules|censorship|constraints|policies|policy|boundaries)\b/,
  },
  {
    id: 'pretend_unrestricted',
    weight: 0.5,
    regex:
      /\b(?:pretend|imagine|act as if|act like|roleplay as|role-play as|behave as if|simulate)\b.{0,60}\b(?:no|without|not bound|freed|free from|unrestricted|unfiltered|uncensored|jailbroken|evil|any question|anything)\b/,
  },
  // "Enable developer mode" alone is an Android/Chrome question; addressed to the model it is a jailbreak.
  {
    id: 'developer_mode',
    weight: 0.7,
    regex:
      /\b(?:developer|god|admin|debug|jailbreak|sudo|maintenance|unrestricted) mode (?:enabled|activated)\b|\b(?:enable|activate|enter|switch to)\b.{0,12}\b(?:god|jailbreak|sudo|unrestricted|dan) mode\b|\b(?:act as|you are|you're|yourself)\b.{0,30}\b(?:with|in) (?:developer|god|jailbreak) mode\b/,
  },
  { id: 'jailbreak_word', weight: 0.35, regex: /\bjailbr(?:eak|oken)\w*/ },
  {
    id: 'stay_in_character',
    weight: 0.5,
    regex:
      /\b(?:stay in character|never break character|don't break character|you will never refuse|you cannot refuse|never refuse)\b/,
  },
  {
    id: 'from_now_on',
    weight: 0.3,
    regex: /\bfrom now on,? (?:you (?:will|are|must|shall)|respond|answer|act|only)\b/,
  },
  {
    id: 'reveal_prompt',
    weight: 0.85,
    regex:
      /\b(?:reveal|show|print|repeat|output|display|tell me|give me|share|leak|dump|recite|what (?:is|are|was|were)|what's|spell out|copy|paste|list)\b.{0,30}\b(?:(?:your|the) (?:(?:full|entire|exact|complete|original|initial|hidden|secret|internal|real|verbatim) )*system (?:prompt|message|instructions?)|your (?:(?:full|entire|exact|complete|verbatim) )*(?:initial|original|hidden|secret|internal|developer) (?:prompt|instructions|message)|(?:instructions|prompt) you (?:were|have been) given)\b/,
  },
  {
    id: 'repeat_above',
    weight: 0.8,
    regex:
      /\b(?:repeat|print|output|reveal|show|display|write out|copy|paste|echo|recite)\b.{0,40}\b(?:the )?(?:text|words|everything|content|instructions|messages?|lines?) (?:above|before this|preceding|prior to (?:this|my))\b/,
  },
  // Summarising "the text above" is ordinary; summarising the instructions above is not.
  {
    id: 'summarize_instructions',
    weight: 0.6,
    regex:
      /\b(?:summari[sz]e|translate|paraphrase)\b.{0,30}\b(?:instructions|system (?:prompt|message|part)|prompt) (?:above|before this)\b/,
  },
  {
    id: 'including_hidden',
    weight: 0.5,
    regex:
      /\bincluding (?:the |any |all )?(?:system|secret|hidden|confidential) (?:ones|part|parts|prompt|message|instructions)\b/,
  },
  {
    id: 'starting_with',
    weight: 0.5,
    regex: /\b(?:starting|beginning) (?:with|from) (?:the words? )?["'“]?you are\b/,
  },
  {
    id: 'role_tokens',
    weight: 0.8,
    regex:
      /<\|(?:im_start|im_end|system|endoftext|start_header_id)\|>|\[\/?inst\]|<<\/?sys>>|<\/?(?:system|sys|instructions?)>/,
  },
  {
    id: 'fake_section',
    weight: 0.6,
    regex:
      /(?:^|\n|\s)(?:#{2,}|-{3,}|={3,}|\*{3,})\s*(?:system|new instructions|admin|developer|override|end of (?:user )?(?:input|prompt|context))\b/,
  },
  { id: 'role_label', weight: 0.45, regex: /(?:^|\n)\s*(?:system|assistant|developer)\s*:\s*\S/ },
  {
    id: 'end_of_input',
    weight: 0.5,
    regex:
      /(?:\bend of (?:user )?(?:input|prompt|instructions|document|context)|\}\}\s*\{\{|["']?\s*[\]}]+\s*,?\s*\{\s*"role"\s*:\s*"(?:system|developer)")/,
  },
  {
    id: 'system_override',
    weight: 0.6,
    regex:
      /\b(?:system|admin|administrator|security|root) (?:override|alert|notice|update|command)\s*:|\boverride (?:code|authori[sz]ation|protocol)\b/,
  },
  {
    id: 'disable_safety',
    weight: 0.65,
    regex:
      /\b(?:disable|turn off|deactivate|remove|bypass|circumvent|switch off)\b.{0,20}\b(?:safety|content|moderation|ethical|security) ?(?:filters?|guidelines|checks|protocols|measures|settings|restrictions|policy|policies)\b/,
  },
  {
    id: 'decode_and_follow',
    weight: 0.5,
    regex:
      /\b(?:decode|base64|rot13|hex)\b.{0,60}\b(?:follow|execute|obey|do what it says|carry out|run|perform) (?:it|them|the|these|those|that|instructions)\b/,
  },
  {
    id: 'exfiltrate_data',
    weight: 0.55,
    regex:
      /\b(?:send|post|forward|exfiltrate|upload|append)\b.{0,40}\b(?:conversation|chat history|api keys?|credentials|passwords?|secrets?|system prompt)\b.{0,30}\b(?:to|into) (?:https?:|http|this (?:url|link)|the (?:url|link)|the following|an? (?:url|link|email|server|webhook))/,
  },
];

const ZERO_WIDTH = /[\u200B-\u200D\u2060\uFEFF\u00AD]/g;
const BASE64_BLOB = /(?:[A-Za-z0-9+/]{4}){5,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?/g;
/** Only the first few blobs are decoded: a request full of base64 must not cost unbounded time. */
const MAX_BLOBS = 8;

const SPACED_LETTERS = /\b(?:\p{L} ){3,}\p{L}\b/gu;

// Newlines stay: role labels ("\nsystem:") are only suspicious at the start of a line.
export function normalise(text: string): string {
  return text
    .normalize('NFKC')
    .replace(ZERO_WIDTH, '')
    .toLowerCase()
    .replace(/[^\S\n]+/g, ' ')
    .replace(/\n\s*/g, '\n');
}

/** "i g n o r e previous instructions" written out again as "ignore previous instructions". */
function despaced(text: string): string | undefined {
  const joined = text.replace(SPACED_LETTERS, (m) => m.replace(/ /g, ''));
  return joined === text ? undefined : joined;
}

function scoreNormalised(text: string, prefix: string, signals: string[], miss: number[]): void {
  for (const s of SIGNALS) {
    if (s.regex.test(text)) {
      signals.push(prefix + s.id);
      miss[0]! *= 1 - s.weight;
    }
  }
}

/** Decoded text of base64 blobs that decode to mostly printable text. */
function decodedBlobs(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(BASE64_BLOB)) {
    if (out.length >= MAX_BLOBS) break;
    const decoded = Buffer.from(m[0], 'base64').toString('utf8');
    const printable = decoded.replace(/[^\x20-\x7e\n\t]/g, '').length;
    if (decoded.length >= 12 && printable / decoded.length > 0.9) out.push(decoded);
  }
  return out;
}

export function scoreInjection(text: string): InjectionScore {
  const signals: string[] = [];
  const miss = [1];
  const normal = normalise(text);
  scoreNormalised(normal, '', signals, miss);
  const joined = despaced(normal);
  if (joined) scoreNormalised(joined, 'spaced:', signals, miss);
  for (const decoded of decodedBlobs(text)) {
    const before = signals.length;
    scoreNormalised(normalise(decoded), 'b64:', signals, miss);
    // Hiding instructions in an encoding is itself evidence of intent.
    if (signals.length > before) miss[0]! *= 0.5;
  }
  return { score: Math.round((1 - miss[0]!) * 1000) / 1000, signals };
}
