/**
 * A background response (`responses.create({ background: true })`) answers at
 * once, queued and without usage; its usage comes with the terminal status
 * the app polls for (`responses.retrieve`), cancels to (`responses.cancel`)
 * or streams to. Its real cost counts once, when this manager first sees
 * that, against the create's budgets and in `stats()`; later reads of it
 * spend nothing.
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import { getKeyplexDetails, keyplex } from '../../src/index';
import type { RedisStore } from '../../src/store/redis';
import { redisForSuite } from '../support/redis';
import { storePairKinds } from '../support/store-pairs';
import { backgroundResponse, cutSseReply, gate, namedSseReply, provider, responsesEvents, type BackgroundStatus, type NamedEvent, type UpstreamCall, type UsageCounts } from '../support/upstream';
import '../support/setup';
import { record } from '../support/events';
import { spendingManagers } from '../support/managers';

const OPENAI = 'https://api.openai.test/v1';
/** 100,000 input + 1,000,000 output tokens of gpt-4.1 (2 / 8 USD per million): 8.2 USD. */
const USAGE = { prompt: 100_000, completion: 1_000_000 };
const RUN_USD = 8.2;
const BODY = { model: 'gpt-4.1', input: 'research this', background: true } as const;

const redis = redisForSuite('background responses on RedisStores');
const stores: RedisStore[] = [];
// Registered before the managers' own: run after it (hooks run as a stack), so managers close before their stores.
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});
const manage = spendingManagers(OPENAI);

/** A background response of gpt-4.1, `id`, in `status`, with {@link USAGE} once terminal (`usage` overrides). */
function background(id: string, status: BackgroundStatus, usage: UsageCounts | null = status === 'queued' || status === 'in_progress' ? null : USAGE) {
  return backgroundResponse('gpt-4.1', id, status, usage);
}

/**
 * An upstream running background responses: a create answers queued, each
 * `GET /responses/{id}` moves it on (in progress until its `donePolls`-th poll,
 * completed from then on), a cancel answers cancelled with what it used.
 */
function backgroundUpstream(donePolls = 3): UpstreamCall[] {
  const polls = new Map<string, number>();
  let made = 0;
  return provider(OPENAI, (call) => {
    if (call.method === 'POST' && call.path === '/responses') return Response.json(background(`resp_bg${++made}`, 'queued'));
    const [, id, action] = /^\/responses\/([^/?]+)(?:\/(\w+))?/.exec(call.path) ?? [];
    if (id === undefined) return Response.json({ error: { message: 'no such path' } }, { status: 404 });
    if (action === 'cancel') return Response.json(background(id, 'cancelled', { prompt: 100_000, completion: 250_000 }));
    const poll = (polls.get(id) ?? 0) + 1;
    polls.set(id, poll);
    return Response.json(background(id, poll >= donePolls ? 'completed' : 'in_progress'));
  });
}

/** The SSE events of background response `id`: created, `words`, then completed with {@link USAGE}. */
function backgroundEvents(id: string, words: string[]): NamedEvent[] {
  return responsesEvents('gpt-4.1', words, USAGE).map(({ event, data }) => {
    const response = (data as { response?: Record<string, unknown> }).response;
    return { event, data: response === undefined ? data : { ...data, response: { ...response, id, background: true } } };
  });
}

