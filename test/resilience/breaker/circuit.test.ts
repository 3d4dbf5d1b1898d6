/**
 * The circuit state machine: closed → open → half-open → closed / open,
 * the open timer, backoff, probes, snapshots and option checks. Time is a
 * fake clock injected into the circuit, with vitest's fake timers for the
 * one timer an open circuit holds.
 */
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import {
  Circuit,
  ConsecutiveBreaker,
  type BreakerPolicy,
  type BreakerSpec,
  type CircuitChange,
  type CircuitOptions,
  type CircuitSnapshot,
  JUDGED,
  NO_TICKET,
  REFUSED,
} from '../../../src/resilience/breaker/index';

let clock = 0;
const now = () => clock;

beforeEach(() => {
  clock = 1_000_000;
  // setImmediate left real: a hold timer that fires gives its verdict after the poll phase (afterPoll).
  vi.useFakeTimers({ toNotFake: ['setImmediate', 'clearImmediate'] });
});
afterEach(() => {
  vi.useRealTimers();
});

/** One turn of the real event loop: what a hold timer that fired judges once the sockets were read (setImmediate). */
const afterPoll = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Moves the injected clock and the fake timers together. */
function tick(ms: number): void {
  clock += ms;
  vi.advanceTimersByTime(ms);
}

/** A circuit that records its transitions; by default it opens at the 2nd failure in a row, for 1 s. */
function make(options: Partial<CircuitOptions> = {}) {
  const changes: CircuitChange[] = [];
  const circuit = new Circuit({ policy: { kind: 'consecutive', threshold: 2 }, openMs: 1000, ...options }, (c) => changes.push(c), now);
  return { circuit, changes };
}

/** Fails calls until the circuit opens. */
function trip(circuit: Circuit): void {
  for (let i = 0; i < 1000 && circuit.state === 'closed'; i++) {
    circuit.tryPass();
    circuit.failure();
  }
  expect(circuit.state).toBe('open');
}

/** Takes a closed circuit to half-open. */
function toHalfOpen(circuit: Circuit): void {
  trip(circuit);
  tick(circuit.openUntil! - clock);
  expect(circuit.state).toBe('half-open');
}

/** A probe that fails: the circuit must be half-open. */
function failProbe(circuit: Circuit): void {
  expect(circuit.tryPass()).toBe(true);
  circuit.failure();
}

describe('closed', () => {
  test('a new circuit is closed and lets calls through', () => {
    const { circuit } = make();
    expect([circuit.state, circuit.tryPass(), circuit.canPass(), circuit.openUntil]).toEqual(['closed', true, true, undefined]);
  });

  test('opens when the policy says so, reporting reason `failures` and the open time', () => {
    const { circuit, changes } = make();
    circuit.failure();
    expect(circuit.state).toBe('closed');
    circuit.failure();
    expect(circuit.state).toBe('open');
    expect(changes).toEqual([{ from: 'closed', to: 'open', reason: 'failures', openMs: 1000 }]);
  });

  test('successes reach the policy: one between failures keeps it closed', () => {
    const { circuit } = make();
    circuit.failure();
    circuit.success();
    circuit.failure();
    expect(circuit.state).toBe('closed');
  });

  test('the policy is reset on opening', () => {
    const { circuit } = make({ policy: { kind: 'count', threshold: 0.5, size: 4, minimumCalls: 2 } });
    circuit.success();
    trip(circuit);
    expect(circuit.toJSON().policy).toEqual({ kind: 'count', samples: [] });
  });

  test.each<{ name: string; policy: BreakerSpec; outcomes: string }>([
    { name: 'consecutive', policy: { kind: 'consecutive', threshold: 3 }, outcomes: 'FSFFF' },
    { name: 'count', policy: { kind: 'count', threshold: 0.5, size: 4, minimumCalls: 4 }, outcomes: 'SSFF' },
    { name: 'sampling', policy: { kind: 'sampling', threshold: 0.5, windowMs: 1000, buckets: 10, minimumCalls: 4 }, outcomes: 'SFSF' },
  ])('with the $name policy, opens exactly at the last of $outcomes', ({ policy, outcomes }) => {
    const { circuit } = make({ policy });
    const states = [...outcomes].map((o) => {
      if (o === 'F') circuit.failure();
      else circuit.success();
      return circuit.state;
    });
    expect(states).toEqual([...Array<string>(outcomes.length - 1).fill('closed'), 'open']);
  });

  test('the sampling policy gets the injected time', () => {
    const { circuit } = make({ policy: { kind: 'sampling', threshold: 0.5, windowMs: 1000, buckets: 10, minimumCalls: 2 } });
    circuit.success();
    clock += 1000; // the success leaves the window
    circuit.failure();
    expect(circuit.state).toBe('closed');
    circuit.failure();
    expect(circuit.state).toBe('open');
  });
});

