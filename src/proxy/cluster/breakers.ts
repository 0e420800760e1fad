import type { CircuitBreaker } from '../proxy-config.js';

export type Budget = 'connection' | 'pending' | 'request' | 'retry';

/**
 * Envoy's circuit breakers for one cluster: a counter per budget against the cluster's limit. Counters
 * survive config updates (limits change, what is open stays counted).
 */
export class CircuitBreakers {
  private readonly counts: Record<Budget, number> = { connection: 0, pending: 0, request: 0, retry: 0 };

  constructor(private limits: CircuitBreaker) {}

  setLimits(limits: CircuitBreaker): void {
    this.limits = limits;
  }

  /** A release function (idempotent), or undefined when the budget is spent. */
  acquire(budget: Budget): (() => void) | undefined {
    if (this.counts[budget] >= this.limit(budget)) return undefined;
    this.counts[budget]++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.counts[budget]--;
    };
  }

  count(budget: Budget): number {
    return this.counts[budget];
  }

  private limit(budget: Budget): number {
    switch (budget) {
      case 'connection':
        return this.limits.maxConnections;
      case 'pending':
        return this.limits.maxPendingRequests;
      case 'request':
        return this.limits.maxRequests;
      case 'retry':
        return this.limits.maxRetries;
    }
  }
}