describe('a background response counts its real cost once', () => {
  test('polled to completion: stats and a budget count its reported usage cost, once (3 polls after completion add nothing)', async () => {
    backgroundUpstream(3);
    const { client, manager, spent } = manage();

    const created = await client.responses.create(BODY);
    expect(created.status).toBe('queued');
    for (let poll = 0; poll < 3; poll++) await client.responses.retrieve(created.id);
    const settled = spent();
    for (let poll = 0; poll < 3; poll++) await client.responses.retrieve(created.id);

    // Was: 0 USD in stats and the estimate (about 0.002 USD) in the budget, whatever the run used.
    expect(settled).toEqual({ costUsd: RUN_USD, budgetUsd: RUN_USD, outputTokens: 1_000_000 });
    expect(spent()).toEqual(settled);
    const stats = manager.stats();
    const openai = stats.providers.openai!;
    expect([stats.models['gpt-4.1']!.costUsd, openai.costUsd, openai.keys[0]!.costUsd, stats.deployments[0]!.costUsd]).toEqual([RUN_USD, RUN_USD, RUN_USD, RUN_USD]);
  });

  test('the budget refuses the next request once a completed background response used it up', async () => {
    backgroundUpstream(1);
    const { client, manager } = manage({ budgets: [{ scope: { overall: true }, limitUsd: 5, window: 'day' }] });
    const exceeded = record(manager, 'budget:exceeded');

    const created = await client.responses.create(BODY);
    await client.responses.retrieve(created.id);
    const next = await client.responses.create(BODY).then(
      () => 'sent',
      (error: unknown) => getKeyplexDetails(error)?.code,
    );

    // Was: 'sent' (the budget had counted the estimate only).
    expect(next).toBe('budget_exceeded');
    expect(exceeded.map((e) => [e.budget, e.spentUsd])).toEqual([['overall/day', RUN_USD]]);
  });

  test('responses.cancel: what the cancelled run used counts once', async () => {
    backgroundUpstream(10);
    const { client, spent } = manage();

    const created = await client.responses.create(BODY);
    await client.responses.retrieve(created.id);
    await client.responses.cancel(created.id);
    await client.responses.cancel(created.id);

    // 100,000 input + 250,000 output tokens: 0.2 + 2 USD. Was: 0 in stats, the estimate in the budget.
    expect(spent()).toEqual({ costUsd: 2.2, budgetUsd: 2.2, outputTokens: 250_000 });
  });

  test('its cost counts against the create\'s tag and key budgets, not the poll\'s', async () => {
    backgroundUpstream(1);
    const { client, manager } = manage({
      budgets: [
        { scope: { tag: 'research' }, limitUsd: 100, window: 'day' },
        { scope: { provider: 'openai' }, limitUsd: 100, window: 'day' },
        { scope: { tag: 'polling' }, limitUsd: 100, window: 'day' },
      ],
    });

    const created = await client.responses.create(BODY, keyplex.options({ tags: ['research'] }));
    await client.responses.retrieve(created.id, undefined, keyplex.options({ tags: ['polling'] }));

    const spentBy = Object.fromEntries(manager.stats().budgets.map((b) => [b.id, b.spentUsd]));
    // Was: the estimate (about 0.002 USD) on the first two, 0 on the third.
    expect(spentBy).toEqual({ 'tag:research/day': RUN_USD, 'provider:openai/day': RUN_USD, 'tag:polling/day': 0 });
  });

  test('background:settled names the create, with what the run added', async () => {
    backgroundUpstream(2);
    const { client, manager } = manage();
    const settled = record(manager, 'background:settled');
    const successes = record(manager, 'success');

    const created = await client.responses.create(BODY, keyplex.options({ tags: ['research'], metadata: { team: 'a' } }));
    for (let poll = 0; poll < 4; poll++) await client.responses.retrieve(created.id);

    expect(settled).toHaveLength(1);
    expect(settled[0]).toMatchObject({
      requestId: successes[0]!.requestId,
      tags: ['research'],
      metadata: { team: 'a' },
      responseId: created.id,
      provider: 'openai',
      keyId: successes[0]!.keyId,
      model: 'gpt-4.1',
      costUsd: RUN_USD,
      usage: { inputTokens: 100_000, outputTokens: 1_000_000 },
    });
    // The create's own success said nothing of it; the polls neither (they read what was made).
    expect(successes.map((s) => s.costUsd)).toEqual([null, null, null, null, null]);
  });

  test('a background stream read to its end counts once, at its reported usage; a retrieve after adds nothing', async () => {
    provider(OPENAI, (call) => (call.method === 'POST' ? namedSseReply(backgroundEvents('resp_s1', ['a', 'b'])) : Response.json(background('resp_s1', 'completed'))));
    const { client, manager, spent } = manage();
    const settled = record(manager, 'background:settled');

    const stream = await client.responses.create({ ...BODY, stream: true });
    for await (const _ of stream);
    await client.responses.retrieve('resp_s1');

    expect(spent()).toEqual({ costUsd: RUN_USD, budgetUsd: RUN_USD, outputTokens: 1_000_000 });
    expect(settled).toHaveLength(0);
  });

  test('a background stream left early and resumed (retrieve with stream: true) counts its real cost once', async () => {
    const cut = gate();
    provider(OPENAI, (_call, index) => (index === 0 ? cutSseReply(backgroundEvents('resp_s2', ['a', 'b']), { after: 2, gate: cut.promise }) : namedSseReply(backgroundEvents('resp_s2', ['a', 'b']))));
    const { client, spent } = manage();

    const stream = await client.responses.create({ ...BODY, stream: true });
    for await (const event of stream) if (event.type === 'response.output_text.delta') break;
    cut.open();
    const left = spent();
    for (let read = 0; read < 2; read++) {
      const resumed = await client.responses.retrieve('resp_s2', { stream: true });
      for await (const _ of resumed);
    }

    // What was streamed before the caller left is counted then (an estimate, flagged partial); the rest when the resumed stream ends.
    expect(left.costUsd).toBeGreaterThan(0);
    expect(left.costUsd).toBeLessThan(0.01);
    // Was: the partial figures only.
    expect(spent()).toEqual({ costUsd: RUN_USD, budgetUsd: RUN_USD, outputTokens: 1_000_000 });
  });

  test('a background stream the upstream cut, then polled to completion, counts its real cost once', async () => {
    const cut = gate();
    provider(OPENAI, (call) => (call.method === 'POST' ? cutSseReply(backgroundEvents('resp_s3', ['a', 'b']), { after: 2, gate: cut.promise }) : Response.json(background('resp_s3', 'completed'))));
    const { client, spent } = manage();

    const stream = await client.responses.create({ ...BODY, stream: true });
    await expect(async () => {
      for await (const _ of stream) cut.open();
    }).rejects.toThrow(/stream/);
    for (let poll = 0; poll < 3; poll++) await client.responses.retrieve('resp_s3');

    // Was: the partial figures only.
    expect(spent()).toEqual({ costUsd: RUN_USD, budgetUsd: RUN_USD, outputTokens: 1_000_000 });
  });

  test('a run this manager did not create (another replica\'s, or forgotten) spends nothing when polled', async () => {
    backgroundUpstream(1);
    const { client, spent } = manage();

    await client.responses.retrieve('resp_elsewhere');

    expect(spent()).toEqual({ costUsd: 0, budgetUsd: 0, outputTokens: 0 });
  });

  test('past maxIds, the oldest run is forgotten: its completion spends nothing more', async () => {
    backgroundUpstream(1);
    const { client, spent } = manage({ affinity: { maxIds: 1 } });

    const first = await client.responses.create(BODY);
    const second = await client.responses.create(BODY);
    await client.responses.retrieve(first.id);
    const afterFirst = spent().costUsd;
    await client.responses.retrieve(second.id);

    expect(afterFirst).toBe(0);
    expect(spent().costUsd).toBe(RUN_USD);
  });

  test('a poll that reports usage while the run is still in progress counts nothing until a terminal status', async () => {
    let polls = 0;
    provider(OPENAI, (call) => {
      if (call.method === 'POST') return Response.json(background('resp_p', 'queued'));
      polls++;
      return Response.json(polls === 1 ? background('resp_p', 'in_progress', { prompt: 100_000, completion: 10 }) : background('resp_p', 'completed'));
    });
    const { client, spent } = manage();

    await client.responses.create(BODY);
    await client.responses.retrieve('resp_p');
    const early = spent().costUsd;
    await client.responses.retrieve('resp_p');

    expect(early).toBe(0);
    expect(spent()).toEqual({ costUsd: RUN_USD, budgetUsd: RUN_USD, outputTokens: 1_000_000 });
  });

  test('with object affinity off, a background run is still remembered and counted', async () => {
    backgroundUpstream(1);
    const { client, spent } = manage({ affinity: false });

    const created = await client.responses.create(BODY);
    await client.responses.retrieve(created.id);

    expect(spent()).toEqual({ costUsd: RUN_USD, budgetUsd: RUN_USD, outputTokens: 1_000_000 });
  });
});

describe.each(storePairKinds(redis, (store) => stores.push(store)))('replicas on $name', ({ available, stores: pair }) => {
  test('a poll through a replica that did not create the run spends nothing; through its creator the run counts once, and the store carries that spend to the other', async () => {
    if (!available) return;
    backgroundUpstream(1);
    const [storeA, storeB] = await pair();
    const creator = manage({ store: storeA });
    const other = manage({ store: storeB });

    const created = await creator.client.responses.create(BODY);
    await other.client.responses.retrieve(created.id);
    const throughOther = other.spent();
    await creator.client.responses.retrieve(created.id);
    await other.client.responses.retrieve(created.id);

    // Per manager: the replica that did not create it knows nothing of it.
    expect(throughOther.costUsd).toBe(0);
    expect(throughOther.budgetUsd).toBeLessThan(0.01);
    expect(creator.spent()).toEqual({ costUsd: RUN_USD, budgetUsd: RUN_USD, outputTokens: 1_000_000 });
    // Spend recorded is shared as any (Redis publishes it: waited for).
    await vi.waitFor(() => expect(other.spent().budgetUsd).toBe(RUN_USD), { timeout: 5_000 });
  });
});