describe('open', () => {
  test('refuses calls and says until when', () => {
    const { circuit } = make();
    trip(circuit);
    expect([circuit.tryPass(), circuit.canPass(), circuit.openUntil]).toEqual([false, false, clock + 1000]);
  });

  test('stays open until openMs has elapsed', () => {
    const { circuit } = make();
    trip(circuit);
    tick(999);
    expect([circuit.state, circuit.tryPass()]).toEqual(['open', false]);
  });

  test('its timer moves it to half-open on time, reason `open_elapsed`', () => {
    const { circuit, changes } = make();
    trip(circuit);
    tick(1000);
    expect(circuit.state).toBe('half-open');
    expect(changes.at(-1)).toEqual({ from: 'open', to: 'half-open', reason: 'open_elapsed' });
  });

  test.each(['tryPass', 'canPass'] as const)('%s moves it to half-open when the clock says the time is up, timer or not', (method) => {
    const { circuit, changes } = make();
    trip(circuit);
    clock += 1000; // the clock only: the timer has not fired
    expect(circuit.state).toBe('open');
    expect(circuit[method]()).toBe(true);
    expect(circuit.state).toBe('half-open');
    expect(changes.at(-1)?.reason).toBe('open_elapsed');
  });

  test('the timer does nothing after a lazy transition', () => {
    const { circuit, changes } = make();
    trip(circuit);
    clock += 1000;
    circuit.canPass();
    vi.advanceTimersByTime(1000);
    expect(changes.map((c) => c.to)).toEqual(['open', 'half-open']);
  });

  test('holds exactly one timer, and none once half-open', () => {
    const { circuit } = make();
    trip(circuit);
    expect(vi.getTimerCount()).toBe(1);
    tick(1000);
    expect(vi.getTimerCount()).toBe(0);
  });

  test('its timer is unref’d', () => {
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    const { circuit } = make();
    trip(circuit);
    expect(setTimeoutSpy).toHaveBeenCalledTimes(1);
    const timer = setTimeoutSpy.mock.results[0]?.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
  });

  test('its real Node timer is unref’d too', () => {
    vi.useRealTimers();
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    const circuit = new Circuit({ openMs: 60_000, policy: { kind: 'consecutive', threshold: 1 } }, () => {});
    circuit.failure();
    const timer = setTimeoutSpy.mock.results[0]?.value as NodeJS.Timeout;
    try {
      expect(timer.hasRef()).toBe(false);
    } finally {
      circuit.dispose();
    }
  });

  test('outcomes reported while open are ignored', () => {
    const { circuit, changes } = make();
    trip(circuit);
    circuit.success();
    circuit.failure();
    circuit.release();
    expect([circuit.state, changes.length]).toEqual(['open', 1]);
  });

  test('dispose stops the timer; the clock still ends the open time', () => {
    const { circuit } = make();
    trip(circuit);
    circuit.dispose();
    expect(vi.getTimerCount()).toBe(0);
    tick(1000);
    expect(circuit.state).toBe('open');
    expect(circuit.tryPass()).toBe(true);
    expect(circuit.state).toBe('half-open');
  });

  test('an open time longer than a Node timer can hold is waited out in steps', () => {
    const { circuit } = make({ openMs: 30 * 86_400_000 });
    trip(circuit);
    tick(2 ** 31 - 1);
    expect(circuit.state).toBe('open');
    tick(30 * 86_400_000 - (2 ** 31 - 1));
    expect(circuit.state).toBe('half-open');
  });
});

describe('open time and backoff', () => {
  test('without maxOpenMs every re-open lasts openMs', () => {
    const { circuit, changes } = make();
    toHalfOpen(circuit);
    for (let i = 0; i < 4; i++) {
      failProbe(circuit);
      tick(1000);
    }
    expect(changes.filter((c) => c.to === 'open').map((c) => c.openMs)).toEqual([1000, 1000, 1000, 1000, 1000]);
  });

  test('with maxOpenMs each failed probe doubles the open time up to the cap', () => {
    const { circuit, changes } = make({ maxOpenMs: 5000 });
    toHalfOpen(circuit);
    for (let i = 0; i < 5; i++) {
      failProbe(circuit);
      tick(circuit.openUntil! - clock);
    }
    expect(changes.filter((c) => c.to === 'open').map((c) => c.openMs)).toEqual([1000, 2000, 4000, 5000, 5000, 5000]);
  });

  test.each([
    { after: 1000, state: 'open' },
    { after: 2000, state: 'half-open' },
  ])('a doubled open time is waited out: $after ms after the re-open it is $state', ({ after, state }) => {
    const { circuit } = make({ maxOpenMs: 5000 });
    toHalfOpen(circuit);
    failProbe(circuit);
    tick(after);
    expect(circuit.state).toBe(state);
  });

  test('the backoff starts over once the circuit closes', () => {
    const { circuit, changes } = make({ maxOpenMs: 8000 });
    toHalfOpen(circuit);
    failProbe(circuit);
    tick(2000);
    circuit.tryPass();
    circuit.success(); // closed
    trip(circuit);
    expect(changes.filter((c) => c.to === 'open').map((c) => c.openMs)).toEqual([1000, 2000, 1000]);
  });
});

