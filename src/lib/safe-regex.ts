import { RE2JS } from 're2js';

/**
 * Every regular expression that comes from configuration (Istio resources, xDS `safe_regex`, regex rewrites) is
 * compiled here, with re2js: a port of RE2, the engine Envoy uses and whose syntax Istio validates with Go's regexp.
 * Matching takes time linear in the input, so a valid pattern such as `(a+)+b` cannot stall a proxy worker the
 * way JavaScript's backtracking RegExp does (2^n steps on n bytes). Code-authored constant patterns may stay
 * JavaScript RegExps; user input never does.
 */

/**
 * The largest compiled program accepted. Envoy refuses a regex whose RE2 program is larger than the runtime key
 * `re2.max_program_size.error_level`; Istio's bootstrap sets it to 32768, so that is the limit here.
 */
export const MAX_REGEX_PROGRAM_SIZE = 32_768;

/** A part of a parsed substitution: literal text or the number of a group (0 is the whole match). */
export type Substitution = ReadonlyArray<string | number>;

export class SafeRegexError extends Error {}

export class SafeRegex {
  private constructor(
    readonly source: string,
    private readonly re: RE2JS,
  ) {}

  /** Compiles RE2 syntax; throws SafeRegexError with a one-line reason for what RE2 refuses or a too-large program. */
  static compile(source: string): SafeRegex {
    let re: RE2JS;
    try {
      re = RE2JS.compile(source);
    } catch (e) {
      // re2js reports Go's regexp messages ("error parsing regexp: invalid escape sequence: `\1`"), as Istio does.
      throw new SafeRegexError(e instanceof Error ? e.message.replace(/^error parsing regexp: /, '') : String(e));
    }
    const size = re.programSize();
    if (size > MAX_REGEX_PROGRAM_SIZE) {
      throw new SafeRegexError(`compiled program size ${size} is larger than ${MAX_REGEX_PROGRAM_SIZE} (Envoy's re2.max_program_size)`);
    }
    return new SafeRegex(source, re);
  }

  /** RE2::FullMatch, Envoy's safe_regex semantics: the pattern must match the whole value. */
  fullMatch(value: string): boolean {
    return this.re.testExact(value);
  }

  /** Whether the pattern matches anywhere in the value. */
  search(value: string): boolean {
    return this.re.test(value);
  }

  get groupCount(): number {
    return this.re.groupCount();
  }

  /**
   * RE2::GlobalReplace (Envoy's regex_rewrite): every non-overlapping match replaced by the substitution, an empty
   * match never directly after the previous match.
   */
  replaceAll(value: string, substitution: Substitution): string {
    const m = this.re.matcher(value);
    let out = '';
    let last = 0;
    let lastEnd = -1;
    while (m.find()) {
      const start = m.start();
      const end = m.end();
      // RE2 skips an empty match at the end of the previous one ("abc", b* -> "XaXcX"; JavaScript gives "XaXXcX").
      if (start === end && start === lastEnd) continue;
      out += value.slice(last, start);
      for (const part of substitution) out += typeof part === 'string' ? part : (m.group(part) ?? '');
      last = lastEnd = end;
    }
    return out + value.slice(last);
  }

  /**
   * An RE2 rewrite string as parts: `\0`..`\9` name groups, `\\` is a backslash, any other escape or a group the
   * pattern lacks is refused (RE2::CheckRewriteString, which Envoy applies to regex_rewrite).
   */
  substitution(rewrite: string): Substitution {
    const parts: Array<string | number> = [];
    let text = '';
    for (let i = 0; i < rewrite.length; i++) {
      const c = rewrite[i];
      if (c !== '\\') {
        text += c;
        continue;
      }
      const next = rewrite[++i];
      if (next === '\\') text += '\\';
      else if (next !== undefined && next >= '0' && next <= '9') {
        const group = Number(next);
        if (group > this.groupCount) {
          throw new SafeRegexError(`substitution ${JSON.stringify(rewrite)} uses group \\${group}, the regex has ${this.groupCount}`);
        }
        if (text) parts.push(text);
        text = '';
        parts.push(group);
      } else
        throw new SafeRegexError(`substitution ${JSON.stringify(rewrite)} has an invalid escape \\${next ?? ''} (use \\0-\\9 or \\\\)`);
    }
    if (text) parts.push(text);
    return parts;
  }

  toString(): string {
    return this.source;
  }
}
