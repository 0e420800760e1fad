// One line per step with the time since the start and the step's own duration. On a terminal the line appears when
// the step starts and is completed in place when it ends, so a slow step shows what the demo is waiting for.
const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

export class Progress {
  private readonly t0 = Date.now();
  private readonly tty: boolean;
  /** The step running now (or the last one), for a failure message. */
  current = 'start';
  private index = 0;
  private open = false;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly total: number,
  ) {
    this.tty = out.isTTY === true;
  }

  /** `step 4/9 "label"`: where the demo is, for a failure message. */
  where(): string {
    return this.index === 0 ? 'the start' : `step ${this.index}/${this.total} "${this.current}"`;
  }

  elapsed(): string {
    return secs(Date.now() - this.t0);
  }

  /** Runs one step; `numbered: false` for the teardown, which is not one of the demo's steps. */
  async step<T>(label: string, fn: () => Promise<T>, opts: { summary?: (v: T) => string; numbered?: boolean } = {}): Promise<T> {
    const numbered = opts.numbered ?? true;
    if (numbered) {
      this.current = label;
      this.index++;
    }
    const n = numbered ? `${String(this.index).padStart(2)}/${this.total}` : '     ';
    const start = Date.now();
    if (this.tty) {
      this.out.write(`  ${this.elapsed().padStart(6)}  ${n}  … ${label}`);
      this.open = true;
    }
    const v = await fn();
    const text = `${label}${opts.summary ? `: ${opts.summary(v)}` : ''} (${secs(Date.now() - start)})`;
    this.out.write(`${this.open ? '\r\x1b[K' : ''}  ${this.elapsed().padStart(6)}  ${n}  ✓ ${text}\n`);
    this.open = false;
    return v;
  }

  /** Ends a step's open in-place line before something else is printed (an error). */
  breakLine(): void {
    if (this.open) this.out.write('\n');
    this.open = false;
  }
}