describe('half-open', () => {
  test('lets one probe through; the next caller is refused', () => {
    const { circuit } = make();
    toHalfOpen(circuit);
    expect([circuit.tryPass(), circuit.tryPass(), circuit.canPass()]).toEqual([true, false, false]);
  });

  test('lets up to halfOpenProbes probes through', () => {
    const { circuit } = make({ halfOpenProbes: 3 });
    toHalfOpen(circuit);
    expect([1, 2, 3, 4].map(() => circuit.tryPass())).toEqual([true, true, true, false]);
  });

  test('canPass takes no probe slot', () => {
    const { circuit } = make();
    toHalfOpen(circuit);
    expect([circuit.canPass(), circuit.canPass(), circuit.tryPass()]).toEqual([true, true, true]);
  });

  test('a probe success closes it, reason `probe_succeeded`', () => {
    const { circuit, changes } = make();
    toHalfOpen(circuit);
    circuit.tryPass();
    circuit.success();
    expect(circuit.state).toBe('closed');
    expect(changes.at(-1)).toEqual({ from: 'half-open', to: 'closed', reason: 'probe_succeeded' });
  });

  test('it closes only once every probe succeeded', () => {
    const { circuit } = make({ halfOpenProbes: 2 });
    toHalfOpen(circuit);
    circuit.tryPass();
    circuit.tryPass();
    circuit.success();
    expect(circuit.state).toBe('half-open');
    circuit.success();
    expect(circuit.state).toBe('closed');
  });

  test('a settled success keeps its slot: no more probes than halfOpenProbes in all', () => {
    const { circuit } = make({ halfOpenProbes: 2 });
    toHalfOpen(circuit);
    circuit.tryPass();
    circuit.success();
    expect([circuit.tryPass(), circuit.tryPass()]).toEqual([true, false]);
  });

  test('a closed circuit starts with an empty policy', () => {
    const { circuit } = make();
    toHalfOpen(circuit);
    circuit.tryPass();
    circuit.success();
    circuit.failure();
    expect(circuit.state).toBe('closed');
  });

  test('a probe failure opens it again, reason `probe_failed`', () => {
    const { circuit, changes } = make();
    toHalfOpen(circuit);
    failProbe(circuit);
    expect([circuit.state, circuit.openUntil]).toEqual(['open', clock + 1000]);
    expect(changes.at(-1)).toEqual({ from: 'half-open', to: 'open', reason: 'probe_failed', openMs: 1000 });
  });

  test('one failing probe re-opens it even when others are still out', () => {
    const { circuit } = make({ halfOpenProbes: 2 });
    toHalfOpen(circuit);
    circuit.tryPass();
    circuit.tryPass();
    circuit.success();
    circuit.failure();
    expect(circuit.state).toBe('open');
  });

  test('release frees a probe slot without a verdict', () => {
    const { circuit, changes } = make();
    toHalfOpen(circuit);
    expect(circuit.tryPass()).toBe(true);
    circuit.release();
    expect([circuit.state, circuit.tryPass()]).toEqual(['half-open', true]);
    expect(changes.at(-1)?.to).toBe('half-open');
  });

  test('the outcomes of calls passed while closed decide nothing: the probe, still in flight, keeps its slot and decides', () => {
    const { circuit, changes } = make();
    const early = [circuit.pass(), circuit.pass(), circuit.pass()];
    toHalfOpen(circuit);
    const probe = circuit.pass();
    const seen = changes.length;
    // Before: the late success closed it (probe_succeeded) with the probe still out.
    circuit.success(early[0], 10);
    circuit.failure(early[1]);
    circuit.release(early[2]);
    // A stream's break after its first bytes' verdict: no probe's either.
    circuit.failure(JUDGED);
    circuit.release(JUDGED);
    expect([circuit.state, circuit.canPass(), changes.length]).toEqual(['half-open', false, seen]);
    circuit.success(probe, 10);
    expect(changes.at(-1)).toEqual({ from: 'half-open', to: 'closed', reason: 'probe_succeeded' });
  });

  test('a probe of an earlier half-open period decides nothing in the next', () => {
    const { circuit, changes } = make({ halfOpenProbes: 2 });
    toHalfOpen(circuit);
    const [a, b] = [circuit.pass(), circuit.pass()];
    circuit.failure(a);
    tick(circuit.openUntil! - clock);
    const [c, d] = [circuit.pass(), circuit.pass()];
    circuit.failure(b);
    circuit.release(b);
    expect([circuit.state, circuit.canPass()]).toEqual(['half-open', false]);
    circuit.success(c);
    circuit.success(d);
    expect(changes.at(-1)).toEqual({ from: 'half-open', to: 'closed', reason: 'probe_succeeded' });
  });

  test('an outcome with no probe in flight comes from an earlier call and is ignored', () => {
    const { circuit } = make();
    toHalfOpen(circuit);
    circuit.failure();
    circuit.success();
    expect([circuit.state, circuit.tryPass()]).toEqual(['half-open', true]);
  });
});

