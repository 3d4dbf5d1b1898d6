/** `hooks`: request/response hooks (src/hooks/). */
import { ConfigError } from '../../errors';
import type { ResolvedHook, ResolvedHooks } from '../../hooks/types';
import { checkFields, describe, describeType, isPlainObject, own } from '../check';

const POINTS = { beforeAttempt: ['json'], afterResponse: ['json', 'text'] } as const;

function resolveList<H>(raw: unknown, point: keyof typeof POINTS): ResolvedHook<H>[] | undefined {
  if (raw === undefined) return undefined;
  const list = Array.isArray(raw) ? raw : [raw];
  const bodies: readonly string[] = POINTS[point];
  const resolved = list.map((entry: unknown, i): ResolvedHook<H> => {
    const name = `${point}[${i}]`;
    const field = Array.isArray(raw) ? `hooks.${name}` : `hooks.${point}`;
    if (typeof entry === 'function') return { run: entry as H, body: undefined, name };
    if (!isPlainObject(entry)) throw new ConfigError(field, `expected a function, or an object { run, body? }; got ${describeType(entry)}`);
    checkFields(entry, ['run', 'body'], field, 'hook field');
    const run = own(entry, 'run');
    if (typeof run !== 'function') throw new ConfigError(`${field}.run`, `expected the hook function; got ${describeType(run)}`);
    const body = own(entry, 'body');
    if (body !== undefined && (typeof body !== 'string' || !bodies.includes(body))) {
      throw new ConfigError(`${field}.body`, `expected ${bodies.map((b) => `'${b}'`).join(' or ')} (or leave it out: no body); got ${describe(body)}`);
    }
    return { run: run as H, body: body as ResolvedHook<H>['body'], name };
  });
  return resolved.length === 0 ? undefined : resolved;
}

/** `hooks`, or `undefined` when none is installed (then the request path skips them at no cost). */
export function resolveHooks(raw: unknown): ResolvedHooks | undefined {
  if (raw === undefined) return undefined;
  if (!isPlainObject(raw)) throw new ConfigError('hooks', `expected an object { beforeAttempt?, afterResponse? }; got ${describeType(raw)}`);
  checkFields(raw, Object.keys(POINTS), 'hooks', 'hook point');
  const beforeAttempt = resolveList<NonNullable<ResolvedHooks['beforeAttempt']>[number]['run']>(own(raw, 'beforeAttempt'), 'beforeAttempt');
  const afterResponse = resolveList<NonNullable<ResolvedHooks['afterResponse']>[number]['run']>(own(raw, 'afterResponse'), 'afterResponse');
  if (!beforeAttempt && !afterResponse) return undefined;
  return {
    beforeAttempt,
    afterResponse,
    beforeBody: beforeAttempt?.some((h) => h.body === 'json') ?? false,
    afterBody: afterResponse?.some((h) => h.body !== undefined) ?? false,
  };
}
