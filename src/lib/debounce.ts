/**
 * Coalesces bursts: fires `quietMs` after the last trigger, but never later than `maxMs` after the
 * first one of a burst (Istio's PILOT_DEBOUNCE_AFTER / PILOT_DEBOUNCE_MAX), so a steady trickle of
 * changes still gets pushed.
 */
export class Debouncer {
  private first: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly fire: () => void,
    private readonly quietMs: number,
    private readonly maxMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  trigger(): void {
    const t = this.now();
    this.first ??= t;
    if (this.timer) clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.quietMs, this.first + this.maxMs - t));
    this.timer = setTimeout(() => this.flush(), wait);
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.first === undefined) return;
    this.first = undefined;
    this.fire();
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.first = undefined;
  }
}