describe('closed: outcomes judged in the order their calls passed', () => {
  /** `n` calls let through at once; their tickets, in order. */
  function burst(circuit: Circuit, n: number): number[] {
    const tickets: number[] = [];
    for (let i = 0; i < n; i++) tickets.push(circuit.pass());
    return tickets;
  }

  test('a burst whose failures answer before its successes stays closed: a success between failures in the order they passed breaks their run', () => {
    const { circuit, changes } = make({ policy: { kind: 'consecutive', threshold: 3 } });
    // Passed S F S F F S F F S F; the failures answer first, then the successes.
    const tickets = burst(circuit, 10);
    const fails = [1, 3, 4, 6, 7, 9];
    for (const i of fails) circuit.failure(tickets[i]);
    expect([circuit.state, circuit.held]).toEqual(['closed', 6]);
    for (const i of [0, 2, 5, 8]) circuit.success(tickets[i], 300);
    expect([circuit.state, circuit.held, changes]).toEqual(['closed', 0, []]);
  });

  test('the same outcomes without tickets (judged as they come) open it at the third failure', () => {
    const { circuit } = make({ policy: { kind: 'consecutive', threshold: 3 } });
    burst(circuit, 10);
    for (let i = 0; i < 3; i++) circuit.failure();
    expect(circuit.state).toBe('open');
  });

  test('failures in a row in the order they passed open it at the threshold, whatever order they answer in', () => {
    const { circuit, changes } = make({ policy: { kind: 'consecutive', threshold: 3 } });
    const tickets = burst(circuit, 6);
    circuit.failure(tickets[1]);
    circuit.failure(tickets[2]);
    expect(circuit.state).toBe('closed');
    circuit.failure(tickets[0]);
    expect(circuit.state).toBe('open');
    expect(changes).toEqual([{ from: 'closed', to: 'open', reason: 'failures', openMs: 1000 }]);
  });

  test('a call that fails after every earlier one answered is judged at once: sequential failures open it at the threshold', () => {
    const { circuit } = make({ policy: { kind: 'consecutive', threshold: 5 } });
    for (let i = 0; i < 4; i++) circuit.failure(circuit.pass());
    expect(circuit.state).toBe('closed');
    circuit.failure(circuit.pass());
    expect([circuit.state, circuit.held]).toEqual(['open', 0]);
  });

  test('a release gives up its place: the failures behind it are judged', () => {
    const { circuit } = make({ policy: { kind: 'consecutive', threshold: 2 } });
    const [a, b, c] = burst(circuit, 3);
    circuit.failure(b);
    circuit.failure(c);
    expect([circuit.state, circuit.held]).toEqual(['closed', 2]);
    circuit.release(a);
    expect([circuit.state, circuit.held]).toEqual(['open', 0]);
  });

  test('a call in flight longer than the hold lets the failures behind it be judged: 5 s before any success', async () => {
    const { circuit, changes } = make({ policy: { kind: 'consecutive', threshold: 2 } });
    const [hung, b, c] = burst(circuit, 3);
    circuit.failure(b);
    circuit.failure(c);
    expect(vi.getTimerCount()).toBe(1);
    tick(4_999);
    await afterPoll();
    expect(circuit.state).toBe('closed');
    tick(1);
    // Judged once the sockets were read: an answer that came meanwhile (a blocked loop) is not let go as hung.
    expect(circuit.state).toBe('closed');
    await afterPoll();
    expect([circuit.state, circuit.held]).toEqual(['open', 0]);
    expect(changes).toEqual([{ from: 'closed', to: 'open', reason: 'failures', openMs: 1000 }]);
    // Its outcome, when it comes, is of a call before the open: ignored.
    circuit.success(hung, 6_000);
    expect(circuit.state).toBe('open');
  });

  // One success in 300 ms: 300 + 4 × 150 = 900 ms, held to 1 s at least; in 2 s: 2000 + 4 × 1000 = 6 s.
  test.each([
    [300, 1_000],
    [2_000, 6_000],
  ])('the hold follows the circuit\'s success times (average + 4 × deviation, at least 1 s): after a success in %i ms, %i ms', async (successMs, holdMs) => {
    const { circuit } = make({ policy: { kind: 'consecutive', threshold: 2 } });
    circuit.success(circuit.pass(), successMs);
    const [, b, c] = burst(circuit, 3);
    circuit.failure(b);
    circuit.failure(c);
    tick(holdMs - 1);
    await afterPoll();
    expect(circuit.state).toBe('closed');
    tick(1);
    await afterPoll();
    expect(circuit.state).toBe('open');
  });

  // Smoothed as TCP smooths round trips: after 2000 then 1000 ms, average 2000 + (1000 - 2000) / 8 = 1875 and deviation
  // 1000 + (|1000 - 2000| - 1000) / 4 = 1000, so the hold is 1875 + 4 × 1000 = 5875 ms.
  test('the hold follows later successes smoothed (gains 1/8 and 1/4): after 2000 then 1000 ms, 5875 ms', async () => {
    const { circuit } = make({ policy: { kind: 'consecutive', threshold: 2 } });
    circuit.success(circuit.pass(), 2_000);
    circuit.success(circuit.pass(), 1_000);
    const [, b, c] = burst(circuit, 3);
    circuit.failure(b);
    circuit.failure(c);
    tick(5_874);
    await afterPoll();
    expect(circuit.state).toBe('closed');
    tick(1);
    await afterPoll();
    expect(circuit.state).toBe('open');
  });

  test('a failure is judged at most two holds after it came: the calls passed after the timer was armed get their own hold', async () => {
    const { circuit } = make({ policy: { kind: 'consecutive', threshold: 2 } });
    const [, b] = burst(circuit, 2);
    circuit.failure(b);
    // Armed now (a 5 s hold), for the calls in flight now.
    tick(2_000);
    const [hung, d] = burst(circuit, 2);
    circuit.failure(d);
    tick(3_000);
    await afterPoll();
    // The first call is let go: b is judged (one failure); d still waits for `hung`, in flight for 3 s only.
    expect([circuit.state, circuit.held]).toEqual(['closed', 1]);
    tick(5_000);
    await afterPoll();
    expect([circuit.state, circuit.held]).toEqual(['open', 0]);
    expect(hung).toBeGreaterThan(b!);
  });

  test('no timer runs while no failure is held; opening drops what is held and stops it', () => {
    const { circuit } = make({ policy: { kind: 'consecutive', threshold: 2 } });
    const tickets = burst(circuit, 4);
    circuit.success(tickets[1], 100);
    circuit.success(tickets[2], 100);
    expect(vi.getTimerCount()).toBe(0);
    circuit.failure(tickets[3]);
    expect(vi.getTimerCount()).toBe(1);
    circuit.forceOpen();
    // The open timer only.
    expect([circuit.held, vi.getTimerCount()]).toEqual([0, 1]);
  });

  test('dispose judges what is held now (as if the calls in flight had gone) and stops the hold timer; later outcomes are judged as they come', () => {
    const { circuit } = make({ policy: { kind: 'consecutive', threshold: 2 } });
    const [a, b, c, d] = burst(circuit, 4);
    circuit.failure(b);
    expect(vi.getTimerCount()).toBe(1);
    circuit.dispose();
    expect([circuit.state, circuit.held, vi.getTimerCount()]).toEqual(['closed', 0, 0]);
    circuit.failure(d);
    expect(circuit.state).toBe('open');
    circuit.success(a, 10);
    circuit.release(c);
    expect([circuit.state, vi.getTimerCount()]).toEqual(['open', 0]);
  });

  test('an outcome far behind the oldest call in flight (16 384 calls) lets that call go: memory stays bounded', () => {
    const { circuit } = make({ policy: { kind: 'consecutive', threshold: 2 } });
    const tickets = burst(circuit, 20_000);
    circuit.failure(tickets[1]);
    circuit.success(tickets[2], 10);
    circuit.failure(tickets[19_999]);
    // Tickets 0 to 3 615 let go: the failure at 1 and the success at 2 judged; the last failure still held.
    expect([circuit.state, circuit.held]).toEqual(['closed', 1]);
  });

  test('just closed from half-open, the crowd that waited goes at once: its fast failures answering before its successes do not open it', () => {
    const { circuit } = make({ policy: { kind: 'consecutive', threshold: 3 } });
    toHalfOpen(circuit);
    const probe = circuit.pass();
    expect(probe).toBeLessThan(REFUSED);
    circuit.success(probe, 300);
    expect(circuit.state).toBe('closed');
    const crowd = burst(circuit, 10);
    for (const i of [1, 2, 3, 4, 6, 7, 8, 9]) circuit.failure(crowd[i]);
    expect(circuit.state).toBe('closed');
    circuit.success(crowd[0], 300);
    circuit.success(crowd[5], 300);
    // Passed S F F F F S F F F F: the first run of four opens it, at the third, as soon as the first success is in.
    expect(circuit.state).toBe('open');
  });

  test('a crowd that all fails (the provider is still down) opens it at the threshold, not at its last failure', () => {
    const { circuit, changes } = make({ policy: { kind: 'consecutive', threshold: 3 } });
    toHalfOpen(circuit);
    circuit.pass();
    circuit.success();
    const crowd = burst(circuit, 6);
    for (let i = 0; i < 3; i++) circuit.failure(crowd[i]);
    expect(circuit.state).toBe('open');
    expect(changes.at(-1)).toMatchObject({ from: 'closed', to: 'open', reason: 'failures' });
  });

  test('a close by hand: failures in a row open it at once', () => {
    const { circuit } = make({ policy: { kind: 'consecutive', threshold: 2 } });
    circuit.forceOpen();
    circuit.forceClose();
    const tickets = burst(circuit, 4);
    circuit.failure(tickets[0]);
    circuit.failure(tickets[1]);
    expect(circuit.state).toBe('open');
  });

  test('pass() refuses while open and gives each half-open period\'s probes a ticket of their own', () => {
    const { circuit } = make();
    trip(circuit);
    expect(circuit.pass()).toBe(REFUSED);
    tick(1000);
    const first = circuit.pass();
    expect(circuit.pass()).toBe(REFUSED);
    circuit.failure(first);
    tick(1000);
    const second = circuit.pass();
    expect([first < REFUSED, second < REFUSED, second !== first, second !== NO_TICKET]).toEqual([true, true, true, true]);
  });
});

