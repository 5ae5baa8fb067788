import { expect } from 'chai';
import Type from 'typebox';
import { WorkerError } from './errors.ts';
import { HandlerError, HandlerRegistry, builtinHandlers, evaluateProgram, parseSignature } from './handlers.ts';
import type { JsonValue } from '../store/types.ts';

const meta = { sessionId: 's', version: 1, anonymous: false, pool: 'p', worker: 'w' };

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (error) {
    return error instanceof WorkerError ? error.code : 'OTHER';
  }
  return 'NONE';
}

describe('worker handlers', () => {
  const registry = builtinHandlers();

  it('incr counts from zero and reports a change', async () => {
    const first = await registry.run('incr', { key: 'n' }, {}, meta);
    expect(first.result).to.deep.equal({ key: 'n', value: 1 });
    expect(first.changed).to.equal(true);
    const second = await registry.run('incr', { key: 'n', by: 5 }, first.data, meta);
    expect(second.result).to.deep.equal({ key: 'n', value: 6 });
  });

  it('get does not change the session; set does', async () => {
    const set = await registry.run('set', { key: 'a', value: [1, 2] }, {}, meta);
    expect(set.changed).to.equal(true);
    const get = await registry.run('get', { key: 'a' }, set.data, meta);
    expect(get.changed).to.equal(false);
    expect(get.result).to.deep.equal({ key: 'a', value: [1, 2], exists: true });
    expect((await registry.run('get', { key: 'b' }, set.data, meta)).result).to.deep.equal({ key: 'b', value: null, exists: false });
  });

  it('defines, executes and lists programs with counts and times', async () => {
    const defined = await registry.run('define_program', { programId: 'qa', signature: 'question -> answer' }, {}, meta);
    const run1 = await registry.run('execute_program', { programId: 'qa', inputs: { question: 'why?' } }, defined.data, meta);
    const run2 = await registry.run('execute_program', { programId: 'qa', inputs: { question: 'why?' } }, run1.data, meta);
    const r2 = run2.result as { outputs: { answer: string }; executionCount: number; lastExecutedAt: number };
    expect(r2.executionCount).to.equal(2);
    expect(r2.outputs.answer).to.equal((run1.result as { outputs: { answer: string } }).outputs.answer);
    expect(r2.lastExecutedAt).to.be.a('number');
    const list = await registry.run('list_programs', null, run2.data, meta);
    expect(list.changed).to.equal(false);
    expect((list.result as { programs: { programId: string; executionCount: number }[] }).programs).to.deep.include({
      programId: 'qa',
      signature: 'question -> answer',
      executionCount: 2,
      lastExecutedAt: r2.lastExecutedAt,
    });
  });

  it('answers unknown handlers, bad args and handler errors with codes', async () => {
    expect(await code(registry.run('nope', null, {}, meta))).to.equal('UNKNOWN_HANDLER');
    expect(await code(registry.run('incr', { key: 1 }, {}, meta))).to.equal('INVALID_ARGS');
    expect(await code(registry.run('incr', { key: 'x', extra: 1 }, {}, meta))).to.equal('INVALID_ARGS');
    expect(await code(registry.run('incr', { key: 's' }, { vars: { s: 'text' } }, meta))).to.equal('HANDLER_ERROR');
    expect(await code(registry.run('execute_program', { programId: 'none', inputs: {} }, {}, meta))).to.equal('HANDLER_ERROR');
    expect(await code(registry.run('get', { key: 'a' }, [1] as JsonValue, meta))).to.equal('INVALID_SESSION_DATA');
  });

  it('lets users register their own handler with an args schema', async () => {
    const mine = new HandlerRegistry().register(
      'append',
      (ctx, args) => {
        const list = Array.isArray(ctx.data.items) ? ctx.data.items : [];
        list.push((args as { item: string }).item);
        ctx.data.items = list;
        if (list.length > 2) throw new HandlerError('full');
        return list.length;
      },
      { args: Type.Object({ item: Type.String() }) },
    );
    const a = await mine.run('append', { item: 'x' }, {}, meta);
    expect(a.result).to.equal(1);
    expect(a.data).to.deep.equal({ items: ['x'] });
    expect(await code(mine.run('append', {}, {}, meta))).to.equal('INVALID_ARGS');
    expect(await code(mine.run('append', { item: 'z' }, { items: ['x', 'y'] }, meta))).to.equal('HANDLER_ERROR');
    expect(() => mine.register('bad name', () => null)).to.throw(/invalid handler name/);
  });

  it('parses signatures and evaluates deterministically', () => {
    expect(parseSignature('a, b -> c')).to.deep.equal({ inputs: ['a', 'b'], outputs: ['c'] });
    expect(() => parseSignature('a b')).to.throw(HandlerError);
    expect(() => parseSignature('a -> ')).to.throw(/no output/);
    const p = { signature: 'a -> c', instructions: 'sum' };
    expect(evaluateProgram(p, { a: 1 })).to.deep.equal(evaluateProgram(p, { a: 1 }));
    expect(() => evaluateProgram(p, {})).to.throw(/missing inputs: a/);
  });

  it("reads and writes client keys as own keys only, also those named like Object.prototype's", async () => {
    for (const key of ['constructor', '__proto__', 'toString', 'valueOf']) {
      expect((await registry.run('get', { key }, {}, meta)).result, key).to.deep.equal({ key, value: null, exists: false });
      const set = await registry.run('set', { key, value: 7 }, {}, meta);
      expect(set.changed, key).to.equal(true);
      expect(JSON.stringify(set.data)).to.equal(`{"vars":{${JSON.stringify(key)}:7}}`);
      expect((await registry.run('get', { key }, set.data, meta)).result).to.deep.equal({ key, value: 7, exists: true });
      expect((await registry.run('incr', { key }, set.data, meta)).result).to.deep.equal({ key, value: 8 });
    }
    const defined = await registry.run('define_program', { programId: '__proto__', signature: 'constructor -> toString' }, {}, meta);
    expect(JSON.stringify(defined.data)).to.contain('"programs":{"__proto__":{');
    expect(await code(registry.run('execute_program', { programId: '__proto__', inputs: {} }, defined.data, meta))).to.equal(
      'HANDLER_ERROR',
    );
    const ran = await registry.run('execute_program', { programId: '__proto__', inputs: { constructor: 1 } }, defined.data, meta);
    expect((ran.result as { outputs: Record<string, unknown> }).outputs).to.deep.equal({ toString: 'toString of (constructor=1)' });
    expect(await code(registry.run('execute_program', { programId: 'constructor', inputs: {} }, {}, meta))).to.equal('HANDLER_ERROR');
  });

  it('refuses an increment that would overflow to a non-finite number', async () => {
    const big = await registry.run('set', { key: 'n', value: Number.MAX_VALUE }, {}, meta);
    expect(await code(registry.run('incr', { key: 'n', by: Number.MAX_VALUE }, big.data, meta))).to.equal('HANDLER_ERROR');
  });

  it("answers a handler's unexpected failure without its text (kept as the cause for the log)", async () => {
    const r = new HandlerRegistry().register('boom', () => {
      throw new TypeError('secret internal detail at 10.0.0.1:6379');
    });
    try {
      await r.run('boom', null, {}, meta);
      expect.fail('should throw');
    } catch (error) {
      expect(error).to.be.instanceOf(WorkerError);
      expect((error as WorkerError).code).to.equal('HANDLER_ERROR');
      expect((error as WorkerError).message).to.not.contain('secret');
      expect(((error as WorkerError).cause as Error).message).to.contain('secret');
    }
  });
});
