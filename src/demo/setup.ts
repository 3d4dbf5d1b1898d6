/**
 * The demo's simulated world: four providers serving the classic four models
 * at their list prices, plus a gateway serving all of them, each with several
 * keys, per-key rate limits and injected faults.
 */
import { randomBytes } from 'node:crypto';
import type { KeyManagerOptions } from '../index';
import type { SimProviderOptions } from '../testing/index';

export const DEMO_MODELS = ['gpt-4.1', 'claude-sonnet-4.5', 'gemini-2.5-flash', 'deepseek-v3.2'] as const;

interface WorldProvider {
  id: string;
  /** Public model name → the provider's own name for it. */
  models: Record<string, string>;
  keys: number;
  latency: { medianMs: number; p99Ms: number };
}

const WORLD: WorldProvider[] = [
  { id: 'openai', models: { 'gpt-4.1': 'gpt-4.1' }, keys: 4, latency: { medianMs: 45, p99Ms: 300 } },
  { id: 'anthropic', models: { 'claude-sonnet-4.5': 'claude-sonnet-4-5' }, keys: 3, latency: { medianMs: 60, p99Ms: 380 } },
  { id: 'google', models: { 'gemini-2.5-flash': 'gemini-2.5-flash' }, keys: 3, latency: { medianMs: 35, p99Ms: 250 } },
  { id: 'deepseek', models: { 'deepseek-v3.2': 'deepseek-chat' }, keys: 3, latency: { medianMs: 70, p99Ms: 450 } },
  {
    id: 'gateway',
    models: { 'gpt-4.1': 'openai/gpt-4.1', 'claude-sonnet-4.5': 'anthropic/claude-sonnet-4.5', 'gemini-2.5-flash': 'google/gemini-2.5-flash', 'deepseek-v3.2': 'deepseek/deepseek-v3.2' },
    keys: 3,
    latency: { medianMs: 55, p99Ms: 350 },
  },
];

export interface DemoWorld {
  simulator: SimProviderOptions[];
  /** keyplex's providers, with `baseURL` filled in by `withBaseURLs`. */
  keyplex: (baseURL: (id: string) => string) => KeyManagerOptions['providers'];
  /** The single key of the baseline run, and where it goes. */
  single: { provider: string; key: string };
  /** Public model name → the gateway's name for it. */
  gatewayModels: Record<string, string>;
}

/** Fake keys, new each run: nothing real-looking is ever in the repo. */
function fakeKeys(provider: string, count: number): string[] {
  return Array.from({ length: count }, () => `sim-${provider}-${randomBytes(10).toString('hex')}`);
}

/** With `outage`: the provider that goes down, and which of its requests (0-based, in order of arrival) answer 503. */
export const OUTAGE = { provider: 'anthropic', from: 30, count: 150 } as const;

/** The outage in words, for the demo's header and report. */
export const OUTAGE_TEXT = `Outage: ${OUTAGE.provider} answers 503 to its requests ${OUTAGE.from + 1} to ${OUTAGE.from + OUTAGE.count}.`;

/**
 * The world for a run: `rpm` per key, `faults` the injected failure rate
 * (half server errors, half connection resets). The last OpenAI key is
 * revoked, to show a key being retired. With `outage`, Anthropic answers 503
 * to its requests {@link OUTAGE}`.from` to `from + count - 1`, as in a
 * provider outage: its circuits open and its model moves to the gateway.
 */
export function demoWorld(rpm: number, faults: number, latencyScale = 1, outage = false): DemoWorld {
  const scaled = (ms: number) => Math.round(ms * latencyScale);
  const keys = new Map(WORLD.map((p) => [p.id, fakeKeys(p.id, p.keys)]));
  const simulator: SimProviderOptions[] = WORLD.map((p) => ({
    id: p.id,
    keys: keys.get(p.id)!.map((key, i) => (p.id === 'openai' && i === p.keys - 1 ? { key, revoked: true } : key)),
    models: Object.values(p.models),
    rpm,
    latency: { medianMs: scaled(p.latency.medianMs), p99Ms: scaled(p.latency.p99Ms) },
    ttft: { medianMs: scaled(p.latency.medianMs / 2), p99Ms: scaled(p.latency.p99Ms / 2) },
    faults: [
      ...(outage && p.id === OUTAGE.provider ? [{ kind: 'outage' as const, requests: Array.from({ length: OUTAGE.count }, (_, i) => OUTAGE.from + i) }] : []),
      ...(faults > 0
        ? [
            { kind: 'server_error' as const, probability: faults / 2, status: 503 },
            { kind: 'reset' as const, probability: faults / 2 },
          ]
        : []),
    ],
  }));
  return {
    simulator,
    keyplex: (baseURL) =>
      Object.fromEntries(
        WORLD.map((p) => [
          p.id,
          { baseURL: baseURL(p.id), keys: keys.get(p.id)!.map((key, i) => ({ key, id: `${p.id}-${i + 1}` })), models: p.models },
        ]),
      ),
    single: { provider: 'gateway', key: keys.get('gateway')![0]! },
    gatewayModels: WORLD.find((p) => p.id === 'gateway')!.models,
  };
}