describe('manual transitions', () => {
  test('forceOpen opens a closed circuit for the given time, reason `manual`', () => {
    const { circuit, changes } = make();
    circuit.forceOpen(5000);
    expect([circuit.state, circuit.openUntil]).toEqual(['open', clock + 5000]);
    expect(changes).toEqual([{ from: 'closed', to: 'open', reason: 'manual', openMs: 5000 }]);
  });

  test('forceOpen on an open circuit moves the end of its open time, with no event', () => {
    const { circuit, changes } = make();
    trip(circuit);
    circuit.forceOpen(3000);
    tick(2999);
    expect([circuit.state, changes.length]).toEqual(['open', 1]);
    tick(1);
    expect(circuit.state).toBe('half-open');
  });

  test('forceClose closes an open circuit, reason `manual`', () => {
    const { circuit, changes } = make();
    trip(circuit);
    circuit.forceClose();
    expect([circuit.state, vi.getTimerCount()]).toEqual(['closed', 0]);
    expect(changes.at(-1)).toEqual({ from: 'open', to: 'closed', reason: 'manual' });
  });
});

describe('snapshots', () => {
  /** Steps applied to both circuits after the restore; their results must match. */
  function script(circuit: Circuit, changes: CircuitChange[]): unknown[] {
    const seen: unknown[] = [];
    const from = changes.length;
    for (const step of ['tryPass', 'failure', 'tryPass', 'success', 'tryPass', 'failure', 'failure', 'tryPass'] as const) {
      seen.push(step === 'tryPass' ? circuit.tryPass() : circuit[step]());
      seen.push(circuit.state, circuit.openUntil);
      tick(700);
    }
    return [seen, changes.slice(from)];
  }

  test.each<{ name: string; setup: (c: Circuit) => void }>([
    { name: 'closed with a failure remembered', setup: (c) => c.failure() },
    { name: 'open', setup: (c) => trip(c) },
    {
      name: 'open after a failed probe (backoff)',
      setup: (c) => {
        toHalfOpen(c);
        failProbe(c);
      },
    },
    {
      name: 'half-open with one probe of two succeeded',
      setup: (c) => {
        toHalfOpen(c);
        c.tryPass();
        c.success();
      },
    },
  ])('$name: JSON → restore into a fresh circuit behaves the same', ({ setup }) => {
    const options = { maxOpenMs: 8000, halfOpenProbes: 2 };
    const a = make(options);
    setup(a.circuit);
    const snapshot = JSON.parse(JSON.stringify(a.circuit)) as CircuitSnapshot;
    const start = clock;
    const expected = script(a.circuit, a.changes);
    a.circuit.dispose();
    clock = start;
    const b = make(options);
    b.circuit.restore(snapshot);
    expect(b.circuit.toJSON()).toEqual(snapshot);
    expect(script(b.circuit, b.changes)).toEqual(expected);
  });

  test('a snapshot is JSON-safe and carries the policy state', () => {
    const { circuit } = make();
    circuit.failure();
    expect(JSON.parse(JSON.stringify(circuit))).toEqual({
      state: 'closed',
      reopens: 0,
      probesSucceeded: 0,
      policy: { kind: 'consecutive', failures: 1 },
    });
  });

  test('a restore that changes the state is reported, reason `restored`', () => {
    const { circuit, changes } = make();
    circuit.restore({ state: 'open', openUntil: clock + 400, reopens: 0, probesSucceeded: 0, policy: { kind: 'consecutive', failures: 0 } });
    expect(changes).toEqual([{ from: 'closed', to: 'open', reason: 'restored', openMs: 400 }]);
  });

  test('a restore into the same state is not reported', () => {
    const { circuit, changes } = make();
    circuit.restore({ state: 'closed', reopens: 0, probesSucceeded: 0, policy: { kind: 'consecutive', failures: 1 } });
    expect(changes).toEqual([]);
  });

  test('a restored open circuit arms its timer for the time left', () => {
    const { circuit } = make();
    circuit.restore({ state: 'open', openUntil: clock + 400, reopens: 0, probesSucceeded: 0, policy: { kind: 'consecutive', failures: 0 } });
    tick(399);
    expect(circuit.state).toBe('open');
    tick(1);
    expect(circuit.state).toBe('half-open');
  });

  test('a probe in flight keeps its slot through a restore that stays half-open', () => {
    const { circuit } = make();
    toHalfOpen(circuit);
    circuit.tryPass();
    circuit.restore({ state: 'half-open', reopens: 0, probesSucceeded: 0, policy: { kind: 'consecutive', failures: 0 } });
    expect(circuit.tryPass()).toBe(false);
    circuit.success();
    expect(circuit.state).toBe('closed');
  });

  test.each<{ name: string; snapshot: unknown }>([
    { name: 'not an object', snapshot: 'open' },
    { name: 'an unknown state', snapshot: { state: 'ajar', reopens: 0, probesSucceeded: 0, policy: { kind: 'consecutive', failures: 0 } } },
    { name: 'open with no openUntil', snapshot: { state: 'open', reopens: 0, probesSucceeded: 0, policy: { kind: 'consecutive', failures: 0 } } },
    { name: 'negative reopens', snapshot: { state: 'closed', reopens: -1, probesSucceeded: 0, policy: { kind: 'consecutive', failures: 0 } } },
    { name: 'another policy’s state', snapshot: { state: 'open', openUntil: 1, reopens: 0, probesSucceeded: 0, policy: { kind: 'count', samples: [] } } },
  ])('$name is refused with a TypeError, changing nothing', ({ snapshot }) => {
    const { circuit, changes } = make();
    circuit.failure();
    const before = circuit.toJSON();
    expect(() => circuit.restore(snapshot as CircuitSnapshot)).toThrow(TypeError);
    expect([circuit.toJSON(), changes]).toEqual([before, []]);
  });
});

describe('onChange', () => {
  test('gets the circuit with each change, so that one listener can serve many circuits', () => {
    const seen: [string, Circuit][] = [];
    const onChange = (change: { to: string }, circuit: Circuit) => seen.push([change.to, circuit]);
    const first = new Circuit({ policy: { kind: 'consecutive', threshold: 1 }, openMs: 1000 }, onChange, now);
    const second = new Circuit({ policy: { kind: 'consecutive', threshold: 1 }, openMs: 1000 }, onChange, now);
    second.failure();
    first.failure();
    expect(seen).toEqual([
      ['open', second],
      ['open', first],
    ]);
    expect(seen[0]![1]).toBe(second);
  });

  test('a throwing onChange does not stop the circuit cycling', () => {
    const onChange = vi.fn(() => {
      throw new Error('listener bug');
    });
    const circuit = new Circuit({ policy: { kind: 'consecutive', threshold: 1 }, openMs: 1000 }, onChange, now);
    circuit.failure();
    tick(1000);
    circuit.tryPass();
    circuit.success();
    expect(circuit.state).toBe('closed');
    expect(onChange).toHaveBeenCalledTimes(3);
  });

  test('sees the circuit already in its new state', () => {
    const seen: string[] = [];
    const circuit: Circuit = new Circuit({ policy: { kind: 'consecutive', threshold: 1 } }, (c) => seen.push(`${c.to}=${circuit.state}`), now);
    circuit.failure();
    expect(seen).toEqual(['open=open']);
  });
});

describe('options', () => {
  test('defaults: 5 failures in a row, 30 s open, one probe, no backoff', () => {
    const circuit = new Circuit({}, () => {}, now);
    expect([circuit.openMs, circuit.halfOpenProbes, circuit.maxOpenMs]).toEqual([30_000, 1, undefined]);
    for (let i = 0; i < 4; i++) circuit.failure();
    expect(circuit.state).toBe('closed');
    circuit.failure();
    expect(circuit.openUntil).toBe(clock + 30_000);
  });

  test('a custom policy factory makes one policy per circuit', () => {
    const factory = vi.fn((): BreakerPolicy => new ConsecutiveBreaker({ threshold: 1 }));
    const a = new Circuit({ policy: factory }, () => {}, now);
    new Circuit({ policy: factory }, () => {}, now);
    a.failure();
    expect([factory.mock.calls.length, a.state]).toEqual([2, 'open']);
  });

  test.each<{ options: unknown; error: typeof TypeError | typeof RangeError; field: string }>([
    { options: { openMs: 0 }, error: RangeError, field: 'openMs' },
    { options: { openMs: Number.POSITIVE_INFINITY }, error: RangeError, field: 'openMs' },
    { options: { openMs: '1000' }, error: TypeError, field: 'openMs' },
    { options: { openMs: 1000, maxOpenMs: 999 }, error: RangeError, field: 'maxOpenMs' },
    { options: { halfOpenProbes: 0 }, error: RangeError, field: 'halfOpenProbes' },
    { options: { halfOpenProbes: 1.5 }, error: RangeError, field: 'halfOpenProbes' },
    { options: { policy: 'rolling' }, error: TypeError, field: 'policy' },
    { options: { policy: { kind: 'count', size: 0 } }, error: RangeError, field: 'policy.size' },
    { options: { policy: () => ({}) }, error: TypeError, field: 'policy' },
    { options: { openMS: 1000 }, error: TypeError, field: 'openMS' },
    { options: [], error: TypeError, field: 'Invalid circuit option: expected an options object' },
  ])('$options → $error.name naming $field', ({ options, error, field }) => {
    const create = () => new Circuit(options as CircuitOptions, () => {}, now);
    expect(create).toThrow(error);
    expect(create).toThrow(field.startsWith('Invalid') ? field : `\`${field}\``);
  });

  test('forceOpen refuses a bad open time', () => {
    const { circuit } = make();
    expect(() => circuit.forceOpen(-5)).toThrow(RangeError);
  });
});

describe('circuits of a family (one per key)', () => {
  test('the default consecutive policy counts as before though it is made at the first failure and dropped at each reset', () => {
    const changes: CircuitChange[] = [];
    const make = Circuit.family({ policy: { kind: 'consecutive', threshold: 3 }, openMs: 1000 }, (c) => changes.push(c), now);
    const circuit = make();
    circuit.success();
    expect(circuit.toJSON()).toEqual({ state: 'closed', reopens: 0, probesSucceeded: 0, policy: { kind: 'consecutive', failures: 0 } });
    circuit.failure();
    circuit.failure();
    expect(circuit.toJSON().policy).toEqual({ kind: 'consecutive', failures: 2 });
    circuit.success();
    circuit.failure();
    circuit.failure();
    expect(circuit.state).toBe('closed');
    circuit.failure();
    expect(circuit.state).toBe('open');
    tick(1000);
    expect(circuit.tryPass()).toBe(true);
    circuit.success();
    expect(circuit.toJSON()).toEqual({ state: 'closed', reopens: 0, probesSucceeded: 0, policy: { kind: 'consecutive', failures: 0 } });
    circuit.failure();
    circuit.failure();
    expect(circuit.state).toBe('closed');
    expect(changes.map((c) => `${c.to}:${c.reason}`)).toEqual(['open:failures', 'half-open:open_elapsed', 'closed:probe_succeeded']);
  });

  test('a bad consecutive spec fails when the family is made, not at the first failure', () => {
    expect(() => Circuit.family({ policy: { kind: 'consecutive', threshold: 0 } }, () => {}, now)).toThrow(RangeError);
  });

  test('a circuit disposed before it ever opened starts no timer when forced open later', () => {
    const circuit = Circuit.family({ openMs: 1000 }, () => {}, now)();
    circuit.dispose();
    circuit.forceOpen();
    expect(vi.getTimerCount()).toBe(0);
    tick(1000);
    expect(circuit.canPass()).toBe(true);
    expect(circuit.state).toBe('half-open');
  });

  test('the owner set by whoever made the circuit reaches the shared listener', () => {
    const seen: unknown[] = [];
    const make = Circuit.family({ openMs: 1000 }, (_c, circuit) => seen.push(circuit.owner), now);
    const a = make();
    a.owner = 'key-a';
    make().forceOpen();
    a.forceOpen();
    expect(seen).toEqual([undefined, 'key-a']);
  });
});
